// The SightScan page: choose a city, detect sights in a photo or the camera, help the project.
import { Detector, cachedCities, decodePhoto, loadModelBytes, pixelsOf } from "./detector.js";

const API = "/api";
const CAMERA_INTERVAL_MS = 500; // a modest rate: about two detections a second at most
const $ = (id) => document.getElementById(id);

const state = { city: "", detector: null, photo: null, detections: [], stream: null, timer: 0 };

// ------------------------------------------------------------------ helpers

function setStatus(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

async function apiError(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
  } catch {
    return `HTTP ${response.status}`;
  }
}

// ------------------------------------------------------------------ city and model

async function listCities() {
  const select = $("city");
  let cities;
  try {
    const response = await fetch(`${API}/cities/`);
    if (!response.ok) throw new Error(await apiError(response));
    cities = (await response.json()).cities;
  } catch {
    cities = await cachedCities().catch(() => []);
    setStatus($("model-status"), "Offline: only cities already downloaded are listed.");
  }
  select.replaceChildren(new Option(cities.length ? "choose a city…" : "no city yet", ""));
  for (const city of cities) select.add(new Option(city, city));
  select.disabled = cities.length === 0;
  const remembered = localStorage.getItem("sightscan.city");
  if (remembered && cities.includes(remembered)) {
    select.value = remembered;
    await chooseCity(remembered);
  }
}

async function chooseCity(city) {
  stopCamera();
  state.city = city;
  state.detector = null;
  $("photo").disabled = $("camera").disabled = true;
  $("upload-city").value = city;
  if (!city) return;
  localStorage.setItem("sightscan.city", city);
  const status = $("model-status");
  setStatus(status, `Loading the model of ${city}…`);
  try {
    const model = await loadModelBytes(city, API);
    const detector = await Detector.fromBytes(model.bytes);
    if (state.city !== city) return; // another city was chosen meanwhile
    state.detector = detector;
    const megabytes = (model.bytes.byteLength / 1e6).toFixed(1);
    setStatus(status, `${city} model v${model.version} (${megabytes} MB, ${model.source}): `
      + `knows ${detector.classNames.join(", ")}.`);
    $("photo").disabled = $("camera").disabled = false;
    if (state.photo) await detectPhoto();
  } catch (error) {
    setStatus(status, `Could not load the model of ${city}: ${error.message}`, true);
  }
}

// ------------------------------------------------------------------ drawing and results

function draw(source, width, height) {
  const view = $("view");
  const scale = Math.min(1, 960 / width);
  view.width = Math.round(width * scale);
  view.height = Math.round(height * scale);
  const context = view.getContext("2d");
  context.drawImage(source, 0, 0, view.width, view.height);
  const debug = $("debug").checked;
  const line = Math.max(2, Math.round(Math.min(view.width, view.height) / 200));
  context.font = `600 ${Math.max(14, Math.round(Math.min(view.width, view.height) / 24))}px system-ui`;
  context.textBaseline = "top";
  for (const { label, score, box } of state.detections) {
    const [x1, y1, x2, y2] = [box[0] * view.width, box[1] * view.height,
      box[2] * view.width, box[3] * view.height];
    context.lineWidth = line;
    context.strokeStyle = "#e4572e";
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const text = debug ? `${label} ${score.toFixed(2)}` : label;
    const metrics = context.measureText(text);
    const textHeight = metrics.actualBoundingBoxDescent + 6;
    const top = y1 >= textHeight ? y1 - textHeight : y1;
    context.fillStyle = "rgba(0, 0, 0, 0.75)";
    context.fillRect(x1, top, metrics.width + 8, textHeight);
    context.fillStyle = "#fff";
    context.fillText(text, x1 + 4, top + 3);
  }
}

function showResult(detections, source, milliseconds) {
  state.detections = detections;
  const result = $("result");
  result.textContent = detections.length
    ? detections.map((d) => d.label).filter((v, i, all) => all.indexOf(v) === i).join(", ")
    : "No known sight";
  const payload = { source, city: state.city, ms: Math.round(milliseconds), detections };
  window.lastDetections = payload;
  window.detectionCount = (window.detectionCount ?? 0) + 1;
  $("detections-json").textContent = JSON.stringify(payload);
  const info = $("debug-info");
  info.hidden = !$("debug").checked;
  info.textContent = `${source}: ${Math.round(milliseconds)} ms, input `
    + `${state.detector.inputSize}px, threshold ${state.detector.options.scoreThreshold}\n`
    + detections.map((d) => `${d.label} ${d.score.toFixed(3)} [${d.box.map((v) => v.toFixed(3)).join(", ")}]`)
      .join("\n");
}

