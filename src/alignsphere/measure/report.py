"""The result of a measurement, as JSON-ready dicts and as a table for people."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from alignsphere.measure.statistics import FeatureStatistics
from alignsphere.metrics import UniformityEstimate


@dataclass(frozen=True)
class AlignmentResult:
    """Alignment of the positive pairs.

    Attributes:
        value: Mean of ``||f(x) - f(y)||^alpha`` over the pairs, on unit rows.
        alpha: The exponent.
        num_pairs: Number of positive pairs.
        pairs: Where the pairs come from.
    """

    value: float
    alpha: float
    num_pairs: int
    pairs: str


@dataclass(frozen=True)
class UniformityResult:
    """Uniformity, the set it was computed over, and the population optimum.

    Attributes:
        value: ``log`` of the mean of ``exp(-t ||f(x) - f(y)||^2)`` over distinct
            pairs of rows; with ``sides``, the mean of the two sides' values.
        t: The scale.
        method: ``"exact"`` (every pair) or ``"sampled"`` (random pairs).
        over: The rows it was computed over, in words.
        num_rows: Number of rows (both sides together for a mean of two sides).
        duplicates_removed: Exact duplicate rows dropped first, or None when
            duplicates were kept and not looked for.
        estimate: Interval of a sampled value (None for exact values).
        sides: Values of the first and second side when ``value`` is their mean.
        optimum: Population uniformity of the uniform distribution on
            ``S^(d-1)``, the lowest value any distribution of unit vectors can have.
        gap: ``value - optimum``; a finite sample can score below the optimum,
            so the gap can be negative.
    """

    value: float
    t: float
    method: str
    over: str
    num_rows: int
    duplicates_removed: int | None
    estimate: UniformityEstimate | None
    sides: tuple[float, float] | None
    optimum: float
    gap: float


@dataclass(frozen=True)
class MeasureReport:
    """Everything ``alignsphere measure`` reports about a set of embeddings.

    Attributes:
        inputs: The inputs, one line each.
        dim: Feature dimension d.
        alignment: Alignment of the positive pairs, or None without pairs.
        uniformity: Uniformity and the optimum.
        statistics: Row statistics and spectrum of the uniformity rows.
        statistics_over: The rows the statistics were computed over, in words.
        notes: Facts about the input that change the reading of the numbers.
        timings: Seconds spent on each stage.
    """

    inputs: tuple[str, ...]
    dim: int
    alignment: AlignmentResult | None
    uniformity: UniformityResult
    statistics: FeatureStatistics
    statistics_over: str
    notes: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return the report as nested dicts of plain numbers and strings."""
        out = {
            "inputs": list(self.inputs),
            "dim": self.dim,
            "alignment": asdict(self.alignment) if self.alignment else None,
            "uniformity": asdict(self.uniformity),
            "statistics": self.statistics.to_dict(),
            "statistics_over": self.statistics_over,
            "notes": list(self.notes),
            "timings_s": dict(self.timings),
        }
        if self.uniformity.sides is not None:
            out["uniformity"]["sides"] = list(self.uniformity.sides)
        return _finite_or_none(out)

    def to_table(self) -> str:
        """Return the report as a text table for a terminal."""
        stats = self.statistics
        lines = [f"inputs: {item}" for item in self.inputs]
        if self.alignment is not None:
            lines.append(f"positive pairs: {self.alignment.pairs}")
        lines.append(f"uniformity over: {self.uniformity.over}")
        if self.statistics_over != self.uniformity.over:
            lines.append(f"statistics over: {self.statistics_over}")
        lines.extend(f"note: {note}" for note in self.notes)
        lines.append("")

        rows: list[tuple[str, str, str]] = []
        if self.alignment is not None:
            rows.append(
                (
                    f"alignment (alpha = {self.alignment.alpha:g})",
                    f"{self.alignment.value:.4f}",
                    f"mean ||f(x) - f(y)||^{self.alignment.alpha:g} over "
                    f"{self.alignment.num_pairs:,} positive pairs",
                )
            )
        rows.append(
            (
                f"uniformity (t = {self.uniformity.t:g})",
                f"{self.uniformity.value:.4f}",
                _uniformity_detail(self.uniformity),
            )
        )
        rows.append(
            (
                f"optimum for d = {self.dim}",
                f"{self.uniformity.optimum:.4f}",
                f"uniform distribution on S^{self.dim - 1} (population value)",
            )
        )
        rows.append(
            ("gap to optimum", f"{self.uniformity.gap:.4f}", "uniformity - optimum")
        )
        spectrum = stats.spectrum
        rows.append(
            (
                "effective rank (RankMe)",
                f"{spectrum.effective_rank:.2f}",
                f"of d = {self.dim}; singular values of the "
                f"{'centred' if spectrum.centered else 'uncentred'} unit rows",
            )
        )
        if spectrum.alpha_req is not None:
            fit = spectrum.alpha_req
            rows.append(
                (
                    "alpha-ReQ",
                    f"{fit.alpha:.4f}",
                    f"eigenvalue decay k^-alpha, ranks {fit.first_rank}-{fit.last_rank}, "
                    f"R^2 = {fit.r_squared:.3f}",
                )
            )
        else:
            rows.append(("alpha-ReQ", "n/a", "fewer than two nonzero eigenvalues"))
        if stats.normalized_std is not None:
            rows.append(
                (
                    "std of unit rows",
                    f"{stats.normalized_std:.4f}",
                    f"per dimension, averaged; 1/sqrt(d) = "
                    f"{stats.normalized_std_reference:.4f}, 0 = collapsed",
                )
            )
        if stats.mean_cosine is not None:
            rows.append(
                (
                    "mean pairwise cosine",
                    f"{stats.mean_cosine:.4f}",
                    "exact, over all distinct pairs",
                )
            )
        norms = stats.norms
        rows.append(
            (
                "raw norm (mean)",
                f"{norms.mean:.4g}",
                f"std {norms.std:.4g}, min {norms.min:.4g}, median {norms.median:.4g}, "
                f"max {norms.max:.4g}",
            )
        )
        name_width = max(len(row[0]) for row in rows)
        value_width = max(len(row[1]) for row in rows)
        lines.append(f"{'metric':<{name_width}}  {'value':>{value_width}}  detail")
        for name, value, detail in rows:
            lines.append(f"{name:<{name_width}}  {value:>{value_width}}  {detail}")
        if self.timings:
            spent = ", ".join(
                f"{stage} {seconds:.2f} s" for stage, seconds in self.timings.items()
            )
            lines.append("")
            lines.append(f"time: {spent}")
        return "\n".join(lines)


def _uniformity_detail(result: UniformityResult) -> str:
    if result.method == "exact":
        pairs = result.num_rows * (result.num_rows - 1) // 2
        detail = f"exact, over all {pairs:,} distinct pairs"
        if result.sides is not None:
            detail = "exact, every pair within each side"
    else:
        estimate = result.estimate
        assert estimate is not None
        detail = (
            f"sampled, {estimate.num_pairs:,} pairs, {estimate.confidence:.0%} CI "
            f"[{estimate.low:.4f}, {estimate.high:.4f}]"
        )
    if result.sides is not None:
        detail += f"; mean of sides {result.sides[0]:.4f} and {result.sides[1]:.4f}"
    return detail


def _finite_or_none(value):
    """Replace NaN and infinities by None, which JSON can represent."""
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
