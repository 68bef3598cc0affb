"""``alignsphere study``: train and evaluate many encoders, then report.

Rerunning the same command on the same ``--output`` folder resumes: trials with
a result file are skipped and the report is rebuilt from every result.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

from alignsphere.cli.errors import WRITE_ERRNOS, output_write_error
from alignsphere.cli.main import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default="digits",
        metavar="NAME_OR_PATH",
        help="study YAML, or a bundled study name (default: digits, 20 encoders)",
    )
    parser.add_argument(
        "--output",
        default="runs/study-digits",
        metavar="DIR",
        help="study folder; rerun with the same folder to resume (default: runs/study-digits)",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="address of an existing Ray cluster (host:port); default: start Ray locally",
    )
    parser.add_argument(
        "--num-cpus",
        type=int,
        default=None,
        help="CPUs of the local Ray instance (default: all cores)",
    )
    parser.add_argument(
        "--cpus-per-trial",
        type=int,
        default=None,
        help="CPUs and PyTorch threads per trial (default: the study's, else 1)",
    )
    parser.add_argument(
        "--data-root",
        default=None,
        metavar="DIR",
        help="data folder of every trial (sets data.root; not part of the trial ids)",
    )
    parser.add_argument(
        "--eval-data",
        default=None,
        metavar="DIR",
        help="text studies: folder of the SentEval release files (sets evaluation.data)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild the report from finished trials without running any",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar"
    )


def run(args: argparse.Namespace) -> int:
    from alignsphere.study.config import StudyConfigError, load_study
    from alignsphere.study.report import build_report, format_correlations
    from alignsphere.study.runner import (
        RESULTS_DIR,
        StudyError,
        run_study,
        study_lock,
    )

    try:
        study = load_study(args.config)
    except StudyConfigError as error:
        raise UsageError(str(error)) from None
    for name, value in (
        ("--num-cpus", args.num_cpus),
        ("--cpus-per-trial", args.cpus_per_trial),
    ):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be >= 1, got {value}")

    if args.data_root is not None and not Path(args.data_root).is_dir():
        raise UsageError(
            f"--data-root {args.data_root} is not a folder; give the folder that "
            "holds the dataset"
        )
    if args.eval_data is not None and not Path(args.eval_data).is_dir():
        raise UsageError(
            f"--eval-data {args.eval_data} is not a folder; give the folder of the "
            "SentEval release files (rt-polarity.pos, custrev.pos, TREC.train, ...)"
        )
    if study.needs_data_root and args.data_root is None and not args.report_only:
        raise UsageError(
            f"the study's base config {study.base!r} has no data.root; pass "
            "--data-root DIR with the dataset folder"
        )
    if study.kind == "text" and not args.report_only:
        _check_senteval_folder(args.eval_data or study.evaluation.get("data"), study)
    elif args.eval_data is not None:
        raise UsageError(
            "--eval-data applies to text studies only; an image study evaluates on "
            "the test split of its dataset"
        )
    folder = Path(args.output)
    if folder.exists() and not folder.is_dir():
        raise UsageError(
            f"--output {folder} is a file, not a folder; give the study's folder"
        )
    if args.report_only and not (folder / RESULTS_DIR).is_dir():
        # Checked before the lock, which would create the folder.
        raise UsageError(
            f"--report-only: {folder} contains no study results ({RESULTS_DIR}/ is "
            "missing); run the study without --report-only first, or give the "
            "--output folder of a study that ran"
        )
    trials = study.trials()
    try:
        with study_lock(folder):
            _check_same_settings(study, folder)
            _save_config(args.config, folder)
            if not args.report_only:
                print(f"study {study.name}: {len(trials)} trials in {folder}")
                summary = run_study(
                    study,
                    folder,
                    address=args.address,
                    num_cpus=args.num_cpus,
                    cpus_per_trial=args.cpus_per_trial,
                    data_root=args.data_root,
                    eval_data=args.eval_data,
                    progress=not args.no_progress,
                )
                print(
                    f"{summary.completed} trials run now, {summary.skipped} already "
                    f"finished, {len(summary.failed)} failed, in {summary.wall_seconds:.0f} s"
                )
                if summary.interrupted:
                    _print_interrupted(args, folder)
                    return 130
                if summary.failures and summary.completed + summary.skipped == 0:
                    first = next(iter(summary.failures.values()))
                    raise UsageError(
                        f"all {len(summary.failures)} trials failed, the first with "
                        f"{first}; fix the cause and rerun the same command"
                    )
                for trial_id, failure in summary.failures.items():
                    print(
                        f"alignsphere study: trial {trial_id} failed: {failure}",
                        file=sys.stderr,
                    )
            report = build_report(folder, trial_ids=[t.trial_id for t in trials])
    except KeyboardInterrupt:
        # A Ctrl-C outside Tuner.fit: while Ray starts or shuts down, or while
        # the report is built.
        _print_interrupted(args, folder)
        return 130
    except StudyError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            raise
        hint = "finished trials are kept and skipped"
        raise output_write_error(error, folder, hint) from None
    except ValueError as error:
        raise UsageError(str(error)) from None

    results = report["results"]
    print()
    print(f"{len(results)} encoders; rank correlation of each metric with accuracy:")
    print(format_correlations(report["correlations"]))
    print()
    best = report["best"]
    text = any(column.startswith("senteval_") for column in best.columns)
    if text:
        print("best encoder of each objective family (mean SentEval accuracy):")
    else:
        print("best encoder of each objective family (linear probe on the output):")
    for row in best.itertuples():
        second = "" if text else f"  5-NN {_percent(row.knn_acc)}"
        print(
            f"  {row.family:<14} {_percent(row.linear_acc)}{second}  "
            f"{row.objective} (seed {row.seed})"
        )
    print()
    print(f"tables and figures in {folder / 'report'}:")
    for path in report["figures"]:
        if path.suffix == ".png":
            print(f"  {path}")
    missing = len(trials) - len(results)
    if missing > 0:
        print(
            f"{missing} trials have no result yet; rerun the same command to run them"
        )
        return 1
    return 0


def _print_interrupted(args: argparse.Namespace, folder: Path) -> None:
    command = shlex.join(["alignsphere", *getattr(args, "argv", sys.argv[1:])])
    print(
        f"alignsphere study: interrupted; finished trials are saved in "
        f"{folder / 'results'}. To run the rest, rerun: {command}",
        file=sys.stderr,
    )


def _check_senteval_folder(folder: str | None, study) -> None:
    """Check that every SentEval file the study's tasks read is there."""
    from alignsphere.text.senteval import BINARY_TASKS, TASKS, TREC_FILES

    if folder is None:
        raise UsageError(
            "a text study needs the SentEval release files: pass --eval-data DIR "
            "or set evaluation.data in the study YAML"
        )
    if not Path(folder).is_dir():
        raise UsageError(
            f"evaluation.data {folder} is not a folder; give the folder of the "
            "SentEval release files with --eval-data DIR"
        )
    tasks = study.evaluation.get("tasks", TASKS)
    files = [
        name
        for task in tasks
        for name in (TREC_FILES if task == "TREC" else BINARY_TASKS[task])
    ]
    missing = [name for name in files if not (Path(folder) / name).is_file()]
    if missing:
        raise UsageError(
            f"SentEval folder {folder} lacks {', '.join(missing)}; give the folder "
            "of the original release files with --eval-data DIR, or drop those "
            "tasks from evaluation.tasks"
        )


def _check_same_settings(study, folder: Path) -> None:
    """Reject a study whose settings differ from those of the folder's results."""
    from alignsphere.study.config import (
        StudyConfigError,
        load_study,
        settings_conflict,
    )

    saved = folder / "study.yaml"
    if not saved.is_file() or not (folder / "results").is_dir():
        return
    try:
        previous = load_study(str(saved))
    except StudyConfigError:
        previous = None
    conflict = (
        "its study.yaml no longer loads"
        if previous is None
        else settings_conflict(previous, study)
    )
    if conflict:
        raise UsageError(
            f"{folder} contains results of a study with other settings ({conflict}); "
            "choose another --output folder, or delete that folder's results to "
            "start over"
        )


def _save_config(name_or_path: str, folder: Path) -> None:
    source = Path(name_or_path)
    if not source.exists():
        source = (
            Path(__file__).resolve().parent.parent
            / "configs"
            / "studies"
            / f"{name_or_path}.yaml"
        )
    target = folder / "study.yaml"
    if source.resolve() != target.resolve():
        shutil.copyfile(source, target)


def _percent(value: float | None) -> str:
    if value is None or value != value:
        return "   n/a  "
    return f"{100 * value:6.2f} %"
