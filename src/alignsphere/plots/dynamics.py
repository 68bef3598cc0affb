"""Training dynamics of alignment and uniformity, read from a run's CSV logs.

``alignsphere train`` writes ``RUN/csv/version_N/metrics.csv`` (Lightning's
CSVLogger, one folder per start of the run, so a resumed run has several). Rows
that carry an ``epoch`` hold either held-out metrics (``heldout/align``,
``heldout/uniform``, ``heldout/uniform_optimum``, logged every
``heldout.every_n_epochs`` epochs) or epoch means of the training terms
(``train/align_epoch``, ``train/uniform_epoch``, ...). This module merges them
per epoch and draws L_align and L_uniform against the epoch, and the path of
the encoder in the (L_align, L_uniform) plane.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from alignsphere.plots.style import PAGE_WIDTH, new_figure, print_style, save_figure

logger = logging.getLogger(__name__)

#: Metric names of each source: (alignment, uniformity).
SOURCES: dict[str, tuple[str, str]] = {
    "heldout": ("heldout/align", "heldout/uniform"),
    "train": ("train/align_epoch", "train/uniform_epoch"),
}

_VERSION = re.compile(r"version_(\d+)$")


class RunLogError(ValueError):
    """A run folder is missing, has no CSV logs, or lacks the needed metrics."""


def find_metric_files(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Return ``RUN/csv/version_N/metrics.csv`` files in the order of N.

    Raises:
        RunLogError: If the folder does not exist or has no such file.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunLogError(
            f"run folder {run_dir} not found; give the --output folder of "
            "alignsphere train"
        )
    versions = []
    for folder in (run_dir / "csv").glob("version_*"):
        match = _VERSION.search(folder.name)
        if match and (folder / "metrics.csv").is_file():
            versions.append((int(match.group(1)), folder / "metrics.csv"))
    if not versions:
        raise RunLogError(
            f"run folder {run_dir} has no csv/version_N/metrics.csv; give the "
            "--output folder of alignsphere train, after at least one epoch"
        )
    return [path for _, path in sorted(versions)]


def read_epoch_metrics(run_dir: str | os.PathLike[str]) -> dict[int, dict[str, float]]:
    """Read every per-epoch value of a run's CSV logs, merged by epoch.

    Rows without an epoch (learning-rate rows) and step-level columns
    (``*_step``) are skipped. When a resumed run logs an epoch again, the
    later ``version_N`` wins.

    Args:
        run_dir: Output folder of ``alignsphere train``.

    Returns:
        ``{epoch: {metric name: value}}`` in epoch order.

    Raises:
        RunLogError: If the folder or its logs are missing or unreadable.
    """
    merged: dict[int, dict[str, float]] = {}
    for path in find_metric_files(run_dir):
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise RunLogError(f"cannot read {path}: {error}") from None
        for row in rows:
            epoch_text = (row.get("epoch") or "").strip()
            if not epoch_text:
                continue
            try:
                epoch = int(float(epoch_text))
            except ValueError:
                raise RunLogError(
                    f"{path} has an invalid epoch {epoch_text!r}"
                ) from None
            values = merged.setdefault(epoch, {})
            for name, text in row.items():
                if name in (None, "epoch", "step") or name.endswith("_step"):
                    continue
                text = (text or "").strip()
                if not text:
                    continue
                try:
                    values[name] = float(text)
                except ValueError:
                    raise RunLogError(
                        f"{path} has a non-numeric {name} value {text!r}"
                    ) from None
    return dict(sorted(merged.items()))


@dataclass(frozen=True)
class RunDynamics:
    """Alignment and uniformity of one run, epoch by epoch.

    Attributes:
        run_dir: The run folder.
        label: Legend label: the folder name and the objective.
        source: ``heldout`` (measured on held-out images) or ``train`` (epoch
            means of the training terms on augmented batches).
        epochs: Epochs with both values, 0-based as Lightning counts them.
        align: L_align per epoch.
        uniform: L_uniform per epoch.
        uniform_optimum: The uniform distribution's uniformity for the run's
            dimension, when the run logged it.
        alpha: Exponent of the alignment, from the run's config.
        t: Scale of the uniformity, from the run's config.
        objective: The training objective, from the run's config.
    """

    run_dir: str
    label: str
    source: str
    epochs: list[int]
    align: list[float]
    uniform: list[float]
    uniform_optimum: float | None
    alpha: float | None
    t: float | None
    objective: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict."""
        return asdict(self)


