r"""Distributions on the unit sphere that stand in for fixed encoders.

A fixed encoder f and a data distribution give a distribution of features on
:math:`S^{d-1}` and a distribution of positive pairs. The theory checks need
three things from them: samples, the log-density up to a constant (to make
positive pairs with the right marginal), and the closed form of
:math:`\log \mathbb{E}_{u \sim p}\, e^{u \cdot v}`, the log-partition that
Theorem 1's uniformity term and its Monte Carlo control variate use.

Every sampler returns float64 rows and takes a CPU ``torch.Generator``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch.nn import functional as F

from alignsphere.theory.special import (
    _check_dim,
    log_bessel_series,
    log_mean_exp_dot_uniform,
    vmf_log_normalizer,
)

_PROPOSAL_BATCH_MIN = 1024
_LOGIT_CELLS = 1 << 22


class SphereDistribution(ABC):
    """A distribution of unit vectors in R^d.

    Attributes:
        dim: Ambient dimension d; samples lie on :math:`S^{d-1}`.
    """

    dim: int

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` independent rows, float64, of shape ``(n, dim)``."""

    @abstractmethod
    def log_mean_exp_dot(self, v: torch.Tensor) -> torch.Tensor:
        r"""Return :math:`\log \mathbb{E}_{u \sim p}\, e^{u \cdot v}` for each row of ``v``.

        Args:
            v: ``(n, dim)`` vectors of any norm.

        Returns:
            float64 tensor of shape ``(n,)``.
        """

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        """Return the log-density of unit rows w.r.t. surface measure, up to a constant.

        Raises:
            NotImplementedError: For distributions without a density, such as
                a finite set of rows.
        """
        raise NotImplementedError(f"{type(self).__name__} has no density")


class UniformSphere(SphereDistribution):
    r"""The uniform distribution on :math:`S^{d-1}`, the optimum of uniformity.

    Args:
        dim: Ambient dimension d >= 2.

    Example:
        >>> u = UniformSphere(3).sample(4, torch.Generator().manual_seed(0))
        >>> u.shape, bool(torch.allclose(u.norm(dim=1), torch.ones(4, dtype=u.dtype)))
        (torch.Size([4, 3]), True)
    """

    def __init__(self, dim: int) -> None:
        _check_dim(dim)
        self.dim = int(dim)

    def __repr__(self) -> str:
        return f"UniformSphere(dim={self.dim})"

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        g = torch.randn(int(n), self.dim, dtype=torch.float64, generator=generator)
        return F.normalize(g, dim=1)

    def log_mean_exp_dot(self, v: torch.Tensor) -> torch.Tensor:
        return log_mean_exp_dot_uniform(v.double().norm(dim=1), self.dim)

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], dtype=torch.float64)


