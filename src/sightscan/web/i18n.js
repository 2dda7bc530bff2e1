// The page's words in English and German (the seed's own UI was German).
// Chosen from the browser's language, switchable, remembered in localStorage.

const WORDS = {
  en: {
    tagline: "Name the sights of a city in a photo or through your camera. The city's model is downloaded once; detection runs on this device.",
    language: "Language",
    cityHeading: "City and photo",
    city: "City",
    chooseCity: "choose a city…",
    noCityYet: "no city yet",
    loadingCities: "loading…",
    choosePhoto: "Choose a photo",
    startCamera: "Start camera",
    stopCamera: "Stop camera",
    camera: "Camera",
    debug: "debug",
    dropHint: "…or drop or paste a photo anywhere on the page.",
    resultHeading: "Result",
    canvasLabel: "The photo with the sights found",
    noSight: "No known sight",
    chooseToStart: "Choose a city, then a photo or the camera.",
    helpHeading: "Help SightScan",
    requestLabel: "A new city to ask for",
    requestPlaceholder: "e.g. Lisbon",
    requestButton: "Request this city",
    uploadCityLabel: "Photo of a sight in",
    sightLabel: "Sight (optional)",
    uploadChoose: "Choose the photo",
    uploadButton: "Send photo",
    storageHeading: "Stored models",
    confirmLabel: "Ask before downloads over (MB) on a metered connection",
    noStored: "No model stored on this device yet.",
    remove: "Remove",
    removed: "Removed the model of {city}.",
    storageUsed: "Models: {models}. This site uses {used} of {quota} available.",
    storageModels: "Models: {models}.",
    offlineCities: "Offline: only cities already downloaded are listed.",
    loadingModel: "Checking the model of {city}…",
    modelReady: "{city}: model v{version} ({size}, {source}); knows {sights}.",
    sourceStored: "stored on this device",
    sourceStoredOffline: "stored on this device, offline",
    sourceDownloaded: "just downloaded",
    sourceNotStored: "not stored: {reason}",
    noModelYet: "{city} has no model yet.",
    modelUnavailable: "The model of {city} is not on this device and the server cannot be reached.",
    downloadOffer: "The model of {city} (v{version}) is {size}. Download it now?",
    downloadMetered: "You seem to be on a metered connection.",
    updateOffer: "Update available for {city}: v{version}, {size}.",
    download: "Download",
    update: "Update",
    notNow: "Not now",
    retry: "Retry",
    downloading: "Downloading the model of {city}: {done} of {total}",
    downloadFailed: "The download of {city}'s model failed: {reason}. Nothing was stored.",
    modelRefused: "The downloaded model of {city} was refused ({reason}); the previous version is kept.",
    storageFull: "Not enough storage for the model of {city}: it needs {needed}, {free} is free.",
    incomplete: "the connection broke off after {done} of {total}",
    notImage: "“{name}” is not a photo (JPEG, PNG, WebP…). Nothing was sent.",
    cannotDecode: "“{name}” could not be read as a photo.",
    detectionFailed: "Detection failed: {reason}",
    cameraNeedsHttps: "The camera needs a secure connection: open this page over https (or on localhost). Photos still work.",
    cameraDenied: "The camera could not be started: {reason}",
    noCamera: "No camera found on this device.",
    more: "More about it",
    photosBy: "Training photos: {credits}",
    andMore: "and {count} more",
    requestsSoFar: "{city}: {requests} request(s) so far",
    stage_requested: "{city}: waiting for more requests ({requests} of {needed})",
    stage_crawl: "{city}: collecting photos of its sights",
    stage_label: "{city}: labelling the photos",
    stage_train: "{city}: training the model",
    stage_ready: "{city}: ready, choose it in the city list",
    stage_failed: "{city}: failed ({error})",
    crawlStarted: "collecting photos has started",
    unknownCity: "“{city}” is not a city we know.",
    didYouMean: "Did you mean:",
    requestFailed: "Request failed: {reason}",
    uploadFailed: "Upload failed: {reason}",
    uploadNeedsCity: "Choose a city with a model first.",
    uploadNeedsPhoto: "Choose a photo to send.",
    uploadDuplicate: "Thanks, {city} already has this photo (#{id}).",
    uploadAdded: "Thanks! Photo #{id} added to {city}.",
    reasonUnknown: "unknown reason",
  },
  de: {
    tagline: "Erkennt die Sehenswürdigkeiten einer Stadt auf einem Foto oder im Kamerabild. Das Modell der Stadt wird einmal geladen; erkannt wird auf diesem Gerät.",
    language: "Sprache",
    cityHeading: "Stadt und Foto",
    city: "Stadt",
    chooseCity: "Stadt wählen…",
    noCityYet: "noch keine Stadt",
    loadingCities: "lädt…",
    choosePhoto: "Foto wählen",
    startCamera: "Kamera starten",
    stopCamera: "Kamera stoppen",
    camera: "Kamera",
    debug: "Debug",
    dropHint: "…oder ein Foto irgendwo auf die Seite ziehen oder einfügen.",
    resultHeading: "Ergebnis",
    canvasLabel: "Das Foto mit den gefundenen Sehenswürdigkeiten",
    noSight: "Keine bekannte Sehenswürdigkeit",
    chooseToStart: "Eine Stadt wählen, dann ein Foto oder die Kamera.",
    helpHeading: "SightScan helfen",
    requestLabel: "Eine neue Stadt anfragen",
    requestPlaceholder: "z. B. Lissabon",
    requestButton: "Stadt anfragen",
    uploadCityLabel: "Foto einer Sehenswürdigkeit in",
    sightLabel: "Sehenswürdigkeit (optional)",
    uploadChoose: "Foto auswählen",
    uploadButton: "Foto senden",
    storageHeading: "Gespeicherte Modelle",
    confirmLabel: "Bei getakteter Verbindung vor Downloads über (MB) fragen",
    noStored: "Noch kein Modell auf diesem Gerät gespeichert.",
    remove: "Entfernen",
    removed: "Das Modell von {city} wurde entfernt.",
    storageUsed: "Modelle: {models}. Diese Seite belegt {used} von {quota} verfügbar.",
    storageModels: "Modelle: {models}.",
    offlineCities: "Offline: nur bereits geladene Städte werden gezeigt.",
    loadingModel: "Prüfe das Modell von {city}…",
    modelReady: "{city}: Modell v{version} ({size}, {source}); kennt {sights}.",
    sourceStored: "auf diesem Gerät gespeichert",
    sourceStoredOffline: "auf diesem Gerät gespeichert, offline",
    sourceDownloaded: "eben geladen",
    sourceNotStored: "nicht gespeichert: {reason}",
    noModelYet: "{city} hat noch kein Modell.",
    modelUnavailable: "Das Modell von {city} ist nicht auf diesem Gerät und der Server ist nicht erreichbar.",
    downloadOffer: "Das Modell von {city} (v{version}) ist {size} groß. Jetzt laden?",
    downloadMetered: "Die Verbindung scheint getaktet zu sein.",
    updateOffer: "Neue Version für {city}: v{version}, {size}.",
    download: "Laden",
    update: "Aktualisieren",
    notNow: "Nicht jetzt",
    retry: "Erneut versuchen",
    downloading: "Lade das Modell von {city}: {done} von {total}",
    downloadFailed: "Das Laden des Modells von {city} ist fehlgeschlagen: {reason}. Nichts wurde gespeichert.",
    modelRefused: "Das geladene Modell von {city} wurde abgelehnt ({reason}); die bisherige Version bleibt.",
    storageFull: "Nicht genug Speicher für das Modell von {city}: es braucht {needed}, frei sind {free}.",
    incomplete: "die Verbindung brach nach {done} von {total} ab",
    notImage: "„{name}“ ist kein Foto (JPEG, PNG, WebP…). Nichts wurde gesendet.",
    cannotDecode: "„{name}“ konnte nicht als Foto gelesen werden.",
    detectionFailed: "Erkennung fehlgeschlagen: {reason}",
    cameraNeedsHttps: "Die Kamera braucht eine sichere Verbindung: diese Seite über https (oder auf localhost) öffnen. Fotos funktionieren weiterhin.",
    cameraDenied: "Die Kamera konnte nicht gestartet werden: {reason}",
    noCamera: "Keine Kamera auf diesem Gerät gefunden.",
    more: "Mehr dazu",
    photosBy: "Trainingsfotos: {credits}",
    andMore: "und {count} weitere",
    requestsSoFar: "{city}: bisher {requests} Anfrage(n)",
    stage_requested: "{city}: wartet auf weitere Anfragen ({requests} von {needed})",
    stage_crawl: "{city}: Fotos der Sehenswürdigkeiten werden gesammelt",
    stage_label: "{city}: Fotos werden beschriftet",
    stage_train: "{city}: das Modell wird trainiert",
    stage_ready: "{city}: fertig, in der Städteliste wählen",
    stage_failed: "{city}: fehlgeschlagen ({error})",
    crawlStarted: "das Sammeln der Fotos hat begonnen",
    unknownCity: "„{city}“ ist keine uns bekannte Stadt.",
    didYouMean: "Meinten Sie:",
    requestFailed: "Anfrage fehlgeschlagen: {reason}",
    uploadFailed: "Senden fehlgeschlagen: {reason}",
    uploadNeedsCity: "Zuerst eine Stadt mit Modell wählen.",
    uploadNeedsPhoto: "Ein Foto zum Senden wählen.",
    uploadDuplicate: "Danke, {city} hat dieses Foto schon (#{id}).",
    uploadAdded: "Danke! Foto #{id} wurde {city} hinzugefügt.",
    reasonUnknown: "unbekannter Grund",
  },
};

