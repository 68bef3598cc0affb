"""The study report: rank correlations of the metrics with accuracy, and figures.

Each trial row has held-out ``align`` (L_align on positive pairs of the test
split) and ``uniform`` (L_uniform of the test features), and the downstream
``linear_acc`` and ``knn_acc``. Lower losses should go with higher accuracy,
so the predictors are the negated losses: -L_align, -L_uniform and
-(L_align + L_uniform); a positive correlation supports the finding.

Confidence intervals use the Fisher z transform with the standard errors of
Bonett and Wright (2000) for Spearman's rho, ``sqrt((1 + rho^2 / 2) / (n - 3))``,
and of Fieller, Hartley and Pearson (1957) for Kendall's tau,
``sqrt(0.437 / (n - 4))``; partial correlations lose one more degree of
freedom. They are approximations that are poor for very small n, which is why
correlations over fewer than :data:`MIN_ENCODERS` encoders are shown as too few
to judge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

MIN_ENCODERS = 8

PREDICTORS = {
    "-L_align": ("align",),
    "-L_uniform": ("uniform",),
    "-(L_align + L_uniform)": ("align", "uniform"),
}
TARGETS = {"linear": "linear_acc", "5-NN": "knn_acc"}


def targets_of(results: Any) -> dict[str, str]:
    """Return the accuracy columns of ``results`` that have values, by label.

    An image study has ``linear_acc`` and ``knn_acc``. A text study has
    ``linear_acc``, the mean SentEval accuracy, labelled ``SentEval``, and one
    ``senteval_<TASK>`` column per task, labelled with the task's name.
    """
    tasks = [c for c in results.columns if c.startswith("senteval_")]
    if tasks:
        targets = {"SentEval": "linear_acc"}
        targets |= {c.removeprefix("senteval_"): c for c in tasks}
    else:
        targets = dict(TARGETS)
    return {
        label: column
        for label, column in targets.items()
        if column in results and results[column].notna().any()
    }


def _fisher_interval(r: float, se: float, confidence: float) -> tuple[float, float]:
    if not math.isfinite(r) or not math.isfinite(se):
        return math.nan, math.nan
    z = math.atanh(max(min(r, 0.999999), -0.999999))
    half = NormalDist().inv_cdf(0.5 + confidence / 2) * se
    return math.tanh(z - half), math.tanh(z + half)


def _partial(r_xy: float, r_xz: float, r_yz: float) -> float:
    denominator = math.sqrt(max((1 - r_xz**2) * (1 - r_yz**2), 0.0))
    if denominator == 0:
        return math.nan
    return (r_xy - r_xz * r_yz) / denominator


def rank_correlations(
    x: Sequence[float],
    y: Sequence[float],
    control: Sequence[float] | None = None,
    *,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Spearman and Kendall correlation of x and y, optionally partial on ``control``.

    Returns:
        ``n``, ``spearman`` with ``spearman_low``/``spearman_high``, and
        ``kendall`` with ``kendall_low``/``kendall_high``. Values are NaN when
        a variable is constant or n is too small for the interval.
    """
    from scipy import stats

    n = len(x)
    out: dict[str, float] = {"n": n}
    if n < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return out | dict.fromkeys(
            [
                "spearman",
                "spearman_low",
                "spearman_high",
                "kendall",
                "kendall_low",
                "kendall_high",
            ],
            math.nan,
        )
    rho = float(stats.spearmanr(x, y).statistic)
    tau = float(stats.kendalltau(x, y).statistic)
    lost = 0
    if control is not None and len(set(control)) > 1:
        rho = _partial(
            rho,
            float(stats.spearmanr(x, control).statistic),
            float(stats.spearmanr(y, control).statistic),
        )
        tau = _partial(
            tau,
            float(stats.kendalltau(x, control).statistic),
            float(stats.kendalltau(y, control).statistic),
        )
        lost = 1
    se_rho = (
        math.sqrt((1 + rho**2 / 2) / (n - 3 - lost)) if n - 3 - lost > 0 else math.nan
    )
    se_tau = math.sqrt(0.437 / (n - 4 - lost)) if n - 4 - lost > 0 else math.nan
    out["spearman"] = rho
    out["spearman_low"], out["spearman_high"] = _fisher_interval(
        rho, se_rho, confidence
    )
    out["kendall"] = tau
    out["kendall_low"], out["kendall_high"] = _fisher_interval(tau, se_tau, confidence)
    return out


