"""Study configuration: which encoders to train, expanded into a fixed trial list.

A study YAML names a training config as the base of every trial, a grid or a
random sweep over objectives, seeds and training lengths, and how to evaluate::

    name: digits
    base: digits                 # bundled training config or a path
    overrides: {batch_size: 256}  # applied to every trial
    grid:
      objective:
        - "1*align(alpha=2) + 1*uniform(t=2)"
        - "1*contrastive(tau=0.2)"
      seed: [0, 1]
      max_epochs: [20]
    random:                      # optional, added to the grid's trials
      num_samples: 8
      seed: 0
      objective: "{w}*align(alpha={alpha}) + 1*uniform(t={t})"
      space:
        w: {loguniform: [0.1, 10]}
        alpha: {choice: [1, 2]}
        t: {uniform: [1, 4]}
    evaluation: {probe: fast, knn_k: 5}

Expansion is deterministic (the random sweep draws from its own seed), so
rerunning the same YAML yields the same trial ids, which is what lets a study
resume by skipping the ids it has finished.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignsphere.losses import parse_terms

STUDY_KEYS = {"name", "base", "overrides", "grid", "random", "evaluation", "resources"}
GRID_KEYS = {"objective", "seed", "max_epochs"}
DISTRIBUTIONS = {"uniform", "loguniform", "choice", "randint"}


class StudyConfigError(ValueError):
    """A study YAML that cannot be run; the message names the key and the fix."""


@dataclass(frozen=True)
class Trial:
    """One encoder of a study: an objective, a seed and a training length."""

    objective: str
    seed: int
    max_epochs: int | None
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def trial_id(self) -> str:
        """Stable 12-hex-digit id derived from everything that defines the trial."""
        payload = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        """Return the trial as plain types, for Ray's param space and JSON."""
        return {
            "objective": self.objective,
            "seed": self.seed,
            "max_epochs": self.max_epochs,
            "overrides": dict(self.overrides),
        }


@dataclass
class StudyConfig:
    """A parsed study YAML; :meth:`trials` expands it."""

    name: str
    base: str
    overrides: dict[str, Any]
    grid: dict[str, list[Any]]
    random: dict[str, Any] | None
    evaluation: dict[str, Any]
    resources: dict[str, Any]
    kind: str = "image"
    needs_data_root: bool = False

    def trials(self) -> list[Trial]:
        """Return the study's trials in a fixed order, without duplicates."""
        trials: list[Trial] = []
        if self.grid:
            objectives = self.grid.get("objective", [])
            seeds = self.grid.get("seed", [0])
            lengths = self.grid.get("max_epochs", [None])
            for objective, seed, length in itertools.product(
                objectives, seeds, lengths
            ):
                trials.append(Trial(objective, int(seed), length, self.overrides))
        if self.random:
            trials.extend(_random_trials(self.random, self.overrides))
        unique: dict[str, Trial] = {}
        for trial in trials:
            unique.setdefault(trial.trial_id, trial)
        return list(unique.values())


def _require_list(where: str, value: Any) -> list[Any]:
    if isinstance(value, list) and value:
        return value
    raise StudyConfigError(f"{where} must be a non-empty list, got {value!r}")


def _check_objective(where: str, spec: str) -> None:
    try:
        parse_terms(spec)
    except ValueError as error:
        raise StudyConfigError(f"{where}: {error}") from None


