"""Entry point of the ``alignsphere`` command.

Each subcommand lives in ``alignsphere.cli.<name>`` and defines
``add_arguments(parser)`` and ``run(args) -> int``; it raises
:class:`UsageError` for bad input, which prints one line and exits with 2. Its module is imported only
when that subcommand runs, so ``alignsphere measure`` on embedding files never
imports Lightning, Ray or sentence-transformers.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence

# Defined in its own module so that ``python -m alignsphere.cli.main``, which
# imports this file a second time as __main__, still catches the same class.
from alignsphere.cli.errors import UsageError

__all__ = ["SUBCOMMANDS", "UsageError", "build_parser", "main"]

# Subcommand name -> (module, one-line help). The help is here so that
# ``alignsphere --help`` lists every command without importing it.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("alignsphere.cli.train", "train an encoder from a YAML config"),
    "evaluate": (
        "alignsphere.cli.evaluate",
        "evaluate a checkpoint: probe, k-NN, metrics",
    ),
    "measure": ("alignsphere.cli.measure", "measure embedding files or an encoder"),
    "study": ("alignsphere.cli.study", "train and evaluate many encoders, report"),
    "senteval": (
        "alignsphere.cli.senteval",
        "SentEval-style classification (MR, CR, SUBJ, MPQA, TREC) of a text encoder",
    ),
    "sts": ("alignsphere.cli.sts", "STS-B Spearman correlation of a text encoder"),
    "imagenet-subset": (
        "alignsphere.cli.imagenet_subset",
        "link an ImageNet class subset (such as ImageNet-100) from a class list",
    ),
    "plot": (
        "alignsphere.cli.plot",
        "plot features on the circle or a run's training dynamics",
    ),
    "theory": (
        "alignsphere.cli.theory",
        "check Theorem 1 and the uniformity bound numerically",
    ),
}


def _available() -> dict[str, tuple[str, str]]:
    return {
        name: entry
        for name, entry in SUBCOMMANDS.items()
        if importlib.util.find_spec(entry[0]) is not None
    }


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="alignsphere",
        description="Alignment and uniformity on the unit hypersphere.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debug messages"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in _available().items():
        subparsers.add_parser(name, help=help_text, description=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # The first word that names a subcommand selects it; its module adds its
    # options before the real parse, so that ``alignsphere train --help`` lists them.
    command = next((word for word in argv if word in SUBCOMMANDS), None)
    subparsers = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    if command is None or command not in subparsers.choices:
        parser.parse_args(argv)  # prints usage or help and exits
        parser.print_help()
        return 2
    module = importlib.import_module(SUBCOMMANDS[command][0])
    module.add_arguments(subparsers.choices[command])
    args = parser.parse_args(argv)
    # Kept so that a subcommand can print the command that resumes it.
    args.argv = argv
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # matplotlib logs every glyph substitution at INFO.
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    try:
        return int(module.run(args) or 0)
    except UsageError as error:
        print(f"alignsphere {command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"alignsphere {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
