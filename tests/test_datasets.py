"""Photo-set readers: one folder per sight, and YOLO (images/ + labels/)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from sightscan.datasets import (
    LabelLineError,
    parse_yolo_labels,
    read_dataset,
    read_folder_dataset,
    read_yolo_class_names,
    read_yolo_dataset,
    read_yolo_labels,
)
from sightscan.detections import Box, Label
from sightscan.errors import InvalidInputError


def write_jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue())
    return path


def test_folder_dataset_labels_each_photo_with_its_folder(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "Kölner_Dom" / "a.jpg")
    write_jpeg(tmp_path / "Kölner_Dom" / "nested" / "b.JPEG")
    write_jpeg(tmp_path / "Rhein" / "c.png")
    (tmp_path / "Rhein" / "notes.txt").write_text("not a photo")
    write_jpeg(tmp_path / ".hidden" / "d.jpg")
    items = list(read_folder_dataset(tmp_path))
    assert [(item.path.name, item.sight) for item in items] == [
        ("a.jpg", "Kölner Dom"), ("b.JPEG", "Kölner Dom"), ("c.png", "Rhein")]
    assert items[0].labels == [Label("Kölner Dom")]


def test_folder_dataset_without_sub_folders_is_rejected(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "loose.jpg")
    with pytest.raises(InvalidInputError):
        list(read_folder_dataset(tmp_path))
    with pytest.raises(InvalidInputError):
        list(read_folder_dataset(tmp_path / "missing"))


def yolo_tree(root: Path, names_file: tuple[str, str]) -> Path:
    (root / names_file[0]).write_text(names_file[1], encoding="utf-8")
    write_jpeg(root / "images" / "train" / "one.jpg")
    write_jpeg(root / "images" / "val" / "two.jpg")
    write_jpeg(root / "images" / "val" / "three.jpg")
    write_jpeg(root / "images" / "val" / "four.jpg")
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "train" / "one.txt").write_text("0 0.5 0.5 0.2 0.4\n1 0.1 0.1 0.4 0.4\n")
    (root / "labels" / "val" / "two.txt").write_text("1 0.5 0.5 1.0 1.0\n\n")
    (root / "labels" / "val" / "three.txt").write_text("")  # empty: no box known
    return root  # four.jpg has no label file at all


@pytest.mark.parametrize(
    "names_file",
    [("data.yaml", "path: .\nnames: [Brandenburger_Tor, Reichstag]\n"),
     ("data.yaml", "names:\n  0: Brandenburger_Tor\n  1: Reichstag\n"),
     ("data.yaml", "names:\n  - Brandenburger_Tor\n  - Reichstag\n"),
     ("classes.txt", "Brandenburger_Tor\nReichstag\n\n")],
    ids=["yaml-inline-list", "yaml-mapping", "yaml-list", "classes-txt"],
)
def test_yolo_dataset_reads_boxes_from_split_folders(
    tmp_path: Path, names_file: tuple[str, str]
) -> None:
    items = {item.path.name: item for item in read_yolo_dataset(yolo_tree(tmp_path, names_file))}
    assert set(items) == {"one.jpg", "two.jpg", "three.jpg", "four.jpg"}
    one = items["one.jpg"].labels
    assert [label.name for label in one] == ["Brandenburger Tor", "Reichstag"]
    assert one[0].box is not None and one[0].box.as_list() == pytest.approx([0.4, 0.3, 0.6, 0.7])
    assert one[1].box is not None and one[1].box.as_list() == pytest.approx([0.0, 0.0, 0.3, 0.3])
    assert items["two.jpg"].labels == [Label("Reichstag", Box(0.0, 0.0, 1.0, 1.0))]


def test_empty_label_file_gives_no_labels(tmp_path: Path) -> None:
    root = yolo_tree(tmp_path, ("classes.txt", "A\nB\n"))
    items = {item.path.name: item for item in read_yolo_dataset(root)}
    assert items["three.jpg"].labels == [] and items["three.jpg"].sight is None
    assert items["four.jpg"].labels == []


def test_yaml_mapping_is_ordered_by_index(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("names:\n  1: B\n  0: A\n  2: C\n")
    assert read_yolo_class_names(tmp_path) == ["A", "B", "C"]


def test_data_yaml_wins_over_classes_txt(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("names: [FromYaml]\n")
    (tmp_path / "classes.txt").write_text("FromTxt\n")
    assert read_yolo_class_names(tmp_path) == ["FromYaml"]


def test_missing_class_names_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        read_yolo_class_names(tmp_path)
    (tmp_path / "data.yaml").write_text("nc: 2\n")
    with pytest.raises(InvalidInputError):
        read_yolo_class_names(tmp_path)


def test_yolo_dataset_without_images_folder_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("A\n")
    with pytest.raises(InvalidInputError):
        list(read_yolo_dataset(tmp_path))


@pytest.mark.parametrize(
    "text",
    ["0 0.5 0.5", "x 0.5 0.5 0.1 0.1", "0 a b c d", "5 0.5 0.5 0.1 0.1", "-1 0.5 0.5 0.1 0.1",
     "0 0.5 0.5 0 0.1", "0 nan 0.5 0.1 0.1", "0 0.5 inf 0.1 0.1", "0 1.5 0.5 0.1 0.1",
     "0 0.1 0.1 0.2 0.2 0.3", "0 0.1 0.1 0.2 0.2 0.3 0.3 0.4", "0 0.1 0.1 0.5 0.1 0.9 0.1",
     "0 0.1 0.1 0.5 0.2 1.4 0.3"],
)
def test_bad_yolo_lines_are_rejected_with_file_and_line(text: str) -> None:
    with pytest.raises(LabelLineError) as caught:
        parse_yolo_labels("1 0.5 0.5 0.2 0.2\n" + text, ["A", "B"], "labels/x.txt")
    assert isinstance(caught.value, InvalidInputError)
    assert (caught.value.problem.file, caught.value.problem.line) == ("labels/x.txt", 2)
    assert str(caught.value).startswith("labels/x.txt:2: ")


def test_polygon_lines_become_the_polygon_extent() -> None:
    text = "1 0.2 0.3 0.6 0.25 0.7 0.8 0.25 0.9\n0 0.5 0.5 0.2 0.4\n"
    polygon, box = parse_yolo_labels(text, ["A", "B"])
    assert polygon.name == "B" and polygon.box is not None
    assert polygon.box.as_list() == pytest.approx([0.2, 0.25, 0.7, 0.9])
    assert box.box is not None and box.box.as_list() == pytest.approx([0.4, 0.3, 0.6, 0.7])


def test_polygon_points_just_past_the_edge_are_clipped() -> None:
    [label] = parse_yolo_labels("0 -0.004 0.1 1.003 0.2 0.5 0.9", ["A"])
    assert label.box is not None and label.box.as_list() == pytest.approx([0.0, 0.1, 1.0, 0.9])


def test_unusable_lines_are_skipped_and_reported_the_rest_is_kept() -> None:
    text = "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n\n0 0.5 0.5 0 0.2\n1 0.1 0.1 0.3 0.1 0.3 0.4\n"
    labels, problems = read_yolo_labels(text, ["A", "B"], "l.txt")
    assert [label.name for label in labels] == ["A", "B"]
    assert [(p.file, p.line) for p in problems] == [("l.txt", 2), ("l.txt", 4)]
    assert "class 7" in problems[0].reason and "zero-width" in problems[1].reason
    assert problems[1].text == "0 0.5 0.5 0 0.2"


def test_yolo_dataset_keeps_going_past_bad_lines(tmp_path: Path) -> None:
    root = yolo_tree(tmp_path, ("classes.txt", "A\nB\n"))
    (root / "labels" / "val" / "two.txt").write_text("1 0.5 0.5 0.2 0.2\n0 0.5\n9 0 0 1 1\n")
    items = {item.path.name: item for item in read_yolo_dataset(root)}
    assert items["two.jpg"].labels == [Label("B", Box(0.4, 0.4, 0.6, 0.6))]
    assert [p.line for p in items["two.jpg"].problems] == [2, 3]
    assert items["one.jpg"].problems == []


def test_roboflow_split_layout_is_read(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("names: [A, B]\n")
    write_jpeg(tmp_path / "train" / "images" / "x.jpg")
    write_jpeg(tmp_path / "valid" / "images" / "y.jpg")
    (tmp_path / "train" / "labels").mkdir(parents=True)
    (tmp_path / "train" / "labels" / "x.txt").write_text("1 0.1 0.2 0.3 0.2 0.3 0.6\n")
    items = {item.path.name: item for item in read_yolo_dataset(tmp_path)}
    assert set(items) == {"x.jpg", "y.jpg"}
    assert items["x.jpg"].labels == [Label("B", Box(0.1, 0.2, 0.3, 0.6))]
    assert items["y.jpg"].labels == []


def test_yolo_boxes_are_clipped_to_the_image() -> None:
    [label] = parse_yolo_labels("0 0.95 0.05 0.2 0.2", ["A"])
    assert label.box is not None
    assert label.box.as_list() == pytest.approx([0.85, 0.0, 1.0, 0.15])


def test_read_dataset_dispatches_on_format(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "Dom" / "a.jpg")
    assert [item.sight for item in read_dataset(tmp_path, "folders")] == ["Dom"]
    with pytest.raises(InvalidInputError):
        read_dataset(tmp_path, "coco")
