"""``alignsphere imagenet-subset``: class subsets as symbolic links."""

from __future__ import annotations

import errno

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


def run_subset(capsys, source, classes, output):
    """Run the command; return its exit code and its stderr lines."""
    code = main(
        [
            "imagenet-subset",
            "--source",
            str(source),
            "--classes",
            str(classes),
            "--output",
            str(output),
        ]
    )
    return code, capsys.readouterr().err.strip().splitlines()


def one_error_line(lines):
    assert "Traceback" not in "\n".join(lines)
    assert len(lines) == 1, lines
    assert lines[0].startswith("alignsphere imagenet-subset: error: ")
    return lines[0]


def test_command_missing_source(tmp_path, capsys):
    classes = write_list(tmp_path / "classes.txt", CLASSES)
    code, lines = run_subset(capsys, tmp_path / "absent", classes, tmp_path / "out")
    assert code == 2
    line = one_error_line(lines)
    assert f"source folder {tmp_path / 'absent'} not found" in line
    assert "give the ImageNet root" in line


def test_command_empty_source(tmp_path, capsys):
    source = tmp_path / "empty"
    source.mkdir()
    classes = write_list(tmp_path / "classes.txt", CLASSES)
    code, lines = run_subset(capsys, source, classes, tmp_path / "out")
    assert code == 2
    line = one_error_line(lines)
    assert f"split folder {source / 'train'} not found" in line
    assert "folders in" in line
    assert not (tmp_path / "out").exists()


def test_command_empty_class_folder(imagenet, tmp_path, capsys):
    for image in (imagenet / "val" / CLASSES[1]).iterdir():
        image.unlink()
    classes = write_list(tmp_path / "classes.txt", CLASSES)
    code, lines = run_subset(capsys, imagenet, classes, tmp_path / "out")
    assert code == 2
    line = one_error_line(lines)
    assert f"class folders without files in --source {imagenet}: " in line
    assert line.count(CLASSES[1]) == 1
    assert str(imagenet / "val" / CLASSES[1]) in line
    assert "remove those classes from the class list" in line
    assert not (tmp_path / "out").exists()


def test_command_absent_classes(imagenet, tmp_path, capsys):
    classes = write_list(tmp_path / "classes.txt", [CLASSES[0], "n99999999"])
    code, lines = run_subset(capsys, imagenet, classes, tmp_path / "out")
    assert code == 2
    line = one_error_line(lines)
    assert f"1 of 2 classes are missing from {imagenet / 'train'}: n99999999" in line
    assert "Check the class list" in line


def test_command_class_list_not_text(imagenet, tmp_path, capsys):
    classes = tmp_path / "classes.txt"
    classes.write_bytes(b"n01440764\n\xff\xfe\x00\n")
    code, lines = run_subset(capsys, imagenet, classes, tmp_path / "out")
    assert code == 2
    line = one_error_line(lines)
    assert f"class list {classes} is not UTF-8 text" in line
    assert "one class folder name per line" in line


def test_command_output_under_a_file(imagenet, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    classes = write_list(tmp_path / "classes.txt", CLASSES)
    code, lines = run_subset(capsys, imagenet, classes, blocker / "subset")
    assert code == 2
    line = one_error_line(lines)
    assert "Not a directory" in line
    assert "choose a writable --output folder" in line


def test_command_read_only_output(imagenet, tmp_path, capsys, monkeypatch):
    # Runs as root ignore chmod, so the read-only file system is simulated.
    from pathlib import Path

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    classes = write_list(tmp_path / "classes.txt", CLASSES)
    output = tmp_path / "subset"
    code, lines = run_subset(capsys, imagenet, classes, output)
    assert code == 2
    line = one_error_line(lines)
    assert f"cannot write {output / 'train'}: Read-only file system" in line
    assert "choose a writable --output folder" in line


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"notes.txt": None}, "is not a split folder of a subset"),
        ({"train/n99999999": None}, "contains n99999999, which the class list"),
        ({"val/old_class": CLASSES[0]}, "contains old_class, which the class list"),
    ],
)
def test_command_non_empty_output(imagenet, tmp_path, capsys, content, message):
    output = tmp_path / "subset"
    for relative, link_to in content.items():
        path = output / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if link_to is None:
            path.write_text("")
        else:
            path.symlink_to(imagenet / "val" / link_to, target_is_directory=True)
    classes = write_list(tmp_path / "classes.txt", CLASSES)
    code, lines = run_subset(capsys, imagenet, classes, output)
    assert code == 2
    line = one_error_line(lines)
    assert f"--output {output} is not empty" in line
    assert message in line
    assert "choose a new or empty --output folder" in line
    assert not (output / "train" / CLASSES[0]).exists()


def test_command_output_is_a_file(imagenet, tmp_path, capsys):
    output = tmp_path / "subset"
    output.write_text("")
    classes = write_list(tmp_path / "classes.txt", CLASSES)
    code, lines = run_subset(capsys, imagenet, classes, output)
    assert code == 2
    line = one_error_line(lines)
    assert f"--output {output} exists and is not a folder" in line


def test_command_extends_earlier_subset(imagenet, tmp_path, capsys):
    output = tmp_path / "subset"
    first = write_list(tmp_path / "first.txt", CLASSES[:1])
    assert run_subset(capsys, imagenet, first, output)[0] == 0
    both = write_list(tmp_path / "both.txt", CLASSES[:2])
    code, lines = run_subset(capsys, imagenet, both, output)
    assert code == 0, lines
    assert sorted(p.name for p in (output / "train").iterdir()) == CLASSES[:2]
