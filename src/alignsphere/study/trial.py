"""One study trial: train an encoder, evaluate it, return a flat row of results."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def trial_overrides(
    trial: Mapping[str, Any], threads: int, data_root: str | None = None
) -> list[str]:
    """Return the training-config overrides (``key=value``) that define a trial.

    ``data_root`` is applied last but is not part of the trial's definition, so
    moving the data does not change trial ids.
    """
    overrides = [
        f"{key}={json.dumps(value)}" for key, value in trial["overrides"].items()
    ]
    overrides += [
        f"objective={json.dumps(trial['objective'])}",
        f"seed={int(trial['seed'])}",
        f"trainer.num_threads={threads}",
        "trainer.progress_bar=false",
    ]
    if trial.get("max_epochs") is not None:
        overrides.append(f"trainer.max_epochs={int(trial['max_epochs'])}")
    if data_root is not None:
        overrides.append(f"data.root={json.dumps(str(data_root))}")
    return overrides


def run_trial(
    trial: Mapping[str, Any],
    *,
    base: str,
    evaluation: Mapping[str, Any],
    run_dir: str | Path,
    threads: int = 1,
    data_root: str | None = None,
) -> dict[str, Any]:
    """Train and evaluate one encoder; return its results as plain values.

    Training resumes from ``run_dir`` when a checkpoint is there, so a trial
    interrupted part way continues instead of starting over.

    Args:
        trial: A :meth:`Trial.to_dict` mapping.
        base: Training config name or path that the trial overrides.
        evaluation: :class:`~alignsphere.evaluation.EvaluationSettings` fields.
        run_dir: The trial's training folder.
        threads: PyTorch CPU threads for this trial.
        data_root: Data folder, overriding the base config's ``data.root``.

    Returns:
        ``linear_acc`` and ``knn_acc`` on the output layer, held-out ``align`` and
        ``uniform``, ``uniform_optimum``, ``epochs``, ``train_seconds`` and
        ``eval_seconds``.
    """
    import torch

    from alignsphere.evaluation import EvaluationSettings, evaluate_encoder
    from alignsphere.training.checkpoint import load_encoder
    from alignsphere.training.config import load_config
    from alignsphere.training.data import load_split, resolve_preset
    from alignsphere.training.run import train

    torch.set_num_threads(threads)
    config = load_config(base, trial_overrides(trial, threads, data_root))
    start = time.perf_counter()
    result = train(config, run_dir, resume=True, progress_bar=False)
    train_seconds = time.perf_counter() - start

    start = time.perf_counter()
    encoder, config = load_encoder(result.encoder_path)
    data = config.data
    probe_split = data.probe_split or data.train_split
    probe_set = load_split(data, probe_split, data.train_limit, config.seed)
    test_set = load_split(data, data.test_split, data.test_limit, config.seed)
    settings = EvaluationSettings(**dict(evaluation))
    report = evaluate_encoder(
        encoder, probe_set, test_set, resolve_preset(config.data), settings
    )
    eval_seconds = time.perf_counter() - start

    output = report["layers"]["output"]
    heldout = report.get("heldout", {})
    return {
        "linear_acc": output["linear_probe"]["test_accuracy"],
        "knn_acc": output["knn"]["accuracy"] if "knn" in output else None,
        "align": heldout.get("alignment"),
        "uniform": heldout.get("uniformity"),
        "uniform_optimum": heldout.get("uniformity_optimum"),
        "epochs": result.epochs,
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
    }
