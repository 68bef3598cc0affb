"""Atomic text writes: whole file or the old one, and no temporary file left."""

from __future__ import annotations

import errno
import os

import pytest

from alignsphere._io import write_text_atomic


def test_writes_text_and_parents(tmp_path):
    path = tmp_path / "a" / "b" / "report.json"
    assert write_text_atomic(path, "{}\n") == path
    assert path.read_text(encoding="utf-8") == "{}\n"
    assert os.listdir(path.parent) == ["report.json"]


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "report.json"
    path.write_text("old\n")

    def full_disk(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_text_atomic(path, "new\n")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["report.json"]


def test_folder_as_target_leaves_nothing(tmp_path):
    target = tmp_path / "folder"
    target.mkdir()
    with pytest.raises(IsADirectoryError):
        write_text_atomic(target, "x")
    assert os.listdir(tmp_path) == ["folder"]