def _mapping(data: Mapping[str, Any], key: str, example: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise StudyConfigError(
            f"{key} must be a mapping such as {example}, got {value!r}"
        )
    return dict(value)


def _check_length(where: str, value: Any) -> None:
    if value is not None and (
        not isinstance(value, int) or isinstance(value, bool) or value < 1
    ):
        raise StudyConfigError(f"{where} must be a positive integer, got {value!r}")


def parse_study(
    data: Mapping[str, Any], *, source: str = "study config"
) -> StudyConfig:
    """Validate a study mapping (as loaded from YAML) and return a :class:`StudyConfig`.

    Raises:
        StudyConfigError: an unknown key, a missing base, an empty grid, an
            invalid objective, seed, length or distribution; the message names
            the key and lists the valid ones.
    """
    if not isinstance(data, Mapping):
        raise StudyConfigError(f"{source} must be a mapping, got {type(data).__name__}")
    unknown = set(data) - STUDY_KEYS
    if unknown:
        raise StudyConfigError(
            f"unknown key(s) {sorted(unknown)} in {source}; valid keys: {sorted(STUDY_KEYS)}"
        )
    if "base" not in data:
        raise StudyConfigError(
            f"{source} has no 'base': name the training config every trial starts "
            "from, such as 'base: digits'"
        )
    grid = dict(data.get("grid") or {})
    unknown = set(grid) - GRID_KEYS
    if unknown:
        raise StudyConfigError(
            f"unknown grid key(s) {sorted(unknown)} in {source}; valid: {sorted(GRID_KEYS)}"
        )
    if grid:
        grid["objective"] = _require_list("grid.objective", grid.get("objective"))
        for i, spec in enumerate(grid["objective"]):
            _check_objective(f"grid.objective[{i}]", spec)
        grid["seed"] = _require_list("grid.seed", grid.get("seed", [0]))
        for seed in grid["seed"]:
            if not isinstance(seed, int):
                raise StudyConfigError(
                    f"grid.seed entries must be integers, got {seed!r}"
                )
        grid["max_epochs"] = _require_list(
            "grid.max_epochs", grid.get("max_epochs", [None])
        )
        for length in grid["max_epochs"]:
            _check_length("grid.max_epochs entries", length)
    sweep = data.get("random")
    if sweep is not None:
        _check_random(sweep)
    if not grid and not sweep:
        raise StudyConfigError(
            f"{source} defines no trials: add a 'grid' or a 'random' section"
        )
    overrides = _mapping(data, "overrides", "{optim.batch_size: 256}")
    evaluation = _mapping(data, "evaluation", "{probe: fast, knn_k: 5}")
    kind, needs_data_root = _check_base_and_evaluation(
        str(data["base"]), overrides, evaluation
    )
    return StudyConfig(
        name=str(data.get("name", "study")),
        base=str(data["base"]),
        overrides=overrides,
        grid=grid,
        random=dict(sweep) if sweep else None,
        evaluation=evaluation,
        resources=dict(data.get("resources") or {}),
        kind=kind,
        needs_data_root=needs_data_root,
    )


def _check_base_and_evaluation(
    base: str, overrides: Mapping[str, Any], evaluation: Mapping[str, Any]
) -> tuple[str, bool]:
    """Load the base config with the study's overrides and check ``evaluation``.

    Returns the kind of the study, ``text`` or ``image``, and whether its base
    config leaves ``data.root`` empty for a dataset that needs a folder.

    Image studies take :class:`~alignsphere.evaluation.EvaluationSettings`
    fields, text studies (``data.name: text``) take
    :class:`~alignsphere.text.senteval.SentEvalSettings` fields, so that a typo
    fails here and not in every trial.
    """
    from dataclasses import fields

    from alignsphere.training.config import (
        ConfigError,
        apply_overrides,
        config_from_dict,
        read_config_file,
    )

    try:
        values = apply_overrides(
            read_config_file(base),
            [f"{key}={json.dumps(value)}" for key, value in overrides.items()],
        )
        # --data-root supplies the data folder when the study runs.
        data = values.setdefault("data", {})
        needs_data_root = False
        if isinstance(data, dict) and data.get("root") is None:
            needs_data_root = data.get("name", "digits") != "digits"
            data["root"] = "."
        config = config_from_dict(values)
    except ConfigError as error:
        raise StudyConfigError(
            f"base {base!r} with the study's overrides: {error}"
        ) from None
    kind = "text" if config.data.name == "text" else "image"
    settings_type = _settings_type(kind)
    valid = sorted(f.name for f in fields(settings_type))
    unknown = sorted(set(evaluation) - set(valid))
    if unknown:
        raise StudyConfigError(
            f"unknown evaluation key(s) {unknown}; valid for {kind} studies: {valid}"
        )
    try:
        settings_type(**evaluation).validate()
    except TypeError as error:
        raise StudyConfigError(
            f"evaluation: a value of {dict(evaluation)} has the wrong type ({error})"
        ) from None
    except ValueError as error:
        raise StudyConfigError(f"evaluation: {error}") from None
    if kind == "image" and "layers" in evaluation:
        _check_layers(config, evaluation["layers"])
    return kind, needs_data_root


def _settings_type(kind: str) -> type:
    """Return the evaluation settings class of a ``text`` or ``image`` study."""
    if kind == "text":
        from alignsphere.text.senteval import SentEvalSettings

        return SentEvalSettings
    from alignsphere.evaluation.report import EvaluationSettings

    return EvaluationSettings


def _check_layers(config: Any, layers: Sequence[str]) -> None:
    """Check the probed layers on the study's encoder, built once at random init.

    Every trial trains the same architecture, so a layer it lacks would make
    every trial fail after its training.
    """
    from alignsphere.evaluation.features import resolve_layer
    from alignsphere.training.data import resolve_preset
    from alignsphere.training.module import build_encoder_from_config

    try:
        encoder = build_encoder_from_config(config.model, resolve_preset(config.data))
    except (ValueError, KeyError) as error:
        raise StudyConfigError(f"base model {config.model}: {error}") from None
    for layer in layers:
        try:
            resolve_layer(encoder, layer)
        except ValueError as error:
            raise StudyConfigError(f"evaluation: layers: {error}") from None


def _check_random(sweep: Any) -> None:
    if not isinstance(sweep, Mapping):
        raise StudyConfigError(
            "random must be a mapping with num_samples, objective and space"
        )
    valid = {"num_samples", "seed", "objective", "space", "seeds", "max_epochs"}
    unknown = set(sweep) - valid
    if unknown:
        raise StudyConfigError(
            f"unknown random key(s) {sorted(unknown)}; valid: {sorted(valid)}"
        )
    samples = sweep.get("num_samples")
    if not isinstance(samples, int) or samples < 1:
        raise StudyConfigError(
            f"random.num_samples must be a positive integer, got {samples!r}"
        )
    template = sweep.get("objective")
    if not isinstance(template, str):
        raise StudyConfigError(
            "random.objective must be a template string such as "
            "'{w}*align(alpha=2) + 1*uniform(t={t})'"
        )
    space = sweep.get("space") or {}
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    missing = fields - set(space)
    if missing:
        raise StudyConfigError(
            f"random.objective uses {sorted(missing)} but random.space does not define them"
        )
    for name, dist in space.items():
        if (
            not isinstance(dist, Mapping)
            or len(dist) != 1
            or next(iter(dist)) not in DISTRIBUTIONS
        ):
            raise StudyConfigError(
                f"random.space.{name} must be one of {sorted(DISTRIBUTIONS)} with its "
                f"arguments, such as {{loguniform: [0.1, 10]}}; got {dist!r}"
            )
        kind, args = next(iter(dist.items()))
        if kind in ("uniform", "loguniform", "randint"):
            if not isinstance(args, list) or len(args) != 2 or not args[0] < args[1]:
                raise StudyConfigError(
                    f"random.space.{name}: {kind} takes [low, high] with low < high, got {args!r}"
                )
            if kind == "loguniform" and args[0] <= 0:
                raise StudyConfigError(f"random.space.{name}: loguniform needs low > 0")
        elif not isinstance(args, list) or not args:
            raise StudyConfigError(
                f"random.space.{name}: choice takes a non-empty list"
            )
    _check_length("random.max_epochs", sweep.get("max_epochs"))


def _draw(rng: random.Random, dist: Mapping[str, Any]) -> float | int | str:
    kind, args = next(iter(dist.items()))
    if kind == "uniform":
        return round(rng.uniform(*args), 4)
    if kind == "loguniform":
        return round(math.exp(rng.uniform(math.log(args[0]), math.log(args[1]))), 4)
    if kind == "randint":
        return rng.randint(args[0], args[1] - 1)
    return rng.choice(args)


def _random_trials(
    sweep: Mapping[str, Any], overrides: Mapping[str, Any]
) -> list[Trial]:
    rng = random.Random(int(sweep.get("seed", 0)))
    seeds = sweep.get("seeds", [0])
    trials = []
    for _ in range(sweep["num_samples"]):
        values = {name: _draw(rng, dist) for name, dist in sweep["space"].items()}
        objective = sweep["objective"].format(**values)
        _check_objective("random.objective", objective)
        for seed in seeds:
            trials.append(
                Trial(objective, int(seed), sweep.get("max_epochs"), overrides)
            )
    return trials


def load_study(path_or_name: str) -> StudyConfig:
    """Load a study YAML from a path, or a bundled study by name (``digits``, ...)."""
    import yaml

    path = Path(path_or_name)
    if not path.exists():
        bundled = Path(__file__).resolve().parent.parent / "configs" / "studies"
        candidate = bundled / f"{path_or_name}.yaml"
        if not candidate.exists():
            names = sorted(p.stem for p in bundled.glob("*.yaml"))
            raise StudyConfigError(
                f"study config {path_or_name!r} not found: give a YAML path or one of "
                f"the bundled studies {names}"
            )
        path = candidate
    if path.is_dir():
        raise StudyConfigError(
            f"study config {path} is a folder; give the path of a study YAML file"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise StudyConfigError(
            f"invalid YAML in {path}: {error}".splitlines()[0]
        ) from None
    return parse_study(data, source=str(path))


def objective_family(spec: str) -> str:
    """Classify an objective.

    The families are contrastive, quick_thought, align+uniform, align only,
    uniform only, and mixture (a contrastive term with align or uniform).
    """
    names = {term.name for term in parse_terms(spec) if term.weight > 0}
    contrastive = bool(names & {"contrastive", "contrastive_queue", "quick_thought"})
    align = "align" in names
    uniform = bool(names & {"uniform", "uniform_queue"})
    if contrastive and not (align or uniform):
        return "quick_thought" if names == {"quick_thought"} else "contrastive"
    if contrastive:
        return "mixture"
    if align and uniform:
        return "align+uniform"
    if align:
        return "align only"
    return "uniform only"


def settings_conflict(before: StudyConfig, after: StudyConfig) -> str | None:
    """Name the setting that differs between two studies sharing a folder, if any.

    The trials of one folder share their base config, overrides and
    evaluation: the trial ids cover objectives, seeds and lengths only, so
    results evaluated one way must not be reported as another. Objectives,
    seeds and lengths may change, because they change the trial ids.
    """
    for name in ("base", "overrides", "evaluation"):
        old, new = getattr(before, name), getattr(after, name)
        if name == "evaluation" and before.kind == after.kind:
            # Compare the settings the sections give, so that {} and the
            # defaults written out count as the same.
            same = _effective_evaluation(before) == _effective_evaluation(after)
        else:
            same = old == new
        if not same:
            return f"{name} was {old!r}, now {new!r}"
    return None


def _effective_evaluation(study: StudyConfig) -> dict[str, Any]:
    """Return every evaluation setting of a study, defaults filled in.

    ``progress`` is left out because it does not change any result.
    """
    from dataclasses import asdict

    values = asdict(_settings_type(study.kind)(**study.evaluation))
    values.pop("progress", None)
    return {
        key: list(value) if isinstance(value, list | tuple) else value
        for key, value in values.items()
    }