export const LANGUAGES = Object.keys(WORDS);
let language = "en";

/** The language to start with: the remembered choice, else the browser's, else English. */
export function initialLanguage() {
  const remembered = localStorage.getItem("sightscan.lang");
  if (LANGUAGES.includes(remembered)) return remembered;
  for (const tag of navigator.languages ?? [navigator.language]) {
    const base = String(tag).slice(0, 2).toLowerCase();
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

/** The text for `key` in the current language, with {name} placeholders filled in. */
export function t(key, params = {}) {
  const text = WORDS[language][key] ?? WORDS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

/** Switch the language and rewrite every element marked data-i18n (text) or data-i18n-* (attributes). */
export function setLanguage(lang) {
  language = LANGUAGES.includes(lang) ? lang : "en";
  localStorage.setItem("sightscan.lang", language);
  document.documentElement.lang = language;
  for (const element of document.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of document.querySelectorAll("[data-i18n-placeholder]")) {
    element.placeholder = t(element.dataset.i18nPlaceholder);
  }
  for (const element of document.querySelectorAll("[data-i18n-aria-label]")) {
    element.setAttribute("aria-label", t(element.dataset.i18nAriaLabel));
  }
  return language;
}

export const currentLanguage = () => language;

/** Bytes for people: "3.7 MB". */
export function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return "?";
  const units = ["B", "kB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toLocaleString(language, { maximumFractionDigits: digits, minimumFractionDigits: digits })} ${units[unit]}`;
}
