"""Wang & Isola's STL-10 AlexNet: layer sizes, any input size, reference structure."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from alignsphere.models import AlexNetEncoder


@pytest.fixture(scope="module")
def encoder() -> AlexNetEncoder:
    torch.manual_seed(0)
    return AlexNetEncoder().eval()


@pytest.mark.parametrize(("size", "conv5_size"), [(15, 1), (32, 3), (64, 7), (96, 11)])
def test_any_input_size(encoder, size, conv5_size):
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        out = encoder(x)
        conv5 = encoder.forward_features(x, "conv5")
        pooled = encoder.forward_features(x, "pooled")
    assert out.shape == (2, 128)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))
    assert conv5.shape == (2, 192, conv5_size, conv5_size)
    assert pooled.shape == (2, 192 * 7 * 7)


def test_non_square_input(encoder):
    with torch.no_grad():
        out = encoder(torch.randn(2, 3, 48, 80))
    assert out.shape == (2, 128)


def test_layer_shapes_at_64px(encoder):
    x = torch.randn(2, 3, 64, 64)
    expected = {
        "conv1": (2, 96, 31, 31),
        "conv2": (2, 192, 15, 15),
        "conv3": (2, 384, 15, 15),
        "conv4": (2, 384, 15, 15),
        "conv5": (2, 192, 7, 7),
        "pooled": (2, 9408),
        "fc6": (2, 4096),
        "fc7": (2, 4096),
        "output": (2, 128),
    }
    assert encoder.layer_names == tuple(expected)
    with torch.no_grad():
        for layer, shape in expected.items():
            assert encoder.forward_features(x, layer).shape == shape
    assert encoder.feature_layer == "pooled"
    assert encoder.feature_dim == 9408


def test_adaptive_pool_is_identity_at_64px(encoder):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        conv5 = encoder.forward_features(x, "conv5")
        pooled = encoder.forward_features(x, "pooled")
    assert torch.equal(pooled, conv5.flatten(1))


def test_fc7_is_post_relu(encoder):
    with torch.no_grad():
        fc7 = encoder.forward_features(torch.randn(4, 3, 64, 64), "fc7")
    assert (fc7 >= 0).all()
    assert (fc7 > 0).any()


def test_output_is_normalized_fc8_of_fc7(encoder):
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        fc7 = encoder.forward_features(x, "fc7")
        expected = torch.nn.functional.normalize(encoder.head(fc7), dim=1)
        torch.testing.assert_close(encoder(x), expected)


def test_conv_blocks_match_reference(encoder):
    convs = [module for module in encoder.modules() if isinstance(module, nn.Conv2d)]
    assert [conv.out_channels for conv in convs] == [96, 192, 384, 384, 192]
    assert all(conv.kernel_size == (3, 3) for conv in convs)
    assert all(conv.stride == (1, 1) for conv in convs)
    assert all(conv.padding == (1, 1) for conv in convs)
    assert all(conv.bias is None for conv in convs)

    pooled_blocks = [
        name
        for name, stage in encoder.stages.items()
        if any(isinstance(module, nn.MaxPool2d) for module in stage)
    ]
    assert pooled_blocks == ["conv1", "conv2", "conv5"]


def test_fc_layers_match_reference(encoder):
    linears = [module for module in encoder.modules() if isinstance(module, nn.Linear)]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [
        (9408, 4096),
        (4096, 4096),
        (4096, 128),
    ]
    batch_norms = [
        module
        for module in encoder.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
    ]
    assert len(batch_norms) == 7


def test_parameter_count_matches_reference(encoder):
    conv_weights = (
        3 * 96 * 9 + 96 * 192 * 9 + 192 * 384 * 9 + 384 * 384 * 9 + 384 * 192 * 9
    )
    fc_weights = 9408 * 4096 + 4096 * 4096 + 4096 * 128
    fc8_bias = 128
    batch_norm_weights = 2 * (96 + 192 + 384 + 384 + 192 + 4096 + 4096)
    expected = conv_weights + fc_weights + fc8_bias + batch_norm_weights
    assert sum(parameter.numel() for parameter in encoder.parameters()) == expected


def test_reference_initialisation(encoder):
    weight = encoder.stages["fc6"][0].weight
    assert abs(weight.std().item() - 0.02) < 0.001
    assert abs(weight.mean().item()) < 0.001
    assert torch.equal(encoder.head.bias, torch.zeros(128))


def test_too_small_input_rejected(encoder):
    with pytest.raises(ValueError, match="at least 15x15 pixels"):
        encoder(torch.randn(1, 3, 14, 14))


def test_norm_none_uses_biases():
    encoder = AlexNetEncoder(norm="none", out_dim=8)
    convs = [module for module in encoder.modules() if isinstance(module, nn.Conv2d)]
    assert all(conv.bias is not None for conv in convs)
    with torch.no_grad():
        assert encoder(torch.randn(1, 3, 32, 32)).shape == (1, 8)


def test_one_channel_input():
    encoder = AlexNetEncoder(in_channels=1, out_dim=8).eval()
    with torch.no_grad():
        assert encoder(torch.randn(2, 1, 32, 32)).shape == (2, 8)
