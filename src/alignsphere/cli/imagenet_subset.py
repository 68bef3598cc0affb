"""``alignsphere imagenet-subset``: an ImageNet class subset as symbolic links."""

from __future__ import annotations

import argparse

from alignsphere.cli.errors import UsageError

_EPILOG = """\
SOURCE is ImageNet in the torchvision ImageFolder layout: SOURCE/train/<wnid>/
and SOURCE/val/<wnid>/, one folder per class (the validation images sorted into
class folders). FILE lists class folder names, one per line; blank lines and
lines starting with # are skipped. ImageNet-100 is the list of 100 classes
published with Contrastive Multiview Coding (Tian et al., 2019); alignsphere
does not ship it.

OUTPUT/<split>/<class> becomes a symbolic link to SOURCE/<split>/<class>; no
image is copied. Every class is checked first, so a missing class writes
nothing. Train on the result with
  --config imagenet100_moco --set data.root=OUTPUT
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument(
        "--source", required=True, metavar="DIR", help="ImageNet root folder"
    )
    parser.add_argument(
        "--classes",
        required=True,
        metavar="FILE",
        help="text file with one class folder name per line",
    )
    parser.add_argument(
        "--output", required=True, metavar="DIR", help="folder of the subset"
    )
    parser.add_argument(
        "--splits",
        nargs="+",
        default=["train", "val"],
        metavar="SPLIT",
        help="split folders to link (default: train val)",
    )


def run(args: argparse.Namespace) -> int:
    from alignsphere.moco.imagenet import (
        SubsetError,
        link_class_subset,
        read_class_list,
    )

    try:
        classes = read_class_list(args.classes)
        result = link_class_subset(
            args.source, classes, args.output, splits=tuple(args.splits)
        )
    except SubsetError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(
            f"cannot create the subset in {args.output}: {error}"
        ) from None
    print(
        f"linked {len(result.classes)} classes x {len(result.splits)} splits "
        f"({', '.join(result.splits)}) into {result.output}: {result.created} new "
        f"links, {result.existing} already present"
    )
    return 0
