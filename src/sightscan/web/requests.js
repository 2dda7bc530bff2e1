// Helping the project: ask for a new city (checked against the gazetteer, progress shown
// and updated) and send a photo of a sight of a city that has a model.

import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const REQUESTS_KEY = "sightscan.requests";
const FINAL_STAGES = new Set(["ready", "failed"]);

function setStatus(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

async function errorBody(response) {
  try {
    const body = await response.json();
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
    return { detail, suggestions: Array.isArray(body.suggestions) ? body.suggestions : [] };
  } catch {
    return { detail: `HTTP ${response.status}`, suggestions: [] };
  }
}

const networkFailure = (error) => ({ ok: false, status: 0, json: async () => ({ detail: error.message }) });

/** "Towers" for "TOWERS", "New York" for "NEW YORK", "Saint-Denis" for "SAINT-DENIS". */
export function titleCase(key) {
  return String(key).toLowerCase().replace(/(^|[\s\-_])(\p{L})/gu, (_, sep, ch) => sep + ch.toUpperCase());
}

/** Gazetteer entries matching `query` ([] when the API has no gazetteer or is offline). */
export async function gazetteer(api, query, limit = 10) {
  const params = new URLSearchParams({ q: query, limit: String(limit) });
  try {
    const response = await fetch(`${api}/gazetteer?${params}`);
    if (!response.ok) return [];
    const body = await response.json();
    return Array.isArray(body.cities) ? body.cities : [];
  } catch {
    return [];
  }
}

const suggestionName = (entry) => (typeof entry === "string" ? entry : entry.name ?? entry.key);

/** City requests: autocomplete, the request itself, then its progress until ready or failed. */
export class CityRequests {
  constructor({ api, statusMs, nameOf, onReady }) {
    Object.assign(this, { api, statusMs, nameOf, onReady });
    this.timer = 0;
    this.debounce = 0;
    this.status = new Map(); // city key -> last status (or request response)
  }

  start() {
    $("request-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.request($("request-city").value.trim());
    });
    $("request-city").addEventListener("input", () => {
      clearTimeout(this.debounce);
      this.debounce = setTimeout(() => this.autocomplete(), 200);
    });
    for (const city of this.tracked()) this.status.set(city, { city });
    this.poll();
  }

  tracked() {
    try {
      const list = JSON.parse(localStorage.getItem(REQUESTS_KEY) ?? "[]");
      return Array.isArray(list) ? list.filter((c) => typeof c === "string") : [];
    } catch {
      return [];
    }
  }

  track(city) {
    const list = this.tracked().filter((c) => c !== city);
    localStorage.setItem(REQUESTS_KEY, JSON.stringify([city, ...list].slice(0, 10)));
  }

  async autocomplete() {
    const query = $("request-city").value.trim();
    if (query.length < 2) return;
    const entries = await gazetteer(this.api, query);
    $("gazetteer").replaceChildren(...entries.map((entry) => {
      const option = document.createElement("option");
      option.value = entry.name;
      option.label = [entry.name, entry.country].filter(Boolean).join(", ");
      return option;
    }));
  }

  async request(name) {
    const out = $("help-result");
    $("suggestions").hidden = true;
    if (!name) return;
    const response = await fetch(`${this.api}/cities/${encodeURIComponent(name)}/add`, { method: "POST" })
      .catch(networkFailure);
    if (!response.ok) {
      const { detail, suggestions } = await errorBody(response);
      if (response.status === 400 && suggestions.length) return this.suggest(name, suggestions);
      return setStatus(out, t("requestFailed", { reason: detail }), true);
    }
    const body = await response.json();
    this.track(body.city);
    this.status.set(body.city, { city: body.city, requests: body.requests, crawl: body.crawl_started });
    setStatus(out, t("requestsSoFar", { city: this.nameOf(body.city), requests: body.requests })
      + (body.crawl_started ? `; ${t("crawlStarted")}.` : "."));
    $("request-city").value = "";
    this.render();
    this.poll();
  }

  suggest(name, suggestions) {
    setStatus($("help-result"), `${t("unknownCity", { city: name })} ${t("didYouMean")}`, true);
    const box = $("suggestions");
    box.replaceChildren(...suggestions.slice(0, 5).map((entry) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary";
      button.textContent = suggestionName(entry);
      button.addEventListener("click", () => {
        $("request-city").value = suggestionName(entry);
        this.request(suggestionName(entry));
      });
      return button;
    }));
    box.hidden = false;
    box.querySelector("button")?.focus();
  }

  async poll() {
    clearTimeout(this.timer);
    const open = this.tracked().filter((city) => !FINAL_STAGES.has(this.status.get(city)?.stage));
    for (const city of open) {
      try {
        const response = await fetch(`${this.api}/cities/${encodeURIComponent(city)}/status`,
          { cache: "no-store" });
        if (!response.ok) continue; // an API without the status route: the request count stays
        const status = await response.json();
        const before = this.status.get(city)?.stage;
        this.status.set(city, status);
        if (status.stage === "ready" && before !== "ready") this.onReady?.(city);
      } catch {
        // offline: try again at the next tick
      }
    }
    this.render();
    if (open.length) this.timer = setTimeout(() => this.poll(), this.statusMs);
  }

  render() {
    const items = this.tracked().map((city) => {
      const status = this.status.get(city) ?? { city };
      const li = document.createElement("li");
      li.dataset.city = city;
      li.dataset.stage = status.stage ?? "";
      const name = status.name ?? this.nameOf(city);
      if (status.stage) {
        li.textContent = t(`stage_${status.stage}`, {
          city: name, requests: status.requests, needed: status.requests_needed,
          error: status.error || t("reasonUnknown"),
        });
        li.classList.toggle("error", status.stage === "failed");
      } else {
        li.textContent = t("requestsSoFar", { city: name, requests: status.requests ?? "?" });
      }
      return li;
    });
    $("requests").replaceChildren(...items);
  }
}

/** The photo form: only cities with a model can be chosen, and only image files are sent. */
export function startUploads({ api, nameOf }) {
  const input = $("upload-photo");
  input.addEventListener("change", () => {
    $("upload-name").textContent = input.files[0]?.name ?? "";
  });
  $("upload-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const out = $("help-result");
    const city = $("upload-city").value;
    const file = input.files[0];
    if (!city) return setStatus(out, t("uploadNeedsCity"), true);
    if (!file) return setStatus(out, t("uploadNeedsPhoto"), true);
    if (!file.type.startsWith("image/")) return setStatus(out, t("notImage", { name: file.name }), true);
    const form = new FormData();
    form.append("image", file, file.name);
    const sight = $("upload-sight").value.trim();
    if (sight) form.append("sight", sight);
    const response = await fetch(`${api}/cities/${encodeURIComponent(city)}/image`,
      { method: "POST", body: form }).catch(networkFailure);
    if (!response.ok) {
      return setStatus(out, t("uploadFailed", { reason: (await errorBody(response)).detail }), true);
    }
    const body = await response.json();
    setStatus(out, t(body.duplicate ? "uploadDuplicate" : "uploadAdded",
      { city: nameOf(body.city), id: body.image_id }));
  });
}

