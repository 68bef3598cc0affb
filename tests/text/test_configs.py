"""The bundled text configs and the validation of data.options."""

from __future__ import annotations

import pytest

from alignsphere.training.config import ConfigError, load_config


@pytest.mark.parametrize("name", ["gutenberg_gru_cpu", "bookcorpus_gru_gpu"])
def test_bundled_text_configs_load(name):
    config = load_config(name, ["data.root=/corpus"])
    assert config.data.name == "text"
    assert config.model.name == "gru"
    assert config.optim.optimizer == "adam"


def test_text_config_needs_root():
    with pytest.raises(ConfigError, match="data.root is required"):
        load_config("gutenberg_gru_cpu")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.options.layout=html", "valid values: paragraphs, lines"),
        ("data.options.min_freq=0", "min_freq=0"),
        ("data.options.heldout_fraction=1.5", "heldout_fraction"),
        ("data.options.lowercase=3", "expected bool"),
        ("data.preset=cifar10", "image datasets only"),
    ],
)
def test_invalid_text_options(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("gutenberg_gru_cpu", ["data.root=/corpus", override])


def test_options_rejected_for_images():
    with pytest.raises(ConfigError, match="data.name=text only"):
        load_config("digits", ["data.options.min_freq=2"])


def test_invalid_optimizer():
    with pytest.raises(ConfigError, match="valid values: sgd, adam"):
        load_config("digits", ["optim.optimizer=rmsprop"])
