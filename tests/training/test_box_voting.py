import pytest
import torch

from sightscan.training.model import (
    VOTE_IOU,
    VOTE_POWER,
    VOTERS,
    fragile_votes,
    pairwise_iou,
    vote_boxes,
)


def test_overlapping_boxes_vote_with_their_scores_and_a_distant_one_keeps_its_own() -> None:
    boxes = torch.tensor([[[0.10, 0.10, 0.50, 0.50],
                           [0.12, 0.10, 0.52, 0.50],  # IoU 0.90 with the first
                           [0.70, 0.70, 0.90, 0.90]]])
    scores = torch.tensor([[[0.9, 0.1], [0.2, 0.6], [0.0, 0.8]]])
    voted = vote_boxes(boxes, scores)
    w1, w2 = 0.9 ** VOTE_POWER, 0.6 ** VOTE_POWER
    expected = (w1 * boxes[0, 0] + w2 * boxes[0, 1]) / (w1 + w2)
    assert voted[0, 0] == pytest.approx(expected.tolist(), abs=1e-6)
    assert voted[0, 1] == pytest.approx(expected.tolist(), abs=1e-6)
    assert voted[0, 2] == pytest.approx(boxes[0, 2].tolist(), abs=1e-6)


def test_boxes_overlapping_less_than_the_vote_threshold_do_not_vote() -> None:
    boxes = torch.tensor([[[0.0, 0.0, 0.4, 0.4], [0.2, 0.0, 0.6, 0.4]]])  # IoU 1/3
    voted = vote_boxes(boxes, torch.tensor([[[0.9], [0.9]]]))
    assert torch.allclose(voted, boxes)


def test_a_cell_that_nobody_votes_for_keeps_its_box() -> None:
    boxes = torch.tensor([[[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.41]]])
    voted = vote_boxes(boxes, torch.zeros(1, 2, 3))
    assert torch.allclose(voted, boxes)


def test_pairwise_iou_of_disjoint_nested_and_equal_boxes() -> None:
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.25, 0.5], [0.6, 0.6, 1.0, 1.0]]])
    iou = pairwise_iou(boxes, boxes)[0]
    assert iou.diagonal().tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert float(iou[0, 1]) == pytest.approx(0.5)
    assert float(iou[0, 2]) == 0.0 and float(iou[2, 1]) == 0.0


def test_only_the_best_scored_cells_vote() -> None:
    # VOTERS + 1 equal boxes: the one with the lowest score does not vote
    count = VOTERS + 1
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5]]).repeat(count, 1)
    boxes[-1] = torch.tensor([0.1, 0.1, 0.5, 0.52])  # IoU 0.95 with the others
    scores = torch.linspace(1.0, 0.5, count).view(1, count, 1)
    voted = vote_boxes(boxes.unsqueeze(0), scores)
    assert voted[0, 0].tolist() == pytest.approx([0.1, 0.1, 0.5, 0.5], abs=1e-6)
    assert float(voted[0, -1, 3]) == pytest.approx(0.5, abs=1e-6)


def test_a_box_at_the_vote_iou_is_fragile_and_a_clear_one_is_not() -> None:
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5],
                           [0.0, 0.0, 0.5, 0.5 * VOTE_IOU],  # IoU exactly VOTE_IOU with it
                           [0.6, 0.6, 0.9, 0.9]]])
    scores = torch.tensor([[[0.9], [0.5], [0.7]]])
    fragile = fragile_votes(boxes, scores)
    assert fragile[0].tolist() == [True, True, False]


def test_boxes_that_overlap_a_cell_at_the_voters_cut_are_fragile() -> None:
    # VOTERS + 1 cells: the last voter and the first left out score the same
    count = VOTERS + 1
    boxes = torch.tensor([[0.6, 0.6, 0.9, 0.9]]).repeat(count, 1)
    boxes[-2:] = torch.tensor([0.0, 0.0, 0.3, 0.3])
    scores = torch.linspace(1.0, 0.5, count).view(1, count, 1)
    scores[0, -1] = scores[0, -2]
    fragile = fragile_votes(boxes.unsqueeze(0), scores)[0]
    assert fragile[-2:].all() and not fragile[:-2].any()
    scores[0, -1] -= 0.01  # a clear cut: nothing is fragile
    assert not fragile_votes(boxes.unsqueeze(0), scores).any()