def correlation_table(results: Any, *, confidence: float = 0.95) -> Any:
    """Correlate each predictor with each accuracy, pooled and per training length.

    With several training lengths, length confounds the metrics (longer runs
    are better on every axis), so the table has one scope per length, the
    pooled scope, and a partial correlation given the length.

    Args:
        results: A pandas DataFrame with columns ``align``, ``uniform``,
            ``linear_acc``, ``knn_acc`` and ``max_epochs``.
        confidence: Interval coverage.

    Returns:
        A DataFrame with one row per scope, predictor and target, and a
        ``verdict`` column that reads "too few to judge" below
        :data:`MIN_ENCODERS` encoders.
    """
    import pandas as pd

    rows = []
    lengths = sorted(results["max_epochs"].dropna().unique())
    scopes: list[tuple[str, Any, bool]] = [("pooled", results, False)]
    if len(lengths) > 1:
        scopes += [
            (f"{int(n)} epochs", results[results["max_epochs"] == n], False)
            for n in lengths
        ]
        scopes.append(("partial, given length", results, True))
    for scope, frame, partial in scopes:
        for predictor, columns in PREDICTORS.items():
            x = (-frame[list(columns)].sum(axis=1)).tolist()
            for target_name, column in targets_of(results).items():
                y = frame[column].tolist()
                control = frame["max_epochs"].tolist() if partial else None
                stats = rank_correlations(x, y, control, confidence=confidence)
                n = len(frame)
                verdict = _verdict(stats, n)
                rows.append(
                    {"scope": scope, "predictor": predictor, "target": target_name}
                    | stats
                    | {"verdict": verdict}
                )
    return pd.DataFrame(rows)


def _verdict(stats: dict[str, float], n: int) -> str:
    if n < MIN_ENCODERS:
        return "too few to judge"
    low, high = (
        stats.get("spearman_low", math.nan),
        stats.get("spearman_high", math.nan),
    )
    if not math.isfinite(low):
        return "undefined"
    if low > 0:
        return "supports"
    if high < 0:
        return "contradicts"
    return "inconclusive"


def best_per_family(results: Any) -> Any:
    """Return the best trial of each objective family by linear accuracy."""
    best = (
        results.sort_values("linear_acc", ascending=False)
        .groupby("family", sort=False)
        .head(1)
    )
    columns = [
        "family",
        "objective",
        "seed",
        "max_epochs",
        "linear_acc",
        "knn_acc",
        *sorted(c for c in best.columns if c.startswith("senteval_")),
        "align",
        "uniform",
    ]
    return best[[c for c in columns if c in best]].reset_index(drop=True)


def format_correlations(table: Any) -> str:
    """Render the correlation table for a terminal."""
    lines = [
        f"{'scope':<24} {'predictor':<24} {'target':<8} {'n':>3}  "
        f"{'Spearman [95% CI]':<26} {'Kendall [95% CI]':<26} verdict"
    ]
    for row in table.itertuples():
        spearman = _with_interval(row.spearman, row.spearman_low, row.spearman_high)
        kendall = _with_interval(row.kendall, row.kendall_low, row.kendall_high)
        lines.append(
            f"{row.scope:<24} {row.predictor:<24} {row.target:<8} {row.n:>3}  "
            f"{spearman:<26} {kendall:<26} {row.verdict}"
        )
    return "\n".join(lines)


