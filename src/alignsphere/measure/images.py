"""Measure a torchvision classifier's penultimate features on a folder of images.

The penultimate features are the input of the last ``nn.Linear`` layer that
the forward pass applies: the pooled 2048-d vector of a ResNet-50, the
4096-d fc7 output of VGG, the class token of a ViT. The weights come from a
local file the user names; nothing is downloaded. Models whose classifier is
not a linear layer (SqueezeNet) are not supported.

Each image is resized, centre-cropped and normalised with the ImageNet
statistics, as torchvision's evaluation transforms do. With
``augmented_pairs=True`` every image is instead augmented twice with the
augmentations of Wang & Isola (2020) (RandomResizedCrop with scale 0.08-1,
horizontal flip, ColorJitter(0.4, 0.4, 0.4, 0.4), RandomGrayscale(0.2)), and the
two views form a positive pair.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from alignsphere.measure.arrays import TensorArray
from alignsphere.measure.core import MeasureOptions, measure_embeddings
from alignsphere.measure.errors import MeasureInputError
from alignsphere.measure.report import MeasureReport

logger = logging.getLogger(__name__)

# ImageNet channel statistics, which torchvision's pretrained weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def list_images(folder: str | Path) -> list[Path]:
    """Return the image files under ``folder``, recursively, in sorted order.

    Raises:
        MeasureInputError: the folder does not exist or contains no images.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS

    root = Path(folder)
    if not root.is_dir():
        raise MeasureInputError(f"{root}: image folder not found; check the path")
    files = sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and path.suffix.lower() in IMG_EXTENSIONS
    )
    if not files:
        raise MeasureInputError(
            f"{root}: contains no image files ({', '.join(IMG_EXTENSIONS)}); check "
            "the path"
        )
    return files


def load_torchvision_model(name: str, weights: str | Path) -> nn.Module:
    """Build torchvision model ``name`` and load its weights from a local file.

    The number of classes is read from the weights, so a model fine-tuned on
    another label set loads too. A checkpoint dict with a ``state_dict`` or
    ``model`` entry is unwrapped, and the ``module.`` prefix that
    DistributedDataParallel adds is removed.

    Args:
        name: A name from ``torchvision.models.list_models()``, such as ``resnet50``.
        weights: A file written by ``torch.save(model.state_dict(), path)``.

    Returns:
        The model in eval mode.

    Raises:
        MeasureInputError: the name is unknown, or the weights are missing,
            unreadable or of another architecture.
    """
    import torchvision

    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        close = [model for model in available if name.split("_")[0] in model][:8]
        hint = f" Similar names: {', '.join(close)}." if close else ""
        raise MeasureInputError(
            f"unknown torchvision classification model {name!r}; choose a name from "
            f"torchvision.models.list_models(), such as resnet50 or vit_b_16.{hint}"
        )
    state = _read_state_dict(Path(weights))
    model = torchvision.models.get_model(name, weights=None)
    head_name, head = _classifier_head(model)
    head_weight = state.get(f"{head_name}.weight")
    if head_weight is not None and head_weight.shape[0] != head.out_features:
        model = torchvision.models.get_model(
            name, weights=None, num_classes=int(head_weight.shape[0])
        )
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        missing = ", ".join(result.missing_keys[:3]) or "none"
        unexpected = ", ".join(result.unexpected_keys[:3]) or "none"
        raise MeasureInputError(
            f"{weights}: does not match torchvision model {name!r} (missing keys: "
            f"{missing}; unexpected keys: {unexpected}); check --image-model"
        )
    return model.eval()


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise MeasureInputError(f"{path}: weights file not found; check the path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
    ) as error:
        raise MeasureInputError(
            f"{path}: cannot be loaded with torch.load(weights_only=True) "
            f"({' '.join(str(error).split())[:160]}); save model.state_dict() with "
            "torch.save"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(
        isinstance(value, torch.Tensor) for value in state.values()
    ):
        raise MeasureInputError(
            f"{path}: is not a state dict of tensors; save model.state_dict() with "
            "torch.save"
        )
    return {re.sub(r"^module\.", "", key): value for key, value in state.items()}


def _classifier_head(model: nn.Module) -> tuple[str, nn.Linear]:
    linear = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
    ]
    if not linear:
        raise MeasureInputError(
            f"{type(model).__name__} has no linear classifier, so it has no "
            "penultimate features to measure; choose another model"
        )
    return linear[-1]


