"""Encoder weights from DDP, DataParallel, MoCo and torchvision checkpoints."""

from __future__ import annotations

import logging

import pytest
import torch
import torchvision

from alignsphere.moco import (
    BackboneKeyError,
    load_backbone_weights,
    map_checkpoint_keys,
)
from alignsphere.models import build_encoder

torch.set_num_threads(1)


def small_resnet(**options):
    torch.manual_seed(0)
    return build_encoder("resnet18", out_dim=8, small_images=True, **options)


def trained_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    encoder = build_encoder("resnet18", out_dim=8, small_images=True)
    return {k: v.clone() for k, v in encoder.state_dict().items()}


def assert_loaded(encoder, state):
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, state[key]), key


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "module.",  # DDP or DataParallel
        "encoder_q.",  # a MoCo model saved without a wrapper
        "module.encoder_q.",  # the reference MoCo checkpoints
        "moco.encoder_q.",  # alignsphere train with method: moco
        "encoder.",  # alignsphere train with method: simclr
        "module._orig_mod.",  # torch.compile inside DDP
    ],
)
def test_prefixes_map_to_encoder(tmp_path, prefix):
    state = trained_state()
    content = {prefix + key: value for key, value in state.items()}
    if "encoder_q" in prefix:
        # The key encoder and the queue must not win over the query encoder.
        key_prefix = prefix.replace("encoder_q", "encoder_k")
        content.update({key_prefix + k: torch.zeros_like(v) for k, v in state.items()})
        content[prefix.replace("encoder_q.", "queue")] = torch.zeros(128, 16)
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"state_dict": content, "epoch": 3, "arch": "resnet18"}, path)
    encoder = small_resnet()
    report = load_backbone_weights(encoder, path)
    assert_loaded(encoder, state)
    assert report.missing_head == []


def test_torchvision_resnet_names():
    reference = torchvision.models.resnet18(weights=None)
    reference.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    reference.fc = torch.nn.Linear(512, 8)
    content = {"module.encoder_q." + k: v for k, v in reference.state_dict().items()}
    encoder = small_resnet()
    load_backbone_weights(encoder, {"state_dict": content})
    assert torch.equal(encoder.stages["stem"][0].weight, reference.conv1.weight)
    assert torch.equal(
        encoder.stages["layer4"][1].bn2.running_var, reference.layer4[1].bn2.running_var
    )
    assert torch.equal(encoder.head.weight, reference.fc.weight)


def test_mlp_head_mismatch_keeps_backbone(caplog):
    # A MoCo v2 checkpoint (MLP head) loaded into a linear-head encoder.
    state = trained_state()
    source = {k: v for k, v in state.items() if not k.startswith("head.")}
    source["head.0.weight"] = torch.zeros(512, 512)
    encoder = small_resnet()
    with caplog.at_level(logging.WARNING):
        report = load_backbone_weights(encoder, source)
    assert report.missing_head == ["head.weight", "head.bias"]
    assert "head.0.weight" in report.unused
    assert "keep their initial values" in caplog.text
    assert torch.equal(
        encoder.stages["layer1"][0].conv1.weight, state["stages.layer1.0.conv1.weight"]
    )


def test_strict_head_raises():
    state = {k: v for k, v in trained_state().items() if not k.startswith("head.")}
    with pytest.raises(BackboneKeyError, match="does not supply 2 head weights"):
        load_backbone_weights(small_resnet(), state, strict_head=True)


def test_no_backbone_match_raises():
    other = build_encoder("small_convnet", out_dim=8)
    content = {"module.encoder_q." + k: v for k, v in other.state_dict().items()}
    encoder = small_resnet()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    with pytest.raises(BackboneKeyError, match="no backbone weight of the checkpoint"):
        load_backbone_weights(encoder, {"state_dict": content})
    assert_loaded(encoder, before)


def test_partial_backbone_raises():
    state = trained_state()
    del state["stages.layer4.1.conv2.weight"]
    with pytest.raises(BackboneKeyError, match="lacks 1 of"):
        load_backbone_weights(small_resnet(), state)


def test_other_shape_raises():
    # A 7x7 ImageNet stem against the 3x3 small-image stem.
    source = build_encoder("resnet18", out_dim=8).state_dict()
    with pytest.raises(
        BackboneKeyError, match="of another shape: stages.stem.0.weight"
    ):
        load_backbone_weights(small_resnet(), source)


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_file_with_code_is_rejected(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "crafted.pth"
    torch.save({"state_dict": trained_state(), "extra": Payload(marker)}, path)
    with pytest.raises(BackboneKeyError, match="weights_only=True"):
        load_backbone_weights(small_resnet(), path)
    assert not marker.exists()


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_backbone_weights(small_resnet(), tmp_path / "absent.pth")


def test_map_without_target_strips_prefixes():
    mapped = map_checkpoint_keys(
        {"module.encoder_q.a": 1, "module.encoder_k.a": 2, "module.queue": 3}
    )
    assert mapped == {"a": 1}
