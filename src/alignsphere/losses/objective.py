"""The combined objective and its one spelling for the API, YAML, grids and CLI.

A spec is a sum of weighted terms::

    1*align(alpha=2) + 1*uniform(t=2) + 0.5*contrastive(tau=0.2)

or the same terms as a list of mappings, as YAML writes them::

    - {term: align, weight: 1, alpha: 2}
    - {term: uniform, weight: 1, t: 2}

A weight defaults to 1 and every parameter to the value in :data:`TERMS`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from alignsphere.losses.align_uniform import (
    align_loss,
    uniform_loss,
    uniform_queue_loss,
)
from alignsphere.losses.contrastive import contrastive_loss, contrastive_queue_loss
from alignsphere.losses.quick_thought import quick_thought_loss


@dataclass(frozen=True)
class TermSpec:
    """A loss term's parameters, their defaults, and whether it needs a queue."""

    defaults: Mapping[str, float | bool]
    needs_queue: bool
    doc: str


TERMS: dict[str, TermSpec] = {
    "align": TermSpec({"alpha": 2.0}, False, "E ||z1 - z2||^alpha over positive pairs"),
    "uniform": TermSpec(
        {"t": 2.0}, False, "log E exp(-t ||zi - zj||^2), averaged over the two views"
    ),
    "contrastive": TermSpec({"tau": 0.5}, False, "symmetric in-batch NT-Xent"),
    "uniform_queue": TermSpec(
        {"t": 2.0, "intra_batch": True}, True, "uniformity of queries against the queue"
    ),
    "contrastive_queue": TermSpec({"tau": 0.07}, True, "MoCo InfoNCE with the queue"),
    "quick_thought": TermSpec(
        {"tau": 0.1}, False, "symmetric cross-view InfoNCE of adjacent sentences"
    ),
}

_POSITIVE_PARAMS = {"alpha", "t", "tau"}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TERM_RE = re.compile(
    rf"\s*(?:(?P<weight>{_NUMBER})\s*\*\s*)?"
    r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*"
    r"(?:\((?P<args>[^()]*)\))?\s*"
)


@dataclass(frozen=True)
class Term:
    """One weighted term of an objective."""

    name: str
    weight: float = 1.0
    params: Mapping[str, float | bool] = field(default_factory=dict)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={_format_value(v)}" for k, v in self.params.items())
        return f"{_format_value(self.weight)}*{self.name}({args})"


def _format_value(value: float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}"


def _valid_terms() -> str:
    return ", ".join(f"{n}({', '.join(s.defaults)})" for n, s in TERMS.items())


def _make_term(name: str, weight: Any, params: Mapping[str, Any], where: str) -> Term:
    if name not in TERMS:
        raise ValueError(
            f"unknown objective term {name!r} in {where}; valid terms: {_valid_terms()}"
        )
    spec = TERMS[name]
    try:
        weight = float(weight)
    except (TypeError, ValueError):
        raise ValueError(
            f"weight of {name} in {where} must be a number, got {weight!r}"
        ) from None
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(
            f"weight of {name} in {where} must be a finite number >= 0, got {weight!r}"
        )
    resolved: dict[str, float | bool] = dict(spec.defaults)
    for key, value in params.items():
        if key not in spec.defaults:
            valid = ", ".join(spec.defaults) or "none"
            raise ValueError(
                f"unknown parameter {key!r} of {name} in {where}; valid: {valid}"
            )
        resolved[key] = _coerce(name, key, value, spec.defaults[key], where)
    return Term(name, weight, resolved)


def _coerce(name: str, key: str, value: Any, default: Any, where: str) -> float | bool:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ValueError(
            f"{name}({key}=...) in {where} must be true or false, got {value!r}"
        )
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name}({key}=...) in {where} must be a number, got {value!r}"
        ) from None
    if key in _POSITIVE_PARAMS and (not math.isfinite(number) or number <= 0):
        raise ValueError(f"{name}({key}=...) in {where} must be > 0, got {value!r}")
    return number


def parse_terms(spec: str | Sequence[Mapping[str, Any]]) -> list[Term]:
    """Parse an objective spec string or list of mappings into terms.

    Raises:
        ValueError: empty spec, a syntax error (with its position), an unknown term
            or parameter (with the valid ones), or an invalid value.
    """
    if isinstance(spec, str):
        return _parse_string(spec)
    if isinstance(spec, Sequence):
        terms = []
        for i, item in enumerate(spec):
            where = f"objective item {i}"
            if not isinstance(item, Mapping) or "term" not in item:
                raise ValueError(
                    f"{where} must be a mapping with a 'term' key, such as "
                    f"{{term: align, weight: 1, alpha: 2}}; got {item!r}"
                )
            params = {k: v for k, v in item.items() if k not in ("term", "weight")}
            terms.append(
                _make_term(str(item["term"]), item.get("weight", 1.0), params, where)
            )
        if not terms:
            raise ValueError("objective is empty; give at least one term")
        return terms
    raise TypeError(
        f"objective must be a string or a list of mappings, got {type(spec).__name__}"
    )


