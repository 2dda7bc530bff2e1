// The SightScan page: choose a city, get its model (the user in control of the download),
// detect sights in a photo or the camera, help the project. See docs/client.md.
import { cachedCities, cachedModel, decodePhoto, deleteModel, pixelsOf } from "./detector.js";
import { drawScene } from "./draw.js";
import { formatBytes, initialLanguage, setLanguage, t } from "./i18n.js";
import {
  ModelError, checkedDetector, downloadModel, looksMetered, modelInfo, storageEstimate, storeModel,
  storedModels,
} from "./models.js";
import { CityRequests, gazetteer, startUploads, titleCase } from "./requests.js";

const API = "/api";
// Tests and tools may set window.sightscanConfig before the page loads.
const CONFIG = {
  cityRefreshMs: 30_000, statusRefreshMs: 5_000, cameraIntervalMs: 500, confirmAboveMb: 5,
  ...(globalThis.sightscanConfig ?? {}),
};
const LOG_LINES = 40;
const $ = (id) => document.getElementById(id);

const state = {
  city: "", detector: null, modelVersion: null, photo: null, detections: [], stream: null,
  timer: 0, cities: [], names: new Map(), log: [], pending: null,
};

// ------------------------------------------------------------------ helpers

function setStatus(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

/** A city's name for people: the gazetteer's when known, else "Towers" for "TOWERS". */
const nameOf = (city) => state.names.get(city) ?? titleCase(city);

/** A ModelError's text, sizes in MB; other errors by their message. */
function describe(error, city) {
  if (!(error instanceof ModelError)) return error?.message ?? String(error);
  const params = { city: nameOf(city), ...error.params };
  for (const key of ["needed", "free", "done", "total"]) {
    if (typeof params[key] === "number") params[key] = formatBytes(params[key]);
  }
  if (error.key === "incomplete") return t("downloadFailed", { city: params.city, reason: t("incomplete", params) });
  return t(error.key, params);
}

function log(line) {
  state.log.push(`${new Date().toLocaleTimeString()} ${line}`);
  state.log.splice(0, Math.max(0, state.log.length - LOG_LINES));
  $("debug-info").textContent = state.log.join("\n");
}

// ------------------------------------------------------------------ cities

async function nameCities(cities) {
  const unknown = cities.filter((city) => !state.names.has(city));
  await Promise.all(unknown.map(async (city) => {
    const entry = (await gazetteer(API, city, 1)).find((e) => e.key === city);
    if (entry?.name) state.names.set(city, entry.name);
  }));
}

async function listCities() {
  let cities;
  let offline = false;
  try {
    const response = await fetch(`${API}/cities/`, { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    cities = (await response.json()).cities;
    await nameCities(cities);
  } catch {
    cities = await cachedCities().catch(() => []);
    offline = true;
  }
  const changed = cities.join("\n") !== state.cities.join("\n");
  state.cities = cities;
  if (changed || $("city").options.length <= 1) renderCityLists();
  if (offline && !state.detector) setStatus($("model-status"), t("offlineCities"));
  return offline;
}

function renderCityLists() {
  const select = $("city");
  const chosen = select.value || state.city;
  const cities = state.cities;
  select.replaceChildren(new Option(t(cities.length ? "chooseCity" : "noCityYet"), ""));
  for (const city of cities) select.add(new Option(nameOf(city), city));
  select.disabled = cities.length === 0;
  if (cities.includes(chosen)) select.value = chosen;
  const upload = $("upload-city");
  const uploadChosen = upload.value || state.city;
  upload.replaceChildren(new Option(t(cities.length ? "chooseCity" : "noCityYet"), ""));
  for (const city of cities) upload.add(new Option(nameOf(city), city));
  if (cities.includes(uploadChosen)) upload.value = uploadChosen;
}

// ------------------------------------------------------------------ the model, under the user's control

function hideDownload() {
  $("download").hidden = true;
  $("download-progress").hidden = true;
  state.pending = null;
}

function offer(text, yesKey, onYes, isError = false) {
  const box = $("download");
  setStatus($("download-text"), text, isError);
  $("download-yes").textContent = t(yesKey);
  $("download-progress").hidden = true;
  box.hidden = false;
  state.pending = onYes;
}

async function useDetector(city, detector, version, sizeBytes, sourceKey, reason = "") {
  if (state.city !== city) return;
  state.detector = detector;
  state.modelVersion = version;
  const source = t(sourceKey, { reason });
  setStatus($("model-status"), t("modelReady", {
    city: nameOf(city), version, size: formatBytes(sizeBytes), source,
    sights: detector.classNames.join(", "),
  }));
  $("photo").disabled = $("camera").disabled = false;
  log(`model ${city} v${version}: input ${detector.inputSize}px, `
    + `threshold ${detector.options.scoreThreshold}, classes ${detector.classNames.length}`);
  if (state.photo) await detectPhoto();
}

async function chooseCity(city) {
  stopCamera();
  hideDownload();
  Object.assign(state, { city, detector: null, modelVersion: null });
  $("photo").disabled = $("camera").disabled = true;
  if (!city) return setStatus($("model-status"), t("chooseToStart"));
  localStorage.setItem("sightscan.city", city);
  if ($("upload-city").querySelector(`option[value="${CSS.escape(city)}"]`)) $("upload-city").value = city;
  setStatus($("model-status"), t("loadingModel", { city: nameOf(city) }));
  const stored = await cachedModel(city).catch(() => undefined);
  let info;
  try {
    info = await modelInfo(city, API);
  } catch {
    info = undefined; // offline: what is stored is what there is
  }
  if (state.city !== city) return;
  if (stored) {
    try {
      const detector = await checkedDetector(stored.bytes);
      await useDetector(city, detector, stored.version, stored.bytes.byteLength,
        info === undefined ? "sourceStoredOffline" : "sourceStored");
    } catch (error) {
      setStatus($("model-status"), describe(error, city), true);
    }
    const declined = Number(localStorage.getItem(`sightscan.declined.${city}`));
    if (info && info.version > stored.version && declined !== info.version) offerUpdate(city, info);
    return;
  }
  if (info === undefined) return setStatus($("model-status"), t("modelUnavailable", { city: nameOf(city) }), true);
  if (info === null) return setStatus($("model-status"), t("noModelYet", { city: nameOf(city) }), true);
  const limit = Number(localStorage.getItem("sightscan.confirmAboveMb") ?? CONFIG.confirmAboveMb) * 1e6;
  if (looksMetered() && info.size > limit) {
    const text = `${t("downloadMetered")} ${t("downloadOffer",
      { city: nameOf(city), version: info.version, size: formatBytes(info.size) })}`;
    setStatus($("model-status"), text);
    return offer(text, "download", () => download(city, info));
  }
  await download(city, info);
}

function offerUpdate(city, info) {
  const text = t("updateOffer", { city: nameOf(city), version: info.version, size: formatBytes(info.size) });
  offer(text, "update", () => download(city, info));
  $("download").dataset.version = String(info.version);
}

async function download(city, info) {
  const box = $("download");
  const bar = $("download-progress");
  box.hidden = false;
  $("download-yes").hidden = $("download-no").hidden = true;
  bar.hidden = false;
  bar.max = info.size || 1;
  bar.value = 0;
  const progress = (done, total) => {
    bar.max = total || info.size || 1;
    bar.value = done;
    setStatus($("download-text"), t("downloading",
      { city: nameOf(city), done: formatBytes(done), total: formatBytes(total || info.size) }));
  };
  progress(0, info.size);
  let detector;
  let model;
  try {
    model = await downloadModel(city, info.size, progress, API);
    detector = await checkedDetector(model.bytes);
  } catch (error) {
    $("download-yes").hidden = $("download-no").hidden = false;
    const text = error instanceof ModelError ? describe(error, city)
      : t("downloadFailed", { city: nameOf(city), reason: describe(error, city) });
    offer(text, "retry", () => download(city, info), true);
    return;
  }
  $("download-yes").hidden = $("download-no").hidden = false;
  hideDownload();
  const version = Number.isFinite(model.version) && model.version > 0 ? model.version : info.version;
  let sourceKey = "sourceDownloaded";
  let reason = "";
  try {
    await storeModel(city, version, model.bytes);
  } catch (error) {
    sourceKey = "sourceNotStored";
    reason = describe(error, city);
  }
  await useDetector(city, detector, version, model.bytes.byteLength, sourceKey, reason);
  await renderStorage();
}

// ------------------------------------------------------------------ stored models

async function renderStorage() {
  const models = await storedModels().catch(() => []);
  const total = models.reduce((sum, m) => sum + m.size, 0);
  $("stored").replaceChildren(...(models.length ? models.map((model) => {
    const li = document.createElement("li");
    const text = document.createElement("span");
    text.textContent = `${nameOf(model.city)} v${model.version}, ${formatBytes(model.size)}`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "secondary";
    remove.textContent = t("remove");
    remove.setAttribute("aria-label", `${t("remove")}: ${nameOf(model.city)}`);
    remove.addEventListener("click", () => removeModel(model.city));
    li.append(text, remove);
    return li;
  }) : [Object.assign(document.createElement("li"), { textContent: t("noStored") })]));
  const estimate = await storageEstimate();
  $("storage-used").textContent = estimate
    ? t("storageUsed", { models: formatBytes(total), used: formatBytes(estimate.usage),
      quota: formatBytes(estimate.quota) })
    : t("storageModels", { models: formatBytes(total) });
  $("storage-used").dataset.modelBytes = String(total);
}

async function removeModel(city) {
  await deleteModel(city);
  localStorage.removeItem(`sightscan.declined.${city}`);
  if (state.city === city) {
    stopCamera();
    Object.assign(state, { detector: null, modelVersion: null });
    $("photo").disabled = $("camera").disabled = true;
  }
  setStatus($("model-status"), t("removed", { city: nameOf(city) }));
  await renderStorage();
}

// ------------------------------------------------------------------ results

function redraw(source, width, height) {
  const labels = drawScene($("view"), source, width, height, state.detections,
    { debug: $("debug").checked, nameOf: (label) => label });
  window.lastLabels = labels;
}

function renderSights(detections) {
  const sights = state.detector?.metadata?.sights ?? {};
  const unique = [...new Map(detections.map((d) => [d.label, d])).values()];
  $("sights").replaceChildren(...unique.map(({ label, score }) => {
    const li = document.createElement("li");
    const title = document.createElement("strong");
    title.textContent = $("debug").checked ? `${label} (${score.toFixed(2)})` : label;
    li.append(title);
    const info = sights[label] ?? {};
    if (info.description) li.append(Object.assign(document.createElement("p"), { textContent: info.description }));
    if (info.url && /^https?:\/\//.test(info.url)) {
      li.append(Object.assign(document.createElement("a"),
        { href: info.url, textContent: t("more"), target: "_blank", rel: "noopener" }));
    }
    const credits = Array.isArray(info.credits) ? info.credits : [];
    if (credits.length) {
      const shown = credits.slice(0, 3).map((c) => [c.author, c.licence].filter(Boolean).join(", "))
        .filter(Boolean);
      if (credits.length > 3) shown.push(t("andMore", { count: credits.length - 3 }));
      li.append(Object.assign(document.createElement("small"),
        { className: "credits", textContent: t("photosBy", { credits: shown.join("; ") }) }));
    }
    return li;
  }));
}

function showResult(detections, source, milliseconds, size) {
  state.detections = detections;
  const names = [...new Set(detections.map((d) => d.label))];
  setStatus($("result"), names.length ? names.join(", ") : t("noSight")); // clears an error
  renderSights(detections);
  const payload = { source, city: state.city, ms: Math.round(milliseconds), detections };
  window.lastDetections = payload;
  window.detectionCount = (window.detectionCount ?? 0) + 1;
  $("detections-json").textContent = JSON.stringify(payload);
  const { scoreThreshold, nmsIou } = state.detector.options;
  log(`${source} ${size}: ${milliseconds.toFixed(1)} ms (input ${state.detector.inputSize}px, `
    + `threshold ${scoreThreshold}, nms ${nmsIou}), ${detections.length} detection(s)`
    + detections.map((d) => `\n  ${d.label} ${d.score.toFixed(3)} `
      + `[${d.box.map((v) => v.toFixed(3)).join(", ")}]`).join(""));
}

function showError(text) {
  setStatus($("result"), text, true);
  $("sights").replaceChildren();
}

// ------------------------------------------------------------------ photo (chosen, dropped, pasted)

async function choosePhoto(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) return showError(t("notImage", { name: file.name }));
  let bitmap;
  try {
    bitmap = await decodePhoto(file);
  } catch {
    return showError(t("cannotDecode", { name: file.name }));
  }
  stopCamera();
  state.photo?.bitmap.close();
  state.photo = { bitmap, file };
  await detectPhoto();
}

async function detectPhoto() {
  const { bitmap } = state.photo;
  $("stage").hidden = false;
  state.detections = [];
  redraw(bitmap, bitmap.width, bitmap.height);
  if (!state.detector) return;
  const started = performance.now();
  try {
    const detections = await state.detector.detect(
      pixelsOf(bitmap, bitmap.width, bitmap.height), bitmap.width, bitmap.height);
    showResult(detections, "photo", performance.now() - started, `${bitmap.width}x${bitmap.height}`);
    redraw(bitmap, bitmap.width, bitmap.height);
  } catch (error) {
    showError(t("detectionFailed", { reason: error.message }));
    console.error(error);
  }
}

function photoFrom(items) {
  return [...(items ?? [])].find((file) => file instanceof File) ?? null;
}

// ------------------------------------------------------------------ camera

async function listCameras() {
  const select = $("camera-select");
  const devices = (await navigator.mediaDevices.enumerateDevices())
    .filter((device) => device.kind === "videoinput");
  const current = state.stream?.getVideoTracks()[0]?.getSettings().deviceId;
  select.replaceChildren(...devices.map((device, index) =>
    new Option(device.label || `${t("camera")} ${index + 1}`, device.deviceId)));
  if (current) select.value = current;
  select.hidden = devices.length === 0;
  return devices;
}

/** The rear camera when the labels tell (phones), else the browser's choice of facing. */
function videoConstraints(devices) {
  const chosen = $("camera-select").value;
  if (chosen) return { deviceId: { exact: chosen }, width: { ideal: 1280 } };
  const rear = devices.find((d) => /back|rear|environment|rück/i.test(d.label));
  if (rear?.deviceId) return { deviceId: { exact: rear.deviceId }, width: { ideal: 1280 } };
  return { facingMode: { ideal: "environment" }, width: { ideal: 1280 } };
}

async function startCamera() {
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    return showError(t("cameraNeedsHttps"));
  }
  const video = $("video");
  try {
    const devices = $("camera-select").options.length ? await listCameras() : [];
    state.stream = await navigator.mediaDevices.getUserMedia(
      { video: videoConstraints(devices), audio: false });
  } catch (error) {
    return showError(error?.name === "NotFoundError" ? t("noCamera")
      : t("cameraDenied", { reason: error?.message || error?.name }));
  }
  await listCameras().catch(() => []);
  video.srcObject = state.stream;
  await video.play();
  $("camera").textContent = t("stopCamera");
  $("camera").dataset.running = "1";
  $("stage").hidden = false;
  state.detections = [];
  const render = () => {
    if (!state.stream) return;
    if (video.videoWidth) redraw(video, video.videoWidth, video.videoHeight);
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
        if (state.stream) showResult(detections, "camera", performance.now() - started, `${width}x${height}`);
      }
    } catch (error) {
      showError(t("detectionFailed", { reason: error.message }));
      console.error(error);
    }
    if (state.stream) state.timer = setTimeout(detectFrame, CONFIG.cameraIntervalMs);
  };
  detectFrame();
}

