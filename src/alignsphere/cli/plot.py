"""``alignsphere plot``: features on the circle, and a run's training dynamics.

``alignsphere plot circle --dataset digits --output DIR`` trains four encoders
with a 2-D output (random initialisation, supervised, contrastive, align +
uniform) and writes ``circle_DATASET.{png,pdf,json}``.

``alignsphere plot dynamics RUN_DIR [RUN_DIR ...] --output DIR`` reads the CSV
logs of ``alignsphere train`` runs and writes ``dynamics.{png,pdf,json}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from alignsphere.cli.errors import UsageError

_DATASETS = ("digits", "cifar10")
_SOURCES = ("auto", "heldout", "train")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``circle`` and ``dynamics`` subcommands of ``alignsphere plot``."""
    plots = parser.add_subparsers(dest="plot", metavar="FIGURE", required=True)

    circle = plots.add_parser(
        "circle",
        help="train 2-D encoders and plot their features on the circle",
        description=(
            "Train four encoders with a 2-D output (random initialisation, "
            "supervised cross-entropy, contrastive tau=0.5, 1*align(alpha=2) + "
            "1*uniform(t=2)) from the same initial weights, then plot the "
            "held-out features: Gaussian kernel density on the plane and von "
            "Mises-Fisher kernel density of the angles per class."
        ),
    )
    circle.add_argument(
        "--dataset",
        required=True,
        metavar="NAME",
        help="digits (bundled with scikit-learn) or cifar10 (needs --data-root)",
    )
    circle.add_argument(
        "--data-root",
        metavar="DIR",
        help="CIFAR-10 folder: cifar-10-batches-py inside it, or an image folder "
        "train/<class>/*, test/<class>/*",
    )
    circle.add_argument(
        "--output", required=True, metavar="DIR", help="folder for the figure and JSON"
    )
    circle.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="epochs per trained encoder (default: 150 on digits, 6 on cifar10)",
    )
    circle.add_argument(
        "--train-size",
        type=int,
        metavar="N",
        help="training images, per class in proportion (default: all on digits, "
        "10000 on cifar10)",
    )
    circle.add_argument(
        "--test-size",
        type=int,
        metavar="N",
        help="held-out images plotted (default: all 450 on digits, 2000 on cifar10)",
    )
    circle.add_argument(
        "--batch-size", type=int, metavar="N", help="images per step (default: 256)"
    )
    circle.add_argument(
        "--lr", type=float, metavar="LR", help="Adam learning rate (default: 0.001)"
    )
    circle.add_argument(
        "--bandwidth",
        type=float,
        default=0.1,
        metavar="H",
        help="kernel standard deviation on the plane, in feature units; the angle "
        "kernel has kappa = 1/H^2 (default: 0.1)",
    )
    circle.add_argument(
        "--num-threads",
        type=int,
        metavar="N",
        help="CPU threads of PyTorch while training (default: 1)",
    )
    circle.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    circle.add_argument(
        "--no-progress", action="store_true", help="hide the progress bars"
    )

    dynamics = plots.add_parser(
        "dynamics",
        help="plot alignment and uniformity per epoch of training runs",
        description=(
            "Read the CSV logs of alignsphere train runs and plot L_align and "
            "L_uniform per epoch, and each run's path in the (L_align, "
            "L_uniform) plane."
        ),
    )
    dynamics.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_DIR",
        help="--output folder of alignsphere train; several are drawn together",
    )
    dynamics.add_argument(
        "--output", required=True, metavar="DIR", help="folder for the figure and JSON"
    )
    dynamics.add_argument(
        "--source",
        choices=_SOURCES,
        default="auto",
        help="heldout: metrics on held-out images; train: epoch means of the "
        "training terms; auto (default): heldout when logged, else train",
    )
    dynamics.add_argument(
        "--name",
        default="dynamics",
        metavar="STEM",
        help="file name of the outputs, without suffix (default: dynamics)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``alignsphere plot circle`` or ``alignsphere plot dynamics``."""
    # PDF font subsetting logs every glyph at INFO.
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    if args.plot == "circle":
        return _run_circle(args)
    return _run_dynamics(args)


def _run_circle(args: argparse.Namespace) -> int:
    if args.dataset not in _DATASETS:
        raise UsageError(
            f"unknown --dataset {args.dataset!r}; valid datasets: {', '.join(_DATASETS)}"
        )
    if args.dataset == "cifar10" and args.data_root is None:
        raise UsageError(
            "--dataset cifar10 needs --data-root DIR: a folder with "
            "cifar-10-batches-py or an image folder train/<class>/*.jpg"
        )
    if not args.bandwidth > 0:
        raise UsageError(f"--bandwidth must be > 0, got {args.bandwidth}")
    for option, minimum in (
        ("epochs", 1),
        ("batch_size", 1),
        ("num_threads", 1),
        ("train_size", 2),
        ("test_size", 2),
    ):
        value = getattr(args, option)
        if value is not None and value < minimum:
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"{flag} must be >= {minimum}, got {value}")
    if args.lr is not None and not args.lr > 0:
        raise UsageError(f"--lr must be > 0, got {args.lr}")

    from alignsphere.data import (
        CorruptImageError,
        DatasetNotFoundError,
        InvalidDatasetFileError,
    )
    from alignsphere.plots.circle import DEFAULT_SETTINGS, make_circle_figure

    overrides = {
        "epochs": args.epochs,
        "train_size": args.train_size,
        "test_size": args.test_size,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "num_threads": args.num_threads,
    }
    settings = dataclasses.replace(
        DEFAULT_SETTINGS[args.dataset],
        seed=args.seed,
        **{key: value for key, value in overrides.items() if value is not None},
    )
    try:
        report = make_circle_figure(
            args.dataset,
            args.output,
            data_root=args.data_root,
            settings=settings,
            bandwidth=args.bandwidth,
            progress=not args.no_progress,
        )
    except (DatasetNotFoundError, CorruptImageError, InvalidDatasetFileError) as error:
        raise UsageError(str(error)) from None
    except FloatingPointError as error:
        raise UsageError(f"{error} with --lr") from None

    print(
        f"{'encoder':<14} {'align':>7} {'uniform':>8} {'optimum':>8} "
        f"{'5-NN acc':>8} {'train s':>8}  objective"
    )
    for row in report.encoders:
        print(
            f"{row['method']:<14} {row['alignment']:>7.4f} {row['uniformity']:>8.4f} "
            f"{row['uniformity_optimum']:>8.4f} {row['knn_accuracy']:>8.3f} "
            f"{row['train_seconds']:>8.1f}  {row['objective'] or 'untrained'}"
        )
    print("wrote " + ", ".join(str(path) for path in report.files))
    return 0


def _run_dynamics(args: argparse.Namespace) -> int:
    from alignsphere.plots.dynamics import RunLogError, make_dynamics_figure

    try:
        runs, files = make_dynamics_figure(
            args.runs, args.output, source=args.source, name=args.name
        )
    except RunLogError as error:
        raise UsageError(str(error)) from None
    print(
        f"{'run':<24} {'source':<8} {'epochs':>6} {'align first':>11} "
        f"{'align last':>10} {'uniform first':>13} {'uniform last':>12}"
    )
    for item in runs:
        name = item.label.split(":", 1)[0]
        print(
            f"{name:<24} {item.source:<8} {len(item.epochs):>6} "
            f"{item.align[0]:>11.4f} {item.align[-1]:>10.4f} "
            f"{item.uniform[0]:>13.4f} {item.uniform[-1]:>12.4f}"
        )
    print("wrote " + ", ".join(str(path) for path in files))
    return 0
