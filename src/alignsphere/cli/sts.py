"""``alignsphere sts``: STS-B Spearman correlation of a sentence encoder."""

from __future__ import annotations

import argparse

from alignsphere.cli.errors import UsageError, check_output_file
from alignsphere.cli.senteval import add_model_arguments, load_model, write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument(
        "--data",
        required=True,
        metavar="DIR_OR_FILE",
        help="STS-B folder (sts-train.csv, sts-dev.csv, sts-test.csv) or one file",
    )
    parser.add_argument(
        "--split",
        action="append",
        choices=("train", "dev", "test"),
        help="split to score when --data is a folder (repeatable; default test)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    check_output_file(args.output, "--output")
    from alignsphere.text.errors import TextDataError, TextDataNotFoundError
    from alignsphere.text.sts import evaluate_sts, resolve_sts_file

    splits = args.split or ["test"]
    try:
        for split in splits:
            resolve_sts_file(args.data, split)
    except TextDataNotFoundError as error:
        raise UsageError(str(error)) from None
    if not Path(args.data).is_dir():
        splits = splits[:1]
    encode, description = load_model(args)
    try:
        results = [evaluate_sts(encode, args.data, split) for split in splits]
    except (TextDataError, TextDataNotFoundError) as error:
        raise UsageError(str(error)) from None
    print(f"model: {description}")
    print(f"{'split':<14} {'spearman':>9} {'pearson':>8} {'pairs':>6}")
    for result in results:
        print(
            f"{result.split:<14} {result.spearman:>9.2f} {result.pearson:>8.2f} "
            f"{result.num_pairs:>6}"
        )
    write_json(
        args.output,
        {"model": description, "splits": {r.split: r.to_dict() for r in results}},
    )
    return 0
