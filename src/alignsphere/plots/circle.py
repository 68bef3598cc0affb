r"""Features on the circle :math:`S^1`: encoders with a 2-D output, four ways trained.

Wang & Isola (ICML 2020) show CIFAR-10 features of encoders with a 2-D output.
A random initialisation leaves them bunched on part of the circle, and
supervised training clusters the classes. Contrastive training spreads them
uniformly over the circle, with the classes still clustered. This module
trains such encoders with plain PyTorch loops, in seconds on digits and in
minutes on a CIFAR-10 subset on a CPU. For each encoder it draws the Gaussian
kernel density of the held-out features on the plane and the von Mises-Fisher
kernel density of their angles per class, with held-out alignment and
uniformity in the title.

The four encoders share the architecture and the initial weights:

- ``random``: the initialisation, untrained.
- ``supervised``: cross-entropy of a cosine classifier on the 2-D unit
  features, on one augmented view. Its logits are
  :math:`s\,(w_c/\lVert w_c\rVert)\cdot z` with a learned scale s that starts at
  1 and has its own learning rate of 0.05, so that it grows within a few
  epochs where the classes separate (to about 30 on digits) and stays small
  where they overlap.
- ``contrastive``: the in-batch contrastive loss (NT-Xent), tau = 0.5.
- ``align_uniform``: ``1*align(alpha=2) + 1*uniform(t=2)``.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from alignsphere.plots.kde import gaussian_kde_2d, vmf_kde_angles
from alignsphere.plots.style import PAGE_WIDTH, new_figure, print_style, save_figure

logger = logging.getLogger(__name__)

#: Training methods, in the order of the figure's columns.
CIRCLE_METHODS: tuple[str, ...] = (
    "random",
    "supervised",
    "contrastive",
    "align_uniform",
)

#: Column titles of the methods.
METHOD_LABELS: dict[str, str] = {
    "random": "Random init",
    "supervised": "Supervised",
    "contrastive": "Contrastive",
    "align_uniform": "Align + uniform",
}

# Adam learning rate of the cosine classifier's log-scale, so that the scale can
# move by a factor of e within about 20 steps.
_SCALE_LR = 0.05

#: Datasets that :func:`make_circle_figure` accepts.
CIRCLE_DATASETS: tuple[str, ...] = ("digits", "cifar10")


@dataclass(frozen=True)
class CircleSettings:
    """Architecture and training settings of the 2-D encoders.

    Attributes:
        encoder: Encoder name for :func:`alignsphere.models.build_encoder`.
        encoder_options: Further keyword arguments of the encoder.
        epochs: Passes over the training images, per trained encoder.
        batch_size: Images per step; the last incomplete batch is dropped.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        train_size: Training images, chosen per class in proportion; None for all.
        test_size: Held-out images plotted and measured; None for all.
        contrastive_objective: Objective spec of the contrastive encoder.
        align_uniform_objective: Objective spec of the align + uniform encoder.
        seed: Seed of the initial weights, the subsets, the data order and the views.
        num_threads: CPU threads of PyTorch during training; None leaves the
            setting alone. Defaults to 1, which suits the small default
            models; raise it on an idle multi-core machine for CIFAR-10.
    """

    encoder: str
    encoder_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-6
    train_size: int | None = None
    test_size: int | None = None
    contrastive_objective: str = "1*contrastive(tau=0.5)"
    align_uniform_objective: str = "1*align(alpha=2) + 1*uniform(t=2)"
    seed: int = 0
    num_threads: int | None = 1

    def validate(self) -> None:
        """Raise ValueError on a setting outside its range."""
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be finite and > 0, got {self.lr!r}")
        for name in ("train_size", "test_size"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise ValueError(f"{name} must be >= 2 or None, got {value!r}")


#: Defaults per dataset. Digits train in seconds. The CIFAR-10 defaults (a
#: narrow convnet, 10,000 training images, 6 epochs, 2,000 held-out images)
#: keep the whole command under 5 minutes of CPU time (3.9 measured, see
#: docs/figures.md), which leaves the encoders far from converged.
DEFAULT_SETTINGS: dict[str, CircleSettings] = {
    "digits": CircleSettings(encoder="mlp", epochs=150),
    "cifar10": CircleSettings(
        encoder="small_convnet",
        encoder_options={"widths": (16, 32, 64, 128)},
        epochs=6,
        train_size=10_000,
        test_size=2_000,
    ),
}


@dataclass
class CircleEncoder:
    """An encoder with a 2-D output and how it was trained.

    Attributes:
        method: One of :data:`CIRCLE_METHODS`.
        encoder: The encoder, in eval mode.
        objective: The objective spec, or ``"cross_entropy"`` or None (untrained).
        train_seconds: Wall-clock training time.
        final_loss: Mean loss of the last epoch, or None when untrained.
    """

    method: str
    encoder: nn.Module
    objective: str | None
    train_seconds: float
    final_loss: float | None


@dataclass(frozen=True)
class CircleFeatures:
    """Held-out features of one encoder on the circle, with their metrics.

    Attributes:
        method: One of :data:`CIRCLE_METHODS`.
        features: ``(N, 2)`` unit features of the un-augmented held-out images.
        labels: ``(N,)`` class labels.
        alignment: ``L_align(2)`` of two augmented views of each held-out image.
        uniformity: ``L_uniform(2)`` of ``features``.
        uniformity_optimum: The uniform distribution's value on S^1 (t = 2).
        knn_accuracy: 5-NN accuracy of the held-out features against the
            training features.
    """

    method: str
    features: torch.Tensor
    labels: torch.Tensor
    alignment: float
    uniformity: float
    uniformity_optimum: float
    knn_accuracy: float


class CosineClassifier(nn.Module):
    """Logits ``s * cos(w_c, z)`` of unit features z, with a learned scale s.

    Args:
        in_features: Feature dimension.
        num_classes: Number of classes.
        scale: Initial value of s. Defaults to 1.
    """

    def __init__(self, in_features: int, num_classes: int, scale: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, in_features))
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        prototypes = F.normalize(self.weight, dim=1)
        return self.log_scale.exp() * F.normalize(features, dim=1) @ prototypes.T


def _build_encoder(settings: CircleSettings, in_channels: int) -> nn.Module:
    from alignsphere.models import build_encoder

    options = dict(settings.encoder_options)
    options.setdefault("in_channels", in_channels)
    return build_encoder(settings.encoder, out_dim=2, **options)


def train_circle_encoders(
    train_set: Any,
    preset: Any,
    settings: CircleSettings,
    *,
    methods: Sequence[str] = CIRCLE_METHODS,
    progress: bool = False,
) -> list[CircleEncoder]:
    """Build one initial encoder and train a copy of it with each method.

    Args:
        train_set: An :class:`~alignsphere.data.InMemoryImageDataset` with labels.
        preset: The dataset's :class:`~alignsphere.data.AugmentationPreset`.
        settings: Architecture and training settings.
        methods: Methods from :data:`CIRCLE_METHODS`, in order.
        progress: Show a progress bar over the epochs of each method.

    Returns:
        One :class:`CircleEncoder` per method, in the order of ``methods``.

    Raises:
        ValueError: On an unknown method or invalid settings.
    """
    settings.validate()
    unknown = [m for m in methods if m not in CIRCLE_METHODS]
    if unknown:
        raise ValueError(
            f"unknown methods {unknown}; valid methods: {', '.join(CIRCLE_METHODS)}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        initial = _build_encoder(settings, train_set.in_channels)
        classifier = CosineClassifier(2, train_set.num_classes)
    results = []
    for method in methods:
        encoder = copy.deepcopy(initial)
        if method == "random":
            results.append(CircleEncoder(method, encoder.eval(), None, 0.0, None))
            continue
        start = time.perf_counter()
        head = copy.deepcopy(classifier) if method == "supervised" else None
        objective = {
            "supervised": "cross_entropy",
            "contrastive": settings.contrastive_objective,
            "align_uniform": settings.align_uniform_objective,
        }[method]
        loss = _train(
            method, encoder, head, objective, train_set, preset, settings, progress
        )
        seconds = time.perf_counter() - start
        logger.info("trained %s in %.1f s, last-epoch loss %.4f", method, seconds, loss)
        results.append(CircleEncoder(method, encoder.eval(), objective, seconds, loss))
    return results


def _train(
    method: str,
    encoder: nn.Module,
    head: nn.Module | None,
    objective_spec: str,
    train_set: Any,
    preset: Any,
    settings: CircleSettings,
    progress: bool,
) -> float:
    """Train ``encoder`` (with ``head`` for cross-entropy) and return the last epoch's mean loss."""
    from alignsphere.losses import parse_objective

    augmentation = preset.train_augmentation()
    objective = None if head is not None else parse_objective(objective_spec)
    groups: list[dict[str, Any]] = [{"params": list(encoder.parameters())}]
    if head is not None:
        head.train()
        scale = [p for n, p in head.named_parameters() if n == "log_scale"]
        others = [p for n, p in head.named_parameters() if n != "log_scale"]
        groups.append({"params": others})
        if scale:
            groups.append({"params": scale, "lr": _SCALE_LR, "weight_decay": 0.0})
    optimizer = torch.optim.Adam(
        groups, lr=settings.lr, weight_decay=settings.weight_decay
    )
    generator = torch.Generator().manual_seed(settings.seed + 1)
    batch_size = min(settings.batch_size, len(train_set))
    epochs = range(settings.epochs)
    if progress:
        from tqdm.auto import tqdm

        label = METHOD_LABELS[method].lower()
        epochs = tqdm(epochs, desc=f"train {label}", unit="epoch", leave=False)
    encoder.train()
    epoch_loss = math.nan
    for _ in epochs:
        total, steps = 0.0, 0
        for images, labels in train_set.iter_batches(
            batch_size, shuffle=True, drop_last=True, generator=generator
        ):
            if head is not None:
                view = augmentation(images, generator)
                loss = F.cross_entropy(head(encoder(view)), labels)
            else:
                view1, view2 = augmentation.two_views(images, generator)
                z1, z2 = encoder(torch.cat([view1, view2])).chunk(2)
                loss = objective(z1, z2).total
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            steps += 1
        epoch_loss = total / max(steps, 1)
        if not math.isfinite(epoch_loss):
            raise FloatingPointError(
                f"training the {method} encoder with {objective_spec} diverged "
                f"(loss {epoch_loss}); lower the learning rate, now {settings.lr:g}"
            )
    return epoch_loss


