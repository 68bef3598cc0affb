"""The encoders that alignsphere theory checks: synthetic and from a checkpoint."""

from __future__ import annotations

import pytest
import torch

from alignsphere.theory.distributions import FeaturePairs
from alignsphere.theory.scenarios import checkpoint_scenario, synthetic_scenarios


def _save_untrained_encoder(path, overrides):
    from alignsphere.training.checkpoint import save_encoder_file
    from alignsphere.training.config import load_config
    from alignsphere.training.data import resolve_preset
    from alignsphere.training.module import build_encoder_from_config

    config = load_config("digits", ["model.out_dim=8", *overrides])
    torch.manual_seed(0)
    encoder = build_encoder_from_config(config.model, resolve_preset(config.data))
    return save_encoder_file(path, encoder, config.to_dict())


def test_synthetic_scenarios_are_valid():
    scenarios = synthetic_scenarios()
    names = [scenario.name for scenario in scenarios]
    assert len(set(names)) == len(names)
    for scenario in scenarios:
        x, y = scenario.pairs.sample(16, torch.Generator().manual_seed(0))
        assert x.shape == y.shape == (16, scenario.pairs.marginal.dim)
        assert scenario.tau > 0


def test_cli_lists_the_synthetic_scenarios():
    from alignsphere.cli.theory import _SYNTHETIC_NAMES

    assert list(_SYNTHETIC_NAMES) == [s.name for s in synthetic_scenarios()]


def test_checkpoint_scenario_encodes_two_views(tmp_path):
    path = _save_untrained_encoder(tmp_path / "encoder.pt", [])
    scenario = checkpoint_scenario(path, num_images=100)
    assert scenario.name == "checkpoint"
    assert isinstance(scenario.pairs, FeaturePairs)
    assert scenario.pairs.num_pairs == 100
    assert scenario.pairs.marginal.dim == 8
    # The objective has no contrastive term, so tau falls back to 0.5.
    assert scenario.tau == 0.5


def test_checkpoint_scenario_takes_tau_of_objective(tmp_path):
    path = _save_untrained_encoder(
        tmp_path / "encoder.pt", ["objective=1*contrastive(tau=0.2)"]
    )
    assert checkpoint_scenario(path, num_images=50).tau == 0.2
    assert checkpoint_scenario(path, num_images=50, tau=0.7).tau == 0.7


def test_checkpoint_scenario_rejects_missing_file(tmp_path):
    from alignsphere.training.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="not found"):
        checkpoint_scenario(tmp_path / "missing.pt")
