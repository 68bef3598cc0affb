"""``alignsphere study`` errors that need no Ray: unwritable output folders."""

from __future__ import annotations

import errno

from alignsphere.cli.main import main


def error_lines(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    return [line for line in err if line.startswith("alignsphere study: error:")]


def test_study_output_under_a_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["study", "--output", str(blocker / "study")])
    assert code == 2
    lines = error_lines(capsys)
    assert len(lines) == 1
    assert "Not a directory" in lines[0]
    assert "writable --output folder" in lines[0]


def test_study_read_only_output(tmp_path, capsys, monkeypatch):
    # Runs as root ignore chmod, so the read-only file system is simulated.
    from pathlib import Path

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    code = main(["study", "--output", str(tmp_path / "study")])
    assert code == 2
    lines = error_lines(capsys)
    assert len(lines) == 1
    assert "Read-only file system" in lines[0]
    assert str(tmp_path / "study") in lines[0]
