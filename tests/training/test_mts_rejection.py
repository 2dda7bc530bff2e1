"""The open-set gate: no sight named in photos unlike every training photo of that sight."""

from collections.abc import Sequence

import numpy as np
import onnx
import pytest
import torch
from mts_scenes import make_everyday, make_scenes
from mts_synthetic import SHAPES, make_images

from sightscan.errors import TrainingError
from sightscan.inference import Detector
from sightscan.training import TrainConfig, assemble_training_set, rejection, train_detector
from sightscan.training.dataset import Sample, TrainingImage, TrainingSet
from sightscan.training.export import (
    REJECTION_INITIALIZER,
    base_metadata,
    export_onnx,
    read_metadata,
    set_rejection_threshold,
)
from sightscan.training.model import SightNet
from sightscan.training.rejection import (
    DISABLED,
    MAX_NEGATIVES,
    RIVAL_MARGIN,
    Gate,
    GateModule,
    build_gate,
    int8_roundtrip,
    k_centres,
    quarter_crops,
    unit_rows,
)
from sightscan.training.trainer import TrainedModel


def _unit(rows: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    return unit_rows(np.asarray(rows, np.float32))


def _gate(threshold: float = 0.9) -> Gate:
    bank = _unit([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0]])
    return Gate(bank, np.array([0, 0, 1]), np.full(2, threshold, np.float32))


def test_the_gate_zeroes_only_the_sights_the_photo_is_unlike() -> None:
    module = GateModule(_gate())
    scores = torch.full((2, 4, 2), 0.8)
    near_first = torch.tensor([[2.0, 0.05, 0.0], [0.0, 0.0, 3.0]])  # sight 0; nothing known
    gated = module(near_first, scores)
    assert torch.equal(gated[0, :, 0], scores[0, :, 0])
    assert torch.all(gated[0, :, 1] == 0)  # like sight 0, unlike sight 1
    assert torch.all(gated[1] == 0)  # unlike both


def test_the_graph_gate_and_the_numpy_gate_agree() -> None:
    gate = _gate()
    raw = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    module = GateModule(gate)
    graph = module(torch.from_numpy(raw), torch.ones(5, 1, 2))[:, 0].numpy()
    assert np.array_equal(graph, (gate.class_similarity(raw) >= 0.9).astype(np.float32))


def test_a_photo_closer_to_a_rival_than_to_the_sight_is_refused() -> None:
    negatives = _unit([[0, 0, 1]])
    gate = Gate(_gate(-1.0).bank, np.array([0, 0, 1]), np.full(2, -1.0, np.float32),
                negatives, 0.05, 0.05)
    raw = np.array([[1.0, 0.0, 0.2],  # sight 0, a little like the negative: only sight 0
                    [0.6, 0.0, 1.0],  # more like the negative than like a sight: refused
                    [0.0, 0.8, 0.82],  # within the margin of sight 1: kept
                    [0.7, 0.74, 0.0]], np.float32)  # between the sights: both, within margin
    keeps = gate.keeps(raw)
    assert keeps[0].tolist() == [True, False] and not keeps[1].any()
    assert keeps[2].tolist() == [False, True] and keeps[3].tolist() == [True, True]
    graph = GateModule(gate)(torch.from_numpy(raw), torch.ones(4, 1, 2))[:, 0].numpy()
    assert np.array_equal(graph, keeps.astype(np.float32))
    # a wider margin for the negatives keeps the photo closer to the negative as well
    wider = Gate(gate.bank, gate.bank_classes, gate.thresholds, negatives, 0.05, 0.5)
    assert wider.keeps(raw)[1].tolist() == [True, False]
    # no negatives and no rival rule: all through
    opened = GateModule(Gate(gate.bank, gate.bank_classes, np.full(2, DISABLED, np.float32)))
    assert bool(torch.all(opened(torch.from_numpy(raw), torch.ones(4, 1, 2)) == 1))
    # no negatives, rival rule on: the graph agrees with numpy (no phantom negative rival)
    alone = Gate(gate.bank, gate.bank_classes, np.full(2, -1.0, np.float32), None, 0.05)
    photos = np.random.default_rng(3).normal(size=(64, 3)).astype(np.float32)
    graph_alone = GateModule(alone)(torch.from_numpy(photos), torch.ones(64, 1, 2))[:, 0]
    assert np.array_equal(graph_alone.numpy(), alone.keeps(photos).astype(np.float32))


