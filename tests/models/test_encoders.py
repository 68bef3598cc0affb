"""Encoders: unit-norm outputs, feature layers, registry and input checks."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn as nn

from alignsphere.models import (
    AlexNetEncoder,
    Encoder,
    MLPEncoder,
    ResNetEncoder,
    SmallConvNet,
    build_encoder,
    encoder_parameters,
    list_encoders,
    projection_head,
)

# name -> (build arguments, input shape) small enough for a quick CPU forward.
CASES = {
    "alexnet": ({}, (3, 3, 32, 32)),
    "resnet18": ({"small_images": True}, (3, 3, 16, 16)),
    "resnet50": ({}, (2, 3, 32, 32)),
    "small_convnet": ({}, (4, 3, 32, 32)),
    "mlp": ({}, (5, 1, 8, 8)),
}


@functools.cache
def cached_encoder(name: str) -> Encoder:
    """Build each registry encoder once: AlexNet and ResNet-50 are slow to initialise."""
    torch.manual_seed(0)
    kwargs, _ = CASES[name]
    return build_encoder(name, **kwargs)


def example_input(name: str) -> torch.Tensor:
    _, shape = CASES[name]
    return torch.randn(shape, generator=torch.Generator().manual_seed(1))


def test_registry_names():
    assert list_encoders() == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_shape_and_unit_norm(name):
    encoder = cached_encoder(name).eval()
    x = example_input(name)
    with torch.no_grad():
        out = encoder(x)
    assert encoder.out_dim == 128
    assert out.shape == (x.shape[0], 128)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(x.shape[0]))


@pytest.mark.parametrize("name", ["small_convnet", "mlp"])
def test_custom_out_dim(name):
    kwargs, shape = CASES[name]
    encoder = build_encoder(name, out_dim=7, **kwargs).eval()
    with torch.no_grad():
        out = encoder(torch.randn(shape))
    assert out.shape == (shape[0], 7)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(shape[0]))


@pytest.mark.parametrize("name", sorted(CASES))
def test_features_shape(name):
    encoder = cached_encoder(name).eval()
    x = example_input(name)
    with torch.no_grad():
        features = encoder.features(x)
    assert features.shape == (x.shape[0], encoder.feature_dim)
    assert encoder.layer_names[-1] == "output"
    assert encoder.feature_layer in encoder.layer_names


@pytest.mark.parametrize("name", sorted(CASES))
def test_eval_mode_deterministic(name):
    encoder = cached_encoder(name).eval()
    x = example_input(name)
    with torch.no_grad():
        first = encoder(x)
        second = encoder(x)
        # In eval mode an image's output does not depend on the rest of the batch.
        alone = encoder(x[:1])
    assert torch.equal(first, second)
    torch.testing.assert_close(alone[0], first[0], atol=1e-5, rtol=0)


# ResNet-50 runs the same code as ResNet-18 here, and its backward pass is slow on CPU.
@pytest.mark.parametrize("name", ["alexnet", "resnet18", "small_convnet", "mlp"])
def test_gradients_reach_first_layer(name):
    encoder = copy.deepcopy(cached_encoder(name)).train()
    out = encoder(example_input(name))
    (out[:, 0] - out[:, 1]).sum().backward()
    first = next(parameter for parameter in encoder.parameters())
    assert first.grad is not None
    assert first.grad.abs().sum() > 0


def test_unknown_encoder_lists_names():
    with pytest.raises(
        ValueError, match="alexnet, mlp, resnet18, resnet50, small_convnet"
    ):
        build_encoder("vgg16")


def test_unknown_argument_lists_valid_ones():
    with pytest.raises(
        ValueError, match="Invalid arguments \\['norm'\\] for encoder 'resnet18'"
    ):
        build_encoder("resnet18", norm="none")
    assert "small_images" in encoder_parameters("resnet50")


def test_unknown_layer_lists_valid_ones():
    encoder = build_encoder("small_convnet")
    with pytest.raises(
        ValueError, match="block1, block2, block3, block4, pooled, output"
    ):
        encoder.forward_features(torch.randn(1, 3, 32, 32), "fc7")


@pytest.mark.parametrize("name", ["small_convnet", "mlp", "alexnet"])
def test_norm_none_has_no_batch_norm(name):
    torch.manual_seed(0)
    encoder = build_encoder(name, norm="none")
    assert not any(
        isinstance(module, nn.modules.batchnorm._BatchNorm)
        for module in encoder.modules()
    )
    # Without batch norm an image's output does not depend on its batch, even in
    # training mode.
    x = example_input(name)
    encoder.train()
    full = encoder(x)
    alone = encoder(x[:1])
    torch.testing.assert_close(alone[0], full[0], atol=1e-5, rtol=0)


def test_invalid_norm_rejected():
    with pytest.raises(ValueError, match="norm must be one of"):
        SmallConvNet(norm="layer")


def test_invalid_out_dim_rejected():
    with pytest.raises(ValueError, match="out_dim must be a positive integer"):
        build_encoder("mlp", out_dim=0)


def test_wrong_channels_rejected():
    encoder = build_encoder("small_convnet")
    with pytest.raises(ValueError, match="\\(N, 3, H, W\\)"):
        encoder(torch.randn(2, 1, 32, 32))


def test_small_convnet_one_channel_digits():
    encoder = SmallConvNet(in_channels=1).eval()
    with torch.no_grad():
        out = encoder(torch.randn(3, 1, 8, 8))
        block4 = encoder.forward_features(torch.randn(3, 1, 8, 8), "block4")
    assert out.shape == (3, 128)
    assert block4.shape == (3, 256, 1, 1)


def test_small_convnet_layer_shapes():
    encoder = SmallConvNet().eval()
    x = torch.randn(2, 3, 32, 32)
    expected = {
        "block1": (2, 32, 16, 16),
        "block2": (2, 64, 8, 8),
        "block3": (2, 128, 4, 4),
        "block4": (2, 256, 4, 4),
        "pooled": (2, 256),
        "output": (2, 128),
    }
    with torch.no_grad():
        for layer, shape in expected.items():
            assert encoder.forward_features(x, layer).shape == shape


def test_mlp_accepts_flat_input():
    encoder = MLPEncoder(input_dim=64, hidden_dims=(32,)).eval()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), encoder(x.flatten(1)))
    assert encoder.feature_layer == "hidden1"
    assert encoder.features(x).shape == (4, 32)


def test_mlp_rejects_wrong_size():
    encoder = MLPEncoder(input_dim=64)
    with pytest.raises(ValueError, match="1 x H x W = 64"):
        encoder(torch.randn(2, 1, 7, 7))


def test_resnet_small_stem_shapes():
    encoder = ResNetEncoder(18, small_images=True).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert encoder.forward_features(x, "stem").shape == (2, 64, 32, 32)
        assert encoder.forward_features(x, "layer4").shape == (2, 512, 4, 4)
        assert encoder.features(x).shape == (2, 512)
    assert isinstance(encoder.stages["stem"][3], nn.Identity)
    assert encoder.stages["stem"][0].kernel_size == (3, 3)


def test_resnet_standard_stem_shapes():
    encoder = ResNetEncoder(18).eval()
    with torch.no_grad():
        layer4 = encoder.forward_features(torch.randn(1, 3, 64, 64), "layer4")
    assert layer4.shape == (1, 512, 2, 2)
    assert encoder.stages["stem"][0].kernel_size == (7, 7)


def test_resnet50_feature_dim():
    encoder = cached_encoder("resnet50")
    assert encoder.feature_dim == 2048
    assert encoder.head.in_features == 2048


def test_resnet_mlp_head():
    encoder = ResNetEncoder(18, out_dim=64, head="mlp", head_hidden_dim=256)
    layers = [type(layer) for layer in encoder.head]
    assert layers == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert encoder.head[0].out_features == 256
    assert encoder.head[3].out_features == 64


def test_resnet_one_channel():
    encoder = ResNetEncoder(18, in_channels=1, small_images=True).eval()
    with torch.no_grad():
        assert encoder(torch.randn(2, 1, 16, 16)).shape == (2, 128)


def test_projection_head_kinds():
    assert isinstance(projection_head(8, 4), nn.Linear)
    mlp = projection_head(8, 4, "mlp", norm="none")
    assert [type(layer) for layer in mlp] == [nn.Linear, nn.ReLU, nn.Linear]
    with pytest.raises(ValueError, match="'linear' or 'mlp'"):
        projection_head(8, 4, "transformer")


def test_zero_head_output_stays_finite():
    encoder = MLPEncoder(hidden_dims=(8,), out_dim=4).eval()
    nn.init.zeros_(encoder.head.weight)
    nn.init.zeros_(encoder.head.bias)
    with torch.no_grad():
        out = encoder(torch.randn(2, 1, 8, 8))
    assert torch.isfinite(out).all()


def test_state_dict_round_trip(tmp_path):
    encoder = build_encoder("small_convnet", out_dim=16).eval()
    path = tmp_path / "encoder.pt"
    torch.save(encoder.state_dict(), path)
    restored = build_encoder("small_convnet", out_dim=16).eval()
    restored.load_state_dict(torch.load(path, weights_only=True))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(encoder(x), restored(x))


def test_every_encoder_is_an_encoder():
    for name in list_encoders():
        assert isinstance(cached_encoder(name), Encoder)
    assert issubclass(AlexNetEncoder, Encoder)