def _read_run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    import yaml

    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        logger.warning("ignoring unreadable %s: %s", path, error)
        return {}
    return content if isinstance(content, dict) else {}


def load_run_dynamics(
    run_dir: str | os.PathLike[str], source: str = "auto"
) -> RunDynamics:
    """Read a run's alignment and uniformity per epoch.

    Args:
        run_dir: Output folder of ``alignsphere train``.
        source: ``heldout``, ``train``, or ``auto`` (held-out metrics when the
            run logged them, else the training terms).

    Returns:
        A :class:`RunDynamics`.

    Raises:
        RunLogError: If the logs are missing or lack the metrics of ``source``.
        ValueError: On an unknown ``source``.
    """
    if source not in ("auto", *SOURCES):
        raise ValueError(
            f"unknown source {source!r}; valid sources: auto, {', '.join(SOURCES)}"
        )
    run_dir = Path(run_dir)
    metrics = read_epoch_metrics(run_dir)
    candidates = list(SOURCES) if source == "auto" else [source]
    for name in candidates:
        align_key, uniform_key = SOURCES[name]
        epochs = [
            epoch
            for epoch, values in metrics.items()
            if align_key in values and uniform_key in values
        ]
        if epochs:
            break
    else:
        wanted = " or ".join(
            f"{SOURCES[name][0]} and {SOURCES[name][1]}" for name in candidates
        )
        raise RunLogError(
            f"run {run_dir} logged no {wanted}; train with heldout.num_images >= 2 "
            "for held-out metrics, or an objective with align and uniform terms"
        )
    config = _read_run_config(run_dir)
    heldout = config.get("heldout") if isinstance(config.get("heldout"), dict) else {}
    objective = config.get("objective")
    if isinstance(objective, list):
        objective = " + ".join(str(term) for term in objective)
    optimum_values = [
        metrics[epoch]["heldout/uniform_optimum"]
        for epoch in epochs
        if "heldout/uniform_optimum" in metrics[epoch]
    ]
    label = run_dir.resolve().name
    if objective:
        label += f": {objective}"
    alpha, t = _term_parameters(name, heldout, objective)
    return RunDynamics(
        run_dir=str(run_dir),
        label=label,
        source=name,
        epochs=epochs,
        align=[metrics[epoch][align_key] for epoch in epochs],
        uniform=[metrics[epoch][uniform_key] for epoch in epochs],
        uniform_optimum=optimum_values[-1] if optimum_values else None,
        alpha=alpha,
        t=t,
        objective=str(objective) if objective else None,
    )


def _term_parameters(
    source: str, heldout: dict[str, Any], objective: Any
) -> tuple[float | None, float | None]:
    """Return (alpha, t) of the plotted metrics: held-out settings or the objective's."""
    if source == "heldout":
        alpha = heldout.get("alpha", 2.0)
        t = heldout.get("t", 2.0)
        return float(alpha), float(t)
    if not objective:
        return None, None
    from alignsphere.losses.objective import parse_terms

    try:
        terms = parse_terms(objective)
    except ValueError:
        return None, None
    alpha = next((term.params["alpha"] for term in terms if term.name == "align"), None)
    t = next((term.params["t"] for term in terms if term.name == "uniform"), None)
    return (
        None if alpha is None else float(alpha),
        None if t is None else float(t),
    )


def _parameter(symbol: str, value: float | None) -> str:
    return "" if value is None else f", {symbol}={value:g}"