def sample_vmf(
    mean: torch.Tensor,
    kappa: float,
    n: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Draw von Mises-Fisher samples with Wood's rejection algorithm (1994).

    The cosine :math:`w = \mu \cdot x` is drawn by rejection from the envelope
    :math:`w = (1 - (1+b)z) / (1 - (1-b)z)` with
    :math:`z \sim \mathrm{Beta}((d-1)/2, (d-1)/2)`; the rest of x is a uniform
    direction orthogonal to :math:`\mu` scaled by :math:`\sqrt{1 - w^2}`.
    The Beta variable is taken as :math:`(1 - g_1/\lVert g \rVert)/2` for a
    standard normal g in R^d, because ``torch.distributions.Beta`` takes no
    generator. :math:`1 - w^2` is computed from its factored form, so samples
    stay on the sphere for any :math:`\kappa`.

    Args:
        mean: Mean direction, a vector of d >= 2 entries (normalised here).
        kappa: Concentration >= 0; 0 gives the uniform distribution.
        n: Number of samples.
        generator: CPU random generator.

    Returns:
        ``(n, d)`` float64 unit rows.

    Example:
        >>> mu = torch.tensor([0.0, 0.0, 1.0])
        >>> x = sample_vmf(mu, 50.0, 1000, torch.Generator().manual_seed(0))
        >>> bool((x @ mu.double()).mean() > 0.97)  # A_3(50) = coth(50) - 1/50 = 0.98
        True
    """
    mean = _unit_vector(mean, "mean")
    kappa = _check_kappa(kappa)
    frame = _sample_vmf_frame(mean.numel(), kappa, int(n), generator)
    return _reflect_first_axis_to(frame, mean[None, :])


def _sample_vmf_frame(
    d: int, kappa: float, n: int, generator: torch.Generator | None
) -> torch.Tensor:
    """Draw von Mises-Fisher samples around the first axis e_1 (Wood's algorithm)."""
    if n == 0:
        return torch.empty(0, d, dtype=torch.float64)
    # b = (-2k + sqrt(4k^2 + (d-1)^2)) / (d-1), rewritten without cancellation.
    b = (d - 1) / (2 * kappa + math.sqrt(4 * kappa**2 + (d - 1) ** 2))
    x0 = (1 - b) / (1 + b)
    c = kappa * x0 + (d - 1) * math.log(1 - x0**2)

    cosines: list[torch.Tensor] = []
    sines: list[torch.Tensor] = []
    accepted = 0
    while accepted < n:
        batch = max(_PROPOSAL_BATCH_MIN, int(1.25 * (n - accepted)))
        g = torch.randn(batch, d, dtype=torch.float64, generator=generator)
        rest_sq = g[:, 1:].square().sum(dim=1)
        norm_sq = rest_sq + g[:, 0].square()
        z = (1 - g[:, 0] / norm_sq.sqrt()) / 2
        # z (1 - z) = |g without its first entry|^2 / (4 |g|^2), exactly.
        z_one_minus_z = rest_sq / (4 * norm_sq)
        denominator = 1 - (1 - b) * z
        w = (1 - (1 + b) * z) / denominator
        one_minus_w_sq = 4 * b * z_one_minus_z / denominator.square()
        u = torch.rand(batch, dtype=torch.float64, generator=generator)
        keep = kappa * w + (d - 1) * torch.log1p(-x0 * w) - c >= u.log()
        cosines.append(w[keep])
        sines.append(one_minus_w_sq[keep].clamp_min(0).sqrt())
        accepted += int(keep.sum())
    w = torch.cat(cosines)[:n]
    sine = torch.cat(sines)[:n]
    tangent = F.normalize(
        torch.randn(n, d - 1, dtype=torch.float64, generator=generator), dim=1
    )
    return torch.cat([w[:, None], sine[:, None] * tangent], dim=1)


def _reflect_first_axis_to(
    rows: torch.Tensor, directions: torch.Tensor
) -> torch.Tensor:
    """Apply to each row the Householder reflection that maps e_1 to its direction.

    ``directions`` is ``(1, d)`` for one direction or ``(n, d)`` for one per row.
    """
    axis = -directions.clone()
    axis[:, 0] += 1
    norm_sq = axis.square().sum(dim=1)
    # A direction equal to e_1 needs no reflection (and has a zero axis).
    scale = torch.where(norm_sq > 1e-30, 2 / norm_sq.clamp_min(1e-30), 0.0)
    return rows - (scale * (rows * axis).sum(dim=1))[:, None] * axis


class VonMisesFisher(SphereDistribution):
    r"""The von Mises-Fisher distribution, density :math:`C_d(\kappa)\,e^{\kappa\mu\cdot x}`.

    Args:
        mean: Mean direction :math:`\mu` (normalised here), d >= 2 entries.
        kappa: Concentration >= 0.
    """

    def __init__(self, mean: torch.Tensor | Sequence[float], kappa: float) -> None:
        self.mean = _unit_vector(torch.as_tensor(mean), "mean")
        self.kappa = _check_kappa(kappa)
        self.dim = self.mean.numel()

    def __repr__(self) -> str:
        return f"VonMisesFisher(dim={self.dim}, kappa={self.kappa:g})"

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return sample_vmf(self.mean, self.kappa, n, generator)

    def log_mean_exp_dot(self, v: torch.Tensor) -> torch.Tensor:
        # E e^{u.v} = C_d(k) / C_d(|k mu + v|), because the product of the
        # density and e^{u.v} is an unnormalised vMF with parameter k mu + v.
        shifted = (self.kappa * self.mean[None, :] + v.double()).norm(dim=1)
        nu = self.dim / 2 - 1
        return log_bessel_series(nu, shifted) - log_bessel_series(nu, self.kappa)

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        return self.kappa * (x.double() @ self.mean)


class VonMisesFisherMixture(SphereDistribution):
    """A finite mixture of von Mises-Fisher components, a clustered encoder.

    Args:
        means: ``(K, d)`` mean directions (each normalised here).
        kappas: K concentrations >= 0, or one shared value.
        weights: K mixture weights > 0 (normalised here); equal by default.

    Raises:
        ValueError: On mismatched lengths, non-positive weights or d < 2.
    """

    def __init__(
        self,
        means: torch.Tensor,
        kappas: float | Sequence[float],
        weights: Sequence[float] | None = None,
    ) -> None:
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.dim() != 2 or means.shape[0] < 1:
            raise ValueError(
                f"means must have shape (K, d) with K >= 1, got {tuple(means.shape)}"
            )
        self.components = [
            VonMisesFisher(mean, kappa)
            for mean, kappa in zip(
                means, _broadcast("kappas", kappas, means.shape[0]), strict=True
            )
        ]
        self.means = torch.stack([c.mean for c in self.components])
        self.kappas = torch.tensor(
            [c.kappa for c in self.components], dtype=torch.float64
        )
        raw = _broadcast("weights", 1.0 if weights is None else weights, len(means))
        if any(not (w > 0 and math.isfinite(w)) for w in raw):
            raise ValueError(f"weights must be finite and > 0, got {raw}")
        total = sum(raw)
        self.weights = torch.tensor([w / total for w in raw], dtype=torch.float64)
        self.dim = self.components[0].dim

    @classmethod
    def random(
        cls,
        dim: int,
        num_components: int,
        kappa: float,
        generator: torch.Generator | None = None,
    ) -> VonMisesFisherMixture:
        """Build an equal-weight mixture with uniformly random mean directions."""
        means = UniformSphere(dim).sample(num_components, generator)
        return cls(means, kappa)

    def __repr__(self) -> str:
        kappas = sorted(set(self.kappas.tolist()))
        return (
            f"VonMisesFisherMixture(dim={self.dim}, "
            f"components={len(self.components)}, kappas={kappas})"
        )

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        n = int(n)
        choice = torch.multinomial(
            self.weights, n, replacement=True, generator=generator
        )
        out = torch.empty(n, self.dim, dtype=torch.float64)
        # One rejection loop per distinct concentration, each row reflected to
        # the mean of its component.
        for kappa in sorted(set(self.kappas.tolist())):
            rows = (self.kappas[choice] == kappa).nonzero().squeeze(1)
            frame = _sample_vmf_frame(self.dim, kappa, rows.numel(), generator)
            out[rows] = _reflect_first_axis_to(frame, self.means[choice[rows]])
        return out

    def log_mean_exp_dot(self, v: torch.Tensor) -> torch.Tensor:
        v = v.double()
        # |k mu + v|^2 for every row and component, from one matrix product.
        shifted_sq = (
            v.square().sum(dim=1, keepdim=True)
            + self.kappas.square()[None, :]
            + 2 * v @ (self.kappas[:, None] * self.means).T
        )
        nu = self.dim / 2 - 1
        per_component = log_bessel_series(
            nu, shifted_sq.clamp_min(0).sqrt()
        ) - log_bessel_series(nu, self.kappas)
        return torch.logsumexp(per_component + self.weights.log()[None, :], dim=1)

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        per_component = self.kappas[None, :] * (x.double() @ self.means.T)
        per_component = per_component + vmf_log_normalizer(self.dim, self.kappas)
        return torch.logsumexp(per_component + self.weights.log()[None, :], dim=1)


class EmpiricalSphere(SphereDistribution):
    """The uniform distribution over a finite set of unit rows.

    Used for the features of a trained encoder: negatives are rows drawn with
    replacement, and :meth:`log_mean_exp_dot` is the exact mean over all rows.

    Args:
        rows: ``(N, d)`` unit rows, N >= 1 (normalised here in float64).
    """

    def __init__(self, rows: torch.Tensor) -> None:
        rows = torch.as_tensor(rows).double()
        if rows.dim() != 2 or rows.shape[0] < 1 or rows.shape[1] < 2:
            raise ValueError(
                f"rows must have shape (N, d) with N >= 1 and d >= 2, got "
                f"{tuple(rows.shape)}"
            )
        if not bool(torch.isfinite(rows).all()):
            raise ValueError("rows contain NaN or infinite values")
        norms = rows.norm(dim=1)
        if bool((norms == 0).any()):
            raise ValueError("rows contain zero vectors, which have no direction")
        self.rows = rows / norms[:, None]
        self.dim = rows.shape[1]

    def __repr__(self) -> str:
        return f"EmpiricalSphere(rows={self.rows.shape[0]}, dim={self.dim})"

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        index = torch.randint(0, self.rows.shape[0], (int(n),), generator=generator)
        return self.rows[index]

    def log_mean_exp_dot(self, v: torch.Tensor) -> torch.Tensor:
        v = v.double()
        count = self.rows.shape[0]
        out = torch.empty(v.shape[0], dtype=torch.float64)
        # Blocks of rows of v, so a block of logits stays near 32 MiB.
        block = max(1, _LOGIT_CELLS // count)
        for start in range(0, v.shape[0], block):
            logits = v[start : start + block] @ self.rows.T
            out[start : start + block] = torch.logsumexp(logits, dim=1)
        return out - math.log(count)


class PairDistribution(ABC):
    """A distribution of positive pairs (x, y) whose marginals equal ``marginal``.

    Attributes:
        marginal: The distribution of x and of y, which the negatives come from.
    """

    marginal: SphereDistribution

    @abstractmethod
    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` pairs as two float64 ``(n, d)`` tensors, row i of each a pair."""


class PerturbedPairs(PairDistribution):
    r"""Positive pairs made by a small random perturbation, with exact marginals.

    x is drawn from ``marginal``. The proposal is
    :math:`y' = (x + \sigma g / \sqrt{d}) / \lVert \cdot \rVert` with g standard
    normal, so :math:`\mathbb{E}\lVert y' - x \rVert^2 = \sigma^2 (d-1)/d` to
    first order in :math:`\sigma` (the part of g along x only rescales).
    It is kept with probability
    :math:`\min(1, p(y')/p(x))` and otherwise y = x: a Metropolis step. The
    proposal density depends on :math:`x \cdot y'` alone, so it is symmetric, and
    the step makes the joint law of (x, y) symmetric with both marginals equal to
    p, as Theorem 1 assumes of positive pairs. For the uniform distribution
    every proposal is kept.

    Args:
        marginal: A distribution with a :meth:`~SphereDistribution.log_density`.
        noise: :math:`\sigma > 0`.
    """

    def __init__(self, marginal: SphereDistribution, noise: float) -> None:
        if not (noise > 0 and math.isfinite(noise)):
            raise ValueError(f"noise must be finite and > 0, got {noise!r}")
        self.marginal = marginal
        self.noise = float(noise)

    def __repr__(self) -> str:
        return f"PerturbedPairs({self.marginal!r}, noise={self.noise:g})"

    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.marginal.sample(n, generator)
        d = self.marginal.dim
        step = torch.randn(x.shape, dtype=torch.float64, generator=generator)
        proposal = F.normalize(x + self.noise / math.sqrt(d) * step, dim=1)
        u = torch.rand(x.shape[0], dtype=torch.float64, generator=generator)
        if isinstance(self.marginal, UniformSphere):
            return x, proposal
        log_ratio = self.marginal.log_density(proposal) - self.marginal.log_density(x)
        keep = u.log() < log_ratio
        return x, torch.where(keep[:, None], proposal, x)


class FeaturePairs(PairDistribution):
    """Positive pairs from paired feature rows, such as two views of each image.

    A pair is row i of ``view1`` with row i of ``view2``, in a random order. So
    the joint law is symmetric, and both marginals equal ``marginal``: the
    empirical distribution of all 2N rows, which the negatives come from.

    Args:
        view1: ``(N, d)`` features of the first views.
        view2: ``(N, d)`` features of the second views.
    """

    def __init__(self, view1: torch.Tensor, view2: torch.Tensor) -> None:
        if view1.shape != view2.shape:
            raise ValueError(
                f"view1 and view2 must have the same shape, got {tuple(view1.shape)} "
                f"and {tuple(view2.shape)}"
            )
        self.marginal = EmpiricalSphere(torch.cat([view1, view2]))
        self.num_pairs = view1.shape[0]

    def __repr__(self) -> str:
        return f"FeaturePairs(pairs={self.num_pairs}, dim={self.marginal.dim})"

    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.marginal.rows
        index = torch.randint(0, self.num_pairs, (int(n),), generator=generator)
        swap = torch.rand(int(n), generator=generator) < 0.5
        first = torch.where(swap, index + self.num_pairs, index)
        second = torch.where(swap, index, index + self.num_pairs)
        return rows[first], rows[second]


def _unit_vector(vector: torch.Tensor, name: str) -> torch.Tensor:
    vector = torch.as_tensor(vector, dtype=torch.float64).reshape(-1)
    if vector.numel() < 2:
        raise ValueError(f"{name} must have at least 2 entries, got {vector.numel()}")
    norm = float(vector.norm())
    if not (norm > 0 and math.isfinite(norm)):
        raise ValueError(f"{name} must be a finite non-zero vector, got norm {norm}")
    return vector / norm


def _check_kappa(kappa: float) -> float:
    kappa = float(kappa)
    if not (kappa >= 0 and math.isfinite(kappa)):
        raise ValueError(f"kappa must be finite and >= 0, got {kappa!r}")
    return kappa


def _broadcast(name: str, value: float | Sequence[float], count: int) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)] * count
    values = [float(v) for v in value]
    if len(values) != count:
        raise ValueError(f"{name} must have {count} entries, got {len(values)}")
    return values
