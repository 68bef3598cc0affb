"""``alignsphere imagenet-subset``: class subsets as symbolic links."""

from __future__ import annotations

import pytest
import torch

from alignsphere.cli.main import main
from alignsphere.data import load_image_folder
from alignsphere.data.pil import tensor_to_pil
from alignsphere.moco.imagenet import SubsetError, link_class_subset, read_class_list

CLASSES = ["n01440764", "n01443537", "n01484850"]


@pytest.fixture
def imagenet(tmp_path):
    """A tiny ImageNet layout: 3 classes, 2 train and 1 val image each (8x8 PNG)."""
    root = tmp_path / "imagenet"
    for split, count in (("train", 2), ("val", 1)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                image = torch.full((3, 8, 8), 40 * label + index, dtype=torch.uint8)
                tensor_to_pil(image).save(folder / f"{name}_{index}.png")
    return root


def write_list(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_command_links_listed_classes(imagenet, tmp_path, capsys):
    classes = write_list(
        tmp_path / "subset.txt", ["# two classes", CLASSES[2], "", CLASSES[0]]
    )
    output = tmp_path / "subset"
    code = main(
        [
            "imagenet-subset",
            "--source",
            str(imagenet),
            "--classes",
            str(classes),
            "--output",
            str(output),
        ]
    )
    assert code == 0
    assert "linked 2 classes x 2 splits" in capsys.readouterr().out
    for split in ("train", "val"):
        entries = sorted(p.name for p in (output / split).iterdir())
        assert entries == [CLASSES[0], CLASSES[2]]
        for entry in (output / split).iterdir():
            assert entry.is_symlink()
            assert entry.resolve() == (imagenet / split / entry.name).resolve()
    dataset = load_image_folder(output / "train", progress=False)
    assert dataset.classes == [CLASSES[0], CLASSES[2]]
    assert len(dataset) == 4


def test_missing_classes_write_nothing(imagenet, tmp_path, capsys):
    classes = write_list(
        tmp_path / "subset.txt", [CLASSES[0], "n99999999", "n88888888"]
    )
    output = tmp_path / "subset"
    code = main(
        [
            "imagenet-subset",
            "--source",
            str(imagenet),
            "--classes",
            str(classes),
            "--output",
            str(output),
        ]
    )
    error = capsys.readouterr().err
    assert code == 2
    assert "2 of 3 classes are missing" in error
    assert "n99999999, n88888888" in error
    assert not output.exists()


def test_missing_split_folder(imagenet, tmp_path):
    with pytest.raises(SubsetError, match="split folder .*test not found"):
        link_class_subset(imagenet, CLASSES, tmp_path / "out", splits=("test",))


def test_missing_source(tmp_path):
    with pytest.raises(SubsetError, match="source folder .* not found"):
        link_class_subset(tmp_path / "absent", CLASSES, tmp_path / "out")


def test_rerun_keeps_links(imagenet, tmp_path):
    output = tmp_path / "subset"
    first = link_class_subset(imagenet, CLASSES, output)
    second = link_class_subset(imagenet, CLASSES, output)
    assert (first.created, first.existing) == (6, 0)
    assert (second.created, second.existing) == (0, 6)


def test_entry_in_the_way(imagenet, tmp_path):
    output = tmp_path / "subset"
    (output / "train" / CLASSES[1]).mkdir(parents=True)
    with pytest.raises(SubsetError, match="already exists and is not a link"):
        link_class_subset(imagenet, CLASSES, output)
    assert not (output / "train" / CLASSES[0]).exists()


def test_output_inside_source(imagenet):
    with pytest.raises(SubsetError, match="inside the source folder"):
        link_class_subset(imagenet, CLASSES, imagenet / "subset")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "lists no class"),
        (["# only a comment"], "lists no class"),
        (["n01440764", "n01440764"], "listed twice"),
        (["train/n01440764"], "is not a class folder name"),
        ([".."], "is not a class folder name"),
    ],
)
def test_invalid_class_lists(tmp_path, lines, message):
    path = write_list(tmp_path / "classes.txt", lines)
    with pytest.raises(SubsetError, match=message):
        read_class_list(path)


def test_missing_class_list(tmp_path):
    with pytest.raises(SubsetError, match="class list .* not found"):
        read_class_list(tmp_path / "absent.txt")
