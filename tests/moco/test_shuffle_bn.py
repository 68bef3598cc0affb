"""Shuffle-BN and batch-norm splits on one process."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from alignsphere.moco import MoCo, forward_in_splits, shuffled_forward

torch.set_num_threads(1)


def batch_norm_encoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5)).double()


def test_splits_normalise_each_sub_batch():
    encoder = batch_norm_encoder().train()
    x = torch.randn(10, 3, dtype=torch.float64)
    actual = forward_in_splits(encoder, x, 2)
    expected = torch.cat([encoder(x[:5]), encoder(x[5:])])
    torch.testing.assert_close(actual, expected)
    assert not torch.allclose(actual, encoder(x))


def test_splits_of_uneven_size():
    encoder = nn.Identity()
    x = torch.arange(7.0)[:, None]
    assert torch.equal(forward_in_splits(encoder, x, 3), x)


def test_more_splits_than_rows_raise():
    with pytest.raises(ValueError, match="cannot split a batch of 3 rows into 4"):
        forward_in_splits(nn.Identity(), torch.zeros(3, 2), 4)


def test_shuffle_returns_original_order():
    encoder = nn.Linear(3, 3).double()
    x = torch.randn(9, 3, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    actual = shuffled_forward(encoder, x, splits=3, generator=generator)
    torch.testing.assert_close(actual, encoder(x).detach())


def test_shuffle_without_splits_equals_plain_batch_norm():
    # One batch, one set of statistics: the permutation alone changes nothing.
    encoder = batch_norm_encoder().train()
    x = torch.randn(8, 3, dtype=torch.float64)
    actual = shuffled_forward(encoder, x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(actual, encoder(x).detach())


def test_shuffle_with_splits_uses_permuted_groups():
    encoder = batch_norm_encoder().train()
    x = torch.randn(8, 3, dtype=torch.float64)
    permutation = torch.randperm(8, generator=torch.Generator().manual_seed(5))
    actual = shuffled_forward(
        encoder, x, splits=2, generator=torch.Generator().manual_seed(5)
    )
    expected = torch.empty_like(actual)
    for group in permutation.chunk(2):
        expected[group] = encoder(x[group]).detach()
    torch.testing.assert_close(actual, expected)


def test_moco_splits_both_encoders():
    calls: list[int] = []

    class Counting(nn.Module):
        out_dim = 2

        def forward(self, x):
            calls.append(x.shape[0])
            return nn.functional.normalize(x.flatten(1)[:, :2] + 1.0, dim=1)

    moco = MoCo(Counting(), "1*align", queue_size=4, bn_splits=2)
    moco(torch.rand(6, 1, 2, 2), torch.rand(6, 1, 2, 2))
    assert calls == [3, 3, 3, 3]
