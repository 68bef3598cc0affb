"""The fixed encoders that ``alignsphere theory`` checks Theorem 1 on.

Synthetic encoders are distributions on the sphere with positive pairs made by
a small perturbation (:class:`~alignsphere.theory.distributions.PerturbedPairs`).
A trained encoder contributes the features of two augmented views of held-out
images (:class:`~alignsphere.theory.distributions.FeaturePairs`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace

import torch

from alignsphere.theory.distributions import (
    FeaturePairs,
    PairDistribution,
    PerturbedPairs,
    UniformSphere,
    VonMisesFisher,
    VonMisesFisherMixture,
)

logger = logging.getLogger(__name__)

#: Perturbation of the synthetic positive pairs: E||x - y||^2 is about
#: 0.09 (d - 1) / d before the Metropolis step; see PerturbedPairs.
DEFAULT_NOISE = 0.3


@dataclass(frozen=True)
class Scenario:
    """A fixed encoder, its positive pairs and the temperature to check.

    Attributes:
        name: Short label for tables, legends and JSON.
        description: One line on what the encoder is.
        pairs: The positive pairs; negatives come from ``pairs.marginal``.
        tau: Temperature of the contrastive loss.
    """

    name: str
    description: str
    pairs: PairDistribution
    tau: float


def synthetic_scenarios(seed: int = 0) -> list[Scenario]:
    """Return the synthetic encoders of ``alignsphere theory``.

    Four cases at tau = 0.5 (uniform features on S^2 and S^31, a single
    von Mises-Fisher cluster on S^2, a mixture of 10 clusters on S^15) and one
    at tau = 0.1 (uniform on S^31), where e^(x.y/tau)/Z(y) is in the thousands
    and the gap reaches its 1/M regime only beyond M = 16384.

    Args:
        seed: Seed of the mixture's random mean directions.
    """
    generator = torch.Generator().manual_seed(seed)
    mixture = VonMisesFisherMixture.random(16, 10, 20.0, generator)
    north = torch.zeros(3, dtype=torch.float64)
    north[2] = 1.0
    noise = DEFAULT_NOISE
    return [
        Scenario(
            "uniform-d3",
            "uniform on S^2",
            PerturbedPairs(UniformSphere(3), noise),
            0.5,
        ),
        Scenario(
            "uniform-d32",
            "uniform on S^31",
            PerturbedPairs(UniformSphere(32), noise),
            0.5,
        ),
        Scenario(
            "vmf-d3",
            "one von Mises-Fisher cluster on S^2, kappa 5",
            PerturbedPairs(VonMisesFisher(north, 5.0), noise),
            0.5,
        ),
        Scenario(
            "mixture-d16",
            "10 von Mises-Fisher clusters on S^15, kappa 20, random means",
            PerturbedPairs(mixture, noise),
            0.5,
        ),
        Scenario(
            "uniform-d32-tau0.1",
            "uniform on S^31 at a low temperature",
            PerturbedPairs(UniformSphere(32), noise),
            0.1,
        ),
    ]


def checkpoint_scenario(
    path: str | os.PathLike[str],
    *,
    tau: float | None = None,
    num_images: int = 2000,
    seed: int = 0,
    data_root: str | None = None,
) -> Scenario:
    """Build the scenario of a trained encoder from its checkpoint.

    The encoder encodes two augmented views (its training augmentation, drawn
    with ``seed``) of up to ``num_images`` images of its test split, chosen per
    class in proportion. The 2N view features form the feature distribution,
    and the N view pairs the positive pairs.

    Args:
        path: ``encoder.pt``, a Lightning ``.ckpt`` or a run folder of
            ``alignsphere train``.
        tau: Temperature; defaults to the tau of a contrastive term in the
            checkpoint's objective, else 0.5.
        num_images: Test images to encode.
        seed: Seed of the subset and the views.
        data_root: Data folder, in place of the one stored in the checkpoint.

    Returns:
        A :class:`Scenario` named ``checkpoint``.

    Raises:
        alignsphere.training.checkpoint.CheckpointError: If the checkpoint is
            missing, unsafe or does not fit its architecture.
        alignsphere.data.DatasetNotFoundError: If its data is not found.
    """
    from alignsphere.evaluation.features import encode_views
    from alignsphere.evaluation.subsets import stratified_subset
    from alignsphere.losses.objective import Objective
    from alignsphere.training.checkpoint import load_encoder
    from alignsphere.training.data import load_split, resolve_preset

    encoder, config = load_encoder(path)
    data_config = config.data
    if data_root is not None:
        data_config = replace(data_config, root=data_root)
    test = load_split(data_config, data_config.test_split, None, seed)
    test = stratified_subset(test, num_images, seed)
    augmentation = resolve_preset(data_config).train_augmentation()
    view1, view2 = encode_views(encoder, test.images, augmentation, seed=seed)
    if tau is None:
        objective = Objective(config.objective)
        taus = [term.params["tau"] for term in objective.terms if "tau" in term.params]
        tau = float(taus[0]) if taus else 0.5
    logger.info(
        "checkpoint %s: %d view pairs of %s, d = %d, tau = %g",
        path,
        view1.shape[0],
        test.name,
        view1.shape[1],
        tau,
    )
    return Scenario(
        "checkpoint",
        f"{config.model.name} trained with {config.objective} "
        f"({view1.shape[0]} view pairs of {test.name})",
        FeaturePairs(view1, view2),
        float(tau),
    )
