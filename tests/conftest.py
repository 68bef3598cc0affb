"""Shared fixtures: the real data named by ALIGNSPHERE_TEST_DATA, CIFAR-10 JPEGs and text."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import tarfile
import time
from collections import Counter
from pathlib import Path, PurePosixPath

import pytest


def _data_dir() -> Path | None:
    value = os.environ.get("ALIGNSPHERE_TEST_DATA")
    return Path(value) if value else None


@pytest.fixture(scope="session")
def test_data_dir() -> Path:
    """Folder of real data for tests, from ALIGNSPHERE_TEST_DATA.

    Skips when the variable is unset; under CI (CI=true) a missing folder fails
    instead, so that tests on real data never silently stop running.
    """
    path = _data_dir()
    in_ci = os.environ.get("CI", "").lower() == "true"
    if path is None or not path.is_dir():
        message = (
            f"real test data not found (ALIGNSPHERE_TEST_DATA={os.environ.get('ALIGNSPHERE_TEST_DATA')!r}); "
            "set it to the folder holding cifar10-jpg.tar.gz, stsb/, senteval/ and gutenberg/"
        )
        if in_ci:
            pytest.fail(message)
        pytest.skip(message)
    return path


CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
#: Images unpacked per class and split: 300 train and 100 test images in all.
CIFAR10_SUBSET = {"train": 30, "test": 10}


@pytest.fixture(scope="session")
def cifar10_jpg_root(test_data_dir: Path, tmp_path_factory) -> Path:
    """A folder with ``train/<class>/*.jpg`` and ``test/<class>/*.jpg`` real images.

    Unpacks the first 30 train and 10 test images of each class from
    cifar10-jpg.tar.gz, reading the archive as a stream and stopping once every
    quota is filled.
    """
    archive = test_data_dir / "cifar10-jpg.tar.gz"
    if not archive.is_file():
        pytest.fail(f"{archive} not found in ALIGNSPHERE_TEST_DATA={test_data_dir}")
    root = tmp_path_factory.mktemp("cifar10-jpg")
    counts: Counter[tuple[str, str]] = Counter()
    needed = sum(CIFAR10_SUBSET.values()) * len(CIFAR10_CLASSES)
    with tarfile.open(archive, mode="r|gz") as stream:
        for member in stream:
            parts = PurePosixPath(member.name).parts
            if not member.isfile() or len(parts) != 3 or not parts[2].endswith(".jpg"):
                continue
            split, label, filename = parts
            if split not in CIFAR10_SUBSET or label not in CIFAR10_CLASSES:
                continue
            if counts[split, label] >= CIFAR10_SUBSET[split]:
                continue
            target = root / split / label / filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(stream.extractfile(member).read())
            counts[split, label] += 1
            if sum(counts.values()) == needed:
                break
    assert sum(counts.values()) == needed, f"archive held only {dict(counts)}"
    return root


def _subfolder(test_data_dir: Path, name: str) -> Path:
    folder = test_data_dir / name
    if not folder.is_dir():
        pytest.fail(f"{folder} is missing from ALIGNSPHERE_TEST_DATA={test_data_dir}")
    return folder


@pytest.fixture(scope="session")
def gutenberg_dir(test_data_dir: Path) -> Path:
    """Sixteen Project Gutenberg novels as they were downloaded."""
    return _subfolder(test_data_dir, "gutenberg")


@pytest.fixture(scope="session")
def senteval_dir(test_data_dir: Path) -> Path:
    """The original release files of MR, CR, SUBJ, MPQA and TREC."""
    return _subfolder(test_data_dir, "senteval")


@pytest.fixture(scope="session")
def stsb_dir(test_data_dir: Path) -> Path:
    """STS Benchmark train, dev and test files."""
    return _subfolder(test_data_dir, "stsb")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def restore_default_sigint():
    """A ``preexec_fn`` that gives a child the default SIGINT action.

    A non-interactive shell starts background jobs (``cmd &``) with SIGINT
    ignored, children inherit that, and Python then installs no
    KeyboardInterrupt handler. Under a backgrounded test run, a Ctrl-C test
    would otherwise send a signal that its child ignores. A terminal's
    foreground job has the default action.
    """
    return _default_sigint


@pytest.fixture
def interrupt_when(tmp_path):
    """Start a command in its own session and Ctrl-C it once it is ready.

    The returned function runs ``command`` with the default SIGINT action and
    polls ``ready(stdout_path)`` until it is true. The test fails if the
    command exits first or ``timeout`` seconds pass. After ``delay`` seconds
    more, SIGINT goes to the command's whole process group, as a terminal
    sends it. The function returns the exit code and the command's stderr.
    """

    def run(command, env, ready, *, timeout=300.0, delay=0.0, poll=0.05):
        stdout_path = tmp_path / "interrupted.stdout"
        stderr_path = tmp_path / "interrupted.stderr"
        with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr:
            process = subprocess.Popen(
                command,
                env=env,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=_default_sigint,
            )
        try:
            deadline = time.monotonic() + timeout
            while not ready(stdout_path):
                assert process.poll() is None, stderr_path.read_text()[-3000:]
                if time.monotonic() > deadline:
                    pytest.fail(f"not ready within {timeout} s: {shlex.join(command)}")
                time.sleep(poll)
            time.sleep(delay)
            os.killpg(process.pid, signal.SIGINT)
            code = process.wait(timeout=120)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return code, stderr_path.read_text()

    return run
