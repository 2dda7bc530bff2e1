// Model downloads the user controls: the size before, a progress bar, a format check before
// anything is stored, one copy per city in IndexedDB (never a second in the HTTP cache).

import { Detector, cachedModels, saveModel } from "./detector.js";

const METERED_TYPES = new Set(["slow-2g", "2g", "3g"]);

/** An error with a message key and its parameters, shown in the page's language. */
export class ModelError extends Error {
  constructor(key, params = {}) {
    super(`${key} ${JSON.stringify(params)}`);
    this.key = key;
    this.params = params;
  }
}

/** The current model's version and size from GET /model/metadata (null when none). */
export async function modelInfo(city, apiBase = "/api") {
  const url = `${apiBase}/cities/${encodeURIComponent(city)}/model/metadata`;
  const response = await fetch(url, { cache: "no-store" });
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const body = await response.json();
  return { version: Number(body.version), size: Number(body.size_bytes), metadata: body.metadata };
}

/** Whether the connection looks metered: Save-Data on, a slow type, or a cellular link. */
export function looksMetered(connection = navigator.connection) {
  if (!connection) return false;
  return Boolean(connection.saveData) || METERED_TYPES.has(connection.effectiveType)
    || connection.type === "cellular";
}

/** Download the city's model with progress; a short body is refused, nothing is kept. */
export async function downloadModel(city, expectedSize, onProgress, apiBase = "/api") {
  const url = `${apiBase}/cities/${encodeURIComponent(city)}/model`;
  // no-store: IndexedDB keeps the one copy, the HTTP cache must not keep a second.
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const total = Number(response.headers.get("Content-Length")) || expectedSize || 0;
  const reader = response.body.getReader();
  const chunks = [];
  let done = 0;
  for (;;) {
    const { value, done: finished } = await reader.read();
    if (finished) break;
    chunks.push(value);
    done += value.byteLength;
    onProgress?.(done, total);
  }
  if ((total && done !== total) || (expectedSize && done !== expectedSize)) {
    throw new ModelError("incomplete", { done, total: total || expectedSize });
  }
  const bytes = new Uint8Array(done);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  const version = Number(response.headers.get("X-Model-Version"));
  return { bytes: bytes.buffer, version };
}

/** Check the bytes are a SightScan model (metadata and an onnxruntime session) or throw. */
export async function checkedDetector(bytes) {
  try {
    return await Detector.fromBytes(bytes);
  } catch (error) {
    throw new ModelError("modelRefused", { reason: error.message ?? String(error) });
  }
}

/** Store the model (replacing the city's older version); a full disk says how much is needed. */
export async function storeModel(city, version, bytes) {
  try {
    await saveModel({ city, version, bytes, size: bytes.byteLength, savedAt: Date.now() });
  } catch (error) {
    if (error?.name !== "QuotaExceededError") throw error;
    const estimate = await navigator.storage?.estimate?.().catch(() => null);
    const free = estimate ? Math.max(0, estimate.quota - estimate.usage) : NaN;
    throw new ModelError("storageFull", { needed: bytes.byteLength, free });
  }
}

/** Every stored model without its bytes: [{city, version, size}], by city. */
export async function storedModels() {
  const records = await cachedModels();
  return records.map(({ city, version, bytes, size }) => ({
    city, version, size: size ?? bytes?.byteLength ?? 0,
  })).sort((a, b) => a.city.localeCompare(b.city));
}

/** The origin's storage use and quota, where the browser tells (else null). */
export async function storageEstimate() {
  try {
    const { usage, quota } = await navigator.storage.estimate();
    return { usage, quota };
  } catch {
    return null;
  }
}
