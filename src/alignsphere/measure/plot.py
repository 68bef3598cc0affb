"""One PNG that shows a measurement: two histograms and a 2-D projection.

The left panel is a histogram of the distances ``||f(x) - f(y)||`` of the
positive pairs. The middle one is a histogram of the cosine similarity of
random pairs of rows, drawn over the density that rows spread uniformly on the
sphere would give. The right one projects rows on the two leading axes of the
spectrum and joins a few positive pairs by lines. The figure is drawn with
matplotlib's object API and the Agg canvas, so no display and no pyplot state
are involved.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch

from alignsphere.measure.core import PositivePairs
from alignsphere.measure.report import MeasureReport
from alignsphere.measure.rows import RowSet
from alignsphere.measure.sampling import sample_pair_sq_distances

logger = logging.getLogger(__name__)

HISTOGRAM_PAIRS = 200_000
PROJECTED_ROWS = 5_000
DRAWN_PAIRS = 200


def uniform_cosine_density(cosine: np.ndarray, dim: int) -> np.ndarray:
    r"""Density of the cosine between two independent uniform points on :math:`S^{d-1}`.

    .. math:: p(c) = \frac{\Gamma(d/2)}{\sqrt\pi\,\Gamma((d-1)/2)} (1-c^2)^{(d-3)/2}

    Args:
        cosine: Values in (-1, 1).
        dim: Dimension d >= 2 of the ambient space.
    """
    log_norm = (
        math.lgamma(dim / 2) - 0.5 * math.log(math.pi) - math.lgamma((dim - 1) / 2)
    )
    inside = np.clip(1 - np.asarray(cosine, dtype=np.float64) ** 2, 1e-300, None)
    return np.exp(log_norm + (dim - 3) / 2 * np.log(inside))


def plot_measurement(
    report: MeasureReport,
    rows: RowSet,
    pairs: PositivePairs | None,
    path: str | Path,
    *,
    seed: int = 0,
) -> Path:
    """Write the histograms and the projection of a measurement to a PNG file.

    Args:
        report: The measurement, for titles and the projection axes.
        rows: The rows the statistics were computed over.
        pairs: The positive pairs, or None.
        path: Output file; written to a temporary name first, then renamed.
        seed: Seed for the random pairs and the rows shown.

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure

    path = Path(path)
    generator = torch.Generator().manual_seed(seed + 1)
    rng = np.random.default_rng(seed)
    figure = Figure(figsize=(15, 4.6), layout="constrained")
    left, middle, right = figure.subplots(1, 3)

    distances = None
    if pairs is not None:
        distances = _pair_distances(pairs, rng)
        left.hist(distances, bins=60, range=(0, 2), color="tab:blue")
        left.set_title(
            f"positive pairs: alignment {report.alignment.value:.3f}"
            f" (alpha = {report.alignment.alpha:g})"
        )
        left.set_xlabel("||f(x) - f(y)||")
        left.set_ylabel("pairs")
    else:
        left.text(0.5, 0.5, "no positive pairs", ha="center", va="center")
        left.set_axis_off()

    count = min(HISTOGRAM_PAIRS, max(2, rows.num_rows * (rows.num_rows - 1) // 2))
    cosines = 1 - sample_pair_sq_distances(rows, count, generator=generator).numpy() / 2
    middle.hist(cosines, bins=100, range=(-1, 1), density=True, color="tab:orange")
    grid = np.linspace(-0.999, 0.999, 801)
    middle.plot(
        grid,
        uniform_cosine_density(grid, report.dim),
        color="black",
        linewidth=1,
        label=f"uniform on S^{report.dim - 1}",
    )
    middle.set_ylim(0, None)
    middle.legend(loc="upper left")
    middle.set_title(
        f"random pairs: uniformity {report.uniformity.value:.3f}"
        f" (t = {report.uniformity.t:g}, optimum {report.uniformity.optimum:.3f})"
    )
    middle.set_xlabel("cosine similarity")
    middle.set_ylabel("density")

    _draw_projection(right, report, rows, pairs, rng)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial.png")
    figure.savefig(temporary, dpi=110)
    temporary.replace(path)
    logger.info("wrote %s", path)
    return path


def _pair_distances(pairs: PositivePairs, rng: np.random.Generator) -> np.ndarray:
    count = pairs.first.num_rows
    chosen = np.sort(rng.choice(count, size=min(count, HISTOGRAM_PAIRS), replace=False))
    parts = []
    for start in range(0, len(chosen), 8192):
        positions = chosen[start : start + 8192]
        difference = pairs.first.take(positions) - pairs.second.take(positions)
        parts.append(np.sqrt(np.einsum("ij,ij->i", difference, difference)))
    return np.concatenate(parts)


def _draw_projection(axes, report, rows, pairs, rng) -> None:
    statistics = report.statistics
    if statistics.eigenvectors is None or report.dim < 2:
        axes.set_axis_off()
        return

    basis = statistics.eigenvectors[:, :2]
    mean = statistics.mean_row
    size = min(rows.num_rows, PROJECTED_ROWS)
    shown = np.sort(rng.choice(rows.num_rows, size=size, replace=False))
    points = (rows.take(shown) - mean) @ basis
    axes.scatter(
        points[:, 0], points[:, 1], s=3, alpha=0.4, color="tab:gray", label="rows"
    )
    if pairs is not None:
        count = pairs.first.num_rows
        drawn = np.sort(rng.choice(count, size=min(count, DRAWN_PAIRS), replace=False))
        first = (pairs.first.take(drawn) - mean) @ basis
        second = (pairs.second.take(drawn) - mean) @ basis
        for a, b in zip(first, second, strict=True):
            axes.plot(
                [a[0], b[0]], [a[1], b[1]], color="tab:blue", linewidth=0.6, alpha=0.7
            )
        axes.scatter(
            first[:, 0], first[:, 1], s=6, color="tab:blue", label="positive pairs"
        )
        axes.scatter(second[:, 0], second[:, 1], s=6, color="tab:blue")
        axes.legend(loc="upper right")

    values = np.asarray(statistics.spectrum.singular_values) ** 2
    share = values[:2] / values.sum() if values.sum() > 0 else np.zeros(2)
    if statistics.spectrum.centered:
        kind, measure = "principal axis", "variance"
    else:
        kind, measure = "singular direction", "second moment"
    axes.set_xlabel(f"{kind} 1 ({share[0]:.1%} of {measure})")
    axes.set_ylabel(f"{kind} 2 ({share[1]:.1%} of {measure})")
    axes.set_title(
        f"2-D projection: effective rank {statistics.spectrum.effective_rank:.1f}"
        f" of {report.dim}"
    )
    axes.set_aspect("equal", adjustable="datalim")
