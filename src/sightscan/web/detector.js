// SightScan in the browser: model cache, pre- and post-processing, onnxruntime-web (WASM).
//
// The contract is sightscan/inference.py (docs/detector.md, docs/client.md): stretch the
// photo to S x S with Pillow's BILINEAR resampling (reproduced below, fixed point and all),
// feed uint8 RGB NHWC, keep scores >= score_threshold, per-class NMS at nms_iou, then
// cross-class NMS at IoU 0.7, at most max_detections; boxes are relative to the photo.

import * as ort from "./vendor/ort.wasm.bundle.min.mjs";

// Several threads where the page is cross-origin isolated (the server sends COOP/COEP),
// else one: SharedArrayBuffer, which the threads share, needs that isolation.
ort.env.wasm.numThreads = globalThis.crossOriginIsolated
  ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1))
  : 1;
ort.env.wasm.wasmPaths = {
  wasm: new URL("./vendor/ort-wasm-simd-threaded.wasm", import.meta.url).href,
};
ort.env.logLevel = "error";

const METADATA_KEY = "sightscan";
const MODEL_FORMAT = "sightscan-detector";

// ------------------------------------------------------------------ model cache (IndexedDB)
// One record per city: {city, version, bytes}. IndexedDB works on plain-http origins too.

function openStore() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open("sightscan", 1);
    request.onupgradeneeded = () => request.result.createObjectStore("models", { keyPath: "city" });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function storeCall(mode, call) {
  const db = await openStore();
  try {
    return await new Promise((resolve, reject) => {
      const request = call(db.transaction("models", mode).objectStore("models"));
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  } finally {
    db.close();
  }
}

export const cachedModel = (city) => storeCall("readonly", (s) => s.get(city));
export const cachedCities = () => storeCall("readonly", (s) => s.getAllKeys());
export const cachedModels = () => storeCall("readonly", (s) => s.getAll());
/** Store a city's model; the record replaces the city's older version (one copy per city). */
export const saveModel = (record) => storeCall("readwrite", (s) => s.put(record));
export const deleteModel = (city) => storeCall("readwrite", (s) => s.delete(city));

async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

/** The city's newest model bytes: from the cache when its version is current, else downloaded. */
export async function loadModelBytes(city, apiBase = "/api") {
  const base = `${apiBase}/cities/${encodeURIComponent(city)}`;
  const cached = await cachedModel(city).catch(() => undefined);
  let version;
  try {
    version = await fetchJson(`${base}/model/version`);
  } catch (error) {
    if (cached) return { ...cached, source: "cache (offline)" };
    throw error;
  }
  if (cached && cached.version === version) return { ...cached, source: "cache" };
  if (version < 0) throw new Error(`no model for ${city} yet`);
  // no-store: IndexedDB keeps the one copy, the HTTP cache must not keep a second.
  const response = await fetch(`${base}/model`, { cache: "no-store" });
  if (!response.ok) throw new Error(`model download failed: HTTP ${response.status}`);
  const bytes = await response.arrayBuffer();
  const record = { city, version: Number(response.headers.get("X-Model-Version") ?? version), bytes };
  await saveModel(record).catch((error) => console.warn("model not cached:", error));
  return { ...record, source: "download" };
}

// ------------------------------------------------------------------ ONNX metadata_props
// ModelProto field 14 is repeated StringStringEntryProto {1: key, 2: value}; we walk the
// top-level fields only (the graph is skipped by its length).

function readVarint(view, pos) {
  let value = 0;
  let shift = 1;
  for (;;) {
    const byte = view[pos++];
    value += (byte & 0x7f) * shift;
    if (byte < 0x80) return [value, pos];
    shift *= 128;
  }
}

function* protoFields(bytes) {
  let pos = 0;
  while (pos < bytes.length) {
    let key;
    [key, pos] = readVarint(bytes, pos);
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) [, pos] = readVarint(bytes, pos);
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      let length;
      [length, pos] = readVarint(bytes, pos);
      yield [field, bytes.subarray(pos, pos + length)];
      pos += length;
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
  }
}

/** The JSON metadata the trainer embeds under metadata_props "sightscan". */
export function readMetadata(buffer) {
  const text = new TextDecoder();
  for (const [field, entry] of protoFields(new Uint8Array(buffer))) {
    if (field !== 14) continue;
    const pair = {};
    for (const [sub, value] of protoFields(entry)) pair[sub] = text.decode(value);
    if (pair[1] === METADATA_KEY) return JSON.parse(pair[2]);
  }
  throw new Error("not a SightScan model: the ONNX file has no 'sightscan' metadata");
}

// ------------------------------------------------------------------ pre-processing

/** Decode a photo as Pillow does for the detector: EXIF orientation, no colour management. */
export function decodePhoto(blob) {
  return createImageBitmap(blob, {
    imageOrientation: "from-image", colorSpaceConversion: "none", premultiplyAlpha: "none",
  });
}

/** RGBA pixels of an image source (bitmap, video frame) at its own size. */
export function pixelsOf(source, width, height) {
  const scratch = new OffscreenCanvas(width, height);
  const context = scratch.getContext("2d", { willReadFrequently: true });
  context.drawImage(source, 0, 0);
  return context.getImageData(0, 0, width, height).data;
}

// Pillow's Image.resize(size, BILINEAR) for 8-bit images (libImaging/Resample.c): a
// triangle filter widened by the scale factor, 22-bit fixed-point coefficients,
// horizontal pass then vertical pass, each rounded and clipped to uint8.

const PRECISION_BITS = 22;
const ONE = 2 ** PRECISION_BITS;

function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the bilinear filter's support is 1
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterScale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let total = 0;
    for (let x = 0; x < xmax; x++) {
      const w = Math.max(0, 1 - Math.abs((x + xmin - center + 0.5) * ss));
      k[x] = w;
      total += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = total !== 0 ? k[x] / total : k[x];
      weights[xx * ksize + x] = Math.trunc(w < 0 ? -0.5 + w * ONE : 0.5 + w * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { bounds, weights, ksize };
}

function clip8(sum) {
  if (sum >= ONE * 256) return 255;
  if (sum <= 0) return 0;
  return Math.floor(sum / ONE);
}

/** RGBA pixels (ImageData) -> uint8 RGB [size, size, 3], exactly as Detector.preprocess. */
export function resizeBilinear(rgba, width, height, size) {
  const out = new Uint8Array(size * size * 3);
  if (width === size && height === size) {
    for (let i = 0, j = 0; i < out.length; i += 3, j += 4) {
      out[i] = rgba[j];
      out[i + 1] = rgba[j + 1];
      out[i + 2] = rgba[j + 2];
    }
    return out;
  }
  const h = coefficients(width, size);
  const v = coefficients(height, size);
  const first = v.bounds[0];
  const last = v.bounds[size * 2 - 2] + v.bounds[size * 2 - 1];
  // Horizontal pass on the rows the vertical pass needs (Pillow skips the others too).
  const rows = last - first;
  const temp = new Uint8Array(rows * size * 3);
  for (let y = 0; y < rows; y++) {
    const row = (y + first) * width * 4;
    for (let xx = 0; xx < size; xx++) {
      const xmin = h.bounds[xx * 2];
      const xmax = h.bounds[xx * 2 + 1];
      const w = xx * h.ksize;
      let r = ONE / 2;
      let g = ONE / 2;
      let b = ONE / 2;
      for (let x = 0; x < xmax; x++) {
        const p = row + (x + xmin) * 4;
        const k = h.weights[w + x];
        r += rgba[p] * k;
        g += rgba[p + 1] * k;
        b += rgba[p + 2] * k;
      }
      const t = (y * size + xx) * 3;
      temp[t] = clip8(r);
      temp[t + 1] = clip8(g);
      temp[t + 2] = clip8(b);
    }
  }
  for (let yy = 0; yy < size; yy++) {
    const ymin = v.bounds[yy * 2] - first;
    const ymax = v.bounds[yy * 2 + 1];
    const w = yy * v.ksize;
    for (let xx = 0; xx < size; xx++) {
      let r = ONE / 2;
      let g = ONE / 2;
      let b = ONE / 2;
      for (let y = 0; y < ymax; y++) {
        const p = ((y + ymin) * size + xx) * 3;
        const k = v.weights[w + y];
        r += temp[p] * k;
        g += temp[p + 1] * k;
        b += temp[p + 2] * k;
      }
      const o = (yy * size + xx) * 3;
      out[o] = clip8(r);
      out[o + 1] = clip8(g);
      out[o + 2] = clip8(b);
    }
  }
  return out;
}

// ------------------------------------------------------------------ post-processing
// float32 arithmetic (Math.fround) as numpy does on the float32 outputs.

const f = Math.fround;

/** Greedy NMS; indices kept, best first (stable for equal scores), as inference.nms. */
export function nms(boxes, scores, iou) {
  let order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  const area = (b) => f(f(b[2] - b[0]) * f(b[3] - b[1]));
  const limit = f(iou);
  const keep = [];
  while (order.length) {
    const i = order[0];
    keep.push(i);
    const a = boxes[i];
    order = order.slice(1).filter((j) => {
      const b = boxes[j];
      const w = Math.max(f(Math.min(a[2], b[2]) - Math.max(a[0], b[0])), 0);
      const h = Math.max(f(Math.min(a[3], b[3]) - Math.max(a[1], b[1])), 0);
      const inter = f(w * h);
      const overlap = f(inter / f(f(f(area(a) + area(b)) - inter) + f(1e-9)));
      return overlap <= limit;
    });
  }
  return keep;
}

/** One photo's raw outputs -> [{label, score, box: [x1, y1, x2, y2]}], best first. */
export function postprocess(boxData, scoreData, classNames, options) {
  const { scoreThreshold, nmsIou, maxDetections } = options;
  const classes = classNames.length;
  const cells = scoreData.length / classes;
  const threshold = f(scoreThreshold);
  const byClass = new Map();
  for (let cell = 0; cell < cells; cell++) {
    for (let c = 0; c < classes; c++) {
      const score = scoreData[cell * classes + c];
      if (score < threshold) continue;
      if (!byClass.has(c)) byClass.set(c, []);
      byClass.get(c).push(cell);
    }
  }
  const box = (cell) => Array.from(boxData.subarray(cell * 4, cell * 4 + 4));
  let picked = [];
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const cellsOfClass = byClass.get(c);
    const scores = cellsOfClass.map((cell) => scoreData[cell * classes + c]);
    for (const k of nms(cellsOfClass.map(box), scores, nmsIou)) {
      picked.push({ score: scores[k], cell: cellsOfClass[k], cls: c });
    }
  }
  picked = picked.map((p, i) => [p, i]).sort((a, b) => b[0].score - a[0].score || a[1] - b[1])
    .map(([p]) => p);
  // One sight, one answer: drop a weaker class guess on the same place.
  const keep = nms(picked.map((p) => box(p.cell)), picked.map((p) => p.score), 0.7);
  picked = keep.sort((a, b) => a - b).map((k) => picked[k]);
  const result = [];
  for (const { score, cell, cls } of picked.slice(0, maxDetections)) {
    const [x1, y1, x2, y2] = box(cell).map((v) => Math.min(Math.max(v, 0), 1));
    if (x2 - x1 <= 1e-6 || y2 - y1 <= 1e-6) continue;
    result.push({ label: classNames[cls], score, box: [x1, y1, x2, y2] });
  }
  return result;
}

// ------------------------------------------------------------------ the detector

export class Detector {
  constructor(session, metadata) {
    this.session = session;
    this.metadata = metadata;
    this.classNames = metadata.class_names;
    this.inputSize = Number(metadata.input.shape[1]);
    this.options = {
      scoreThreshold: Number(metadata.score_threshold ?? 0.5),
      nmsIou: Number(metadata.nms_iou ?? 0.5),
      maxDetections: Number(metadata.max_detections ?? 20),
    };
    this.queue = Promise.resolve(); // a WASM session runs one call at a time
  }

  /** A Detector from ONNX bytes; throws when they are not a SightScan model. */
  static async fromBytes(bytes) {
    const metadata = readMetadata(bytes);
    const shape = metadata.input?.shape ?? [];
    if (metadata.format !== MODEL_FORMAT || !metadata.class_names?.length || shape.length !== 4
        || Number(shape[1]) !== Number(shape[2])) {
      throw new Error("not a SightScan model: invalid metadata");
    }
    const session = await ort.InferenceSession.create(new Uint8Array(bytes), {
      executionProviders: ["wasm"],
      graphOptimizationLevel: "all",
    });
    return new Detector(session, metadata);
  }

  /** Model input from RGBA pixels of the (EXIF-oriented) photo. */
  preprocess(rgba, width, height) {
    return resizeBilinear(rgba, width, height, this.inputSize);
  }

  /** Sights in a photo given as RGBA pixels, best first. */
  detect(rgba, width, height) {
    const run = async () => {
      const size = this.inputSize;
      const input = new ort.Tensor("uint8", this.preprocess(rgba, width, height), [1, size, size, 3]);
      const outputs = await this.session.run({ image: input });
      return postprocess(outputs.boxes.data, outputs.scores.data, this.classNames, this.options);
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }
}
