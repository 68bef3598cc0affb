"""Run a study's trials on Ray Tune and keep every finished result on disk.

The study folder::

    STUDY/study.yaml            the config as run
    STUDY/results/<id>.json     one finished trial each, written atomically
    STUDY/trials/<id>/          each trial's training run (checkpoints, logs)
    STUDY/report/               results.csv, results.parquet, correlations.csv,
                                best_per_family.csv and the figures
    STUDY/.lock                 held while a study runs in the folder

Trial ids come from the trial's definition, so rerunning the same command
skips the ids that have a result file and runs only the rest: no finished
trial is lost or repeated. Results are written by the driver as each trial
completes, so they land in the study folder also when the trials run on other
machines of a Ray cluster.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignsphere._io import write_text_atomic
from alignsphere.study.config import StudyConfig, Trial, objective_family

logger = logging.getLogger(__name__)

RESULTS_DIR = "results"
TRIALS_DIR = "trials"
# Traceback of a failed trial, inside its run folder.
ERROR_FILE = "error.txt"
REPORT_DIR = "report"
LOCK_FILE = ".lock"


class StudyError(RuntimeError):
    """A study that cannot run: a locked or unwritable folder, a failed Ray start."""


@contextmanager
def study_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` for the duration of the block.

    Raises:
        StudyError: Another process holds the lock.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held for the block)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise StudyError(
                f"another study is running in {folder} (process {owner}); wait for it "
                "to finish or use another --output folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary file, flush it to disk, then rename it into place.

    A reader sees either no file or the whole file, also after a crash or a
    full disk part way through.
    """
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")


def finished_results(folder: Path) -> dict[str, dict[str, Any]]:
    """Read every complete result file of a study folder, keyed by trial id."""
    results = {}
    for path in sorted((folder / RESULTS_DIR).glob("*.json")):
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            # Only os.replace creates these files, so this is damage from outside.
            logger.warning(
                "ignoring unreadable result %s (%s); the trial will rerun", path, error
            )
            continue
        results[path.stem] = payload
    return results


@dataclass
class StudyRun:
    """Summary of one invocation: trials run now, skipped and failed, wall time."""

    total: int
    skipped: int
    completed: int
    failed: list[str]
    wall_seconds: float
    interrupted: bool = False
    failures: dict[str, str] = field(default_factory=dict)