def _parse_string(spec: str) -> list[Term]:
    if not spec.strip():
        raise ValueError(
            "objective is empty; give at least one term such as "
            "'1*align(alpha=2) + 1*uniform(t=2)'"
        )
    terms = []
    pos = 0
    while True:
        match = _TERM_RE.match(spec, pos)
        if match is None or match.end() == pos:
            raise ValueError(
                f"cannot parse objective {spec!r} at character {pos}: expected a term "
                "like 'weight*name(key=value, ...)'"
            )
        params: dict[str, str] = {}
        args = match["args"]
        if args and args.strip():
            for item in args.split(","):
                key, sep, value = item.partition("=")
                if not sep or not key.strip() or not value.strip():
                    raise ValueError(
                        f"cannot parse {item.strip()!r} in objective {spec!r}: "
                        "parameters are written key=value"
                    )
                params[key.strip()] = value.strip()
        weight = match["weight"] if match["weight"] is not None else 1.0
        terms.append(_make_term(match["name"], weight, params, f"objective {spec!r}"))
        pos = match.end()
        if pos == len(spec):
            return terms
        if spec[pos] != "+":
            raise ValueError(
                f"cannot parse objective {spec!r} at character {pos}: terms are "
                f"joined by '+', found {spec[pos]!r}"
            )
        pos += 1


@dataclass
class ObjectiveOutput:
    """The weighted total and each unweighted term, named for logging."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


class Objective(nn.Module):
    """A weighted sum of alignment, uniformity and contrastive terms.

    ``forward(z1, z2)`` takes the two views' unit features; for MoCo, z1 are the
    queries, z2 the keys, and ``queue`` the ``(K, d)`` negatives.

    Args:
        spec: A spec string, a list of term mappings, or a list of :class:`Term`.
        gather: Under ``torch.distributed``, compute uniformity, the in-batch
            contrastive loss and the queue term's intra-batch pairs over the
            batch gathered from all ranks (gradients flow to every rank), so that
            W processes train like one with the global batch. False keeps each
            rank's own batch, as the reference implementations do. Defaults to True.

    Example:
        >>> objective = Objective("1*align(alpha=2) + 1*uniform(t=2)")
        >>> z = torch.nn.functional.normalize(torch.randn(8, 4), dim=1)
        >>> out = objective(z, z)
        >>> sorted(out.terms)
        ['align', 'uniform']
    """

    def __init__(
        self,
        spec: str | Sequence[Mapping[str, Any]] | Sequence[Term],
        *,
        gather: bool = True,
    ) -> None:
        super().__init__()
        if (
            isinstance(spec, Sequence)
            and spec
            and all(isinstance(s, Term) for s in spec)
        ):
            self.terms = list(spec)
        else:
            self.terms = parse_terms(spec)  # type: ignore[arg-type]
        self.gather = gather
        names = [t.name for t in self.terms]
        self._keys = [
            t.name if names.count(t.name) == 1 else str(t).split("*", 1)[1]
            for t in self.terms
        ]
        if len(set(self._keys)) != len(self._keys):
            raise ValueError(
                f"objective {self} repeats a term with the same parameters"
            )

    @property
    def needs_queue(self) -> bool:
        """True when a term needs a MoCo queue."""
        return any(TERMS[t.name].needs_queue for t in self.terms)

    def __str__(self) -> str:
        return " + ".join(str(t) for t in self.terms)

    def extra_repr(self) -> str:
        return f"'{self}', gather={self.gather}"

    def forward(
        self,
        z1: torch.Tensor,
        z2: torch.Tensor,
        queue: torch.Tensor | None = None,
    ) -> ObjectiveOutput:
        if self.needs_queue and queue is None:
            raise ValueError(
                f"objective {self} has a queue term but no queue was given"
            )
        values: dict[str, torch.Tensor] = {}
        total = z1.new_zeros((), dtype=torch.float32)
        for key, term in zip(self._keys, self.terms, strict=True):
            value = self._compute(term, z1, z2, queue)
            values[key] = value
            total = total + term.weight * value
        return ObjectiveOutput(total, values)

    def _compute(
        self,
        term: Term,
        z1: torch.Tensor,
        z2: torch.Tensor,
        queue: torch.Tensor | None,
    ) -> torch.Tensor:
        p = term.params
        if term.name == "align":
            return align_loss(z1, z2, float(p["alpha"]))
        if term.name == "uniform":
            t = float(p["t"])
            return (
                uniform_loss(z1, t, gather=self.gather)
                + uniform_loss(z2, t, gather=self.gather)
            ) / 2
        if term.name == "contrastive":
            return contrastive_loss(z1, z2, float(p["tau"]), gather=self.gather)
        if term.name == "quick_thought":
            return quick_thought_loss(z1, z2, float(p["tau"]), gather=self.gather)
        assert queue is not None
        if term.name == "uniform_queue":
            return uniform_queue_loss(
                z1,
                queue,
                float(p["t"]),
                intra_batch=bool(p["intra_batch"]),
                gather=self.gather,
            )
        if term.name == "contrastive_queue":
            return contrastive_queue_loss(z1, z2, queue, float(p["tau"]))
        raise AssertionError(f"term {term.name} has no implementation")


def parse_objective(
    spec: str | Sequence[Mapping[str, Any]] | Objective, *, gather: bool = True
) -> Objective:
    """Return an :class:`Objective` for a spec string, a list of mappings, or itself."""
    if isinstance(spec, Objective):
        return spec
    return Objective(spec, gather=gather)


ObjectiveSpec = str | Sequence[Mapping[str, Any]] | Objective
