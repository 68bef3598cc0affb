"""``alignsphere train``: train an encoder from a YAML config, resuming after a kill."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import textwrap
import typing
from pathlib import Path

from alignsphere.cli.errors import WRITE_ERRNOS, output_write_error
from alignsphere.cli.main import UsageError

_EPILOG_HEAD = """\
overrides:
  --set KEY=VALUE sets any field of the config; keys are dotted and values are
  YAML, for example:
    --set trainer.max_epochs=3 --set optim.milestones=[155,170,185]
    --set objective="1*align(alpha=2) + 1*uniform(t=2)"
    --set model.options.small_images=true

resume:
  If OUTPUT/checkpoints/last.ckpt exists, training continues from it (weights,
  optimizer, schedule and epoch), loaded with torch.load(weights_only=True).
  A truncated last.ckpt is skipped for the newest whole epoch=NNN.ckpt.

multi-GPU:
  torchrun --nproc-per-node 4 -m alignsphere.cli.main train --config NAME ...
  optim.batch_size is the global batch; uniformity and the contrastive loss use
  the batch gathered from all ranks unless --set gather=false.

config keys:
"""


def _schema_lines() -> str:
    from alignsphere.training.config import TrainConfig

    lines = []
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            keys = ", ".join(f.name for f in dataclasses.fields(hint))
            lines += textwrap.wrap(
                f"{field.name}: {keys}",
                width=78,
                initial_indent="  ",
                subsequent_indent="    ",
            )
        else:
            lines.append(f"  {field.name}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from alignsphere.training.config import bundled_config_names

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG_HEAD + _schema_lines()
    parser.add_argument(
        "--config",
        required=True,
        metavar="NAME_OR_PATH",
        help=(
            "bundled config name ("
            + ", ".join(bundled_config_names())
            + ") or the path of a YAML file"
        ),
    )
    parser.add_argument(
        "--output",
        required=True,
        metavar="DIR",
        help="run folder for checkpoints, logs, config.yaml and encoder.pt",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field (repeatable); see 'overrides' below",
    )
    parser.add_argument(
        "--data-root",
        metavar="DIR",
        help="data folder; the same as --set data.root=DIR",
    )
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="start from scratch even if OUTPUT/checkpoints/last.ckpt exists",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar"
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config as YAML and exit without training",
    )


def _rerun_command(args: argparse.Namespace) -> str:
    return shlex.join(["alignsphere", *getattr(args, "argv", sys.argv[1:])])


def _is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def run(args: argparse.Namespace) -> int:
    from alignsphere.data import (
        CorruptImageError,
        DatasetNotFoundError,
        InvalidDatasetFileError,
    )
    from alignsphere.training.checkpoint import CheckpointError
    from alignsphere.training.config import ConfigError, dump_config, load_config
    from alignsphere.training.run import find_resume_checkpoint, train

    overrides = list(args.overrides)
    if args.data_root is not None:
        overrides.append(f"data.root={args.data_root}")
    try:
        config = load_config(args.config, overrides)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    if args.print_config:
        print(dump_config(config), end="")
        return 0

    try:
        resume_path = None if args.no_resume else find_resume_checkpoint(args.output)
    except CheckpointError as error:
        raise UsageError(str(error)) from None
    if _is_rank_zero() and resume_path is not None:
        print(f"resuming from {resume_path}")
    try:
        result = train(
            config,
            args.output,
            resume=not args.no_resume,
            progress_bar=False if args.no_progress else None,
        )
    except (ConfigError, CheckpointError) as error:
        raise UsageError(str(error)) from None
    except (DatasetNotFoundError, CorruptImageError, InvalidDatasetFileError) as error:
        raise UsageError(str(error)) from None
    except KeyboardInterrupt:
        print(
            f"alignsphere train: interrupted; the last finished epoch is saved in "
            f"{Path(args.output) / 'checkpoints'}. To resume, rerun: "
            f"{_rerun_command(args)}",
            file=sys.stderr,
        )
        return 130
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            raise
        hint = "a run resumes from its last whole checkpoint"
        raise output_write_error(error, args.output, hint) from None
    if _is_rank_zero():
        print(f"trained {result.epochs} epochs into {result.output_dir}")
        print(f"  encoder:    {result.encoder_path}")
        print(f"  checkpoint: {result.last_checkpoint}")
        if config.data.name == "text":
            print(f"  evaluate:   alignsphere senteval {result.output_dir} --data DIR")
            print(f"              alignsphere sts {result.output_dir} --data DIR")
        else:
            print(f"  evaluate:   alignsphere evaluate {result.output_dir}")
    return 0