def plot_dynamics(
    runs: Sequence[RunDynamics], stem: str | os.PathLike[str]
) -> list[Path]:
    """Draw L_align and L_uniform per epoch and the path in the (L_align, L_uniform) plane.

    Left: L_align against the number of epochs trained (the logged 0-based
    epoch plus 1). Middle: L_uniform likewise, with the optimum of the uniform
    distribution dashed in grey. Right: the path of each run in the (L_align,
    L_uniform) plane, from a circle at its first measured epoch to a square at
    its last, both labelled with the epochs trained. Lower-left is better on
    both axes.

    Args:
        runs: Runs from :func:`load_run_dynamics`.
        stem: Output path without suffix.

    Returns:
        The paths written.
    """
    if not runs:
        raise ValueError("runs is empty; give at least one run")
    sources = {run.source for run in runs}
    where = (
        "held-out"
        if sources == {"heldout"}
        else ("training batches" if sources == {"train"} else "held-out or training")
    )
    first = runs[0]
    alpha_text = _parameter("\u03b1", first.alpha)
    t_text = _parameter("t", first.t)
    with print_style():
        figure, (left, middle, right) = new_figure(PAGE_WIDTH, 2.9, ncols=3)
        handles = []
        for index, run in enumerate(runs):
            color = f"C{index}"
            epochs = [epoch + 1 for epoch in run.epochs]
            left.plot(epochs, run.align, "o-", color=color, markersize=2.5)
            middle.plot(epochs, run.uniform, "o-", color=color, markersize=2.5)
            (path,) = right.plot(
                run.align, run.uniform, ".-", color=color, label=run.label
            )
            handles.append(path)
            right.plot(run.align[0], run.uniform[0], "o", color=color, markersize=5)
            right.plot(run.align[-1], run.uniform[-1], "s", color=color, markersize=5)
            right.annotate(
                f"{epochs[0]}",
                (run.align[0], run.uniform[0]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color=color,
            )
            right.annotate(
                f"{epochs[-1]}",
                (run.align[-1], run.uniform[-1]),
                textcoords="offset points",
                xytext=(4, -9),
                fontsize=7,
                color=color,
            )
        # Runs of one feature dimension share the optimum, so draw each value once.
        for optimum in {run.uniform_optimum for run in runs} - {None}:
            middle.axhline(optimum, color="0.4", linestyle="--", linewidth=1)
        left.set_xlabel("epochs trained")
        left.set_ylabel(f"$L_\\mathrm{{align}}$ ({where}{alpha_text})")
        left.set_title("Alignment")
        middle.set_xlabel("epochs trained")
        middle.set_ylabel(f"$L_\\mathrm{{uniform}}$ ({where}, nats{t_text})")
        middle.set_title("Uniformity; optimum dashed")
        right.set_xlabel(f"$L_\\mathrm{{align}}$ ({where}{alpha_text})")
        right.set_ylabel(f"$L_\\mathrm{{uniform}}$ ({where}, nats{t_text})")
        right.set_title("Path: \u25cf first, \u25a0 last")
        for axes in (left, middle):
            axes.xaxis.get_major_locator().set_params(integer=True)
        figure.legend(
            handles=handles, loc="outside lower center", ncol=1 if len(runs) < 3 else 2
        )
        return save_figure(figure, stem)


def make_dynamics_figure(
    run_dirs: Sequence[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    *,
    source: str = "auto",
    name: str = "dynamics",
) -> tuple[list[RunDynamics], list[Path]]:
    """Read runs, draw their dynamics and write ``NAME.{png,pdf,json}``.

    Args:
        run_dirs: Output folders of ``alignsphere train``.
        output_dir: Output folder; created when missing.
        source: See :func:`load_run_dynamics`.
        name: File name stem.

    Returns:
        The runs read and the paths written.
    """
    from alignsphere.evaluation import write_json

    runs = [load_run_dynamics(path, source) for path in run_dirs]
    stem = Path(output_dir) / name
    files = plot_dynamics(runs, stem)
    json_path = stem.with_name(stem.name + ".json")
    content = {"runs": [_json_safe(run.to_dict()) for run in runs]}
    files.append(write_json(content, json_path))
    return runs, files


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, list):
            return [clean(item) for item in value]
        return value

    return {key: clean(value) for key, value in values.items()}
