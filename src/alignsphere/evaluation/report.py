"""Evaluate an encoder on a labelled dataset: linear probe, k-NN, held-out metrics."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from alignsphere._io import write_text_atomic
from alignsphere._validation import is_integer, is_number
from alignsphere.data import AugmentationPreset, InMemoryImageDataset
from alignsphere.evaluation.features import OUTPUT_LAYER, extract_features
from alignsphere.evaluation.heldout import measure_heldout
from alignsphere.evaluation.knn import knn_accuracy
from alignsphere.evaluation.linear import MOCO_PROBE, PAPER_EPOCHS, linear_probe_paper
from alignsphere.evaluation.linear_fast import linear_probe_fast
from alignsphere.evaluation.subsets import stratified_subset

logger = logging.getLogger(__name__)

PROBES = ("fast", "paper", "moco", "none")


@dataclass
class EvaluationSettings:
    """Measurements and options of :func:`evaluate_encoder`.

    Attributes:
        layers: Layers to probe: ``output``, ``pooled``, ``fc7``, ...
        probe: ``fast`` (logistic regression on precomputed features, the
            default), ``paper`` (Adam with augmentation, 100 epochs), ``moco``
            (SGD lr 30, batch 256, 100 epochs, MoCo's ImageNet protocol) or
            ``none``.
        probe_epochs: Epochs of the ``paper`` probe.
        knn_k: Neighbours of the k-NN classifier; 0 turns it off.
        knn_temperature: If set, weight k-NN votes by ``exp(cos / T)``.
        heldout_images: Test images for alignment and uniformity; 0 turns the
            measurement off.
        alpha: Exponent of the alignment.
        t: Scale of the uniformity.
        seed: Seed of the held-out views and of the ``paper`` probe.
        batch_size: Images per forward pass when extracting features.
        progress: Show progress bars.
    """

    layers: Sequence[str] = (OUTPUT_LAYER,)
    probe: str = "fast"
    probe_epochs: int = PAPER_EPOCHS
    knn_k: int = 5
    knn_temperature: float | None = None
    heldout_images: int = 1000
    alpha: float = 2.0
    t: float = 2.0
    seed: int = 0
    batch_size: int = 512
    progress: bool = False

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field and what it accepts."""
        if not isinstance(self.probe, str) or self.probe not in PROBES:
            raise ValueError(
                f"invalid probe {self.probe!r}; valid probes: {', '.join(PROBES)}"
            )
        layers = self.layers
        if (
            isinstance(layers, str)
            or not isinstance(layers, Sequence)
            or not layers
            or not all(isinstance(layer, str) for layer in layers)
        ):
            raise ValueError(
                f"layers must be a non-empty list of layer names such as "
                f"[output, pooled], got {layers!r}"
            )
        minimum = {
            "probe_epochs": 1,
            "knn_k": 0,
            "heldout_images": 0,
            "batch_size": 1,
        }
        notes = {"knn_k": " (0 turns k-NN off)", "heldout_images": " (0 turns it off)"}
        for name, low in minimum.items():
            value = getattr(self, name)
            if not is_integer(value) or value < low:
                raise ValueError(
                    f"{name} must be an integer >= {low}{notes.get(name, '')}, "
                    f"got {value!r}"
                )
        if self.heldout_images == 1:
            raise ValueError(
                "heldout_images must be 0 (turns it off) or >= 2, since uniformity "
                "needs pairs of images, got 1"
            )
        if not is_integer(self.seed):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        for name in ("alpha", "t", "knn_temperature"):
            value = getattr(self, name)
            if name == "knn_temperature" and value is None:
                continue
            if not is_number(value) or not math.isfinite(value) or value <= 0:
                empty = (
                    " or empty (plain majority vote)"
                    if name == "knn_temperature"
                    else ""
                )
                raise ValueError(
                    f"{name} must be a finite number > 0{empty}, got {value!r}"
                )
        if not isinstance(self.progress, bool):
            raise ValueError(f"progress must be true or false, got {self.progress!r}")


def _labelled_part(dataset: InMemoryImageDataset) -> InMemoryImageDataset:
    if dataset.is_labeled:
        return dataset
    labelled = dataset.subset(dataset.labels >= 0)
    logger.info(
        "%s: left out %d unlabelled images from the probes",
        dataset.name,
        len(dataset) - len(labelled),
    )
    return labelled


def evaluate_encoder(
    encoder: nn.Module,
    probe_set: InMemoryImageDataset,
    test_set: InMemoryImageDataset,
    preset: AugmentationPreset,
    settings: EvaluationSettings | None = None,
    *,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """Evaluate a frozen encoder the way Wang & Isola (2020) do, and more cheaply.

    For each layer: a linear probe trained on ``probe_set`` and tested on
    ``test_set``, and k-NN accuracy on cosine similarity with ``probe_set`` as
    the bank. For the output: alignment and uniformity on held-out images of
    ``test_set`` (see :func:`~alignsphere.evaluation.heldout.measure_heldout`).
    Everything runs in eval mode; the encoder's weights and train/eval flags
    are the same afterwards.

    Args:
        encoder: The encoder.
        probe_set: Labelled images for the probe and the k-NN bank; unlabelled
            images (label -1) are left out.
        test_set: Labelled held-out images.
        preset: Evaluation transform, probe augmentation and training
            augmentation (for the held-out pairs).
        settings: What to measure; see :class:`EvaluationSettings`.
        device: Device; defaults to the encoder's.

    Returns:
        A JSON-serialisable dict with ``layers`` (per layer: ``feature_dim``,
        ``linear_probe``, ``knn``), ``heldout`` and ``data``.
    """
    settings = settings or EvaluationSettings()
    settings.validate()
    probe_set = _labelled_part(probe_set)
    if not test_set.is_labeled:
        raise ValueError(
            f"{test_set.name} has unlabelled images; evaluate on a labelled test split"
        )
    num_classes = max(probe_set.num_classes, test_set.num_classes)
    # Testing on the probe set itself: no image may count as its own neighbour.
    same_set = probe_set.images.shape == test_set.images.shape and bool(
        torch.equal(probe_set.images, test_set.images)
    )
    transform = preset.eval_transform()
    report: dict[str, Any] = {
        "data": {
            "probe_set": probe_set.name,
            "test_set": test_set.name,
            "num_probe": len(probe_set),
            "num_test": len(test_set),
            "num_classes": num_classes,
            "preset": preset.name,
        },
        "layers": {},
    }
    for layer in settings.layers:
        logger.info("extracting %s features", layer)
        train_features = extract_features(
            encoder,
            probe_set.images,
            transform=transform,
            layer=layer,
            batch_size=settings.batch_size,
            device=device,
        )
        test_features = extract_features(
            encoder,
            test_set.images,
            transform=transform,
            layer=layer,
            batch_size=settings.batch_size,
            device=device,
        )
        result: dict[str, Any] = {"feature_dim": int(train_features.shape[1])}
        if settings.probe == "fast":
            result["linear_probe"] = linear_probe_fast(
                train_features, probe_set.labels, test_features, test_set.labels
            ).to_dict()
        elif settings.probe in ("paper", "moco"):
            protocol = MOCO_PROBE if settings.probe == "moco" else {}
            result["linear_probe"] = linear_probe_paper(
                encoder,
                probe_set.images,
                probe_set.labels,
                test_set.images,
                test_set.labels,
                preset=preset,
                layer=layer,
                num_classes=num_classes,
                epochs=settings.probe_epochs,
                seed=settings.seed,
                device=device,
                progress=settings.progress,
                **protocol,
            ).to_dict()
        if settings.knn_k > 0:
            result["knn"] = {
                "k": settings.knn_k,
                "temperature": settings.knn_temperature,
                "exclude_self": same_set,
                "accuracy": knn_accuracy(
                    train_features,
                    probe_set.labels,
                    test_features,
                    test_set.labels,
                    k=settings.knn_k,
                    temperature=settings.knn_temperature,
                    num_classes=num_classes,
                    exclude_self=same_set,
                ),
            }
        report["layers"][layer] = result

    if settings.heldout_images >= 2:
        heldout = stratified_subset(test_set, settings.heldout_images, settings.seed)
        report["heldout"] = measure_heldout(
            encoder,
            heldout.images,
            augmentation=preset.train_augmentation(),
            transform=transform,
            alpha=settings.alpha,
            t=settings.t,
            seed=settings.seed,
            batch_size=settings.batch_size,
            device=device,
        ).to_dict()
    return report


def format_report(report: dict[str, Any]) -> str:
    """Format an evaluation report as a plain-text table."""
    data = report.get("data", {})
    lines = []
    if "checkpoint" in report:
        lines.append(f"checkpoint: {report['checkpoint']}")
    lines.append(
        f"probe set {data.get('probe_set')} ({data.get('num_probe')} images), "
        f"test set {data.get('test_set')} ({data.get('num_test')} images)"
    )
    header = f"{'layer':<10} {'dim':>6}  {'linear probe':<17} {'k-NN':<14}"
    lines += ["", header, "-" * len(header)]
    for layer, result in report.get("layers", {}).items():
        probe = result.get("linear_probe")
        knn = result.get("knn")
        probe_text = "-"
        if probe:
            probe_text = f"{100 * probe['test_accuracy']:6.2f} % ({probe['method']})"
        knn_text = f"{100 * knn['accuracy']:6.2f} % (k={knn['k']})" if knn else "-"
        lines.append(
            f"{layer:<10} {result['feature_dim']:>6}  {probe_text:<17} {knn_text:<14}"
        )
    heldout = report.get("heldout")
    if heldout:
        rows = [
            (f"alignment (alpha={heldout['alpha']:g}) of two views", "alignment"),
            (f"uniformity (t={heldout['t']:g}) of the images", "uniformity"),
            ("uniformity of the views, averaged", "uniformity_views"),
            ("population optimum of uniformity", "uniformity_optimum"),
        ]
        lines += [
            "",
            f"held-out output ({heldout['num_images']} test images, views seeded "
            f"with {heldout['seed']}):",
        ]
        lines += [f"  {label:<36} {heldout[key]:9.4f}" for label, key in rows]
    return "\n".join(line.rstrip() for line in lines)


def write_json(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a report as indented JSON, atomically (temporary file, then rename)."""
    return write_text_atomic(path, json.dumps(report, indent=2) + "\n")
