"""The export's parity check: onnxruntime must compute what torch computes."""

import numpy as np
import pytest
import torch

from sightscan.errors import TrainingError
from sightscan.training.export import _check_parity, base_metadata, export_onnx, parity_gaps
from sightscan.training.model import VOTE_IOU, ExportWrapper, SightNet


def _net(seed: int) -> SightNet:
    torch.manual_seed(seed)
    return SightNet(2, 64, pretrained=False, frozen_blocks=3).eval()


def test_a_graph_that_computes_something_else_fails_the_check() -> None:
    exported = export_onnx(_net(1), base_metadata(["a", "b"], 64))
    other_scores, other_boxes = _net(1), _net(1)
    with torch.no_grad():
        other_scores.cls_out.bias.add_(1.0)  # type: ignore[union-attr]
        other_boxes.reg_out.bias[: other_boxes.box_bins].add_(  # type: ignore[index]
            torch.linspace(0.0, 3.0, other_boxes.box_bins))  # left sides farther out
    with pytest.raises(TrainingError, match=r"disagree by .* on the boxes and [1-9]"):
        _check_parity(ExportWrapper(other_scores).eval(), exported, 64)
    with pytest.raises(TrainingError, match=r"disagree by [1-9].* on the boxes"):
        _check_parity(ExportWrapper(other_boxes).eval(), exported, 64)


def test_a_box_at_a_vote_cut_may_differ_and_any_other_may_not() -> None:
    unvoted = torch.tensor([[[0.0, 0.0, 0.5, 0.5],
                             [0.0, 0.0, 0.5, 0.5 * VOTE_IOU],  # at the vote's IoU cut
                             [0.6, 0.6, 0.9, 0.9]]])
    scores = torch.tensor([[[0.9], [0.5], [0.7]]])
    expected = (unvoted.numpy(), scores.numpy())
    moved_at_cut = unvoted.numpy().copy()
    moved_at_cut[0, 1, 3] += 0.01
    assert parity_gaps(expected, (moved_at_cut, scores.numpy()), unvoted, scores) == (0.0, 0.0)
    moved_clear = unvoted.numpy().copy()
    moved_clear[0, 2, 0] += 0.01
    box_gap, _ = parity_gaps(expected, (moved_clear, scores.numpy()), unvoted, scores)
    assert box_gap == pytest.approx(0.01)
    _, score_gap = parity_gaps(expected, (unvoted.numpy(), scores.numpy() + np.float32(0.003)),
                               unvoted, scores)
    assert score_gap == pytest.approx(0.003, abs=1e-6)
