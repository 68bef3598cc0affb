"""Figures of the theory checks: Theorem 1's convergence and the uniformity bound."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from alignsphere.plots.style import PAGE_WIDTH, new_figure, print_style, save_figure
from alignsphere.theory.theorem1 import Theorem1Result
from alignsphere.theory.uniformity_bound import (
    UniformSampleCheck,
    VMFUniformityRow,
    uniform_sample_std_error,
    vmf_population_uniformity,
)

# Two standard errors either side: about a 95 % interval.
_ERROR_BAR_SCALE = 2.0


def _theorem1_label(result: Theorem1Result) -> str:
    label = f"{result.name} (d={result.dim}, \u03c4={result.tau:g})"
    if result.fit is not None:
        label += f": slope {result.fit.slope:.3f}"
        if (
            result.final_slope is not None
            and abs(result.final_slope - result.fit.slope) > 0.05
        ):
            label += f", {result.final_slope:.2f} at the largest M"
    return label


def plot_theorem1(
    results: Sequence[Theorem1Result], stem: str | os.PathLike[str]
) -> list[Path]:
    r"""Plot L(M) - log M against its limit, and the gap on log-log axes.

    Left: the Monte Carlo estimates of :math:`L(M) - \log M` (markers) and the
    limit of Theorem 1 (dashed line of the same colour). Right: the gap with two
    standard errors, the fitted power law over its range (solid), the
    first-order prediction :math:`c_1/M` (dotted), and one line of slope -2/3,
    the rate of the paper's bound (grey dashes). The legend below both panels
    gives each encoder's fitted slope.

    Args:
        results: One result per encoder.
        stem: Output path without suffix; ``.png`` and ``.pdf`` are written.

    Returns:
        The paths written.
    """
    with print_style():
        figure, (left, right) = new_figure(PAGE_WIDTH, 4.3, ncols=2)
        handles = []
        shown_gaps = []
        anchors = []
        for index, result in enumerate(results):
            color = f"C{index}"
            m = np.asarray(result.negative_counts, dtype=float)
            left.errorbar(
                m,
                result.loss_minus_log_m,
                yerr=_ERROR_BAR_SCALE * np.asarray(result.loss_minus_log_m_std_error),
                fmt="o",
                markersize=3,
                color=color,
            )
            left.axhline(result.limit, color=color, linestyle="--", linewidth=1)

            gap = np.asarray(result.gap)
            error = _ERROR_BAR_SCALE * np.asarray(result.gap_std_error)
            positive = gap > 0
            shown_gaps.append(gap[positive])
            handle = right.errorbar(
                m[positive],
                gap[positive],
                yerr=error[positive],
                fmt="o",
                markersize=3,
                color=color,
                label=_theorem1_label(result),
            )
            handles.append(handle)
            right.plot(
                m,
                result.first_order_coefficient / m,
                color=color,
                linestyle=":",
                linewidth=1,
            )
            fit = result.fit
            if fit is not None:
                span = np.geomspace(fit.min_negatives, fit.max_negatives, 50)
                right.plot(span, fit.coefficient * span**fit.slope, color=color)
                anchors.append(
                    (
                        fit.min_negatives,
                        fit.max_negatives,
                        float(gap[m == fit.min_negatives][0]),
                    )
                )
        if anchors:
            # One reference line of slope -2/3 through the geometric mean of the
            # gaps where the fits start.
            start = min(a[0] for a in anchors)
            stop = max(a[1] for a in anchors)
            level = float(np.exp(np.mean([np.log(a[2]) for a in anchors])))
            span = np.geomspace(start, stop, 50)
            (bound,) = right.plot(
                span,
                level * (span / start) ** (-2 / 3),
                color="0.45",
                linestyle="--",
                linewidth=1.2,
                label=r"slope $-2/3$, the rate of the $O(M^{-2/3})$ bound",
            )
            handles.append(bound)
        if shown_gaps:
            values = np.concatenate(shown_gaps)
            right.set_ylim(values.min() / 3, values.max() * 3)

        left.set_xscale("log", base=2)
        left.set_xlabel("negatives per anchor M")
        left.set_ylabel(r"$L_\mathrm{contrastive}(M) - \log M$ (nats)")
        left.set_title("Loss minus log M; limit dashed")
        right.set_xscale("log", base=2)
        right.set_yscale("log")
        right.set_xlabel("negatives per anchor M")
        right.set_ylabel("gap to the limit (nats)")
        right.set_title(r"Gap; fit solid, $c_1/M$ dotted")
        figure.legend(handles=handles, loc="outside lower center", ncol=2)
        return save_figure(figure, stem)


def plot_uniformity_bound(
    vmf_rows: Sequence[VMFUniformityRow],
    uniform_checks: Sequence[UniformSampleCheck],
    stem: str | os.PathLike[str],
    *,
    curve_points: int = 33,
) -> list[Path]:
    """Plot vMF uniformity against concentration, and uniform samples against the optimum.

    Left: population uniformity of vMF(kappa) by quadrature (line, on
    ``curve_points`` concentrations spaced evenly in log kappa), the exact
    uniformity of samples with two standard errors (markers), and the optimum
    of the uniform distribution (dashed) for each d. Right, on log-log axes:
    the distance of samples of the uniform distribution from the optimum
    (markers) and two closed-form standard errors (lines), which fall as 1/n.

    Args:
        vmf_rows: Rows from :func:`~alignsphere.theory.uniformity_bound.vmf_uniformity_sweep`.
        uniform_checks: Results of
            :func:`~alignsphere.theory.uniformity_bound.check_uniform_samples`.
        stem: Output path without suffix.
        curve_points: Concentrations on each population curve.

    Returns:
        The paths written.
    """
    with print_style():
        figure, (left, right) = new_figure(PAGE_WIDTH, 3.5, ncols=2)
        dims = sorted({row.dim for row in vmf_rows} | {c.dim for c in uniform_checks})
        color_of = {dim: f"C{index}" for index, dim in enumerate(dims)}

        for dim in sorted({row.dim for row in vmf_rows}):
            rows = sorted((r for r in vmf_rows if r.dim == dim), key=lambda r: r.kappa)
            shown = [r for r in rows if r.kappa > 0]
            if not shown:
                continue
            color = color_of[dim]
            dense = np.geomspace(shown[0].kappa, shown[-1].kappa, curve_points)
            left.plot(
                dense,
                [vmf_population_uniformity(dim, k, rows[0].t) for k in dense],
                color=color,
                label=f"d = {dim}",
            )
            left.errorbar(
                [r.kappa for r in shown],
                [r.sample for r in shown],
                yerr=[_ERROR_BAR_SCALE * r.sample_std_error for r in shown],
                fmt="o",
                markersize=3,
                color=color,
            )
            left.axhline(rows[0].optimum, color=color, linestyle="--", linewidth=1)
        left.set_xscale("log")
        left.set_xlabel(r"vMF concentration $\kappa$")
        left.set_ylabel(r"$L_\mathrm{uniform}$ ($t=2$, nats)")
        left.set_title("vMF: population (line), samples (dots)")
        left.legend(loc="upper left", title="optimum dashed")

        for dim in sorted({c.dim for c in uniform_checks}):
            checks = sorted(
                (c for c in uniform_checks if c.dim == dim), key=lambda c: c.num_samples
            )
            n = np.array([c.num_samples for c in checks], dtype=float)
            color = color_of[dim]
            right.plot(
                n,
                [abs(c.value - c.optimum) for c in checks],
                "o",
                color=color,
                label=f"d = {dim}",
            )
            dense = np.geomspace(n[0], n[-1], 20)
            right.plot(
                dense,
                [
                    _ERROR_BAR_SCALE
                    * uniform_sample_std_error(dim, int(k), checks[0].t)
                    for k in dense
                ],
                color=color,
                linewidth=1,
            )
        right.set_xscale("log", base=2)
        right.set_yscale("log")
        right.set_xlabel("samples n of the uniform distribution")
        right.set_ylabel("|measured \u2212 optimum| (nats)")
        right.set_title("Uniform samples: |gap| (dots), 2 SE (lines)")
        right.legend(loc="lower left")
        return save_figure(figure, stem)