def test_the_negatives_margin_is_apart_from_the_sights_margin() -> None:
    # another sight closer by 0.11 is within a rival margin of 0.15, a negative closer by 0.11
    # is not within a negative margin of 0.05: the graph agrees with numpy on both rules
    bank = _unit([[1, 0, 0], [0, 1, 0]])
    gate = Gate(bank, np.array([0, 1]), np.full(2, -1.0, np.float32), _unit([[0, 0, 1]]),
                0.15, 0.05)
    raw = _unit([[0.6, 0.7, 0.0],  # sight 1 closer than sight 0 by 0.11: both kept
                 [0.6, 0.0, 0.7]])  # the negative closer by 0.11: refused
    keeps = gate.keeps(raw)
    assert keeps[0].tolist() == [True, True] and not keeps[1].any()
    graph = GateModule(gate)(torch.from_numpy(raw), torch.ones(2, 1, 2))[:, 0].numpy()
    assert np.array_equal(graph, keeps.astype(np.float32))


def test_calibration_spends_the_allowance_on_the_negatives_margin_first() -> None:
    # 100 sight photos, 3 may be lost: four have a negative closer than their own sight (by
    # 0.30, 0.25, 0.20, 0.10), one another sight (by 0.20). The negatives' margin takes the
    # whole allowance (0.10 + MARGIN), so the sights' margin must keep every other photo.
    true_sims = np.full(100, 0.8)
    other_sights, negatives = np.zeros(100), np.zeros(100)
    negatives[:4] = 0.8 + np.array([0.30, 0.25, 0.20, 0.10])
    other_sights[10] = 0.8 + 0.20
    setting = rejection._calibrate(true_sims, other_sights, negatives)
    assert setting.negative_margin == pytest.approx(0.12)
    assert setting.rival_margin == pytest.approx(0.22)
    assert setting.threshold == pytest.approx(0.78)
    assert rejection._lost(true_sims, other_sights, negatives, setting) == (3, 3)


def test_k_centres_cover_the_spread_of_a_class() -> None:
    points = _unit([[1, 0], [0.99, 0.01], [0.98, 0.02], [0, 1]])
    picked = k_centres(points, 2)
    assert 3 in picked and len(picked) == 2  # the outlier is kept, not a third near-copy


