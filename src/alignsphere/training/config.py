"""Typed training configuration: YAML files, bundled recipes and overrides.

A config is a YAML mapping with the sections of :class:`TrainConfig`. Bundled
recipes live in ``alignsphere/configs/<name>.yaml``; :func:`load_config` takes a
bundled name or a file path, applies ``key=value`` overrides with dotted keys
(``trainer.max_epochs=3``), and validates every field. An unknown key is an
error that lists the valid keys of its section, and an invalid value is an error
that names the key, the value and what is expected.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Union

import yaml

from alignsphere.losses.objective import TERMS, parse_terms


class ConfigError(ValueError):
    """An invalid config file, key or value; the message names it and the fix."""


#: Learning rate per 256 images of global batch in Wang & Isola (2020): the
#: learning rate is ``base_lr * batch_size / 256``.
PAPER_BASE_LR = 0.12
LR_REFERENCE_BATCH = 256

DATASETS = ("digits", "cifar10", "stl10", "imagefolder", "text")
SCHEDULES = ("step", "cosine", "constant")
METHODS = ("simclr", "moco")
OPTIMIZERS = ("sgd", "adam")


@dataclass
class DataConfig:
    """Where the images come from and how positive pairs are made.

    Attributes:
        name: ``digits`` (bundled with scikit-learn, no download), ``cifar10``
            (torchvision's pickle folder or an image folder), ``stl10``
            (torchvision's binary folder), ``imagefolder`` (``root/<split>/<class>/``)
            or ``text`` (a corpus of ``.txt`` files whose adjacent sentences are
            the positive pairs; see :mod:`alignsphere.text.data`).
        root: Data folder; not needed for digits.
        train_split: Split that trains the encoder, such as ``train`` or, for
            STL-10, ``train+unlabeled``. Unlabelled images train the encoder but
            are left out of the probes.
        test_split: Held-out split for the per-epoch metrics and the evaluation.
        probe_split: Labelled split that trains the linear probe and fills the
            k-NN bank in ``alignsphere evaluate``; empty means ``train_split``.
        preset: Augmentation preset (``digits``, ``cifar10``, ``stl10``,
            ``imagenet``); empty means the dataset's own preset.
        image_size: Side of the square views the encoder sees, in pixels; empty
            means the preset's size.
        decode_size: ``imagefolder`` only: resize the shorter side and
            center-crop every image to this size once, while decoding.
        train_limit: Use only this many training images (a stratified subset,
            fixed by the seed); empty means all.
        test_limit: Likewise for the test split.
        num_workers: DataLoader worker processes. Batches are sliced from
            in-memory tensors and augmented in the training step, so 0 is usually
            fastest.
        options: Further settings of the ``text`` dataset, such as
            ``{min_freq: 3, max_length: 40}``; the valid keys are in
            :class:`alignsphere.text.data.TextDataOptions`. Image datasets take none.
    """

    name: str = "digits"
    root: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    probe_split: str | None = None
    preset: str | None = None
    image_size: int | None = None
    decode_size: int | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    num_workers: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        _check_choice("data.name", self.name, DATASETS)
        if self.name == "text":
            from alignsphere.text.data import check_text_data_config

            check_text_data_config(self)
        elif self.options:
            raise ConfigError(
                f"data.options applies to data.name=text only, not {self.name!r}; "
                "remove it"
            )
        if self.preset is not None:
            from alignsphere.data.presets import list_presets
            from alignsphere.moco.presets import register_moco_presets

            register_moco_presets()

            _check_choice("data.preset", self.preset, list_presets())
        if self.name != "digits" and not self.root:
            raise ConfigError(
                f"data.root is required for data.name={self.name!r}; set it to the "
                "dataset folder, for example --set data.root=/path/to/data"
            )
        if self.decode_size is not None and self.name != "imagefolder":
            raise ConfigError(
                f"data.decode_size applies to data.name=imagefolder only, not "
                f"{self.name!r}; remove it"
            )
        for key in ("image_size", "decode_size", "train_limit", "test_limit"):
            value = getattr(self, key)
            if value is not None:
                _check_at_least(f"data.{key}", value, 1)
        _check_at_least("data.num_workers", self.num_workers, 0)


@dataclass
class ModelConfig:
    """The encoder, built by :func:`alignsphere.models.build_encoder`.

    Attributes:
        name: Encoder name: ``alexnet``, ``resnet18``, ``resnet50``,
            ``small_convnet`` or ``mlp`` for images, ``gru`` for text
            (:class:`alignsphere.text.GRUSentenceEncoder`).
        out_dim: Dimension d of the L2-normalised output on S^(d-1).
        options: Further keyword arguments of the encoder, such as
            ``{small_stem: true}`` for ResNets on 32-pixel images.
    """

    name: str = "mlp"
    out_dim: int = 128
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if not self.name:
            raise ConfigError("model.name is empty; name an encoder such as resnet18")
        _check_at_least("model.out_dim", self.out_dim, 1)


@dataclass
class OptimConfig:
    """The optimiser and its learning-rate schedule.

    Attributes:
        optimizer: ``sgd`` (with ``momentum``) or ``adam`` (PyTorch's default
            betas, ``momentum`` unused), the usual choice for recurrent
            encoders.
        batch_size: Global batch (all ranks together), in images. Each of W ranks
            takes ``batch_size / W``.
        base_lr: Learning rate per 256 images of global batch; the learning rate
            is ``base_lr * batch_size / 256`` (0.12 in Wang & Isola 2020).
        lr: If set, this learning rate is used as it is, with no scaling.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        schedule: ``step`` (multiply by ``gamma`` at each epoch of
            ``milestones``), ``cosine`` (to 0 at ``trainer.max_epochs``) or
            ``constant``.
        milestones: Epochs at which the step schedule multiplies the rate by
            ``gamma``.
        gamma: Factor of the step schedule.
    """

    optimizer: str = "sgd"
    batch_size: int = 256
    base_lr: float = PAPER_BASE_LR
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "step"
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1

    @property
    def learning_rate(self) -> float:
        """The learning rate SGD starts from."""
        if self.lr is not None:
            return self.lr
        return self.base_lr * self.batch_size / LR_REFERENCE_BATCH

    def validate(self) -> None:
        _check_choice("optim.optimizer", self.optimizer, OPTIMIZERS)
        _check_at_least("optim.batch_size", self.batch_size, 2)
        _check_positive("optim.base_lr", self.base_lr)
        if self.lr is not None:
            _check_positive("optim.lr", self.lr)
        _check_at_least("optim.momentum", self.momentum, 0)
        _check_at_least("optim.weight_decay", self.weight_decay, 0)
        _check_choice("optim.schedule", self.schedule, SCHEDULES)
        _check_positive("optim.gamma", self.gamma)
        if sorted(self.milestones) != list(self.milestones) or any(
            m < 1 for m in self.milestones
        ):
            raise ConfigError(
                f"optim.milestones must be increasing epochs >= 1, got {self.milestones}"
            )


@dataclass
class TrainerConfig:
    """Lightning Trainer settings.

    Attributes:
        max_epochs: Epochs to train.
        accelerator: ``cpu``, ``gpu`` or ``auto``.
        devices: Devices per node: a number or ``auto``. Under ``torchrun`` it
            must match ``--nproc-per-node``.
        num_nodes: Nodes, as given to ``torchrun``.
        strategy: Lightning strategy, ``auto`` or ``ddp``.
        precision: Lightning precision, such as ``32-true`` or ``bf16-mixed``.
        sync_batchnorm: Convert batch norm to SyncBatchNorm under DDP, so that
            batch statistics span the global batch.
        deterministic: Ask PyTorch for deterministic algorithms (slower on GPU).
        num_threads: CPU threads of PyTorch (``torch.set_num_threads``); empty
            leaves PyTorch's default.
        log_every_n_steps: Steps between logged loss values.
        progress_bar: Show a progress bar.
        limit_train_batches: Batches per epoch at most; empty means all.
    """

    max_epochs: int = 10
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    sync_batchnorm: bool = False
    deterministic: bool = False
    num_threads: int | None = None
    log_every_n_steps: int = 10
    progress_bar: bool = True
    limit_train_batches: int | None = None

    def validate(self) -> None:
        _check_at_least("trainer.max_epochs", self.max_epochs, 1)
        _check_at_least("trainer.num_nodes", self.num_nodes, 1)
        if isinstance(self.devices, str) and self.devices != "auto":
            raise ConfigError(
                f"invalid trainer.devices={self.devices!r}; expected a number or 'auto'"
            )
        if isinstance(self.devices, int):
            _check_at_least("trainer.devices", self.devices, 1)
        if self.num_threads is not None:
            _check_at_least("trainer.num_threads", self.num_threads, 1)
        _check_at_least("trainer.log_every_n_steps", self.log_every_n_steps, 1)
        if self.limit_train_batches is not None:
            _check_at_least("trainer.limit_train_batches", self.limit_train_batches, 1)


@dataclass
class HeldOutConfig:
    """Alignment and uniformity of held-out positive pairs, measured every epoch.

    Pairs are two augmented views of each of the first ``num_images`` test images
    (a stratified subset), drawn once with ``seed`` so every epoch measures the
    same pairs.

    Attributes:
        num_images: Test images to measure on; 0 turns the measurement off.
        every_n_epochs: Epochs between measurements.
        alpha: Exponent of the alignment.
        t: Scale of the uniformity.
        seed: Seed of the views.
    """

    num_images: int = 1000
    every_n_epochs: int = 1
    alpha: float = 2.0
    t: float = 2.0
    seed: int = 0

    def validate(self) -> None:
        _check_at_least("heldout.num_images", self.num_images, 0)
        if self.num_images == 1:
            raise ConfigError(
                "heldout.num_images must be 0 (off) or >= 2, because uniformity "
                "needs two images"
            )
        _check_at_least("heldout.every_n_epochs", self.every_n_epochs, 1)
        _check_positive("heldout.alpha", self.alpha)
        _check_positive("heldout.t", self.t)


@dataclass
class MoCoConfig:
    """Settings of ``method: moco`` (see :class:`alignsphere.moco.MoCo`).

    Attributes:
        queue_size: Keys K in the queue; any K works with any batch size.
            16384 is Wang & Isola's ImageNet-100 value.
        momentum: m of the key encoder's update ``m * key + (1 - m) * query``,
            in [0, 1).
        shuffle_bn: Encode keys with shuffle-BN: under DDP the key batch is
            permuted across ranks before the key encoder and restored after
            it. On one process the permutation alone changes no batch-norm
            statistic; see ``bn_splits``.
        bn_splits: Sub-batches per rank that both encoders normalise with their
            own batch-norm statistics (the key encoder's after the shuffle).
            Above 1 it emulates that many GPUs on one process; 1 turns it off.
    """

    queue_size: int = 16384
    momentum: float = 0.999
    shuffle_bn: bool = True
    bn_splits: int = 1

    def validate(self) -> None:
        _check_at_least("moco.queue_size", self.queue_size, 1)
        if not (math.isfinite(self.momentum) and 0 <= self.momentum < 1):
            raise ConfigError(
                f"invalid moco.momentum={self.momentum!r}; it must be in [0, 1), "
                "such as MoCo's 0.999"
            )
        _check_at_least("moco.bn_splits", self.bn_splits, 1)


@dataclass
class TrainConfig:
    """A training run: data, encoder, objective, optimiser and trainer.

    Attributes:
        seed: Seed of the model's initialisation, the data order and the
            augmentation (``lightning.seed_everything``).
        objective: Objective spec, such as ``1*align(alpha=2) + 1*uniform(t=2)``,
            or the same terms as a list of mappings.
        gather: Under DDP, compute uniformity and the contrastive loss over the
            batch gathered from all ranks (2 processes train like 1). False
            keeps each rank's own batch, as the reference implementations do.
        method: ``simclr``: both views through one encoder, negatives from the
            batch. ``moco``: a momentum key encoder and a queue of keys, set in
            the ``moco`` section; queue terms (``uniform_queue``,
            ``contrastive_queue``) need it.
    """

    seed: int = 0
    objective: str | list[dict[str, Any]] = "1*align(alpha=2) + 1*uniform(t=2)"
    gather: bool = True
    method: str = "simclr"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    heldout: HeldOutConfig = field(default_factory=HeldOutConfig)
    moco: MoCoConfig = field(default_factory=MoCoConfig)

    def validate(self) -> None:
        """Check every field; raise :class:`ConfigError` naming the first bad one."""
        try:
            terms = parse_terms(self.objective)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"invalid objective: {error}") from None
        _check_choice("method", self.method, METHODS)
        queue_terms = [t.name for t in terms if TERMS[t.name].needs_queue]
        if queue_terms and self.method != "moco":
            raise ConfigError(
                f"objective terms {', '.join(queue_terms)} need the MoCo queue; set "
                "method: moco, or use uniform and contrastive instead"
            )
        for section in (self.data, self.model, self.optim, self.trainer, self.heldout):
            section.validate()
        if self.method == "moco":
            self.moco.validate()
            if self.optim.batch_size < self.moco.bn_splits:
                raise ConfigError(
                    f"optim.batch_size={self.optim.batch_size} is smaller than "
                    f"moco.bn_splits={self.moco.bn_splits}; every batch-norm split "
                    "needs images"
                )

    def to_dict(self) -> dict[str, Any]:
        """Return the config as plain dicts, lists and scalars (YAML and checkpoints)."""
        return dataclasses.asdict(self)


def _check_choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(
            f"invalid {key}={value!r}; valid values: {', '.join(choices)}"
        )


def _check_at_least(key: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise ConfigError(f"invalid {key}={value!r}; it must be >= {minimum}")


def _check_positive(key: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"invalid {key}={value!r}; it must be a finite number > 0")


# --- building a config from nested mappings ----------------------------------


def _type_name(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return getattr(annotation, "__name__", str(annotation))


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Return ``value`` converted to ``annotation`` or raise ConfigError."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        # Try the non-string members first, so "3" becomes 3 for int | str.
        members = sorted(typing.get_args(annotation), key=lambda a: a is str)
        for member in members:
            try:
                return _coerce(key, value, member)
            except ConfigError:
                continue
        raise ConfigError(f"invalid {key}={value!r}; expected {_type_name(annotation)}")
    if annotation is type(None):
        if value is None or (isinstance(value, str) and value.lower() in ("null", "")):
            return None
        raise ConfigError(f"invalid {key}={value!r}; expected null")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"invalid {key}={value!r}; expected true or false")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"invalid {key}={value!r}; expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"invalid {key}={value!r}; expected an integer")
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"invalid {key}={value!r}; expected a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            # PyYAML reads 1e-4 (no dot) as a string, so numbers arrive as text.
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"invalid {key}={value!r}; expected a number")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"invalid {key}={value!r}; expected a string")
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise ConfigError(
                f"invalid {key}={value!r}; expected a list such as [155, 170]"
            )
        return [_coerce(f"{key}[{i}]", item, item_type) for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"invalid {key}={value!r}; expected a mapping such as {{key: value}}"
            )
        return {str(k): v for k, v in value.items()}
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, key)
    raise AssertionError(f"config field {key} has an unsupported type {annotation}")


def _build(cls: type, values: Any, prefix: str = "") -> Any:
    where = prefix or "the config"
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(
            f"{where} must be a mapping of keys to values, got {type(values).__name__}"
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [str(k) for k in values if k not in fields]
    if unknown:
        raise ConfigError(
            f"unknown key {_join(prefix, unknown[0])!r} in {where}; valid keys: "
            f"{', '.join(fields)}"
        )
    kwargs = {
        name: _coerce(_join(prefix, name), value, hints[name])
        for name, value in values.items()
    }
    return cls(**kwargs)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def config_from_dict(values: Mapping[str, Any]) -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from nested mappings.

    Missing keys take their defaults.

    Raises:
        ConfigError: On an unknown key (the message lists the valid keys) or an
            invalid value.
    """
    config = _build(TrainConfig, values)
    config.validate()
    return config


# --- bundled configs, files and overrides -------------------------------------


def bundled_config_names() -> list[str]:
    """Return the names of the configs shipped in ``alignsphere/configs``."""
    folder = resources.files("alignsphere.configs")
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )


def read_config_file(name_or_path: str | Path) -> dict[str, Any]:
    """Read a bundled config by name, or a YAML file by path, as nested dicts.

    A value that names an existing file, or ends in ``.yaml`` or ``.yml``, is a
    path; anything else is a bundled name.

    Raises:
        ConfigError: If the file does not exist, the name is not bundled (the
            message lists the bundled names), or the YAML is invalid.
    """
    text_value = str(name_or_path)
    path = Path(text_value).expanduser()
    if path.is_file() or text_value.endswith((".yaml", ".yml")) or "/" in text_value:
        if not path.is_file():
            raise ConfigError(
                f"config file {text_value} not found; give an existing YAML file or a "
                f"bundled name ({', '.join(bundled_config_names())})"
            )
        text = path.read_text(encoding="utf-8")
        source = str(path)
    else:
        names = bundled_config_names()
        if text_value not in names:
            raise ConfigError(
                f"unknown config {text_value!r}; bundled configs: {', '.join(names)}, "
                "or give the path of a YAML file"
            )
        resource = resources.files("alignsphere.configs") / f"{text_value}.yaml"
        text = resource.read_text(encoding="utf-8")
        source = f"bundled config {text_value}"
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        detail = " ".join(str(error).split())
        raise ConfigError(f"invalid YAML in {source}: {detail}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(
            f"{source} must contain a mapping of sections (data, model, optim, ...), "
            f"got {type(values).__name__}"
        )
    return values


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``key.sub=value`` into its key path and its YAML value.

    The value is read as YAML, so ``3`` is an int, ``[155, 170]`` a list and
    ``null`` empty. Text that is not valid YAML, such as an objective starting
    with ``*``, stays a string.

    Raises:
        ConfigError: If there is no ``=`` or the key is empty.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"invalid override {text!r}; write KEY=VALUE with a dotted key, such as "
            "trainer.max_epochs=3"
        )
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    if value is None and raw.strip() not in ("null", "~", ""):
        value = raw
    return key.split("."), value


def apply_overrides(values: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``values`` with each ``key=value`` override set.

    Keys are checked against the schema here, so a typo fails with the valid
    keys of its section before anything runs.
    """
    result = _deep_copy(values)
    for text in overrides:
        path, value = parse_override(text)
        _check_key_path(path)
        target = result
        for part in path[:-1]:
            node = target.get(part)
            if not isinstance(node, dict):
                node = {}
                target[part] = node
            target = node
        target[path[-1]] = value
    return result


def _check_key_path(path: list[str]) -> None:
    cls: Any = TrainConfig
    for depth, part in enumerate(path):
        key = ".".join(path[: depth + 1])
        if cls is None or not dataclasses.is_dataclass(cls):
            parent = ".".join(path[:depth])
            raise ConfigError(f"unknown key {key!r}; {parent} has no sub-keys")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            where = ".".join(path[:depth]) or "the config"
            raise ConfigError(
                f"unknown key {key!r} in {where}; valid keys: {', '.join(fields)}"
            )
        hint = typing.get_type_hints(cls)[part]
        if typing.get_origin(hint) is dict:
            return
        cls = hint if dataclasses.is_dataclass(hint) else None


def _deep_copy(values: Any) -> Any:
    if isinstance(values, dict):
        return {k: _deep_copy(v) for k, v in values.items()}
    if isinstance(values, list):
        return [_deep_copy(v) for v in values]
    return values


def load_config(name_or_path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Load a bundled or file config, apply overrides and validate it.

    Args:
        name_or_path: A bundled name (``digits``, ``cifar10_cpu``,
            ``cifar10_resnet18``, ``stl10_alexnet``) or a YAML file.
        overrides: ``key=value`` strings with dotted keys, applied in order.

    Returns:
        The validated :class:`TrainConfig`.

    Raises:
        ConfigError: On a missing file, an unknown name or key, invalid YAML or
            an invalid value; the message names it and the fix.

    Example:
        >>> config = load_config("digits", ["trainer.max_epochs=2"])
        >>> config.trainer.max_epochs
        2
    """
    values = apply_overrides(read_config_file(name_or_path), overrides)
    return config_from_dict(values)


def dump_config(config: TrainConfig) -> str:
    """Return the config as YAML text that :func:`load_config` reads back."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