def _trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: run one trial and report its result once."""
    from ray import tune

    from alignsphere.study.trial import run_trial

    trial = config["trial"]
    run_dir = Path(config["folder"]) / TRIALS_DIR / config["trial_id"]
    start = time.perf_counter()
    try:
        metrics = run_trial(
            trial,
            base=config["base"],
            evaluation=config["evaluation"],
            run_dir=run_dir,
            threads=config["threads"],
            data_root=config["data_root"],
        )
    except Exception as error:
        # Report the failure as a result, so that the driver prints one line
        # per trial instead of Ray's traceback; the traceback goes to a file.
        run_dir.mkdir(parents=True, exist_ok=True)
        error_file = run_dir / ERROR_FILE
        error_file.write_text(traceback.format_exc(), encoding="utf-8")
        message = str(error).splitlines()[0] if str(error) else ""
        tune.report(
            {
                "study_trial_id": config["trial_id"],
                "error": f"{type(error).__name__}: {message}",
                "error_file": str(error_file),
            }
        )
        return
    metrics["trial_seconds"] = time.perf_counter() - start
    # Ray Tune overwrites a result's "trial_id" with its own, so use another key.
    metrics["study_trial_id"] = config["trial_id"]
    tune.report(metrics)


def run_study(
    study: StudyConfig,
    folder: Path,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_trial: int | None = None,
    data_root: str | None = None,
    eval_data: str | None = None,
    progress: bool = True,
) -> StudyRun:
    """Run every unfinished trial of ``study`` and write its result file.

    Args:
        study: The parsed study.
        folder: The study folder.
        address: A Ray cluster address to join; None starts a local Ray
            instance with ``num_cpus`` CPUs.
        num_cpus: CPUs of the local instance; defaults to ``os.cpu_count()``.
        cpus_per_trial: CPUs (and PyTorch threads) per trial; defaults to the
            study's ``resources.cpus_per_trial`` or 1, so a local study runs as
            many trials at once as there are cores without oversubscribing them.
        data_root: Data folder of every trial, overriding the base config's
            ``data.root``; not part of the trial ids.
        eval_data: Evaluation data folder (SentEval release files) of a text
            study, overriding its ``evaluation.data``.
        progress: Show a progress bar over trials.

    Returns:
        A :class:`StudyRun` summary.
    """
    trials = study.trials()
    done = finished_results(folder)
    pending = [trial for trial in trials if trial.trial_id not in done]
    start = time.perf_counter()
    if not pending:
        return StudyRun(len(trials), len(trials), 0, [], 0.0)

    per_trial = int(cpus_per_trial or study.resources.get("cpus_per_trial", 1))
    if per_trial < 1:
        raise StudyError(f"cpus_per_trial must be >= 1, got {per_trial}")
    local_cpus = num_cpus or os.cpu_count() or 1
    if address is None and per_trial > local_cpus:
        raise StudyError(
            f"cpus_per_trial={per_trial} is more than the {local_cpus} CPUs of the "
            "local Ray instance, so no trial could start; lower --cpus-per-trial "
            "or raise --num-cpus"
        )
    completed, failed, failures, interrupted = _run_on_ray(
        study,
        folder,
        pending,
        address,
        num_cpus,
        per_trial,
        data_root,
        eval_data,
        progress,
    )
    return StudyRun(
        total=len(trials),
        skipped=len(trials) - len(pending),
        completed=completed,
        failed=failed,
        wall_seconds=time.perf_counter() - start,
        interrupted=interrupted,
        failures=failures,
    )


def _run_on_ray(
    study: StudyConfig,
    folder: Path,
    pending: list[Trial],
    address: str | None,
    num_cpus: int | None,
    per_trial: int,
    data_root: str | None,
    eval_data: str | None,
    progress: bool,
) -> tuple[int, list[str], dict[str, str], bool]:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Ray Tune's own SIGINT handler makes Tuner.fit return normally after a
    # Ctrl-C and logs a Tuner.restore hint that does not apply here. Without
    # it, Ctrl-C raises KeyboardInterrupt in fit, which is caught below.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    import ray
    from ray import tune
    from tqdm.auto import tqdm

    started_here = not ray.is_initialized()
    if started_here:
        try:
            if address:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            else:
                ray.init(
                    num_cpus=num_cpus or os.cpu_count(),
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = (
                f"the Ray cluster at {address}" if address else "a local Ray instance"
            )
            raise StudyError(
                f"could not start {where}: {error}".splitlines()[0]
            ) from None

    bar = tqdm(total=len(pending), desc="trials", unit="trial", disable=not progress)
    completed = 0
    failed: list[str] = []
    failures: dict[str, str] = {}
    by_id = {trial.trial_id: trial for trial in pending}

    class ResultWriter(tune.Callback):
        """Write each finished trial's result file from the driver."""

        def on_trial_result(self, iteration, trials, trial, result, **info):
            nonlocal completed
            trial_id = result.get("study_trial_id")
            if trial_id in by_id and "error" in result:
                failed.append(trial_id)
                failures[trial_id] = (
                    f"{result['error']} (traceback in {result['error_file']})"
                )
                bar.update(1)
                return
            if trial_id not in by_id or "linear_acc" not in result:
                return
            definition = by_id[trial_id]
            row = {
                "trial_id": trial_id,
                "objective": definition.objective,
                "family": objective_family(definition.objective),
                "seed": definition.seed,
                "max_epochs": definition.max_epochs or result.get("epochs"),
            }
            keys = (
                "linear_acc",
                "knn_acc",
                "align",
                "uniform",
                "uniform_optimum",
                "epochs",
                "train_seconds",
                "eval_seconds",
                "trial_seconds",
            )
            row |= {key: result.get(key) for key in keys}
            row |= {
                key: value
                for key, value in result.items()
                if key.startswith("senteval_")
            }
            write_json_atomic(folder / RESULTS_DIR / f"{trial_id}.json", row)
            completed += 1
            bar.update(1)
            bar.set_postfix_str(f"last: {definition.objective[:40]}")

        def on_trial_error(self, iteration, trials, trial, **info):
            trial_id = trial.config.get("trial_id", "?")
            failed.append(trial_id)
            logger.error("trial %s failed; see %s", trial_id, trial.local_path)

    param_space = {
        "trial_id": tune.grid_search([t.trial_id for t in pending]),
        "base": study.base,
        "evaluation": study.evaluation
        | ({"data": str(Path(eval_data).resolve())} if eval_data else {}),
        "folder": str(folder.resolve()),
        "threads": per_trial,
        "data_root": str(Path(data_root).resolve()) if data_root else None,
    }
    # Ray Tune resolves the grid over ids; each trainable looks up its own
    # definition, so the trial dicts need not be grid values themselves.
    definitions = {t.trial_id: t.to_dict() for t in pending}

    def trainable(config: dict[str, Any]) -> None:
        _trainable(config | {"trial": definitions[config["trial_id"]]})

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": per_trial}),
        param_space=param_space,
        tune_config=tune.TuneConfig(max_concurrent_trials=None),
        run_config=tune.RunConfig(
            name="ray",
            storage_path=str((folder / "ray").resolve()),
            verbose=0,
            callbacks=[ResultWriter()],
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    interrupted = False
    try:
        tuner.fit()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        if started_here:
            ray.shutdown()
    # With TUNE_DISABLE_SIGINT_HANDLER=0 set by the user, Tune ends fit early
    # on Ctrl-C without raising. Trials that neither finished nor failed show it.
    if completed + len(failed) < len(pending):
        interrupted = True
    return completed, failed, failures, interrupted