def measure_circle_features(
    encoders: Sequence[CircleEncoder],
    train_set: Any,
    test_set: Any,
    preset: Any,
    *,
    seed: int = 0,
) -> list[CircleFeatures]:
    """Encode the held-out images and measure alignment, uniformity and 5-NN accuracy.

    Alignment uses two views of each held-out image from the training
    augmentation, drawn with ``seed``; uniformity and the plotted features use
    the un-augmented images. Both use t = 2 and alpha = 2.

    Args:
        encoders: Encoders from :func:`train_circle_encoders`.
        train_set: Labelled images whose features form the 5-NN bank.
        test_set: Labelled held-out images.
        preset: The dataset's augmentation preset.
        seed: Seed of the views.

    Returns:
        One :class:`CircleFeatures` per encoder.
    """
    from alignsphere.evaluation import extract_features, knn_accuracy, measure_heldout

    results = []
    transform = preset.eval_transform()
    for item in encoders:
        metrics = measure_heldout(
            item.encoder,
            test_set.images,
            augmentation=preset.train_augmentation(),
            transform=transform,
            seed=seed,
        )
        features = extract_features(item.encoder, test_set.images, transform=transform)
        bank = extract_features(item.encoder, train_set.images, transform=transform)
        features = F.normalize(features.double(), dim=1)
        accuracy = knn_accuracy(
            bank.double(), train_set.labels, features, test_set.labels, k=5
        )
        results.append(
            CircleFeatures(
                method=item.method,
                features=features,
                labels=test_set.labels.clone(),
                alignment=metrics.alignment,
                uniformity=metrics.uniformity,
                uniformity_optimum=metrics.uniformity_optimum,
                knn_accuracy=float(accuracy),
            )
        )
    return results


