"""The web page is cross-origin isolated, so onnxruntime-web may run on several threads."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("path", ["/app/", "/app/detector.js", "/app/sw.js"])
def test_the_page_and_its_scripts_are_sent_with_isolation_headers(
    client: TestClient, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["cross-origin-opener-policy"] == "same-origin"
    assert response.headers["cross-origin-embedder-policy"] == "require-corp"
