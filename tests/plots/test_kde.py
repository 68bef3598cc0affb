"""Kernel densities of features on the circle."""

from __future__ import annotations

import math

import pytest
import torch

from alignsphere.plots.kde import gaussian_kde_2d, vmf_kde_angles


def _circle_points(n: int, seed: int = 0) -> torch.Tensor:
    angles = torch.rand(n, generator=torch.Generator().manual_seed(seed)) * 2 * math.pi
    return torch.stack([angles.cos(), angles.sin()], dim=1)


def test_plane_density_integrates_to_one():
    points = _circle_points(500)
    axis = torch.linspace(-1.6, 1.6, 241, dtype=torch.float64)
    density = gaussian_kde_2d(points, axis, axis, bandwidth=0.1)
    cell = float(axis[1] - axis[0]) ** 2
    assert float(density.sum()) * cell == pytest.approx(1.0, abs=2e-3)


def test_plane_density_peaks_at_the_point():
    axis_x = torch.linspace(-1, 1, 41, dtype=torch.float64)
    axis_y = torch.linspace(-1, 1, 21, dtype=torch.float64)
    density = gaussian_kde_2d(torch.tensor([[0.5, -0.5]]), axis_x, axis_y, 0.2)
    assert density.shape == (21, 41)
    row, column = divmod(int(density.argmax()), 41)
    assert float(axis_y[row]) == pytest.approx(-0.5)
    assert float(axis_x[column]) == pytest.approx(0.5)
    assert float(density.max()) == pytest.approx(1 / (2 * math.pi * 0.04))


def test_plane_density_equals_direct_sum():
    points = _circle_points(50, seed=1).double()
    axis_x = torch.linspace(-1.2, 1.2, 13, dtype=torch.float64)
    axis_y = torch.linspace(-1.0, 1.0, 11, dtype=torch.float64)
    h = 0.15
    expected = torch.empty(11, 13, dtype=torch.float64)
    for i, y in enumerate(axis_y):
        for j, x in enumerate(axis_x):
            sq = (points[:, 0] - x).square() + (points[:, 1] - y).square()
            expected[i, j] = torch.exp(-sq / (2 * h * h)).mean() / (2 * math.pi * h * h)
    assert torch.allclose(gaussian_kde_2d(points, axis_x, axis_y, h), expected)


def test_angle_density_in_chunks_equals_whole(monkeypatch):
    import alignsphere.plots.kde as kde

    angles = torch.linspace(-3, 3, 50, dtype=torch.float64)
    grid = torch.linspace(-math.pi, math.pi, 64, dtype=torch.float64)
    whole = vmf_kde_angles(angles, grid, 30.0)
    monkeypatch.setattr(kde, "_CHUNK_CELLS", 64 * 7)
    assert torch.allclose(vmf_kde_angles(angles, grid, 30.0), whole)


@pytest.mark.parametrize("kappa", [0.5, 20.0, 100.0, 5000.0])
def test_angle_density_integrates_to_one(kappa):
    grid = torch.linspace(-math.pi, math.pi, 20_001, dtype=torch.float64)[:-1]
    angles = torch.tensor([-3.0, 0.1, 1.0, 3.1])
    density = vmf_kde_angles(angles, grid, kappa)
    assert bool(torch.isfinite(density).all())
    assert float(density.sum()) * 2 * math.pi / 20_000 == pytest.approx(1.0, rel=1e-6)


def test_angle_density_wraps_around():
    density = vmf_kde_angles(
        torch.tensor([math.pi - 0.01]), torch.tensor([-math.pi + 0.01, 0.0]), 50.0
    )
    assert float(density[0]) > 100 * float(density[1])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: gaussian_kde_2d(
                torch.zeros(3, 3), torch.zeros(2), torch.zeros(2), 1.0
            ),
            "shape",
        ),
        (
            lambda: gaussian_kde_2d(
                torch.zeros(3, 2), torch.zeros(2), torch.zeros(2), 0.0
            ),
            "bandwidth",
        ),
        (lambda: vmf_kde_angles(torch.tensor([]), torch.zeros(2), 1.0), "empty"),
        (lambda: vmf_kde_angles(torch.tensor([math.nan]), torch.zeros(2), 1.0), "NaN"),
        (lambda: vmf_kde_angles(torch.zeros(2), torch.zeros(2), -1.0), "kappa"),
    ],
)
def test_invalid_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call()