def plot_circle_features(
    results: Sequence[CircleFeatures],
    class_names: Sequence[str],
    stem: str | os.PathLike[str],
    *,
    title: str = "",
    bandwidth: float = 0.1,
    kappa: float | None = None,
    grid_points: int = 161,
) -> list[Path]:
    r"""Draw each encoder's features: plane density on top, angle densities below.

    Top row: Gaussian kernel density (bandwidth ``bandwidth``) of the 2-D
    features on the plane, each panel on its own colour scale, with the unit
    circle drawn. Bottom row: von Mises-Fisher kernel density of the angles
    :math:`\operatorname{atan2}(f_2, f_1)` of each class (thin coloured lines)
    and of all features (thick black line). Titles give held-out alignment and
    uniformity.

    Args:
        results: Output of :func:`measure_circle_features`.
        class_names: Names of the classes, indexed by label.
        stem: Output path without suffix.
        title: Figure title.
        bandwidth: Plane kernel standard deviation, in feature units.
            Defaults to 0.1.
        kappa: Angle kernel concentration; defaults to ``1 / bandwidth**2``,
            the same width (about 0.1 rad, 6 degrees) on the circle.
        grid_points: Grid points per axis of the plane density.

    Returns:
        The paths written.
    """
    import numpy as np

    kappa = 1 / bandwidth**2 if kappa is None else kappa
    extent = 1 + 3 * bandwidth
    axis = torch.linspace(-extent, extent, grid_points, dtype=torch.float64)
    angle_grid = torch.linspace(-math.pi, math.pi, 721, dtype=torch.float64)
    num_classes = len(class_names)
    class_colors = [_class_color(index, num_classes) for index in range(num_classes)]

    with print_style():
        columns = len(results)
        figure, axes = new_figure(
            PAGE_WIDTH,
            PAGE_WIDTH / columns + 2.4,
            nrows=2,
            ncols=columns,
            squeeze=False,
            height_ratios=[PAGE_WIDTH / columns, 1.45],
        )
        circle = torch.linspace(0, 2 * math.pi, 256)
        for column, result in enumerate(results):
            top, bottom = axes[0, column], axes[1, column]
            density = gaussian_kde_2d(result.features, axis, axis, bandwidth)
            top.imshow(
                density.numpy(),
                origin="lower",
                extent=(-extent, extent, -extent, extent),
                cmap="viridis",
                interpolation="bilinear",
            )
            top.plot(circle.cos(), circle.sin(), color="white", lw=0.5, alpha=0.6)
            top.set_aspect("equal")
            top.grid(False)
            top.set_xticks([-1, 0, 1])
            top.set_yticks([-1, 0, 1])
            top.set_xlabel("feature 1")
            if column == 0:
                top.set_ylabel("feature 2")
            top.set_title(
                f"{METHOD_LABELS.get(result.method, result.method)}\n"
                f"align {_signed(result.alignment, 3)}\n"
                f"uniform {_signed(result.uniformity, 3)}",
                fontsize=9,
            )

            angles = torch.atan2(result.features[:, 1], result.features[:, 0])
            for label in range(num_classes):
                selected = angles[result.labels == label]
                if selected.numel():
                    bottom.plot(
                        angle_grid.numpy(),
                        vmf_kde_angles(selected, angle_grid, kappa).numpy(),
                        color=class_colors[label],
                        linewidth=0.9,
                    )
            bottom.plot(
                angle_grid.numpy(),
                vmf_kde_angles(angles, angle_grid, kappa).numpy(),
                color="black",
                linewidth=1.8,
            )
            bottom.axhline(1 / (2 * math.pi), color="0.5", linestyle="--", lw=0.8)
            bottom.set_xlim(-math.pi, math.pi)
            bottom.set_ylim(bottom=0)
            bottom.set_xticks([-math.pi, 0, math.pi], [r"$-\pi$", "0", r"$\pi$"])
            bottom.set_xlabel("angle (rad)")
            if column == 0:
                bottom.set_ylabel("density (1/rad)")

        from matplotlib.lines import Line2D

        handles = [
            Line2D([], [], color=class_colors[index], lw=1.5, label=name)
            for index, name in enumerate(class_names)
        ]
        handles.append(Line2D([], [], color="black", lw=1.8, label="all classes"))
        handles.append(
            Line2D([], [], color="0.5", lw=0.8, ls="--", label="uniform (1/2\u03c0)")
        )
        figure.legend(
            handles=handles,
            loc="outside lower center",
            ncol=int(np.ceil(len(handles) / 2)),
            fontsize=7.5,
            handlelength=1.2,
            columnspacing=1.0,
        )
        optimum = results[0].uniformity_optimum if results else float("nan")
        figure.suptitle(
            f"{title}\nheld-out alignment (\u03b1=2) and uniformity (t=2); "
            f"uniformity optimum on the circle {_signed(optimum, 3)}".strip()
        )
        return save_figure(figure, stem)


