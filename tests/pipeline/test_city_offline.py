"""A whole city offline, end to end, on the embedded defaults (SQLite, local blobs, SqliteHuey).

`sightscan up` runs as a child process; an operator asks for a city from a local photo
folder, and the pipeline crawls, labels, trains and publishes a model that the API serves
and `sightscan detect` uses.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from sightscan.inference import Detector

from .conftest import (
    API_KEY,
    FAST_PIPELINE_ENV,
    Api,
    Processes,
    child_environment,
    free_port,
    run_cli,
    wait_for,
)

pytestmark = pytest.mark.slow


def test_a_city_goes_from_a_photo_folder_to_a_served_model(
    tmp_path: Path, photo_folder: Path, processes: Processes, http: httpx.Client
) -> None:
    port = free_port()
    env = child_environment(SIGHTSCAN_DATA_DIR=str(tmp_path / "data"),
                            SIGHTSCAN_API_KEY=API_KEY, **FAST_PIPELINE_ENV)
    up = processes.start("up", "up", "--port", str(port), env=env)
    api = Api(f"http://127.0.0.1:{port}", http)
    wait_for(lambda: api.healthy() or not up.alive(), timeout=60, what="the API",
             on_timeout=processes.logs)
    assert up.alive(), processes.logs()

    response = http.post(f"{api.url}/api/cities/Testville/add", params={"force": "true"},
                         headers={"X-API-Key": API_KEY},
                         json={"photo_folder": str(photo_folder)})
    assert response.status_code == 200, response.text
    assert response.json()["city"] == "TESTVILLE"
    assert response.json()["job_id"] is not None

    def published() -> bool:
        failed = [job for job in api.jobs("TESTVILLE") if job["state"] == "failed"]
        assert not failed, f"{failed}\n{processes.logs()}"
        return api.model_version("TESTVILLE") == 1

    wait_for(published, timeout=150, interval=1, what="model version 1",
             on_timeout=processes.logs)

    stages = {job["stage"]: job for job in api.jobs("TESTVILLE")}
    assert {stage: job["state"] for stage, job in stages.items()} == {
        "crawl": "done", "label": "done", "train": "done"}
    assert stages["crawl"]["counts"]["stored"] == 36
    assert stages["train"]["counts"]["published"] is True
    assert http.get(f"{api.url}/api/cities/").json() == {"cities": ["TESTVILLE"]}
    model = http.get(f"{api.url}/api/cities/TESTVILLE/model")
    assert model.status_code == 200
    assert model.headers["X-Model-Version"] == "1"
    detector = Detector.from_bytes(model.content)
    assert detector.detect(next(photo_folder.glob("*/*.jpg")).read_bytes()) is not None

    client_env = child_environment(SIGHTSCAN_DATA_DIR=str(tmp_path / "client"))
    photos = sorted(photo_folder.glob("*/000.jpg"))
    detect = run_cli("detect", "--city", "Testville", *map(str, photos), "--json",
                     "--server", api.url, env=client_env)
    assert detect.returncode == 0, detect.stderr
    lines = [json.loads(line) for line in detect.stdout.splitlines() if line.strip()]
    assert [line["image"] for line in lines] == [str(photo) for photo in photos]
    for line in lines:
        assert isinstance(line["detections"], list)
        for detection in line["detections"]:
            assert detection["label"] in {"Red Disc", "Blue Square", "Green Triangle"}
            assert 0.0 <= detection["score"] <= 1.0
            assert len(detection["box"]) == 4
    assert (tmp_path / "client" / "model-cache" / "TESTVILLE.onnx").is_file()

    members = up.group_members()
    assert len(members) >= 4, processes.logs()  # up + main worker + training worker + refresher
    assert up.stop(timeout=40) == 0, processes.logs()
    wait_for(lambda: not up.group_members(), timeout=30, interval=0.2,
             what="every child of `sightscan up` to exit", on_timeout=processes.logs)
    log = up.log()
    assert "Traceback" not in log, log
