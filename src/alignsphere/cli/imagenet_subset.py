"""``alignsphere imagenet-subset``: an ImageNet class subset as symbolic links."""

from __future__ import annotations

import argparse
from pathlib import Path

from alignsphere.cli.errors import WRITE_ERRNOS, UsageError, output_write_error

_EPILOG = """\
SOURCE is ImageNet in the torchvision ImageFolder layout: SOURCE/train/<wnid>/
and SOURCE/val/<wnid>/, one folder per class (the validation images sorted into
class folders). FILE lists class folder names, one per line; blank lines and
lines starting with # are skipped. ImageNet-100 is the list of 100 classes
published with Contrastive Multiview Coding (Tian et al., 2019); alignsphere
does not ship it.

OUTPUT/<split>/<class> becomes a symbolic link to SOURCE/<split>/<class>; no
image is copied. Every class is checked first, so a missing or empty class
folder writes nothing. OUTPUT must be new, empty, or an earlier subset of this
command whose classes are all in FILE; a rerun adds the missing links. Train on
the result with
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

    splits = tuple(args.splits)
    try:
        classes = read_class_list(args.classes)
    except SubsetError as error:
        raise UsageError(str(error)) from None
    except UnicodeDecodeError as error:
        raise UsageError(
            f"class list {args.classes} is not UTF-8 text (byte {error.start}: "
            f"{error.reason}); give a text file with one class folder name per line"
        ) from None
    except OSError as error:
        raise UsageError(
            f"cannot read the class list {args.classes}: {error.strerror or error}"
        ) from None

    try:
        # A missing source folder is reported by link_class_subset, before
        # anything else.
        if Path(args.source).is_dir():
            _check_class_folders_have_files(Path(args.source), classes, splits)
            _check_output(Path(args.output), classes, args.classes)
        result = link_class_subset(args.source, classes, args.output, splits=splits)
    except SubsetError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        if error.errno in WRITE_ERRNOS:
            hint = "links already created are kept"
            raise output_write_error(error, args.output, hint) from None
        raise UsageError(
            f"cannot create the subset in {args.output}: {error.strerror or error}"
        ) from None
    print(
        f"linked {len(result.classes)} classes x {len(result.splits)} splits "
        f"({', '.join(result.splits)}) into {result.output}: {result.created} new "
        f"links, {result.existing} already present"
    )
    return 0


def _check_class_folders_have_files(
    source: Path, classes: list[str], splits: tuple[str, ...]
) -> None:
    """Reject class folders without any entry, which ImageFolder cannot read.

    Missing folders are left to ``link_class_subset``, which lists them all, so
    nothing is checked while one is missing.
    """
    folders = [source / split / name for split in splits for name in classes]
    if not all(folder.is_dir() for folder in folders):
        return
    empty = [str(folder) for folder in folders if next(folder.iterdir(), None) is None]
    if empty:
        shown = ", ".join(empty[:5])
        more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
        raise UsageError(
            f"class folders without files in --source {source}: {shown}{more}; "
            "copy their images there or remove those classes from the class list"
        )


def _check_output(output: Path, classes: list[str], class_list: str) -> None:
    """Reject an ``output`` that is neither new, empty nor an earlier subset.

    An earlier subset (folders of class links) is accepted so that a rerun can
    add classes or splits. Any other entry would be read as part of the data
    set: a class folder of another list would add a class, so it is rejected.
    """
    if not output.exists() and not output.is_symlink():
        return
    if not output.is_dir():
        raise UsageError(
            f"--output {output} exists and is not a folder; give the path of a "
            "new or empty folder"
        )
    fix = "remove it or choose a new or empty --output folder"
    for entry in sorted(output.iterdir()):
        if entry.is_symlink() or not entry.is_dir():
            raise UsageError(
                f"--output {output} is not empty and {entry} is not a split folder "
                f"of a subset; {fix}"
            )
        unknown = sorted(
            item.name for item in entry.iterdir() if item.name not in classes
        )
        if unknown:
            shown = ", ".join(unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise UsageError(
                f"--output {output} is not empty: {entry} contains {shown}{more}, "
                f"which the class list {class_list} does not name, and a training "
                f"run would read them as classes; {fix}"
            )