def _signed(value: float, digits: int) -> str:
    """Format a number with a typographic minus sign, as matplotlib's ticks do."""
    return f"{value:.{digits}f}".replace("-", "\u2212")


def _class_color(index: int, count: int) -> Any:
    import matplotlib as mpl

    palette = mpl.colormaps["tab10" if count <= 10 else "tab20"]
    return palette(index % palette.N)


@dataclass(frozen=True)
class CircleReport:
    """Results and output files of :func:`make_circle_figure`.

    Attributes:
        dataset: Dataset name.
        settings: The training settings used.
        encoders: Per method: objective, training time, last loss and metrics.
        files: Files written.
    """

    dataset: str
    settings: CircleSettings
    encoders: list[dict[str, Any]]
    files: list[Path]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        settings = asdict(self.settings)
        settings["encoder_options"] = {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in settings["encoder_options"].items()
        }
        return {
            "dataset": self.dataset,
            "settings": settings,
            "encoders": self.encoders,
            "files": [str(path) for path in self.files],
        }


def make_circle_figure(
    dataset: str,
    output_dir: str | os.PathLike[str],
    *,
    data_root: str | os.PathLike[str] | None = None,
    settings: CircleSettings | None = None,
    methods: Sequence[str] = CIRCLE_METHODS,
    bandwidth: float = 0.1,
    progress: bool = False,
) -> CircleReport:
    """Train the 2-D encoders on a dataset and write ``circle_DATASET.{png,pdf,json}``.

    Args:
        dataset: ``digits`` (bundled with scikit-learn) or ``cifar10``.
        output_dir: Output folder; created when missing.
        data_root: Folder of CIFAR-10 (the python batches or an image folder
            ``train/<class>/*``); not used for digits.
        settings: Training settings; defaults to :data:`DEFAULT_SETTINGS`.
        methods: Methods to train and draw.
        bandwidth: Kernel width of the densities; see :func:`plot_circle_features`.
        progress: Show progress bars.

    Returns:
        A :class:`CircleReport`.

    Raises:
        ValueError: On an unknown dataset, method or setting.
        alignsphere.data.DatasetNotFoundError: If CIFAR-10 is not under ``data_root``.
    """
    from alignsphere.data import get_preset, load_dataset
    from alignsphere.evaluation import stratified_subset, write_json

    if dataset not in CIRCLE_DATASETS:
        raise ValueError(
            f"unknown dataset {dataset!r}; valid datasets: {', '.join(CIRCLE_DATASETS)}"
        )
    settings = settings or DEFAULT_SETTINGS[dataset]
    settings.validate()
    if dataset == "cifar10" and data_root is None:
        raise ValueError(
            "cifar10 needs a data root: a folder with cifar-10-batches-py or an "
            "image folder train/<class>/*.jpg"
        )
    load_options = {} if dataset == "digits" else {"progress": progress}
    train = load_dataset(dataset, data_root, "train", **load_options)
    test = load_dataset(dataset, data_root, "test", **load_options)
    train = stratified_subset(train, settings.train_size, settings.seed)
    test = stratified_subset(test, settings.test_size, settings.seed)
    preset = get_preset(dataset)
    logger.info("circle encoders on %s: train %s, test %s", dataset, train, test)

    previous_threads = torch.get_num_threads()
    if settings.num_threads is not None:
        torch.set_num_threads(settings.num_threads)
    try:
        encoders = train_circle_encoders(
            train, preset, settings, methods=methods, progress=progress
        )
    finally:
        torch.set_num_threads(previous_threads)
    measured = measure_circle_features(
        encoders, train, test, preset, seed=settings.seed
    )

    output_dir = Path(output_dir)
    stem = output_dir / f"circle_{dataset}"
    title = (
        f"{dataset}: 2-D encoders ({settings.encoder}), {len(train)} training and "
        f"{len(test)} held-out images"
    )
    files = plot_circle_features(
        measured, train.classes, stem, title=title, bandwidth=bandwidth
    )
    rows = [
        {
            "method": item.method,
            "objective": item.objective,
            "train_seconds": round(item.train_seconds, 2),
            "final_loss": item.final_loss,
            "alignment": result.alignment,
            "uniformity": result.uniformity,
            "uniformity_optimum": result.uniformity_optimum,
            "knn_accuracy": result.knn_accuracy,
        }
        for item, result in zip(encoders, measured, strict=True)
    ]
    report = CircleReport(dataset, settings, rows, files)
    json_path = stem.with_name(stem.name + ".json")
    report = replace(report, files=[*files, json_path])
    write_json(report.to_dict(), json_path)
    return report
