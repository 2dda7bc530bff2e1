"""A small exported model with an open-set gate (untrained network, random banks)."""

from __future__ import annotations

import numpy as np


def gated_model_bytes(sights: list[str], threshold: float = 0.3) -> bytes:
    """An exported 64 px model of `sights` whose gate has the given threshold and margins
    of 0.1 (rival) and 0.2 (negatives), with the gate's metadata as training writes it."""
    from sightscan.training.export import base_metadata, export_onnx
    from sightscan.training.model import SightNet
    from sightscan.training.rejection import Gate, GateModule, int8_roundtrip, unit_rows

    rng = np.random.default_rng(0)
    bank = int8_roundtrip(unit_rows(rng.normal(size=(3 * len(sights), 320)).astype(np.float32)))
    negatives = int8_roundtrip(unit_rows(rng.normal(size=(4, 320)).astype(np.float32)))
    gate = Gate(bank, np.repeat(np.arange(len(sights)), 3), np.full(len(sights), threshold,
                                                                    np.float32),
                negatives, 0.1, 0.2)
    metadata = base_metadata(sights, 64)
    metadata["rejection"] = gate.metadata({"calibrated_on": 40, "calibration_lost": 1})
    net = SightNet(len(sights), 64, pretrained=False, frozen_blocks=3).eval()
    return export_onnx(net, metadata, gate=GateModule(gate))
