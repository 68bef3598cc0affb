"""Checkpoints load with weights_only=True; crafted files are rejected unrun."""

from __future__ import annotations

import errno

import pytest
import torch

from alignsphere.training.checkpoint import (
    CheckpointError,
    IncompleteCheckpointError,
    check_checkpoint,
    load_checkpoint,
    load_encoder,
    save_atomically,
    save_encoder_file,
)
from alignsphere.training.config import TrainConfig


def test_crafted_file_runs_code_without_weights_only(tmp_path, write_crafted):
    # Proves the payload works, so the rejection tests below can fail.
    path = write_crafted(tmp_path / "evil.ckpt", tmp_path / "marker")
    torch.load(path, weights_only=False)
    assert (tmp_path / "marker").exists()


def test_crafted_file_is_rejected(tmp_path, write_crafted):
    marker = tmp_path / "marker"
    path = write_crafted(tmp_path / "evil.ckpt", marker)
    with pytest.raises(CheckpointError, match=r"rejected.*\(io\.open\)"):
        load_checkpoint(path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="rejected"):
        load_encoder(path)
    assert not marker.exists()


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        check_checkpoint(tmp_path / "none.ckpt")
    good = tmp_path / "good.pt"
    torch.save({"a": torch.ones(3)}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_checkpoint(truncated)


def test_encoder_file_round_trip(tmp_path):
    config = TrainConfig()
    config.model.out_dim = 8
    from alignsphere.training.data import resolve_preset
    from alignsphere.training.module import build_encoder_from_config

    encoder = build_encoder_from_config(config.model, resolve_preset(config.data))
    path = save_encoder_file(tmp_path / "encoder.pt", encoder, config.to_dict())
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    loaded, loaded_config = load_encoder(path)
    assert loaded_config == config
    for key, value in encoder.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_encoder_of_another_architecture(tmp_path):
    config = TrainConfig()
    from alignsphere.training.data import resolve_preset
    from alignsphere.training.module import build_encoder_from_config

    encoder = build_encoder_from_config(config.model, resolve_preset(config.data))
    other = config.to_dict()
    other["model"]["out_dim"] = 64
    path = save_encoder_file(tmp_path / "encoder.pt", encoder, other)
    with pytest.raises(CheckpointError, match="does not fit a mlp encoder"):
        load_encoder(path)


def test_save_atomically_full_disk_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    torch.save({"epoch": 1}, path)
    before = path.read_bytes()

    def write_half_then_fail(content, file):
        file.write(b"PK\x03\x04 partial")
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            # torch.save's zip writer wraps the OSError like this.
            raise RuntimeError("unexpected pos 76992 vs 76888") from None

    monkeypatch.setattr(torch, "save", write_half_then_fail)
    with pytest.raises(OSError) as raised:
        save_atomically({"epoch": 2}, path)
    assert raised.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_save_atomically_replaces_whole_file(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"epoch": 1}, path)
    save_atomically({"epoch": 2}, path)
    assert load_checkpoint(path) == {"epoch": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_truncated_file_is_incomplete(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"weights": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(IncompleteCheckpointError, match="truncated"):
        check_checkpoint(path)
    path.write_bytes(b"")
    with pytest.raises(IncompleteCheckpointError):
        check_checkpoint(path)


def test_crafted_file_is_not_incomplete(tmp_path, write_crafted):
    # An unsafe file must stop a resume, never be skipped for an older one.
    path = write_crafted(tmp_path / "last.ckpt", tmp_path / "marker")
    with pytest.raises(CheckpointError) as raised:
        check_checkpoint(path)
    assert not isinstance(raised.value, IncompleteCheckpointError)
