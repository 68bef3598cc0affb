"""Study statistics on results tables with known correlations."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from alignsphere.study.report import (
    MIN_ENCODERS,
    best_per_family,
    correlation_table,
    rank_correlations,
)


def table(align, uniform, linear, knn=None, lengths=None, families=None):
    n = len(align)
    return pd.DataFrame(
        {
            "align": align,
            "uniform": uniform,
            "linear_acc": linear,
            "knn_acc": knn if knn is not None else linear,
            "max_epochs": lengths if lengths is not None else [10] * n,
            "family": families if families is not None else ["align+uniform"] * n,
            "objective": [f"obj{i}" for i in range(n)],
            "seed": [0] * n,
        }
    )


def test_perfect_monotone_relation():
    accuracy = [0.5 + 0.02 * i for i in range(12)]
    align = [1.0 - 0.05 * i for i in range(12)]
    stats = rank_correlations([-a for a in align], accuracy)
    assert stats["spearman"] == pytest.approx(1.0)
    assert stats["kendall"] == pytest.approx(1.0)
    assert stats["n"] == 12


def test_fisher_interval_matches_closed_form():
    x = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    y = [2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19]
    stats = rank_correlations(x, y)
    rho = stats["spearman"]
    se = math.sqrt((1 + rho**2 / 2) / (20 - 3))
    assert stats["spearman_low"] == pytest.approx(
        math.tanh(math.atanh(rho) - 1.959964 * se), abs=1e-6
    )
    assert stats["spearman_high"] == pytest.approx(
        math.tanh(math.atanh(rho) + 1.959964 * se), abs=1e-6
    )
    tau = stats["kendall"]
    se_tau = math.sqrt(0.437 / (20 - 4))
    assert stats["kendall_low"] == pytest.approx(
        math.tanh(math.atanh(tau) - 1.959964 * se_tau), abs=1e-6
    )


def test_constant_column_gives_nan():
    stats = rank_correlations([1, 1, 1, 1, 1], [1, 2, 3, 4, 5])
    assert math.isnan(stats["spearman"])


def test_too_few_encoders_verdict():
    n = MIN_ENCODERS - 1
    results = table(
        [1 - 0.1 * i for i in range(n)],
        [-1 - 0.1 * i for i in range(n)],
        [0.1 * i for i in range(n)],
    )
    correlations = correlation_table(results)
    assert set(correlations["verdict"]) == {"too few to judge"}


def test_length_confound_reported_within_lengths_and_partial():
    # Within each length, lower alignment loss goes with LOWER accuracy, but
    # longer training lowers the loss and raises accuracy for all: pooled, the
    # relation looks positive (Simpson's paradox). The per-length and partial
    # scopes must show the negative relation.
    rows_align, rows_acc, rows_len = [], [], []
    for length, base_align, base_acc in ((10, 1.0, 0.5), (100, 0.5, 0.8)):
        for i in range(10):
            rows_align.append(base_align - 0.02 * i)
            rows_acc.append(base_acc - 0.01 * i)
            rows_len.append(length)
    results = table(rows_align, [-2.0] * 10 + [-3.0] * 10, rows_acc, lengths=rows_len)
    correlations = correlation_table(results).set_index(
        ["scope", "predictor", "target"]
    )
    pooled = correlations.loc[("pooled", "-L_align", "linear")]
    assert pooled["spearman"] > 0.5
    for scope in ("10 epochs", "100 epochs"):
        assert correlations.loc[(scope, "-L_align", "linear")][
            "spearman"
        ] == pytest.approx(-1.0)
        assert (
            correlations.loc[(scope, "-L_align", "linear")]["verdict"] == "contradicts"
        )
    partial = correlations.loc[("partial, given length", "-L_align", "linear")]
    assert partial["spearman"] < 0


def test_partial_correlation_formula():
    x = [3, 1, 4, 1.5, 5, 9, 2, 6, 5.5, 3.5]
    y = [2, 7, 1, 8, 2.5, 8.5, 1.8, 2.8, 4.5, 9]
    z = [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    from scipy import stats as st

    r_xy = st.spearmanr(x, y).statistic
    r_xz = st.spearmanr(x, z).statistic
    r_yz = st.spearmanr(y, z).statistic
    expected = (r_xy - r_xz * r_yz) / math.sqrt((1 - r_xz**2) * (1 - r_yz**2))
    assert rank_correlations(x, y, z)["spearman"] == pytest.approx(expected)


def test_best_per_family():
    results = table(
        [0.1, 0.2, 0.3, 0.4],
        [-3, -3, -3, -3],
        [0.9, 0.95, 0.7, 0.8],
        families=["contrastive", "contrastive", "align+uniform", "align+uniform"],
    )
    best = best_per_family(results).set_index("family")
    assert best.loc["contrastive", "linear_acc"] == 0.95
    assert best.loc["align+uniform", "linear_acc"] == 0.8
