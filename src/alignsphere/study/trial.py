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
        ``eval_seconds``. A text trial (``data.name: text``) has no ``knn_acc``:
        its ``linear_acc`` is the mean SentEval accuracy, ``senteval_<TASK>``
        is each task's accuracy, and ``align`` and ``uniform`` are those of the
        held-out adjacent-sentence pairs after the last epoch.
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
    if config.data.name == "text":
        return _evaluate_text_trial(result, evaluation, train_seconds)

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


def _evaluate_text_trial(
    result: Any, evaluation: Mapping[str, Any], train_seconds: float
) -> dict[str, Any]:
    """SentEval accuracy and held-out pair metrics of a trained text encoder."""
    from alignsphere.text.models import load_sentence_encoder
    from alignsphere.text.senteval import SentEvalSettings, evaluate_senteval

    settings = SentEvalSettings(**dict(evaluation))
    settings.validate()
    if settings.data is None:
        raise ValueError(
            "a text study needs the SentEval folder: set evaluation.data in the "
            "study YAML or pass --eval-data DIR"
        )
    start = time.perf_counter()
    encode, _ = load_sentence_encoder(
        result.encoder_path, batch_size=settings.batch_size
    )
    scores = evaluate_senteval(
        encode,
        settings.data,
        list(settings.tasks),
        folds=settings.folds,
        inner_folds=settings.inner_folds,
        c_grid=tuple(settings.c_grid),
        seed=settings.seed,
        limit=settings.limit,
    )
    eval_seconds = time.perf_counter() - start
    accuracies = {name: score.accuracy / 100 for name, score in scores.items()}
    heldout = last_heldout_metrics(result.output_dir)
    return {
        "linear_acc": sum(accuracies.values()) / len(accuracies),
        **{f"senteval_{name}": value for name, value in accuracies.items()},
        "align": heldout.get("heldout/align"),
        "uniform": heldout.get("heldout/uniform"),
        "uniform_optimum": heldout.get("heldout/uniform_optimum"),
        "epochs": result.epochs,
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
    }


def last_heldout_metrics(run_dir: str | Path) -> dict[str, float]:
    """Return the held-out metrics of a run's latest epoch from its CSV logs.

    Every start of a run writes its own ``csv/version_N/metrics.csv``; the row
    with the highest epoch over all of them is the latest measurement.
    """
    import csv

    latest: dict[str, float] = {}
    latest_epoch = -1
    for path in sorted(Path(run_dir).glob("csv/version_*/metrics.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if not row.get("heldout/align") or not row.get("epoch"):
                    continue
                epoch = int(float(row["epoch"]))
                if epoch >= latest_epoch:
                    latest_epoch = epoch
                    latest = {
                        key: float(value)
                        for key, value in row.items()
                        if key.startswith("heldout/") and value
                    }
    return latest