def _with_interval(value: float, low: float, high: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if not math.isfinite(low):
        return f"{value:+.2f}"
    return f"{value:+.2f} [{low:+.2f}, {high:+.2f}]"


def write_figures(results: Any, folder: Path) -> list[Path]:
    """Save the study's figures as PNG and PDF in ``folder`` and return the paths.

    ``align_uniform``: L_uniform against L_align, coloured by linear accuracy,
    one marker per objective family (lower-left is better). ``metrics_vs_accuracy``:
    each metric against linear and 5-NN accuracy.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    markers = ["o", "s", "^", "D", "v", "P", "X"]
    families = sorted(results["family"].unique())

    fig, ax = plt.subplots(figsize=(5.5, 4.2), constrained_layout=True)
    low, high = results["linear_acc"].min(), results["linear_acc"].max()
    for marker, family in zip(markers, families, strict=False):
        part = results[results["family"] == family]
        points = ax.scatter(
            part["uniform"],
            part["align"],
            c=part["linear_acc"] * 100,
            vmin=low * 100,
            vmax=high * 100,
            cmap="viridis",
            marker=marker,
            edgecolors="black",
            linewidths=0.4,
            s=46,
            label=family,
        )
    text = "SentEval" in targets_of(results)
    accuracy = "mean SentEval accuracy" if text else "linear probe accuracy"
    held_out = "held-out sentence pairs" if text else "test pairs"
    fig.colorbar(points, ax=ax, label=f"{accuracy} (%)")
    ax.set_xlabel(
        r"$\mathcal{L}_\mathrm{uniform}$ on "
        + ("held-out sentences" if text else "test features")
        + " (t = 2, lower is better)"
    )
    ax.set_ylabel(
        r"$\mathcal{L}_\mathrm{align}$ on "
        + held_out
        + r" ($\alpha$ = 2, lower is better)"
    )
    kind = "SentEval" if text else "linear"
    ax.set_title(f"{len(results)} encoders: metrics and {kind} accuracy")
    ax.legend(fontsize=7, loc="best")
    paths += _save(fig, folder / "align_uniform")
    plt.close(fig)

    targets = targets_of(results)
    fig, axes = plt.subplots(
        len(targets),
        3,
        figsize=(10, 0.5 + 2.75 * len(targets)),
        constrained_layout=True,
        sharey="row",
        squeeze=False,
    )
    for row, (target_name, column) in enumerate(targets.items()):
        for col, (predictor, columns) in enumerate(PREDICTORS.items()):
            ax = axes[row, col]
            loss = results[list(columns)].sum(axis=1)
            for marker, family in zip(markers, families, strict=False):
                mask = results["family"] == family
                ax.scatter(
                    loss[mask],
                    results.loc[mask, column] * 100,
                    marker=marker,
                    s=28,
                    label=family,
                    alpha=0.85,
                )
            ax.set_xlabel(predictor.lstrip("-").strip("()") + " (lower is better)")
            if col == 0:
                ax.set_ylabel(f"{target_name} accuracy (%)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Held-out metrics against downstream accuracy")
    paths += _save(fig, folder / "metrics_vs_accuracy")
    plt.close(fig)
    return paths


def _save(fig: Any, stem: Path) -> list[Path]:
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=160)
    fig.savefig(paths[1])
    return paths


def build_report(
    folder: Path, *, figures: bool = True, trial_ids: Sequence[str] | None = None
) -> dict[str, Any]:
    """Collect a study folder's result files into tables, figures and a summary.

    Writes ``report/results.csv`` and ``.parquet``, ``report/correlations.csv``,
    ``report/best_per_family.csv`` and the figures, each replaced atomically.

    Args:
        folder: The study folder.
        figures: Also write the figures.
        trial_ids: Report only these trials; None reports every result file.

    Returns:
        ``results``, ``correlations`` and ``best`` DataFrames and ``figures`` paths.
    """
    import pandas as pd

    from alignsphere.study.runner import REPORT_DIR, finished_results

    finished = finished_results(folder)
    if trial_ids is not None:
        selected = set(trial_ids)
        finished = {key: row for key, row in finished.items() if key in selected}
    rows = list(finished.values())
    if not rows:
        raise ValueError(
            f"no finished trials in {folder / 'results'}; run the study first"
        )
    results = pd.DataFrame(rows).sort_values(
        ["max_epochs", "family", "objective", "seed"]
    )
    results = results.reset_index(drop=True)
    correlations = correlation_table(results)
    best = best_per_family(results)
    out = folder / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    _atomic(out / "results.csv", lambda p: results.to_csv(p, index=False))
    _atomic(out / "results.parquet", lambda p: results.to_parquet(p, index=False))
    _atomic(out / "correlations.csv", lambda p: correlations.to_csv(p, index=False))
    _atomic(out / "best_per_family.csv", lambda p: best.to_csv(p, index=False))
    paths = write_figures(results, out) if figures and len(results) >= 2 else []
    return {
        "results": results,
        "correlations": correlations,
        "best": best,
        "figures": paths,
    }


def _atomic(path: Path, write: Any) -> None:
    temporary = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write(temporary)
    temporary.replace(path)
