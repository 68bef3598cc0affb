"""ImageNet class subsets as folders of symbolic links (ImageNet-100 and the like).

ImageNet in the torchvision ``ImageFolder`` layout has ``train/<wnid>/*.JPEG``
and ``val/<wnid>/*.JPEG``. A subset such as ImageNet-100 (the 100 classes that
Contrastive Multiview Coding lists) is the same layout restricted to the classes
of a list. :func:`link_class_subset` builds it from symbolic links to the class
folders, so no image is copied, and
``data: {name: imagefolder, train_split: train, test_split: val}`` reads it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["SubsetError", "SubsetResult", "link_class_subset", "read_class_list"]

DEFAULT_SPLITS = ("train", "val")


class SubsetError(ValueError):
    """Invalid input for a class subset; the message names the value and the fix."""


@dataclass(frozen=True)
class SubsetResult:
    """Outcome of :func:`link_class_subset`.

    Attributes:
        output: The subset folder.
        classes: The class names, in the order of the list.
        splits: The splits linked, such as ``("train", "val")``.
        created: Links created by this call.
        existing: Links that already pointed to the right folder.
    """

    output: Path
    classes: tuple[str, ...]
    splits: tuple[str, ...]
    created: int
    existing: int


def read_class_list(path: str | os.PathLike[str]) -> list[str]:
    """Read class folder names, one per line, from a text file.

    Blank lines and lines starting with ``#`` are skipped, and surrounding
    whitespace is removed. A class folder name cannot contain ``/`` or be
    ``.`` or ``..``.

    Raises:
        SubsetError: If the file does not exist, lists no class, lists a class
            twice, or a line is not a valid folder name.
    """
    path = Path(path)
    if not path.is_file():
        raise SubsetError(
            f"class list {path} not found; give a text file with one class folder "
            "name (such as n01440764) per line"
        )
    classes: list[str] = []
    seen: dict[str, int] = {}
    text = path.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        if "/" in name or "\\" in name or name in (".", ".."):
            raise SubsetError(
                f"{path}:{number}: {name!r} is not a class folder name; write one "
                "folder name per line, without a path"
            )
        if name in seen:
            raise SubsetError(
                f"{path}:{number}: class {name} is listed twice (first on line "
                f"{seen[name]}); list each class once"
            )
        seen[name] = number
        classes.append(name)
    if not classes:
        raise SubsetError(f"class list {path} lists no class; write one per line")
    return classes


def link_class_subset(
    source: str | os.PathLike[str],
    classes: list[str],
    output: str | os.PathLike[str],
    *,
    splits: tuple[str, ...] = DEFAULT_SPLITS,
) -> SubsetResult:
    """Build ``output/<split>/<class>`` as symbolic links to ``source/<split>/<class>``.

    Every split and class is checked before anything is written, so a missing
    class leaves no half-built subset. Links point to absolute paths, so the
    subset folder can move. Running it again on the same output is allowed:
    links that already point to the right folder are kept.

    Args:
        source: ImageNet root with one folder per split.
        classes: Class folder names, as :func:`read_class_list` returns them.
        output: Folder of the subset; created if missing.
        splits: Split folders to link. Defaults to ``("train", "val")``.

    Returns:
        A :class:`SubsetResult`.

    Raises:
        SubsetError: If ``source`` or a split folder is missing, classes are
            missing from a split (all of them are listed), ``output`` is inside
            ``source``, or an entry of ``output`` is in the way.
    """
    source = Path(source).expanduser().resolve()
    output = Path(output).expanduser().absolute()
    if not classes:
        raise SubsetError("no class given; list at least one class")
    if not source.is_dir():
        raise SubsetError(
            f"source folder {source} not found; give the ImageNet root that "
            f"contains {' and '.join(splits)} folders"
        )
    if output.resolve() == source or source in output.resolve().parents:
        raise SubsetError(
            f"output {output} is inside the source folder {source}; choose a "
            "folder outside it"
        )
    for split in splits:
        folder = source / split
        if not folder.is_dir():
            found = sorted(p.name for p in source.iterdir() if p.is_dir())
            raise SubsetError(
                f"split folder {folder} not found (folders in {source}: "
                f"{', '.join(found[:10]) or 'none'}); give the ImageNet root or "
                "choose the splits with --splits"
            )
        missing = [name for name in classes if not (folder / name).is_dir()]
        if missing:
            shown = ", ".join(missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise SubsetError(
                f"{len(missing)} of {len(classes)} classes are missing from {folder}: "
                f"{shown}{more}. Check the class list against the folder names"
            )
    plan = [
        (output / split / name, source / split / name)
        for split in splits
        for name in classes
    ]
    for link, target in plan:
        if (link.exists() or link.is_symlink()) and not _links_to(link, target):
            raise SubsetError(
                f"{link} already exists and is not a link to {target}; remove it or "
                "choose another output folder"
            )

    created = existing = 0
    for link, target in plan:
        if link.is_symlink():
            existing += 1
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target, target_is_directory=True)
        created += 1
    logger.info(
        "linked %d classes of %s from %s into %s (%d new links, %d existing)",
        len(classes),
        "/".join(splits),
        source,
        output,
        created,
        existing,
    )
    return SubsetResult(output, tuple(classes), tuple(splits), created, existing)


def _links_to(link: Path, target: Path) -> bool:
    return link.is_symlink() and Path(os.readlink(link)) == target