class PenultimateFeatures(nn.Module):
    """Wrap a classifier so that it returns the input of its last linear layer.

    Every ``nn.Linear`` gets a forward pre-hook; the input of the one applied
    last in the forward pass is returned, flattened to ``(batch, features)``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self._last: torch.Tensor | None = None
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.register_forward_pre_hook(self._record)

    def _record(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self._last = inputs[0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self._last = None
        self.model(images)
        if self._last is None:
            raise RuntimeError("the model applied no linear layer")
        return self._last.flatten(1)


class _ImageFiles(torch.utils.data.Dataset):
    """Images by file, with one or two transforms; unreadable files are reported."""

    def __init__(self, files: list[Path], transforms: list[Callable]) -> None:
        self.files = files
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[list[torch.Tensor], str]:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(self.files[index]) as image:
                image = image.convert("RGB")
        except (UnidentifiedImageError, OSError) as error:
            # Reported by the main process, so the message stays one line.
            blank = [torch.zeros(0) for _ in self.transforms]
            return blank, f"{self.files[index]}: cannot be read as an image ({error})"
        return [transform(image) for transform in self.transforms], ""


def _collate(
    batch: list[tuple[list[torch.Tensor], str]],
) -> tuple[list[torch.Tensor] | None, list[str]]:
    images, errors = zip(*batch, strict=True)
    if any(errors):
        return None, list(errors)
    views = [torch.stack([item[k] for item in images]) for k in range(len(images[0]))]
    return views, list(errors)


def encode_image_folder(
    files: list[Path],
    model: nn.Module,
    *,
    image_size: int = 224,
    augmented_pairs: bool = False,
    batch_size: int = 64,
    workers: int = 0,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Return the penultimate features of every image, and of a second view.

    Args:
        files: Image files.
        model: A torchvision classifier, see :func:`load_torchvision_model`.
        image_size: Side of the square crop fed to the model. Defaults to 224.
        augmented_pairs: Return features of two augmented views per image
            instead of one centre-cropped view.
        batch_size: Images per forward pass. Defaults to 64.
        workers: DataLoader worker processes. Defaults to 0 (the main process).
        device: Torch device. Defaults to ``"cpu"``.
        seed: Seed of the augmentations.
        progress: Log progress every 10 batches.

    Returns:
        ``(first, second)`` float32 arrays of shape ``(len(files), features)``;
        ``second`` is None without ``augmented_pairs``.

    Raises:
        MeasureInputError: an image cannot be read (the message names the file).
    """
    from torchvision.transforms import v2

    normalize = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    normalize.append(v2.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    if augmented_pairs:
        augment = v2.Compose(
            [
                v2.RandomResizedCrop(image_size, scale=(0.08, 1.0), antialias=True),
                v2.RandomHorizontalFlip(),
                v2.ColorJitter(0.4, 0.4, 0.4, 0.4),
                v2.RandomGrayscale(0.2),
                *normalize,
            ]
        )
        transforms = [augment, augment]
    else:
        # Resize to 256/224 of the crop first, as torchvision's ImageNet eval does.
        resize = round(image_size * 256 / 224)
        transforms = [
            v2.Compose(
                [
                    v2.Resize(resize, antialias=True),
                    v2.CenterCrop(image_size),
                    *normalize,
                ]
            )
        ]
    loader = torch.utils.data.DataLoader(
        _ImageFiles(files, transforms),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        generator=torch.Generator().manual_seed(seed),
    )
    extractor = PenultimateFeatures(model).to(device).eval()
    outputs: list[list[torch.Tensor]] = [[] for _ in transforms]
    # The transforms draw from torch's global generator in the main process;
    # fork_rng seeds it here and restores the caller's state afterwards.
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(seed)
        for number, (views, errors) in enumerate(loader):
            failed = [message for message in errors if message]
            if failed:
                raise MeasureInputError(f"{failed[0]}; remove or replace the file")
            for k, view in enumerate(views):
                outputs[k].append(extractor(view.to(device)).float().cpu())
            if progress and number % 10 == 9:
                done = min((number + 1) * batch_size, len(files))
                logger.info("encoded %d of %d images", done, len(files))
    arrays = [torch.cat(parts).numpy() for parts in outputs]
    return arrays[0], arrays[1] if augmented_pairs else None


def measure_image_folder(
    folder: str | Path,
    model_name: str,
    weights: str | Path,
    *,
    image_size: int = 224,
    augmented_pairs: bool = False,
    batch_size: int = 64,
    workers: int = 0,
    device: str = "cpu",
    uniformity_over: str = "all",
    dedup: bool = False,
    options: MeasureOptions | None = None,
    plot: str | Path | None = None,
    progress: bool = False,
) -> MeasureReport:
    """Measure a torchvision model's penultimate features on an image folder.

    Without ``augmented_pairs`` there are no positive pairs, so the report has
    no alignment. With it, the two augmented views of each image are a pair.

    Args:
        folder: Folder searched recursively for images (any layout, such as
            ImageFolder's class sub-folders).
        model_name: torchvision model name, such as ``resnet50``.
        weights: Local weights file for that model.
        image_size: Side of the square crop. Defaults to 224.
        augmented_pairs: Measure two augmented views of each image as pairs.
        batch_size: Images per forward pass.
        workers: DataLoader worker processes.
        device: Torch device.
        uniformity_over: See :func:`~alignsphere.measure.measure_embeddings`.
        dedup: Drop exact duplicate feature rows before uniformity.
        options: How to compute; defaults to :class:`MeasureOptions`.
        plot: PNG file for histograms and a 2-D projection.
        progress: Log encoding progress.

    Returns:
        The report.
    """
    options = options or MeasureOptions()
    files = list_images(folder)
    model = load_torchvision_model(model_name, weights)
    logger.info("encoding %d images with %s", len(files), model_name)
    first, second = encode_image_folder(
        files,
        model,
        image_size=image_size,
        augmented_pairs=augmented_pairs,
        batch_size=batch_size,
        workers=workers,
        device=device,
        seed=options.seed,
        progress=progress,
    )

    def name_in(view: str) -> Callable[[int], str]:
        return lambda row: f"{model_name} features of {view}{files[row]}"

    label = f"{model_name} features of {folder}"
    if second is None:
        return measure_embeddings(
            TensorArray(first, label, name_in("")),
            uniformity_over=uniformity_over,
            dedup=dedup,
            options=options,
            plot=plot,
        )
    return measure_embeddings(
        TensorArray(first, f"{label} (view 1)", name_in("view 1 of ")),
        TensorArray(second, f"{label} (view 2)", name_in("view 2 of ")),
        uniformity_over=uniformity_over,
        dedup=dedup,
        options=options,
        plot=plot,
    )