function stopCamera() {
  if (!state.stream) return;
  clearTimeout(state.timer);
  for (const track of state.stream.getTracks()) track.stop();
  state.stream = null;
  $("video").srcObject = null;
  $("camera").textContent = t("startCamera");
  delete $("camera").dataset.running;
}

// ------------------------------------------------------------------ wiring

function wire() {
  $("city").addEventListener("change", (event) => chooseCity(event.target.value));
  $("photo").addEventListener("change", (event) => choosePhoto(event.target.files[0]));
  $("camera").addEventListener("click", () => (state.stream ? stopCamera() : startCamera()));
  $("camera-select").addEventListener("change", () => {
    if (state.stream) {
      stopCamera();
      startCamera();
    }
  });
  $("debug").addEventListener("change", () => {
    $("debug-info").hidden = !$("debug").checked;
    if (state.photo && !state.stream) redraw(state.photo.bitmap, state.photo.bitmap.width, state.photo.bitmap.height);
    renderSights(state.detections);
  });
  $("download-yes").addEventListener("click", () => state.pending?.());
  $("download-no").addEventListener("click", () => {
    const version = Number($("download").dataset.version);
    if (state.city && version) localStorage.setItem(`sightscan.declined.${state.city}`, String(version));
    delete $("download").dataset.version;
    hideDownload();
  });
  $("confirm-mb").value = localStorage.getItem("sightscan.confirmAboveMb") ?? String(CONFIG.confirmAboveMb);
  $("confirm-mb").addEventListener("change", (event) => {
    const value = Number(event.target.value);
    if (Number.isFinite(value) && value >= 0) localStorage.setItem("sightscan.confirmAboveMb", String(value));
  });
  $("lang").addEventListener("change", (event) => {
    setLanguage(event.target.value);
    renderCityLists();
    renderStorage();
    requests.render();
    if (!state.stream) $("camera").textContent = t("startCamera");
  });
  // Drop or paste a photo anywhere on the page (not into the text fields).
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = photoFrom(event.dataTransfer?.files);
    if (file) choosePhoto(file);
  });
  document.addEventListener("paste", (event) => {
    const file = photoFrom(event.clipboardData?.files);
    if (!file) return;
    event.preventDefault();
    choosePhoto(file);
  });
}

const requests = new CityRequests({
  api: API, statusMs: CONFIG.statusRefreshMs, nameOf,
  onReady: () => listCities(),
});

async function start() {
  $("lang").value = setLanguage(initialLanguage());
  setStatus($("model-status"), t("chooseToStart"));
  wire();
  requests.start();
  startUploads({ api: API, nameOf });
  await listCities();
  const remembered = localStorage.getItem("sightscan.city");
  if (remembered && state.cities.includes(remembered)) {
    $("city").value = remembered;
    await chooseCity(remembered);
  }
  await renderStorage();
  setInterval(listCities, CONFIG.cityRefreshMs); // the seed's desktop client did it every 30 s
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("sw.js").catch((error) => console.warn("no offline page:", error));
  }
}

start();
