from typing import Any

import pytest
from mts_synthetic import SHAPES, make_images

from sightscan.detections import Box, Label
from sightscan.errors import TrainingError
from sightscan.training.dataset import (
    LANDMARK_KEY,
    MAX_VAL_FRACTION,
    MIN_VAL_SIGHT_PHOTOS,
    WHOLE_IMAGE,
    TrainingImage,
    TrainingSet,
    assemble_training_set,
    validation_fraction,
)


def _assemble(images: list[TrainingImage], **kwargs: Any) -> TrainingSet:
    options: dict[str, Any] = {"city": None, "min_images_per_label": 3, "decode_size": 64} | kwargs
    return assemble_training_set(images, **options)


def test_classes_are_sorted_and_every_class_is_in_both_splits() -> None:
    result = _assemble(make_images(10, 5, seed=1))
    assert result.class_names == sorted(SHAPES)
    for split in (result.train, result.val):
        assert {c for s in split for c in s.classes} == {0, 1, 2}
    assert any(s.is_negative for s in result.val)


def test_the_split_is_deterministic_for_a_seed_and_changes_with_it() -> None:
    images = make_images(10, 5, seed=1)
    first = [s.key for s in _assemble(images, seed=3).val]
    again = [s.key for s in _assemble(images, seed=3).val]
    other = [s.key for s in _assemble(images, seed=4).val]
    assert first == again
    assert first != other


def test_no_labelled_photo_is_refused() -> None:
    with pytest.raises(TrainingError, match="no labelled photos"):
        _assemble(make_images(0, 5, seed=1))


def test_a_single_class_is_refused() -> None:
    images = [im for im in make_images(6, 2, seed=1)
              if not im.labels or im.labels[0].name == SHAPES[0]]
    with pytest.raises(TrainingError, match="only one sight"):
        _assemble(images)


def test_classes_below_the_minimum_are_refused_when_none_is_left() -> None:
    with pytest.raises(TrainingError, match="fewer than 50"):
        _assemble(make_images(4, 2, seed=1), min_images_per_label=50)


def test_rare_classes_are_dropped_with_their_counts() -> None:
    images = make_images(6, 2, seed=1)
    star = Label("yellow star", Box(0, 0, 0.5, 0.5))
    images.append(TrainingImage("rare", images[0].load, [star]))
    result = _assemble(images, min_images_per_label=3)
    assert result.dropped_classes == {"yellow star": 1}
    assert "rare" not in {s.key for s in result.train + result.val}


def test_a_corrupt_photo_is_skipped_and_counted() -> None:
    images = make_images(6, 2, seed=1)
    broken = b"\x89PNG\r\n\x1a\nnot really"
    images.append(TrainingImage("broken", lambda: broken, [Label(SHAPES[0])]))
    result = _assemble(images)
    assert result.corrupt_images == ["broken"]
    assert result.counts()["corrupt_images"] == 1


def test_other_landmarks_photos_are_kept_aside_for_the_gate_never_trained_on() -> None:
    images = make_images(6, 2, seed=1)
    broken = b"\x89PNG\r\n\x1a\nnot really"
    elsewhere = [TrainingImage(f"{LANDMARK_KEY}{n}", images[n].load, []) for n in range(3)]
    elsewhere.append(TrainingImage(f"{LANDMARK_KEY}broken", lambda: broken, []))
    alone, pooled = _assemble(images), _assemble(images + elsewhere)
    assert [s.key for s in pooled.landmarks] == [f"{LANDMARK_KEY}{n}" for n in range(3)]
    assert all(s.is_negative and s.pixels.shape == (64, 64, 3) for s in pooled.landmarks)
    assert [s.key for s in pooled.train] == [s.key for s in alone.train]
    assert [s.key for s in pooled.val] == [s.key for s in alone.val]
    assert pooled.corrupt_images == [f"{LANDMARK_KEY}broken"]
    assert pooled.counts()["landmark_photos"] == 3 and alone.counts()["landmark_photos"] == 0


def test_image_level_labels_become_classification_only_or_whole_photo_boxes() -> None:
    boxed = make_images(6, 0, seed=1)
    loader = boxed[0].load
    extra = [
        TrainingImage("level-boxed-class", loader, [Label(SHAPES[0])]),
        TrainingImage("level-only-a", loader, [Label("grey cloud")]),
        TrainingImage("level-only-b", loader, [Label("grey cloud")]),
        TrainingImage("level-only-c", loader, [Label("grey cloud")]),
    ]
    result = _assemble(boxed + extra, val_fraction=0.0)
    samples = {s.key: s for s in result.train}
    cls = result.class_names.index(SHAPES[0])
    assert samples["level-boxed-class"].image_classes == [cls]
    assert samples["level-boxed-class"].boxes == []
    cloud = result.class_names.index("grey cloud")
    assert samples["level-only-a"].boxes == [(cloud, WHOLE_IMAGE)]


def test_label_spellings_are_merged_before_counting() -> None:
    images = make_images(3, 0, seed=1)
    renamed = [TrainingImage(im.key, im.load,
                             [Label(im.labels[0].name.upper() + "!", im.labels[0].box)])
               for im in images]
    result = _assemble(images + [TrainingImage(f"x{im.key}", im.load, im.labels) for im in renamed],
                       min_images_per_label=6)
    assert result.class_names == sorted(SHAPES)


def test_a_small_city_holds_out_enough_photos_for_the_threshold_if_a_quarter_does() -> None:
    assert validation_fraction(0.15, 1000) == 0.15  # a large city: as requested
    assert validation_fraction(0.15, 200) == pytest.approx(MIN_VAL_SIGHT_PHOTOS / 200)
    assert MIN_VAL_SIGHT_PHOTOS / 100 > MAX_VAL_FRACTION  # a quarter of 100 is too few:
    assert validation_fraction(0.15, 100) == 0.15  # the city keeps its training photos
    assert validation_fraction(0.3, 200) == 0.3  # a higher request stands
    assert validation_fraction(0.0, 200) == 0.0  # no split asked: none made
    images = make_images(60, 4, seed=1, size=64)  # 180 sight photos of three shapes
    split = _assemble(images, val_fraction=0.15, group_duplicates=False)
    held_out = [s for s in split.val if not s.is_negative]
    assert len(held_out) == MIN_VAL_SIGHT_PHOTOS  # a quarter of each shape's 60, not 15% (9)
