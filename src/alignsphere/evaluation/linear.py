"""Linear evaluation with the protocol of Wang & Isola (2020), on a frozen encoder.

A linear classifier is trained on the frozen features of one layer with Adam
(lr 1e-3, betas (0.5, 0.999)), batch 128, for 100 epochs, the learning rate
multiplied by 0.2 at epochs 60 and 80. Training images get a random resized
crop and a horizontal flip drawn per image (the preset's probe augmentation).
Test images are resized and center-cropped by the preset's evaluation
transform, which resizes to 70 and crops 64 for STL-10. The encoder stays in eval mode throughout,
so batch-norm statistics are not updated, and its weights are not touched.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from alignsphere.data import AugmentationPreset
from alignsphere.evaluation.features import (
    OUTPUT_LAYER,
    eval_mode,
    extract_features,
    forward_layer,
    resolve_layer,
)
from alignsphere.evaluation.linear_fast import LinearProbeResult

logger = logging.getLogger(__name__)

PAPER_EPOCHS = 100
PAPER_BATCH_SIZE = 128
PAPER_LR = 1e-3
PAPER_BETAS = (0.5, 0.999)
PAPER_GAMMA = 0.2
#: Milestones as fractions of the epochs: 60 and 80 of 100.
PAPER_MILESTONE_FRACTIONS = (0.6, 0.8)
#: The linear evaluation of MoCo on ImageNet, which the paper's ImageNet-100
#: results use: SGD with momentum 0.9, lr 30, batch 256, 100 epochs, the rate
#: multiplied by 0.1 at epochs 60 and 80.
MOCO_PROBE = {"optimizer": "sgd", "lr": 30.0, "batch_size": 256, "gamma": 0.1}


def _labelled(images: torch.Tensor, labels: torch.Tensor, name: str):
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"{name} labels must have shape ({images.shape[0]},), got "
            f"{tuple(labels.shape)}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"{name} split is empty")
    if int(labels.min()) < 0:
        raise ValueError(f"{name} labels must be >= 0; drop unlabelled images first")


def linear_probe_paper(
    encoder: nn.Module,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    preset: AugmentationPreset,
    layer: str = OUTPUT_LAYER,
    num_classes: int | None = None,
    epochs: int = PAPER_EPOCHS,
    batch_size: int = PAPER_BATCH_SIZE,
    lr: float = PAPER_LR,
    betas: tuple[float, float] = PAPER_BETAS,
    milestones: Sequence[int] | None = None,
    gamma: float = PAPER_GAMMA,
    optimizer: str = "adam",
    momentum: float = 0.9,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> LinearProbeResult:
    """Train a linear classifier on frozen features with the paper's protocol.

    Args:
        encoder: The frozen encoder.
        train_images: ``(N, C, H, W)`` uint8 labelled training images.
        train_labels: ``(N,)`` labels in ``[0, num_classes)``.
        test_images: ``(M, C, H, W)`` uint8 test images.
        test_labels: ``(M,)`` labels.
        preset: Supplies the probe augmentation (crop and flip per image) and the
            evaluation transform (resize and center crop), both normalised.
        layer: Layer whose features are classified: ``"output"``, ``"pooled"``,
            ``"fc7"``, ...; see :func:`~alignsphere.evaluation.features.resolve_layer`.
        num_classes: Defaults to ``max(label) + 1`` over both splits.
        epochs: Training epochs. Defaults to 100.
        batch_size: Defaults to 128.
        lr: Adam learning rate. Defaults to 1e-3.
        betas: Adam betas. Defaults to (0.5, 0.999).
        milestones: Epochs at which the rate is multiplied by ``gamma``; defaults
            to 60 % and 80 % of ``epochs`` (60 and 80 of 100).
        gamma: Defaults to 0.2.
        optimizer: ``adam`` (the STL-10 protocol) or ``sgd`` with ``momentum``
            and no weight decay (MoCo's ImageNet protocol: lr 30, batch 256,
            gamma 0.1; see :data:`MOCO_PROBE`).
        momentum: SGD momentum. Defaults to 0.9.
        seed: Seed of the classifier's initialisation, the order and the crops.
        device: Device; defaults to the encoder's.
        progress: Show a progress bar over epochs.

    Returns:
        A :class:`~alignsphere.evaluation.linear_fast.LinearProbeResult` with
        ``method="paper"``; ``train_accuracy`` is measured on the augmented
        batches of the last epoch.
    """
    _labelled(train_images, train_labels, "train")
    _labelled(test_images, test_labels, "test")
    if int(epochs) < 1 or int(batch_size) < 1:
        raise ValueError(
            f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}"
        )
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if milestones is None:
        milestones = [round(f * epochs) for f in PAPER_MILESTONE_FRACTIONS]
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    stage = resolve_layer(encoder, layer)
    if device is None:
        parameter = next(encoder.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
    device = torch.device(device)

    augmentation = preset.probe_augmentation()
    eval_transform = preset.eval_transform()
    generator = torch.Generator().manual_seed(seed)
    with eval_mode(encoder):
        probe_input = eval_transform(train_images[:2].to(device))
        feature_dim = forward_layer(encoder, probe_input, stage).flatten(1).shape[1]
    # Initialise from the seed without moving the caller's global generator.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = nn.Linear(feature_dim, num_classes).to(device)
    if optimizer == "sgd":
        method = torch.optim.SGD(classifier.parameters(), lr=lr, momentum=momentum)
        optimizer_settings = {"optimizer": "SGD", "momentum": momentum}
    else:
        method = torch.optim.Adam(classifier.parameters(), lr=lr, betas=betas)
        optimizer_settings = {"optimizer": "Adam", "betas": list(betas)}
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        method, milestones=list(milestones), gamma=gamma
    )
    labels_on_device = train_labels.to(device)

    epoch_range = range(int(epochs))
    if progress:
        from tqdm.auto import tqdm

        epoch_range = tqdm(epoch_range, desc=f"linear probe ({layer})", unit="epoch")
    correct = seen = 0
    with eval_mode(encoder, no_grad=False):
        for _ in epoch_range:
            order = torch.randperm(train_images.shape[0], generator=generator)
            correct = seen = 0
            for start in range(0, order.numel(), int(batch_size)):
                index = order[start : start + int(batch_size)]
                images = train_images[index].to(device)
                targets = labels_on_device[index.to(device)]
                with torch.no_grad():
                    views = augmentation(images, generator)
                    features = forward_layer(encoder, views, stage).flatten(1).float()
                logits = classifier(features)
                loss = F.cross_entropy(logits, targets)
                method.zero_grad(set_to_none=True)
                loss.backward()
                method.step()
                correct += int((logits.argmax(1) == targets).sum())
                seen += targets.numel()
            scheduler.step()
    train_accuracy = correct / max(seen, 1)

    test_features = extract_features(
        encoder, test_images, transform=eval_transform, layer=layer, device=device
    )
    with torch.no_grad():
        logits = classifier(test_features.to(device))
        test_accuracy = float(
            (logits.argmax(1).cpu() == test_labels.cpu()).double().mean()
        )
    return LinearProbeResult(
        method="paper",
        train_accuracy=float(train_accuracy),
        test_accuracy=test_accuracy,
        settings=optimizer_settings
        | {
            "lr": lr,
            "batch_size": int(batch_size),
            "epochs": int(epochs),
            "milestones": list(milestones),
            "gamma": gamma,
            "train_augmentation": repr(preset.probe),
            "test_transform": repr(preset.eval),
            "seed": seed,
        },
    )
