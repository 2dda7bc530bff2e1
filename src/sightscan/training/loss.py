"""Target assignment and losses of the one-level detector.

Assignment (FCOS-like centre sampling): a cell is positive for a sight when its centre lies
inside the box and within max(1 cell, a quarter of the box size) of the box centre; a cell
claimed by two sights goes to the smaller one. Classification uses the quality focal loss
(target = IoU of the cell's predicted box with the sight, 0 elsewhere, so background photos
and other sights are plain negatives), boxes the GIoU loss plus the distribution focal loss
on each side's distance bins (the two bins around the true distance). Image-level
labels (no box) add a multiple-instance term: the best cell must score the labelled class,
while that class is ignored elsewhere in the photo.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from sightscan.training.augment import Batch
from sightscan.training.model import decode_boxes, grid_centres

BOX_WEIGHT = 2.0
DFL_WEIGHT = 0.25  # GFL's weight beside a GIoU weight of 2


def box_iou_pairs(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and GIoU of matching rows of two [n, 4] xyxy tensors."""
    ix1, iy1 = torch.maximum(a[:, 0], b[:, 0]), torch.maximum(a[:, 1], b[:, 1])
    ix2, iy2 = torch.minimum(a[:, 2], b[:, 2]), torch.minimum(a[:, 3], b[:, 3])
    inter = (ix2 - ix1).clamp(min=0) * (iy2 - iy1).clamp(min=0)
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    union = area_a + area_b - inter + 1e-9
    iou = inter / union
    ex1, ey1 = torch.minimum(a[:, 0], b[:, 0]), torch.minimum(a[:, 1], b[:, 1])
    ex2, ey2 = torch.maximum(a[:, 2], b[:, 2]), torch.maximum(a[:, 3], b[:, 3])
    enclose = (ex2 - ex1) * (ey2 - ey1) + 1e-9
    return iou, iou - (enclose - union) / enclose


def assign(centres: torch.Tensor, boxes: torch.Tensor, height: int, width: int
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive cells and their sight index: (mask [N], matched index [N])."""
    n_cells = centres.shape[0]
    if boxes.numel() == 0:
        return torch.zeros(n_cells, dtype=torch.bool), torch.zeros(n_cells, dtype=torch.long)
    cx, cy = centres[:, 0:1], centres[:, 1:2]  # [N, 1]
    x1, y1, x2, y2 = (boxes[:, i][None] for i in range(4))  # [1, n]
    gcx, gcy = (x1 + x2) / 2, (y1 + y2) / 2
    rx = torch.clamp((x2 - x1) * 0.25, min=1.0 / width)
    ry = torch.clamp((y2 - y1) * 0.25, min=1.0 / height)
    inside = (cx > x1) & (cx < x2) & (cy > y1) & (cy < y2)
    central = ((cx - gcx).abs() <= rx) & ((cy - gcy).abs() <= ry)
    candidate = inside & central
    # The cell holding the box centre is always positive, however small the box.
    cell = (gcy * height).long().clamp(0, height - 1) * width + (gcx * width).long().clamp(
        0, width - 1)
    candidate[cell[0], torch.arange(boxes.shape[0])] = True
    area = ((x2 - x1) * (y2 - y1)).expand(n_cells, -1)
    area = torch.where(candidate, area, torch.full_like(area, float("inf")))
    best_area, matched = area.min(dim=1)
    return torch.isfinite(best_area), matched


def distribution_focal_loss(bin_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[n, 4, K] bin logits, [n, 4] target distances in cells -> [n] loss: cross-entropy to
    the two bins around each target, weighted by nearness (GFL), mean over the four sides."""
    bins = bin_logits.shape[-1]
    target = target.clamp(0, bins - 1 - 1e-3)
    left = target.floor().long()
    right_weight = target - left
    log_probs = F.log_softmax(bin_logits, dim=-1)
    left_lp = log_probs.gather(-1, left.unsqueeze(-1)).squeeze(-1)
    right_lp = log_probs.gather(-1, (left + 1).unsqueeze(-1)).squeeze(-1)
    return -((1 - right_weight) * left_lp + right_weight * right_lp).mean(dim=1)


def detection_loss(logits: torch.Tensor, bin_logits: torch.Tensor, batch: Batch
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts for one batch of raw network outputs."""
    b, c, h, w = logits.shape
    flat_logits = logits.flatten(2).transpose(1, 2)  # [B, N, C]
    pred_boxes = decode_boxes(bin_logits)  # [B, N, 4]
    side_logits = bin_logits.reshape(b, 4, -1, h * w).permute(0, 3, 1, 2)  # [B, N, 4, K]
    cell_size = torch.tensor([w, h, w, h], device=logits.device, dtype=torch.float32)
    centres = grid_centres(h, w, logits.device)
    target = torch.zeros_like(flat_logits)
    weight = torch.ones_like(flat_logits)
    box_losses, mil_losses = [], []
    num_pos = 0
    for i in range(b):
        gt, lab = batch.boxes[i], batch.labels[i]
        pos, matched = assign(centres, gt, h, w)
        if pos.any():
            pb, gb = pred_boxes[i][pos], gt[matched[pos]]
            iou, giou = box_iou_pairs(pb, gb)
            target[i, pos, lab[matched[pos]]] = iou.detach().clamp(min=0.01)
            cells = centres[pos]
            sides = torch.cat([cells - gb[:, :2], gb[:, 2:] - cells], dim=1) * cell_size
            box_losses.append(BOX_WEIGHT * (1 - giou) + DFL_WEIGHT * distribution_focal_loss(
                side_logits[i, pos], sides))
            num_pos += int(pos.sum())
        for cls in batch.image_classes[i]:
            weight[i, :, cls] = 0.0
            mil_losses.append(F.binary_cross_entropy_with_logits(
                flat_logits[i, :, cls].max(), torch.ones((), device=logits.device)))
    prob = torch.sigmoid(flat_logits)
    qfl = F.binary_cross_entropy_with_logits(flat_logits, target, reduction="none")
    qfl = (qfl * (prob - target).abs().pow(2.0) * weight).sum() / max(num_pos, 1)
    box = torch.cat(box_losses).sum() / max(num_pos, 1) if box_losses else logits.sum() * 0
    mil = torch.stack(mil_losses).mean() if mil_losses else logits.sum() * 0
    total = qfl + box + mil
    return total, {"cls": float(qfl.detach()), "box": float(box.detach()),
                   "mil": float(mil.detach())}