def _quadrants(colours: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 32 x 32 photo of four coloured quadrants (a "sight" seen whole), a little noise."""
    photo = np.zeros((32, 32, 3))
    for index, (y, x) in enumerate([(0, 0), (0, 16), (16, 0), (16, 16)]):
        photo[y:y + 16, x:x + 16] = colours[index]
    return np.clip(photo + rng.normal(0, 6, photo.shape), 0, 255).astype(np.uint8)


def _grid_colours(photos: Sequence[np.ndarray]) -> np.ndarray:
    """A plain embedding: the mean colour of each cell of a 4 x 4 grid (48 values)."""
    rows = []
    for photo in photos:
        h, w = photo.shape[0] // 4, photo.shape[1] // 4
        rows.append([photo[y * h:(y + 1) * h, x * w:(x + 1) * w].mean(axis=(0, 1))
                     for y in range(4) for x in range(4)])
    return np.asarray(rows, np.float32).reshape(len(photos), -1)


def test_a_city_without_negatives_gets_its_photos_quarters_as_negatives() -> None:
    # photo-level labels only, no background photo: the gate's negatives are cut from the
    # sight photos (their quarters: a close view of a wall or the sky is refused when it
    # matches a quarter better than a whole sight photo, see the rival rule above)
    rng = np.random.default_rng(0)
    sights = rng.uniform(0, 255, (2, 4, 3))

    def samples(count: int, seed: int) -> list[Sample]:
        noise = np.random.default_rng(seed)
        return [Sample(f"{c}-{i}", _quadrants(sights[c], noise), [], [c],
                       TrainingImage(f"{c}-{i}", bytes, []))
                for c in range(2) for i in range(count)]

    train, val = samples(20, 1), samples(10, 2)
    gate, calibration = build_gate(_grid_colours, train, val, 2)
    assert gate.negatives is not None
    assert len(gate.negatives) == min(MAX_NEGATIVES, 4 * len(train))
    quarters = unit_rows(_grid_colours([q for s in train for q in quarter_crops(s.pixels)]))
    assert (gate.negatives @ quarters.T).max(axis=1).min() > 0.99  # each one a quarter (int8)
    assert calibration["calibration_lost_to_rivals"] <= int(calibration["calibrated_on"] * 0.03)
    assert gate.keeps(_grid_colours([s.pixels for s in samples(5, 3)])).any(axis=1).all()


def test_a_background_photo_of_a_sight_itself_is_no_negative() -> None:
    # The everyday pool may hold one of the city's own sights (Commons' buildings hold the
    # city's tower, even the crawled photo itself at another size): as a negative, it would
    # take the sight from its own photos. Unrelated background photos stay negatives.
    rng = np.random.default_rng(0)
    sights = rng.uniform(0, 255, (2, 4, 3))

    def sample(key: str, pixels: np.ndarray, classes: list[int]) -> Sample:
        return Sample(key, pixels, [], classes, TrainingImage(key, bytes, []))

    train = [sample(f"{c}-{i}", _quadrants(sights[c], rng), [c]) for c in range(2)
             for i in range(20)]
    resized = [np.clip(s.pixels + rng.normal(0, 2, s.pixels.shape), 0, 255).astype(np.uint8)
               for s in train[:5]]
    of_the_sight = [sample(f"pool-tower-{i}", pixels, []) for i, pixels in enumerate(resized)]
    unrelated = [sample(f"pool-cat-{i}", _quadrants(rng.uniform(0, 255, (4, 3)), rng), [])
                 for i in range(5)]
    val = [sample(f"v{c}-{i}", _quadrants(sights[c], rng), [c]) for c in range(2)
           for i in range(10)]
    gate, calibration = build_gate(_grid_colours, train + of_the_sight + unrelated, val, 2)
    assert gate.negatives is not None
    assert calibration["background_left_out_as_sight_like"] == len(of_the_sight)

    def nearest_negative(samples: list[Sample]) -> np.ndarray:
        assert gate.negatives is not None
        unit = unit_rows(_grid_colours([s.pixels for s in samples]))
        nearest: np.ndarray = (gate.negatives @ unit.T).max(axis=0)
        return nearest

    assert nearest_negative(unrelated).min() > 0.99  # each one in the bank (int8-rounded)
    assert nearest_negative(of_the_sight).max() < 0.99  # none of them
    assert gate.keeps(_grid_colours([s.pixels for s in train[:5]]))[:, 0].all()


def test_other_landmarks_photos_make_the_gate_refuse_a_landmark_like_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Another place's landmark that looks like sight 0 (one quadrant differs) passes a
    # gate that knows only the city's photos; with that kind of landmark among the
    # negatives (the landmark pool), its photos are closer to a rival and are refused,
    # while new photos of sight 0 keep their sight.
    rng = np.random.default_rng(3)
    sights = rng.uniform(0, 255, (2, 4, 3))
    other = sights[0].copy()
    other[3] = np.where(other[3] > 127, other[3] - 70, other[3] + 70)

    def photos(colours: np.ndarray, count: int, spread: float) -> list[np.ndarray]:
        return [_quadrants(np.clip(colours + rng.normal(0, spread, (4, 3)), 0, 255), rng)
                for _ in range(count)]

    def samples(prefix: str, pixels: list[np.ndarray], classes: list[int]) -> list[Sample]:
        return [Sample(f"{prefix}{i}", p, [], classes, TrainingImage(f"{prefix}{i}", bytes, []))
                for i, p in enumerate(pixels)]

    def embed(pixels: Sequence[np.ndarray]) -> np.ndarray:
        return _grid_colours(pixels) - 128.0

    train = [s for c in range(2) for s in samples(f"{c}-", photos(sights[c], 20, 25), [c])]
    val = [s for c in range(2) for s in samples(f"v{c}-", photos(sights[c], 10, 25), [c])]
    landmarks = samples("landmark/", photos(other, 20, 8), [])
    elsewhere = embed(photos(other, 20, 8))
    sight_photos = embed(photos(sights[0], 20, 25))
    alone, _ = build_gate(embed, train, val, 2)
    pooled, calibration = build_gate(embed, train, val, 2, landmarks)
    assert calibration["landmark_negatives"] + calibration[
        "landmarks_left_out_as_sight_like"] == len(landmarks)
    assert calibration["landmark_negatives"] > 0
    assert alone.keeps(elsewhere)[:, 0].mean() >= 0.8
    assert pooled.keeps(elsewhere)[:, 0].mean() <= 0.05
    assert pooled.keeps(sight_photos)[:, 0].mean() == alone.keeps(sight_photos)[:, 0].mean()
    assert pooled.keeps(sight_photos)[:, 0].mean() >= 0.9
    # landmarks take only the room the bank has left (the int8 model's 4 MB)
    assert alone.negatives is not None
    monkeypatch.setattr(rejection, "MAX_BANK_ROWS", len(alone.bank) + len(alone.negatives) + 3)
    _, squeezed = build_gate(embed, train, val, 2, landmarks)
    assert squeezed["landmark_negatives"] == 3


def test_a_sight_of_alike_photos_gets_a_threshold_of_its_own() -> None:
    # Sight 0's photos are much alike, sight 1's varied: the city's threshold is set by
    # sight 1's tail, so a landmark only roughly like sight 0 (one quadrant off) passes it.
    # Sight 0's own threshold, raised to its photos' tail, refuses it and keeps its photos.
    rng = np.random.default_rng(5)
    sights = rng.uniform(40, 215, (2, 4, 3))
    other = sights[0].copy()
    other[3] = np.where(other[3] > 127, other[3] - 45, other[3] + 45)
    spreads = (6.0, 45.0)

    def photos(colours: np.ndarray, count: int, spread: float) -> list[np.ndarray]:
        return [_quadrants(np.clip(colours + rng.normal(0, spread, (4, 3)), 0, 255), rng)
                for _ in range(count)]

    def samples(prefix: str, c: int, count: int) -> list[Sample]:
        return [Sample(f"{prefix}{c}-{i}", p, [], [c], TrainingImage(f"{prefix}{i}", bytes, []))
                for i, p in enumerate(photos(sights[c], count, spreads[c]))]

    def embed(pixels: Sequence[np.ndarray]) -> np.ndarray:
        return _grid_colours(pixels) - 128.0

    train = [s for c in range(2) for s in samples("t", c, 40)]
    val = [s for c in range(2) for s in samples("v", c, 10)]
    gate, calibration = build_gate(embed, train, val, 2)
    city = gate.thresholds[1]
    assert calibration["city_threshold"] == pytest.approx(city, abs=1e-4)
    assert gate.thresholds[0] > city + 0.05
    assert calibration["sights_above_city_threshold"] == 1
    one_threshold = Gate(gate.bank, gate.bank_classes, np.full(2, city, np.float32),
                         gate.negatives, gate.rival_margin, gate.negative_margin)
    look_alikes = embed(photos(other, 20, spreads[0]))
    assert one_threshold.keeps(look_alikes)[:, 0].mean() >= 0.8
    assert gate.keeps(look_alikes)[:, 0].mean() <= 0.1
    new_photos = embed(photos(sights[0], 40, spreads[0]))
    assert gate.keeps(new_photos)[:, 0].mean() >= 0.95
    assert calibration["calibration_lost"] <= int(calibration["calibrated_on"] * 0.03) + 1


def test_a_sight_with_few_photos_keeps_the_citys_threshold() -> None:
    # too few photos for a 3% tail of their own: the city's threshold; never below it
    classes = np.array([0] * 40 + [1] * 10 + [2] * 40)
    true_sims = np.concatenate([np.linspace(0.8, 0.9, 40), np.full(10, 0.95),
                                np.linspace(0.2, 0.9, 40)])
    lost = np.zeros(len(classes), bool)
    thresholds = rejection.sight_thresholds(true_sims, lost, classes, 0.5, 3)
    assert thresholds[0] == pytest.approx(0.8025641 - rejection.MARGIN)  # its second photo
    assert thresholds[1] == pytest.approx(0.5) and thresholds[2] == pytest.approx(0.5)
    lost[:2] = True  # two taken by rivals already: the allowance (one) is spent
    thresholds = rejection.sight_thresholds(true_sims, lost, classes, 0.5, 3)
    assert thresholds[0] == pytest.approx(0.8051282 - rejection.MARGIN)


def test_training_photos_calibrate_the_gate_without_their_near_duplicates() -> None:
    # each training photo is there three times (augmented copies, one near-duplicate
    # group): left out for calibration, it must not be matched to its own copies
    rng = np.random.default_rng(0)
    sights = rng.uniform(0, 255, (2, 4, 3))
    originals = [(c, _quadrants(sights[c] + rng.normal(0, 40, (4, 3)), rng))
                 for c in range(2) for _ in range(8)]  # each original seen in its own light

    def copies(grouped: bool) -> list[Sample]:
        return [Sample(f"{g}-{k}", pixels, [], [c], TrainingImage(f"{g}-{k}", bytes, []),
                       g if grouped else None)
                for g, (c, pixels) in enumerate(originals) for k in range(3)]

    val = [Sample(f"v{c}", _quadrants(sights[c], rng), [], [c], TrainingImage("v", bytes, []))
           for c in range(2)]
    _, grouped = build_gate(_grid_colours, copies(True), val, 2)
    _, ungrouped = build_gate(_grid_colours, copies(False), val, 2)
    assert grouped["calibrated_on_training_left_out"] == 48
    assert ungrouped["calibration_similarity"]["median"] > 0.999  # its own copy
    assert grouped["calibration_similarity"]["median"] < 0.99  # another photo


def test_the_exported_gate_keeps_its_banks_as_int8() -> None:
    net = SightNet(2, 64, pretrained=False, frozen_blocks=3).eval()
    bank = int8_roundtrip(_unit(np.random.default_rng(0).normal(size=(6, 320))))
    negatives = int8_roundtrip(_unit(np.random.default_rng(1).normal(size=(4, 320))))
    gate = Gate(bank, np.array([0, 0, 0, 1, 1, 1]), np.full(2, 0.3, np.float32),
                negatives, 0.05, 0.05)
    model = export_onnx(net, base_metadata(["a", "b"], 64), gate=GateModule(gate))
    stored = {t.name: t for t in onnx.load_from_string(model).graph.initializer}
    assert stored["gate.bank_int8"].data_type == onnx.TensorProto.INT8
    assert stored["gate.negatives_int8"].data_type == onnx.TensorProto.INT8
    restored = (onnx.numpy_helper.to_array(stored["gate.bank_int8"]).astype(np.float32)
                * onnx.numpy_helper.to_array(stored["gate.bank_scale"]))
    assert np.allclose(restored.T, bank, atol=1e-6)  # what the gate was calibrated on


def test_the_trained_model_carries_a_calibrated_gate(trained: TrainedModel,
                                                  synthetic_training_set: TrainingSet) -> None:
    rejection = trained.metadata["rejection"]
    held_out = sum(1 for s in synthetic_training_set.val if s.classes)
    left_out = sum(1 for s in synthetic_training_set.train if s.classes)
    assert rejection["calibrated_on_held_out"] == held_out
    assert rejection["calibrated_on_training_left_out"] == left_out
    assert rejection["calibrated_on"] == held_out + left_out
    assert rejection["bank_size"] <= len(synthetic_training_set.train)
    # Two estimates of (rival margin, negative margin, threshold), each losing at most 3% of
    # its own photos (to a rival closer than its margin, or to the threshold); the gate takes
    # their mean
    estimates, lost = rejection["estimates"], rejection["lost_by_estimate"]
    for index, value in enumerate((rejection["rival_margin"], rejection["negative_margin"],
                                   rejection["city_threshold"])):
        assert value == pytest.approx(
            (estimates["held_out"][index] + estimates["with_training_left_out"][index]) / 2,
            abs=2e-4)
    assert lost["with_training_left_out"][1] <= int(rejection["calibrated_on"] * 0.03)
    similarity = rejection["calibration_similarity"]
    assert all(similarity["min"] - 0.02 <= t <= similarity["median"]
               for t in rejection["thresholds"])
    assert min(rejection["thresholds"]) == pytest.approx(rejection["city_threshold"], abs=1e-4)
    assert min(rejection["rival_margin"], rejection["negative_margin"]) >= RIVAL_MARGIN
    names = {t.name for t in onnx.load_from_string(trained.onnx).graph.initializer}
    assert REJECTION_INITIALIZER in names


def test_moving_the_threshold_rewrites_the_graph_and_the_metadata(trained: TrainedModel) -> None:
    opened = set_rejection_threshold(trained.onnx, DISABLED)
    assert read_metadata(opened)["rejection"]["thresholds"] == [DISABLED] * len(SHAPES)
    per_sight = set_rejection_threshold(trained.onnx, [0.1, 0.2, 0.3])
    model = onnx.load_from_string(per_sight)
    value = next(t for t in model.graph.initializer if t.name == REJECTION_INITIALIZER)
    assert onnx.numpy_helper.to_array(value).tolist() == pytest.approx([0.1, 0.2, 0.3])
    Detector.from_bytes(per_sight)  # still a valid SightScan model with the same contract
    rival = trained.metadata["rejection"]["rival_margin"]
    wider = set_rejection_threshold(trained.onnx, 0.1, negative_margin=0.3)
    margins = next(t for t in onnx.load_from_string(wider).graph.initializer
                   if t.name == "gate.margins")
    assert onnx.numpy_helper.to_array(margins).tolist() == pytest.approx([rival, 0.3], abs=1e-4)
    assert read_metadata(wider)["rejection"]["negative_margin"] == pytest.approx(0.3)


def test_a_model_without_a_gate_cannot_have_its_threshold_moved() -> None:
    net = SightNet(2, 64, pretrained=False, frozen_blocks=3).eval()
    plain = export_onnx(net, base_metadata(["a", "b"], 64))
    with pytest.raises(TrainingError, match="no open-set gate"):
        set_rejection_threshold(plain, 0.5)


def test_a_closed_gate_names_nothing_and_an_open_gate_changes_nothing(
        trained: TrainedModel) -> None:
    photos = [im.load() for im in make_images(4, 0, seed=11)]
    closed = Detector.from_bytes(set_rejection_threshold(trained.onnx, 1.01))
    opened = Detector.from_bytes(set_rejection_threshold(trained.onnx, DISABLED))
    assert all(not dets for dets in closed.detect_many(photos, 0.001))
    assert any(opened.detect_many(photos))


@pytest.mark.slow
def test_a_city_of_photo_folders_alone_names_no_sight_in_everyday_photos() -> None:
    # No boxes and no negatives (a city alone in its warehouse with photo folders): the
    # detector alone names half or more of the everyday photos; the gate must refuse them
    # and keep the held-out photos of the sights.
    training_set = assemble_training_set(make_scenes(14, seed=0), city=None,
                                         min_images_per_label=5, decode_size=64)
    config = TrainConfig(epochs=10, image_size=64, batch_size=8, lr=3e-3, threads=1, seed=0)
    model = train_detector(training_set, config).onnx  # the default frozen backbone
    gated = Detector.from_bytes(model)
    ungated = Detector.from_bytes(set_rejection_threshold(model, DISABLED))
    photos = make_everyday(12, seed=1)
    assert sum(map(bool, ungated.detect_many(photos))) >= 6
    assert sum(map(bool, gated.detect_many(photos))) <= 4
    held_out = make_scenes(6, seed=9)
    answers = gated.detect_many([im.load() for im in held_out])
    right = sum(bool(a) and a[0].label == im.labels[0].name
                for a, im in zip(answers, held_out, strict=True))
    assert right >= 15  # of 18
