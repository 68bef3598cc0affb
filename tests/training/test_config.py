"""Training configs: bundled recipes, overrides and validation errors."""

from __future__ import annotations

import pytest

from alignsphere.training.config import (
    ConfigError,
    TrainConfig,
    bundled_config_names,
    config_from_dict,
    dump_config,
    load_config,
    parse_override,
)


def test_bundled_names():
    assert bundled_config_names() == [
        "bookcorpus_gru_gpu",
        "cifar10_cpu",
        "cifar10_resnet18",
        "digits",
        "digits_moco",
        "gutenberg_gru_cpu",
        "imagenet100_moco",
        "imagenet100_mocov2",
        "stl10_alexnet",
    ]


@pytest.mark.parametrize("name", ["cifar10_cpu", "cifar10_resnet18", "stl10_alexnet"])
def test_bundled_configs_need_root(name):
    with pytest.raises(ConfigError, match="data.root is required"):
        load_config(name)
    config = load_config(name, ["data.root=/data"])
    assert config.data.root == "/data"


def test_stl10_recipe_matches_paper():
    config = load_config("stl10_alexnet", ["data.root=/data"])
    assert config.model.name == "alexnet"
    assert config.optim.batch_size == 768
    assert config.optim.learning_rate == pytest.approx(0.12 * 768 / 256)
    assert config.optim.momentum == 0.9
    assert config.optim.weight_decay == 1e-4
    assert config.optim.milestones == [155, 170, 185]
    assert config.optim.gamma == 0.1
    assert config.trainer.max_epochs == 200
    assert config.objective == "1*align(alpha=2) + 1*uniform(t=2)"
    assert config.data.train_split == "train+unlabeled"
    assert config.data.preset == "stl10"


def test_overrides_set_nested_fields():
    config = load_config(
        "digits",
        [
            "trainer.max_epochs=3",
            "optim.milestones=[2, 3]",
            "optim.lr=0.05",
            "objective=3*align(alpha=2) + 1*uniform(t=3)",
            "model.options.norm=none",
            "gather=false",
            "optim.weight_decay=1e-5",
        ],
    )
    assert config.trainer.max_epochs == 3
    assert config.optim.milestones == [2, 3]
    assert config.optim.learning_rate == 0.05
    assert config.objective == "3*align(alpha=2) + 1*uniform(t=3)"
    assert config.model.options == {"norm": "none"}
    assert config.gather is False
    assert config.optim.weight_decay == 1e-5


def test_objective_as_list_of_terms():
    config = config_from_dict(
        {"objective": [{"term": "align", "weight": 1, "alpha": 2}, {"term": "uniform"}]}
    )
    assert config.objective[1] == {"term": "uniform"}


def test_dump_round_trip(tmp_path):
    config = load_config("digits", ["trainer.max_epochs=4"])
    path = tmp_path / "run.yaml"
    path.write_text(dump_config(config))
    assert load_config(str(path)) == config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epoch=3", r"unknown key 'trainer.max_epoch' in trainer; valid"),
        ("trainr.max_epochs=3", r"unknown key 'trainr'.*valid keys: seed, objective"),
        ("trainer.max_epochs.x=3", "has no sub-keys"),
        ("trainer.max_epochs=three", r"invalid trainer.max_epochs='three'"),
        ("trainer.max_epochs=0", r"trainer.max_epochs=0; it must be >= 1"),
        ("optim.batch_size=1.5", "expected an integer"),
        ("optim.schedule=linear", "valid values: step, cosine, constant"),
        ("optim.milestones=[5, 3]", "increasing"),
        ("optim.lr=-1", "finite number > 0"),
        ("gather=maybe", "expected true or false"),
        ("objective=1*allign()", "unknown objective term 'allign'"),
        ("data.name=mnist", "valid values: digits, cifar10, stl10, imagefolder"),
        ("data.preset=cifar", "valid values:"),
        ("heldout.num_images=1", "0 \\(off\\) or >= 2"),
        ("trainer.max_epochs", "write KEY=VALUE"),
    ],
)
def test_invalid_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("digits", [override])


def test_unknown_config_name_lists_bundled():
    with pytest.raises(ConfigError, match="unknown config 'digit'; bundled configs: "):
        load_config("digit")


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.yaml"))


def test_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("trainer: {max_epochs: 3\n")
    with pytest.raises(ConfigError, match="invalid YAML in .*bad.yaml"):
        load_config(str(path))


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must contain a mapping"):
        load_config(str(path))


def test_unknown_key_in_file(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown key 'optim.learning_rate'.*base_lr"):
        load_config(str(path))


def test_parse_override_keeps_text_that_is_not_yaml():
    assert parse_override("objective=*align") == (["objective"], "*align")
    assert parse_override("data.root=null") == (["data", "root"], None)


def test_learning_rate_scaling():
    config = TrainConfig()
    config.optim.batch_size = 512
    assert config.optim.learning_rate == pytest.approx(0.24)
