"""``alignsphere train`` and ``evaluate`` end to end on digits, and bad input."""

from __future__ import annotations

import errno
import json
import os

import pytest
import torch
import yaml

from alignsphere.cli.main import main
from alignsphere.training.run import find_resume_checkpoint

TRAIN_FAST = ["--no-progress", "--set", "trainer.max_epochs=2"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A digits run of 2 epochs, trained once for the tests of this module."""
    output = tmp_path_factory.mktemp("runs") / "digits"
    code = main(["train", "--config", "digits", "--output", str(output), *TRAIN_FAST])
    assert code == 0
    return output


def one_error_line(capsys, command):
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith(f"alignsphere {command}: error:")]
    assert "Traceback" not in "\n".join(err)
    assert len(errors) == 1, err
    return errors[0]


def test_train_writes_run_folder(digits_run):
    assert (digits_run / "encoder.pt").is_file()
    assert (digits_run / "checkpoints" / "last.ckpt").is_file()
    assert (digits_run / "tensorboard").is_dir()
    saved = yaml.safe_load((digits_run / "config.yaml").read_text())
    assert saved["trainer"]["max_epochs"] == 2
    metrics = next((digits_run / "csv").glob("version_*/metrics.csv")).read_text()
    header = metrics.splitlines()[0].split(",")
    for column in (
        "train/loss_step",
        "train/align_epoch",
        "train/uniform_epoch",
        "heldout/align",
        "heldout/uniform",
        "lr-SGD",
    ):
        assert column in header
    last = torch.load(digits_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1
    assert (
        torch.serialization.get_unsafe_globals_in_checkpoint(
            digits_run / "checkpoints" / "last.ckpt"
        )
        == []
    )


def test_train_resumes_and_says_so(digits_run, tmp_path, capsys):
    import shutil

    output = tmp_path / "copy"
    shutil.copytree(digits_run, output)
    code = main(
        [
            "train",
            "--config",
            "digits",
            "--output",
            str(output),
            "--no-progress",
            "--set",
            "trainer.max_epochs=3",
        ]
    )
    assert code == 0
    assert f"resuming from {output / 'checkpoints' / 'last.ckpt'}" in (
        capsys.readouterr().out
    )
    assert (
        torch.load(output / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
        == 2
    )
    assert len(list((output / "csv").glob("version_*/metrics.csv"))) == 2


def test_resume_of_finished_run_writes_missing_encoder(digits_run, tmp_path):
    """A kill after the last checkpoint but before the export loses nothing.

    The rerun finds ``last.ckpt`` at the final epoch, trains no further and
    writes ``encoder.pt`` with the checkpoint's weights.
    """
    import shutil

    output = tmp_path / "copy"
    shutil.copytree(digits_run, output)
    (output / "encoder.pt").unlink()
    code = main(["train", "--config", "digits", "--output", str(output), *TRAIN_FAST])
    assert code == 0
    checkpoint = torch.load(output / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 1
    exported = torch.load(output / "encoder.pt", weights_only=True)["state_dict"]
    saved = {
        key.removeprefix("encoder."): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith("encoder.")
    }
    assert exported.keys() == saved.keys()
    for key, value in exported.items():
        assert torch.equal(value, saved[key]), key


def test_evaluate_writes_json(digits_run, tmp_path, capsys):
    report_path = tmp_path / "eval.json"
    code = main(
        [
            "evaluate",
            str(digits_run),
            "--layer",
            "output",
            "--layer",
            "pooled",
            "--json",
            str(report_path),
            "--no-progress",
            "--heldout-images",
            "200",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "linear probe" in out
    report = json.loads(report_path.read_text())
    assert report["model"] == {"name": "mlp", "out_dim": 32}
    output = report["layers"]["output"]
    assert output["linear_probe"]["method"] == "fast"
    # Two epochs already separate digits far above chance (10 %).
    assert output["linear_probe"]["test_accuracy"] > 0.7
    assert output["knn"]["k"] == 5
    assert output["knn"]["accuracy"] > 0.7
    assert report["layers"]["pooled"]["feature_dim"] == 256
    assert report["heldout"]["num_images"] == 200


def test_evaluate_lightning_checkpoint_equals_encoder_file(digits_run, tmp_path):
    reports = []
    for source in ("encoder.pt", "checkpoints/last.ckpt"):
        path = tmp_path / f"{source.replace('/', '_')}.json"
        assert (
            main(
                [
                    "evaluate",
                    str(digits_run / source),
                    "--json",
                    str(path),
                    "--heldout-images",
                    "100",
                    "--knn-k",
                    "3",
                ]
            )
            == 0
        )
        report = json.loads(path.read_text())
        reports.append((report["layers"], report["heldout"]))
    assert reports[0] == reports[1]


def test_evaluate_random_init_baseline(digits_run, tmp_path):
    path = tmp_path / "random.json"
    assert (
        main(
            [
                "evaluate",
                str(digits_run),
                "--random-init",
                "--json",
                str(path),
                "--heldout-images",
                "0",
                "--probe",
                "none",
            ]
        )
        == 0
    )
    report = json.loads(path.read_text())
    assert report["random_init"] is True
    assert "linear_probe" not in report["layers"]["output"]


def test_train_resume_rejects_crafted_checkpoint(tmp_path, capsys, write_crafted):
    output = tmp_path / "run"
    (output / "checkpoints").mkdir(parents=True)
    marker = tmp_path / "marker"
    write_crafted(output / "checkpoints" / "last.ckpt", marker)
    code = main(["train", "--config", "digits", "--output", str(output), *TRAIN_FAST])
    assert code == 2
    line = one_error_line(capsys, "train")
    assert "rejected" in line
    assert not marker.exists()


def test_evaluate_rejects_crafted_checkpoint(tmp_path, capsys, write_crafted):
    marker = tmp_path / "marker"
    path = write_crafted(tmp_path / "evil.pt", marker)
    assert main(["evaluate", str(path)]) == 2
    assert "rejected" in one_error_line(capsys, "evaluate")
    assert not marker.exists()


def test_resume_with_another_model_is_rejected(digits_run, tmp_path, capsys):
    import shutil

    output = tmp_path / "copy"
    shutil.copytree(digits_run, output)
    code = main(
        [
            "train",
            "--config",
            "digits",
            "--output",
            str(output),
            *TRAIN_FAST,
            "--set",
            "model.out_dim=16",
        ]
    )
    assert code == 2
    line = one_error_line(capsys, "train")
    assert "trained with model" in line
    assert "another --output" in line


def test_evaluate_other_architecture(digits_run, tmp_path, capsys):
    content = torch.load(digits_run / "encoder.pt", weights_only=True)
    content["config"]["model"]["out_dim"] = 64
    path = tmp_path / "encoder.pt"
    torch.save(content, path)
    assert main(["evaluate", str(path)]) == 2
    assert "does not fit a mlp encoder" in one_error_line(capsys, "evaluate")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--config", "digit"], "unknown config 'digit'; bundled configs:"),
        (
            ["--config", "digits", "--set", "trainer.epochs=1"],
            "unknown key 'trainer.epochs' in trainer; valid keys:",
        ),
        (["--config", "cifar10_cpu"], "data.root is required"),
        (
            ["--config", "cifar10_cpu", "--data-root", "/nonexistent/cifar"],
            "/nonexistent/cifar",
        ),
    ],
)
def test_train_bad_input(tmp_path, capsys, arguments, message):
    code = main(["train", *arguments, "--output", str(tmp_path / "out")])
    assert code == 2
    assert message in one_error_line(capsys, "train")


def test_train_invalid_yaml(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("model: [mlp\n")
    code = main(["train", "--config", str(path), "--output", str(tmp_path / "out")])
    assert code == 2
    assert "invalid YAML" in one_error_line(capsys, "train")


def test_evaluate_missing_checkpoint(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing.ckpt")]) == 2
    assert "not found" in one_error_line(capsys, "evaluate")


def test_evaluate_bad_layer(digits_run, capsys):
    assert main(["evaluate", str(digits_run), "--layer", "fc7"]) == 2
    assert "valid layers" in one_error_line(capsys, "evaluate")


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1"])
def test_evaluate_bad_knn_temperature(digits_run, capsys, value):
    code = main(["evaluate", str(digits_run), "--knn-temperature", value])
    assert code == 2
    line = one_error_line(capsys, "evaluate")
    assert f"invalid --knn-temperature {float(value)}" in line
    assert "finite number > 0" in line


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--heldout-images", "1"], "invalid --heldout-images 1; it must be 0"),
        (["--device", "cuda"], "PyTorch finds no CUDA device"),
        (["--json", "{tmp}"], "--json {tmp} is a folder"),
        (["--json", "{tmp}/file/report.json"], "{tmp}/file is a file, not a folder"),
    ],
)
def test_evaluate_bad_options_fail_first(
    digits_run, tmp_path, capsys, arguments, message
):
    """Each of these stops with one line before any feature is extracted."""
    if "cuda" in arguments and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    (tmp_path / "file").write_text("")
    arguments = [a.format(tmp=tmp_path) for a in arguments]
    code = main(["evaluate", str(digits_run), *arguments])
    assert code == 2
    captured = capsys.readouterr()
    assert "extracting" not in captured.err
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1, captured.err
    assert message.format(tmp=tmp_path) in errors[0]
    assert not list(tmp_path.glob(".*.tmp"))


def test_train_print_config(capsys, tmp_path):
    code = main(
        [
            "train",
            "--config",
            "digits",
            "--output",
            str(tmp_path),
            "--set",
            "optim.batch_size=128",
            "--print-config",
        ]
    )
    assert code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"]["batch_size"] == 128


def test_evaluate_missing_data_folder(tmp_path, capsys):
    from alignsphere.training import save_encoder_file
    from alignsphere.training.config import load_config
    from alignsphere.training.data import resolve_preset
    from alignsphere.training.module import build_encoder_from_config

    config = load_config("cifar10_cpu", [f"data.root={tmp_path / 'moved'}"])
    encoder = build_encoder_from_config(config.model, resolve_preset(config.data))
    path = save_encoder_file(tmp_path / "encoder.pt", encoder, config.to_dict())
    assert main(["evaluate", str(path)]) == 2
    line = one_error_line(capsys, "evaluate")
    assert str(tmp_path / "moved") in line
    assert "--data-root" in line


def test_train_resume_skips_truncated_last(digits_run, tmp_path, capsys):
    import shutil

    output = tmp_path / "copy"
    shutil.copytree(digits_run, output)
    last = output / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:4096])
    fallback = output / "checkpoints" / "epoch=001.ckpt"
    assert fallback.is_file()
    code = main(
        [
            "train",
            "--config",
            "digits",
            "--output",
            str(output),
            "--no-progress",
            "--set",
            "trainer.max_epochs=3",
        ]
    )
    assert code == 0
    assert f"resuming from {fallback}" in capsys.readouterr().out
    assert torch.load(last, weights_only=True)["epoch"] == 2
    assert not list((output / "checkpoints").glob(".*.tmp"))


def stopped_between_renames(digits_run, output):
    """A run whose ``last.ckpt`` is one epoch behind its ``epoch=002.ckpt``.

    That is the folder a kill leaves after ``epoch=002.ckpt`` was renamed into
    place and before ``last.ckpt`` was: the copy trains a third epoch, then
    gets back the second epoch's ``last.ckpt`` with its older mtime.
    """
    import shutil

    shutil.copytree(digits_run, output)
    args = ["--no-progress", "--set", "trainer.max_epochs=3"]
    assert main(["train", "--config", "digits", "--output", str(output), *args]) == 0
    folder = output / "checkpoints"
    shutil.copy2(digits_run / "checkpoints" / "last.ckpt", folder / "last.ckpt")
    assert torch.load(folder / "last.ckpt", weights_only=True)["epoch"] == 1
    return folder


def test_resume_prefers_newer_epoch_checkpoint(digits_run, tmp_path, capsys):
    output = tmp_path / "copy"
    folder = stopped_between_renames(digits_run, output)
    newer = folder / "epoch=002.ckpt"
    assert find_resume_checkpoint(output) == newer
    capsys.readouterr()
    args = ["--no-progress", "--set", "trainer.max_epochs=4"]
    assert main(["train", "--config", "digits", "--output", str(output), *args]) == 0
    out = capsys.readouterr().out
    assert f"resuming from {newer}\n" in out
    assert torch.load(folder / "last.ckpt", weights_only=True)["epoch"] == 3
    # The third run trained epoch 3 only, not epoch 2 again.
    logs = sorted((output / "csv").glob("version_*/metrics.csv"))
    epochs = {
        row.split(",")[0]
        for row in logs[-1].read_text().splitlines()[1:]
        if row.split(",")[0]
    }
    assert epochs == {"3"}


def test_resume_ignores_stale_or_partial_epoch_checkpoints(digits_run, tmp_path):
    output = tmp_path / "copy"
    folder = stopped_between_renames(digits_run, output)
    last = folder / "last.ckpt"
    newer = folder / "epoch=002.ckpt"
    # An epoch file older than last.ckpt is left from an earlier run.
    before = last.stat().st_mtime_ns - 10**9
    os.utime(newer, ns=(before, before))
    assert find_resume_checkpoint(output) == last
    # A newer file that is truncated is skipped.
    newer.write_bytes(newer.read_bytes()[:4096])
    assert find_resume_checkpoint(output) == last
    # A file of the same epoch as last.ckpt, as a folder copy may date it.
    newer.unlink()
    same_epoch = folder / "epoch=001.ckpt"
    later = last.stat().st_mtime_ns + 10**9
    os.utime(same_epoch, ns=(later, later))
    assert find_resume_checkpoint(output) == last


def test_resume_ignores_epoch_file_of_another_run(digits_run, tmp_path):
    """A newer next-epoch file with another seed, or a later epoch, is skipped."""
    import shutil

    output = tmp_path / "copy"
    folder = stopped_between_renames(digits_run, output)
    last = folder / "last.ckpt"
    newer = folder / "epoch=002.ckpt"
    other = tmp_path / "other"
    args = ["--no-progress", "--set", "trainer.max_epochs=3", "--set", "seed=5"]
    assert main(["train", "--config", "digits", "--output", str(other), *args]) == 0
    shutil.copy(other / "checkpoints" / "epoch=002.ckpt", newer)
    assert newer.stat().st_mtime_ns > last.stat().st_mtime_ns
    assert find_resume_checkpoint(output) == last

    # An epoch that a kill between two renames cannot leave: 9 after 1.
    newer.rename(folder / "epoch=009.ckpt")
    assert find_resume_checkpoint(output) == last


def test_resume_with_last_ckpt_folder(digits_run, tmp_path, capsys):
    import shutil

    output = tmp_path / "copy"
    shutil.copytree(digits_run, output)
    last = output / "checkpoints" / "last.ckpt"
    last.unlink()
    last.mkdir()
    code = main(["train", "--config", "digits", "--output", str(output), *TRAIN_FAST])
    assert code == 2
    line = one_error_line(capsys, "train")
    assert f"{last} is not a file" in line
    assert "--no-resume" in line


def test_resume_with_lower_max_epochs(digits_run, tmp_path, capsys):
    import shutil

    output = tmp_path / "copy"
    shutil.copytree(digits_run, output)
    config_before = (output / "config.yaml").read_text()
    args = ["--no-progress", "--set", "trainer.max_epochs=1"]
    code = main(["train", "--config", "digits", "--output", str(output), *args])
    assert code == 2
    line = one_error_line(capsys, "train")
    assert "has completed 2 epochs, more than trainer.max_epochs=1" in line
    assert (output / "config.yaml").read_text() == config_before


def test_train_truncated_last_without_fallback(digits_run, tmp_path, capsys):
    import shutil

    output = tmp_path / "copy"
    shutil.copytree(digits_run, output)
    last = output / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:4096])
    for path in (output / "checkpoints").glob("epoch=*.ckpt"):
        path.write_bytes(b"")
    code = main(["train", "--config", "digits", "--output", str(output), *TRAIN_FAST])
    assert code == 2
    line = one_error_line(capsys, "train")
    assert str(last) in line
    assert "--no-resume" in line


def test_train_ctrl_c_says_how_to_resume(tmp_path, capsys, caplog, monkeypatch):
    import signal

    from alignsphere.training.module import HypersphereModule

    step = HypersphereModule.training_step

    def interrupt_at_batch_3(self, batch, batch_idx):
        if self.current_epoch == 1 and batch_idx == 3:
            raise KeyboardInterrupt
        return step(self, batch, batch_idx)

    monkeypatch.setattr(HypersphereModule, "training_step", interrupt_at_batch_3)
    output = tmp_path / "run"
    arguments = ["train", "--config", "digits", "--output", str(output), *TRAIN_FAST]
    handler = signal.getsignal(signal.SIGINT)
    assert main(arguments) == 130
    # Lightning ignores SIGINT while it tears the run down, then restores it.
    assert signal.getsignal(signal.SIGINT) is handler
    assert "Detected KeyboardInterrupt" not in caplog.text
    err = capsys.readouterr().err.splitlines()
    lines = [line for line in err if line.startswith("alignsphere train:")]
    assert len(lines) == 1, err
    assert "interrupted" in lines[0]
    assert "rerun: alignsphere train --config digits --output" in lines[0]
    assert "Traceback" not in "\n".join(err)
    saved = torch.load(output / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["epoch"] == 0


def test_train_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    def full_disk(content, file):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    output = tmp_path / "run"
    arguments = ["train", "--config", "digits", "--output", str(output), *TRAIN_FAST]
    assert main(arguments) == 2
    line = one_error_line(capsys, "train")
    assert "No space left on device" in line
    assert "free disk space" in line
    assert not list((output / "checkpoints").iterdir())


def test_train_output_under_a_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    output = blocker / "run"
    arguments = ["train", "--config", "digits", "--output", str(output), *TRAIN_FAST]
    assert main(arguments) == 2
    line = one_error_line(capsys, "train")
    assert "Not a directory" in line
    assert "writable --output folder" in line
