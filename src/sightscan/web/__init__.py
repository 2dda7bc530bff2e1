"""The SightScan web client: static files (HTML, CSS, JS and the vendored onnxruntime-web).

The page downloads a city's model once, keeps it in IndexedDB and detects sights in the
browser; `sightscan.api.routers.web.mount_web` serves it at /app/. See docs/client.md.
"""

from __future__ import annotations

from pathlib import Path

WEB_ROOT = Path(__file__).resolve().parent
"""The folder of the static files (index.html, app.js, detector.js, vendor/)."""
