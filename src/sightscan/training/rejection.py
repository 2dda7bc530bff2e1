"""Open-set rejection: no sight named in a photo that looks like none of the sight's photos.

The detector's class scores only compare the city's sights with each other and with the
negatives it saw; a photo unlike everything in training (a cat, a coffee cup, another
city's tower) can still score high for some sight. The gate compares the photo's embedding
with each sight's training photos (cosine similarity, nearest neighbour) and zeroes that
sight's scores when the photo is not close enough to any of them, or when its nearest
training photo is a rival: another sight's photo or a negative photo, closer by more than
a small margin (one for other sights, one for negatives). Negatives are the city's
background crops and other photos of no sight, plus the four quarters of each sight
photo: a close view of a wall, a tree or the sky matches a quarter better than a whole
sight photo, so every city has negatives, a city whose photos carry only a sight name too.
Photos of other landmarks (the landmark pool: towers, churches, gates of other places) join
the negatives when there are some: another city's cathedral is closer to them than to the
city's own, so its sight is refused even for a city alone in its warehouse.

The embedding is the pooled stride-32 features of the frozen ImageNet backbone: general
enough to tell a cat, a cup or another city's tower from the city's sights. It needs no
other city's photos: the threshold and the margins are calibrated on the city's own photos
(the held-out ones, and each training photo left out of the banks with its near-duplicates)
so that at least `KEEP_RATE` of them keep their sight. A sight with photos enough to
estimate its own tail gets its own threshold, never under the city's (`sight_thresholds`).

The bank of embeddings and the threshold are constants inside the exported ONNX graph,
so the Python client, the API and the browser all get the gate with the contract unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from sightscan.training.dataset import Sample

KEEP_RATE = 0.97  # share of held-out sight photos that must keep their answer
MARGIN = 0.02  # below the calibrated quantile: a few val photos understate the spread
MIN_SIGHT_CALIBRATION = 34  # photos a sight needs for a 1 - KEEP_RATE tail of its own
MAX_PER_CLASS = 64  # bank entries per sight (k-centre choice keeps the coverage)
MAX_NEGATIVES = 128  # bank entries of negative photos
MAX_LANDMARKS = 256  # bank entries of other landmarks' photos (the landmark pool), on top
# Landmarks never take the bank (sights, negatives, landmarks) past this many entries (about
# 330 bytes each): the int8 model must fit in 4 MB (quantize.MAX_INT8_BYTES), which
# choose_served_model makes sure of by leaving the landmarks out when they would not fit.
MAX_BANK_ROWS = 1248
MAX_QUARTERED = 256  # sight photos whose quarters are negative candidates (embedding cost)
DISABLED = -2.0  # a threshold under any cosine similarity: the gate lets everything through
RIVAL_MARGIN = 0.05  # the least margin a rival must be closer by to refuse (see build_gate)
NO_RIVAL_RULE = 8.0  # a rival margin no similarity difference reaches: the rule is off
_NOT_THIS_CLASS = -4.0  # similarity given to other sights' bank entries


@dataclass(frozen=True, slots=True)
class Gate:
    """The embedding bank (L2-normalised rows), each row's sight, and per-sight thresholds."""

    bank: np.ndarray  # float32 [M, D]
    bank_classes: np.ndarray  # int64 [M]
    thresholds: np.ndarray  # float32 [C]
    negatives: np.ndarray | None = None  # float32 [K, D] unit rows of negative photos
    rival_margin: float = NO_RIVAL_RULE  # kept only if similarity + margin > other sights'
    negative_margin: float = NO_RIVAL_RULE  # ... and similarity + this > the negatives'

    def similarities(self, unit: np.ndarray, ignored_bank: np.ndarray | None = None,
                     ignored_negatives: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Unit embeddings [B, D] -> ([B, C] best cosine similarity to each sight, [B] to a
        negative photo); bank rows and negatives marked True in the [B, M] / [B, K] masks
        do not count."""
        sims = unit @ self.bank.T
        if ignored_bank is not None:
            sims = np.where(ignored_bank, _NOT_THIS_CLASS, sims)
        best = np.full((len(unit), len(self.thresholds)), _NOT_THIS_CLASS, np.float32)
        for c in range(len(self.thresholds)):
            rows = self.bank_classes == c
            if rows.any():
                best[:, c] = sims[:, rows].max(axis=1)
        negative = np.full(len(unit), _NOT_THIS_CLASS, np.float32)
        if self.negatives is not None and len(self.negatives):
            negative_sims = unit @ self.negatives.T
            if ignored_negatives is not None:
                negative_sims = np.where(ignored_negatives, _NOT_THIS_CLASS, negative_sims)
            negative = negative_sims.max(axis=1)
        return best, negative

    def class_similarity(self, raw: np.ndarray) -> np.ndarray:
        """[B, D] raw pooled features -> [B, C] best cosine similarity to each sight."""
        return self.similarities(unit_rows(raw))[0]

    def keeps(self, raw: np.ndarray) -> np.ndarray:
        """[B, D] raw pooled features -> bool [B, C]: which sights the gate lets through."""
        best, negative = self.similarities(unit_rows(raw))
        kept: np.ndarray = ((best >= self.thresholds)
                            & (best + self.rival_margin > closest_other_sight(best))
                            & (best + self.negative_margin > negative[:, None]))
        return kept

    def metadata(self, calibration: dict[str, Any]) -> dict[str, Any]:
        """What the model metadata says about the gate."""
        return {
            "method": "cosine nearest neighbour of the pooled stride-32 ImageNet features to "
                      "each sight's training photos and to the negative photos (the photos' "
                      "quarters among them); a sight's "
                      "scores are zeroed below its threshold, when another sight is closer "
                      "by more than the rival margin or a negative by more than the "
                      "negative margin",
            "bank_size": int(len(self.bank)),
            "negative_bank_size": 0 if self.negatives is None else int(len(self.negatives)),
            "rival_margin": round(float(self.rival_margin), 4),
            "negative_margin": round(float(self.negative_margin), 4),
            "embedding_dim": int(self.bank.shape[1]),
            "thresholds": [round(float(t), 4) for t in self.thresholds],
            "keep_rate_target": KEEP_RATE,
            **calibration,
        }


def unit_rows(raw: np.ndarray) -> np.ndarray:
    """Raw pooled features [B, D] -> L2-normalised rows (as in the graph)."""
    norms = np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)
    unit: np.ndarray = (raw / norms).astype(np.float32)
    return unit


def closest_other_sight(best: np.ndarray) -> np.ndarray:
    """[B, C] best similarity per sight -> [B, C] the closest other sight's."""
    others: np.ndarray = np.where(np.eye(best.shape[1], dtype=bool)[None], _NOT_THIS_CLASS,
                                  best[:, None, :]).max(axis=2)
    return others


class GateModule(torch.nn.Module):
    """The gate as graph constants: scores [B, N, C] * (similarity to sight c >= threshold c)."""

    bank: torch.Tensor
    mask: torch.Tensor
    negatives: torch.Tensor
    negative_bias: torch.Tensor
    not_self: torch.Tensor
    rejection_threshold: torch.Tensor
    margins: torch.Tensor

    def __init__(self, gate: Gate) -> None:
        super().__init__()
        classes = len(gate.thresholds)
        mask = np.zeros((len(gate.bank), classes), np.float32)
        mask[np.arange(len(gate.bank)), gate.bank_classes] = 1.0
        self.register_buffer("bank", torch.from_numpy(gate.bank.T.copy()))  # [D, M]
        self.register_buffer("mask", torch.from_numpy(mask))  # [M, C]
        negatives, bias = gate.negatives, np.zeros((1, 1), np.float32)
        if negatives is None or not len(negatives):  # one zero row, pushed under any sight
            negatives, bias[0, 0] = np.zeros((1, gate.bank.shape[1]), np.float32), _NOT_THIS_CLASS
        self.register_buffer("negatives", torch.from_numpy(negatives.T.copy()))  # [D, K]
        self.register_buffer("negative_bias", torch.from_numpy(bias))  # [1, 1]
        # [1, C, C]: _NOT_THIS_CLASS on the diagonal, so a sight is not its own rival
        self.register_buffer("not_self", torch.from_numpy(
            (np.eye(classes, dtype=np.float32) * (_NOT_THIS_CLASS - 4.0))[None]))
        # named initializers, so operators can move them without retraining (export.py)
        self.register_buffer("rejection_threshold",
                             torch.from_numpy(gate.thresholds.astype(np.float32)))
        # one constant for both margins: the exporter merges equal constants into one
        self.register_buffer("margins", torch.tensor(
            [gate.rival_margin, gate.negative_margin], dtype=torch.float32))

    def forward(self, embedding: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        unit = F.normalize(embedding, dim=1)
        sims = unit @ self.bank  # [B, M]
        per_class = sims.unsqueeze(-1) * self.mask + (self.mask - 1.0) * -_NOT_THIS_CLASS
        best = per_class.max(dim=1).values  # [B, C]
        negative = (unit @ self.negatives).max(dim=1, keepdim=True).values + self.negative_bias
        others = (best.unsqueeze(1) + self.not_self).max(dim=2).values  # [B, C]
        # [B, C, 2]: each sight's closest other sight and closest negative, each against its
        # own margin (indexing the margins would fold them into unnamed constants)
        rivals = torch.stack([others, negative.expand_as(others)], dim=-1)
        keep = ((best >= self.rejection_threshold)
                & (best.unsqueeze(-1) + self.margins > rivals).all(dim=-1))
        return scores * keep.to(scores.dtype).unsqueeze(1)


def embed_batches(run: Callable[[np.ndarray], np.ndarray], size: int,
                  pixels: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
    """uint8 RGB arrays -> raw pooled features [B, D]: stretched to `size`, then `run` on
    float32 NCHW batches (0..255)."""
    out: list[np.ndarray] = []
    for start in range(0, len(pixels), batch_size):
        chunk = np.stack([_stretch(p, size) for p in pixels[start:start + batch_size]])
        out.append(run(np.ascontiguousarray(chunk.transpose(0, 3, 1, 2), dtype=np.float32)))
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


def _stretch(pixels: np.ndarray, size: int) -> np.ndarray:
    if pixels.shape[:2] == (size, size):
        return pixels
    resized = Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def k_centres(points: np.ndarray, k: int) -> list[int]:
    """Greedy farthest-point choice of k rows (covers the class better than a random pick)."""
    if len(points) <= k:
        return list(range(len(points)))
    chosen = [0]
    dist = 1.0 - points @ points[0]
    for _ in range(k - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, 1.0 - points @ points[nxt])
    return sorted(chosen)


def int8_columns(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[D, M] float -> (int8 [D, M], float32 scale [M]): symmetric, one scale per column.

    The graph stores the banks so (a quarter of the bytes), and the gate is calibrated on
    the same rounded values (`int8_roundtrip`)."""
    scale = np.maximum(np.abs(values).max(axis=0), 1e-12).astype(np.float32) / 127.0
    quantised = np.clip(np.round(values / scale), -127, 127).astype(np.int8)
    return quantised, scale.astype(np.float32)


def int8_roundtrip(rows: np.ndarray) -> np.ndarray:
    """[M, D] float rows as the graph sees them after int8 storage (see `int8_columns`)."""
    quantised, scale = int8_columns(rows.T)
    restored: np.ndarray = (quantised.astype(np.float32) * scale).T.astype(np.float32)
    return restored


def quarter_crops(pixels: np.ndarray) -> list[np.ndarray]:
    """The photo's four quarters (top left, top right, bottom left, bottom right)."""
    h, w = pixels.shape[:2]
    return [np.ascontiguousarray(pixels[y:y + h // 2, x:x + w // 2])
            for y in (0, h // 2) for x in (0, w // 2)]


Embedder = Callable[[Sequence[np.ndarray]], np.ndarray]  # uint8 RGB photos -> raw [B, D]


def gate_buffers(gate: Gate) -> dict[str, np.ndarray]:
    """The gate's graph constants by initializer name ("gate.bank", ...), as exported."""
    return {f"gate.{name}": buffer.numpy() for name, buffer in GateModule(gate).named_buffers()}


_NO_GROUP = -(2**62)  # a held-out photo's group: shares none with the training photos
_LANDMARK_GROUP = -(2**61)  # the first landmark photo's group, the next ones count down


def _leave_group_out(gate: Gate, photos: np.ndarray, photo_groups: np.ndarray,
                     bank_groups: np.ndarray, negative_groups: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings [B, D] -> ([B, C] best similarity per sight, [B] to a negative),
    ignoring the bank rows and negatives of each photo's own near-duplicate group."""
    return gate.similarities(photos, photo_groups[:, None] == bank_groups[None],
                             photo_groups[:, None] == negative_groups[None])


def _class_members(train: Sequence[Sample], num_classes: int) -> list[np.ndarray]:
    """Per sight, the indices of the training photos that show it."""
    return [np.array([i for i, s in enumerate(train) if c in s.classes], np.int64)
            for c in range(num_classes)]


def _sight_rows(unit: np.ndarray, members: Sequence[np.ndarray]) -> tuple[list[int], list[int]]:
    """The training photos kept in each sight's bank (k-centres) and their sights."""
    rows: list[int] = []
    row_classes: list[int] = []
    for c, photos in enumerate(members):
        picked = k_centres(unit[photos], MAX_PER_CLASS) if len(photos) else []
        rows += [int(photos[i]) for i in picked]
        row_classes += [c] * len(picked)
    return rows, row_classes


def _like_a_sight(candidates: np.ndarray, unit: np.ndarray, members: Sequence[np.ndarray],
                  groups: np.ndarray) -> np.ndarray:
    """bool [K]: the candidate is at least as close to one of a sight's photos as that
    sight's photos typically are to each other (the median similarity of each to its
    nearest photo of the sight in another near-duplicate group)."""
    like = np.zeros(len(candidates), bool)
    for photos in members:
        if len(photos) < 2:
            continue
        sims = unit[photos] @ unit[photos].T
        sims[groups[photos][:, None] == groups[photos][None]] = _NOT_THIS_CLASS
        nearest = sims.max(axis=1)
        nearest = nearest[nearest > _NOT_THIS_CLASS]
        if len(nearest):
            like |= (candidates @ unit[photos].T).max(axis=1) >= np.median(nearest)
    return like


class NegativeBank(NamedTuple):
    """The gate's negative photos as the graph stores them, and what was left out."""

    rows: np.ndarray  # float32 [K, D] unit rows, int8-rounded
    groups: np.ndarray  # int64 [K] the near-duplicate group each row was cut from
    background_left_out: int  # background photos left out as looking like a sight
    landmarks: int  # rows of other landmarks' photos (the last ones)
    landmarks_left_out: int  # landmark photos left out as looking like a sight


def _negative_bank(embedder: Embedder, unit: np.ndarray, train: Sequence[Sample],
                   groups: np.ndarray, members: Sequence[np.ndarray],
                   landmarks: Sequence[Sample], sight_rows: int) -> NegativeBank:
    """The negatives: background photos and the quarters of sight photos (k-centres), then
    other landmarks' photos (k-centres of their own, as many as MAX_BANK_ROWS leaves room
    for beside the `sight_rows`).

    A background or landmark photo as close to a sight as that sight's own photos typically
    are to each other is left out: it most likely shows the sight (an everyday-pool photo of
    the city's own tower, say), and as a negative it would take the sight from its own photos.
    """
    sights = [i for i, s in enumerate(train) if s.classes]
    quartered = sights[::max(1, len(sights) // MAX_QUARTERED)][:MAX_QUARTERED]
    quarters = [q for i in quartered for q in quarter_crops(train[i].pixels)]
    background = np.array([i for i, s in enumerate(train) if s.is_negative], np.int64)
    others = (unit_rows(embedder([s.pixels for s in landmarks])) if landmarks
              else unit[:0])
    like = _like_a_sight(np.concatenate([unit[background], others]), unit, members, groups)
    like, others_like = like[:len(background)], like[len(background):]
    background, others = background[~like], others[~others_like]
    candidates = np.concatenate([unit[background], unit_rows(embedder(quarters))
                                 if quarters else unit[:0]])
    candidate_groups = np.concatenate([groups[background], np.repeat(groups[quartered], 4)])
    chosen = k_centres(candidates, MAX_NEGATIVES)
    room = min(MAX_LANDMARKS, MAX_BANK_ROWS - sight_rows - len(chosen))
    picked = k_centres(others, room) if room > 0 else []
    # a landmark photo shares no near-duplicate group with any of the city's photos
    others_groups = _LANDMARK_GROUP - np.arange(len(picked), dtype=np.int64)
    return NegativeBank(int8_roundtrip(np.concatenate([candidates[chosen], others[picked]])),
                        np.concatenate([candidate_groups[chosen], others_groups]),
                        int(like.sum()), len(picked), int(others_like.sum()))


class Calibration(NamedTuple):
    """The gate's three settings, as calibrated on a set of the city's sight photos."""

    rival_margin: float  # another sight closer by more than this refuses
    negative_margin: float  # a negative photo closer by more than this refuses
    threshold: float  # a photo less similar than this to every photo of the sight is refused


def _margin(closer_by: np.ndarray, allowed: int) -> float:
    """The smallest margin (at least RIVAL_MARGIN, MARGIN above the tail) with which at most
    `allowed` of these photos have a rival closer by more than it."""
    ordered = np.sort(closer_by)[::-1]
    if allowed >= len(ordered):
        return RIVAL_MARGIN
    return max(RIVAL_MARGIN, float(ordered[allowed]) + MARGIN)


def _calibrate(true_sims: np.ndarray, other_sights: np.ndarray, negatives: np.ndarray
               ) -> Calibration:
    """The settings that lose at most 1 - KEEP_RATE of these sight photos.

    The negatives' margin comes first and takes what it needs of the allowance: the smaller
    it is, the more photos of no sight are refused (another city's cathedral is closer to the
    landmark pool than to the city's own). The sights' margin takes what it needs of the rest,
    and the threshold what is left, MARGIN below the next photo.
    """
    allowed = int(len(true_sims) * (1.0 - KEEP_RATE))
    negative_margin = _margin(negatives - true_sims, allowed)
    lost = true_sims + negative_margin <= negatives
    rival_margin = _margin((other_sights - true_sims)[~lost], allowed - int(lost.sum()))
    lost |= true_sims + rival_margin <= other_sights
    threshold = _tail(true_sims[~lost], allowed - int(lost.sum()))
    return Calibration(rival_margin, negative_margin, threshold)


def _tail(passing: np.ndarray, allowed: int) -> float:
    """MARGIN below the similarity that leaves `allowed` of these photos under it."""
    if not len(passing):
        return DISABLED
    return float(np.sort(passing)[min(max(0, allowed), len(passing) - 1)]) - MARGIN


def sight_thresholds(true_sims: np.ndarray, lost: np.ndarray, classes: np.ndarray,
                     city_threshold: float, num_classes: int) -> np.ndarray:
    """Per sight, the city's threshold raised to the sight's own 1 - KEEP_RATE tail.

    The city's threshold is set by its most varied sight; a sight whose photos are much
    alike (a gate seen from one square) then lets through photos only roughly like them
    (another city's church). Raising it to the sight's own tail refuses those; it is never
    lowered, so a sight loses at most its own allowance or what the city's threshold takes.
    `lost` marks the photos rivals already take: they count against their sight's
    allowance. A sight with fewer than MIN_SIGHT_CALIBRATION photos keeps the city's
    threshold: its tail cannot be estimated.
    """
    thresholds = np.full(num_classes, city_threshold, np.float32)
    for c in range(num_classes):
        mine = classes == c
        if mine.sum() >= MIN_SIGHT_CALIBRATION:
            allowed = int(mine.sum() * (1.0 - KEEP_RATE)) - int((mine & lost).sum())
            thresholds[c] = max(city_threshold, _tail(true_sims[mine & ~lost], allowed))
    return thresholds


def _to_rivals(true_sims: np.ndarray, other_sights: np.ndarray, negatives: np.ndarray,
               setting: Calibration) -> np.ndarray:
    """bool: which of these sight photos a rival takes at this setting's margins."""
    lost: np.ndarray = ((true_sims + setting.rival_margin <= other_sights)
                        | (true_sims + setting.negative_margin <= negatives))
    return lost


def _lost(true_sims: np.ndarray, other_sights: np.ndarray, negatives: np.ndarray,
          setting: Calibration) -> tuple[int, int]:
    """How many of these sight photos lose their sight (to a rival, in all) at this setting."""
    to_rivals = _to_rivals(true_sims, other_sights, negatives, setting)
    return int(to_rivals.sum()), int((to_rivals | (true_sims < setting.threshold)).sum())


def build_gate(embedder: Embedder, train: Sequence[Sample], val: Sequence[Sample],
               num_classes: int, landmarks: Sequence[Sample] = ()
               ) -> tuple[Gate, dict[str, Any]]:
    """Banks from the training photos (and `landmarks`, other landmarks' photos, as
    negatives); the margins, the city's threshold and each sight's calibrated on the
    held-out `val` photos and on every training sight photo left out with its
    near-duplicates.

    `embedder` gives the network's photo embeddings: the trained float network's
    (trainer.py) or the int8 model's, so that its gate matches its own features (quantize.py).
    """
    # Not centred on the city's mean photo: centring kept only the direction in which a
    # photo differs from that mean, and an everyday photo differs in some direction that
    # one sight's photos also lean towards (docs/detector.md, eighth round).
    unit = unit_rows(embedder([s.pixels for s in train]))
    # near-duplicate groups (a photo alone has its own): a training photo calibrates the
    # gate only against the bank rows and negatives of other groups (leave-one-group-out)
    groups = np.array([s.group if s.group is not None else -1 - i for i, s in enumerate(train)])
    members = _class_members(train, num_classes)
    rows, row_classes = _sight_rows(unit, members)
    bank = _negative_bank(embedder, unit, train, groups, members, landmarks, len(rows))
    negatives, negative_groups = bank.rows, bank.groups
    gate = Gate(int8_roundtrip(unit[rows]), np.array(row_classes, np.int64),
                np.full(num_classes, DISABLED, np.float32), negatives)
    val_pos = [s for s in val if s.classes]
    if not val_pos:
        return gate, {"calibrated_on": 0, "note": "no held-out sight photos: gate disabled"}
    # calibration photos: the held-out ones, then every training sight photo left out
    sights = [i for i, s in enumerate(train) if s.classes]
    photos = np.concatenate([unit_rows(embedder([s.pixels for s in val_pos])),
                             unit[sights]])
    photo_groups = np.concatenate([np.full(len(val_pos), _NO_GROUP), groups[sights]])
    best, negative = _leave_group_out(gate, photos, photo_groups, groups[rows], negative_groups)
    others = closest_other_sight(best)
    labelled = [*val_pos, *(train[i] for i in sights)]
    pairs = [(i, c) for i, s in enumerate(labelled) for c in s.classes]
    true_sims = np.array([best[i, c] for i, c in pairs])
    rivals = (np.array([others[i, c] for i, c in pairs]), np.array([negative[i] for i, _ in pairs]))
    # Two estimates of the same 3% tail: the held-out photos alone (unbiased, but 23-57
    # photos: none may be lost under 34) and all of them (hundreds, but a training photo
    # left out is harder than a held-out one when the set holds augmented copies); the
    # gate takes their mean (docs/detector-history.md, "Calibration").
    held_out = sum(len(s.classes) for s in val_pos)
    estimates = {"held_out": _calibrate(true_sims[:held_out], *(r[:held_out] for r in rivals)),
                 "with_training_left_out": _calibrate(true_sims, *rivals)}
    setting = Calibration(*np.mean(list(estimates.values()), axis=0).tolist())
    to_rivals = _to_rivals(true_sims, *rivals, setting)
    classes = np.array([c for _, c in pairs], np.int64)
    thresholds = sight_thresholds(true_sims, to_rivals, classes, setting.threshold, num_classes)
    lost = to_rivals | (true_sims < thresholds[classes])
    calibration: dict[str, Any] = {
        "calibrated_on": len(labelled),
        "background_left_out_as_sight_like": bank.background_left_out,
        "landmark_negatives": bank.landmarks,
        "landmarks_left_out_as_sight_like": bank.landmarks_left_out,
        "calibrated_on_held_out": len(val_pos),
        "calibrated_on_training_left_out": len(sights),
        "calibration_lost_to_rivals": int(to_rivals.sum()),
        "calibration_lost": int(lost.sum()),
        # the threshold of the city's photos together; `thresholds` raise it per sight
        "city_threshold": round(setting.threshold, 4),
        "sights_above_city_threshold": int((thresholds > setting.threshold).sum()),
        "calibration_similarity": {"min": round(float(true_sims.min()), 4),
                                   "median": round(float(np.median(true_sims)), 4)},
        # (rival margin, negative margin, threshold) of each estimate alone, and the photos
        # (to rivals, in all) of all calibration photos it would lose
        "estimates": {name: [round(v, 4) for v in e] for name, e in estimates.items()},
        "lost_by_estimate": {name: list(_lost(true_sims, *rivals, e))
                             for name, e in estimates.items()},
    }
    gate = Gate(gate.bank, gate.bank_classes, thresholds, negatives, setting.rival_margin,
                setting.negative_margin)
    val_neg = [s for s in val if s.is_negative]
    if val_neg:
        rejected = ~gate.keeps(embedder([s.pixels for s in val_neg])).any(axis=1)
        calibration["held_out_negatives_rejected"] = round(float(rejected.mean()), 4)
    return gate, calibration