// ------------------------------------------------------------------ photo

async function choosePhoto(file) {
  if (!file) return;
  stopCamera();
  state.photo?.bitmap.close();
  const bitmap = await decodePhoto(file);
  state.photo = { bitmap, file };
  await detectPhoto();
}

async function detectPhoto() {
  const { bitmap } = state.photo;
  $("stage").hidden = false;
  state.detections = [];
  draw(bitmap, bitmap.width, bitmap.height);
  if (!state.detector) return;
  const started = performance.now();
  try {
    const detections = await state.detector.detect(
      pixelsOf(bitmap, bitmap.width, bitmap.height), bitmap.width, bitmap.height);
    showResult(detections, "photo", performance.now() - started);
    draw(bitmap, bitmap.width, bitmap.height);
  } catch (error) {
    setStatus($("result"), `Detection failed: ${error.message}`, true);
    console.error(error);
  }
}

// ------------------------------------------------------------------ camera

async function startCamera() {
  const video = $("video");
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: "environment", width: { ideal: 1280 } }, audio: false,
    });
  } catch (error) {
    setStatus($("result"), `No camera: ${error.message}`, true);
    return;
  }
  video.srcObject = state.stream;
  await video.play();
  $("camera").textContent = "Stop camera";
  $("stage").hidden = false;
  state.detections = [];
  const render = () => {
    if (!state.stream) return;
    draw(video, video.videoWidth, video.videoHeight);
    requestAnimationFrame(render);
  };
  requestAnimationFrame(render);
  const detectFrame = async () => {
    if (!state.stream || !state.detector) return;
    const { videoWidth: width, videoHeight: height } = video;
    const started = performance.now();
    try {
      if (width && height) {
        const detections = await state.detector.detect(pixelsOf(video, width, height), width, height);
        if (state.stream) showResult(detections, "camera", performance.now() - started);
      }
    } catch (error) {
      setStatus($("result"), `Detection failed: ${error.message}`, true);
      console.error(error);
    }
    if (state.stream) state.timer = setTimeout(detectFrame, CAMERA_INTERVAL_MS);
  };
  detectFrame();
}

function stopCamera() {
  if (!state.stream) return;
  clearTimeout(state.timer);
  for (const track of state.stream.getTracks()) track.stop();
  state.stream = null;
  $("video").srcObject = null;
  $("camera").textContent = "Start camera";
}

// ------------------------------------------------------------------ helping the project

async function requestCity(event) {
  event.preventDefault();
  const city = $("request-city").value.trim();
  const out = $("help-result");
  const response = await fetch(`${API}/cities/${encodeURIComponent(city)}/add`, { method: "POST" })
    .catch((error) => ({ ok: false, json: async () => ({ detail: error.message }) }));
  if (!response.ok) return setStatus(out, `Request failed: ${await apiError(response)}`, true);
  const body = await response.json();
  setStatus(out, `${body.city}: ${body.requests} request(s) so far`
    + (body.crawl_started ? "; collecting photos has started." : "."));
}

async function uploadPhoto(event) {
  event.preventDefault();
  const city = $("upload-city").value.trim();
  const file = $("upload-photo").files[0];
  const out = $("help-result");
  const form = new FormData();
  form.append("image", file, file.name);
  const sight = $("upload-sight").value.trim();
  if (sight) form.append("sight", sight);
  const response = await fetch(`${API}/cities/${encodeURIComponent(city)}/image`,
    { method: "POST", body: form })
    .catch((error) => ({ ok: false, json: async () => ({ detail: error.message }) }));
  if (!response.ok) return setStatus(out, `Upload failed: ${await apiError(response)}`, true);
  const body = await response.json();
  setStatus(out, body.duplicate
    ? `Thanks, ${body.city} already has this photo (#${body.image_id}).`
    : `Thanks! Photo #${body.image_id} added to ${body.city}.`);
}

// ------------------------------------------------------------------ wiring

$("city").addEventListener("change", (event) => chooseCity(event.target.value));
$("photo").addEventListener("change", (event) => choosePhoto(event.target.files[0]));
$("camera").addEventListener("click", () => (state.stream ? stopCamera() : startCamera()));
$("debug").addEventListener("change", () => {
  $("debug-info").hidden = !$("debug").checked;
  if (state.photo && !state.stream) draw(state.photo.bitmap, state.photo.bitmap.width,
    state.photo.bitmap.height);
});
$("request-form").addEventListener("submit", requestCity);
$("upload-form").addEventListener("submit", uploadPhoto);
listCities();
