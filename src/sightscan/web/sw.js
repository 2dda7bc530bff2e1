// SightScan's service worker: the app shell and onnxruntime, so the page opens offline.
// Models are NOT cached here: the page keeps exactly one copy of each in IndexedDB.
// Bump VERSION when a file below changes its name or the vendored runtime is upgraded.
const VERSION = "sightscan-shell-v2";
const SHELL = [
  "./", "index.html", "style.css", "app.js", "detector.js", "models.js", "draw.js", "i18n.js",
  "requests.js", "manifest.webmanifest", "icons/icon-192.png", "icons/icon-512.png",
  "vendor/ort.wasm.bundle.min.mjs",
];
// The 14 MB runtime never changes under the same name: cache first, fetched once.
const IMMUTABLE = ["vendor/ort-wasm-simd-threaded.wasm"];

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(VERSION);
    await cache.addAll([...SHELL, ...IMMUTABLE]);
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith("sightscan-shell-") && key !== VERSION) await caches.delete(key);
    }
    await self.clients.claim();
  })());
});

const scopePath = new URL(self.registration.scope).pathname;
const immutable = new Set(IMMUTABLE.map((path) => scopePath + path));

self.addEventListener("fetch", (event) => {
  const { request } = event;
  const url = new URL(request.url);
  // Only the page's own files; API calls (and models) go to the network untouched.
  if (request.method !== "GET" || url.origin !== self.location.origin
      || !url.pathname.startsWith(scopePath)) return;
  event.respondWith(immutable.has(url.pathname) ? cacheFirst(request) : networkFirst(request));
});

async function cacheFirst(request) {
  const cache = await caches.open(VERSION);
  const hit = await cache.match(request, { ignoreSearch: true });
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

// Online: the newest file (and the cache refreshed); offline: the cached one.
async function networkFirst(request) {
  const cache = await caches.open(VERSION);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (error) {
    const hit = await cache.match(request, { ignoreSearch: true });
    if (hit) return hit;
    throw error;
  }
}
