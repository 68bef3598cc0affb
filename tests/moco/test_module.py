"""MoCoModule in the trainer: config, state layout, a short run, no evaluation leaks."""

from __future__ import annotations

import pytest
import torch

from alignsphere.evaluation.heldout import measure_heldout
from alignsphere.moco import MoCoModule, load_backbone_weights
from alignsphere.models import build_encoder
from alignsphere.training import ConfigError, load_config, load_encoder, train
from alignsphere.training.run import build_module

torch.set_num_threads(1)

MOCO_OVERRIDES = [
    "method=moco",
    "objective=3*align(alpha=2) + 1*uniform_queue(t=3)",
    "moco.queue_size=100",
    "optim.batch_size=64",
]


def test_bundled_configs_load():
    recipe = load_config("imagenet100_moco", ["data.root=/data/in100"])
    assert recipe.method == "moco"
    assert recipe.model.name == "resnet50"
    assert recipe.optim.batch_size == 128
    assert recipe.optim.learning_rate == pytest.approx(0.03)
    assert recipe.optim.milestones == [120, 160]
    assert recipe.moco.queue_size == 16384
    assert recipe.moco.momentum == pytest.approx(0.999)
    assert recipe.trainer.max_epochs == 200
    assert str(recipe.objective) == "3*align(alpha=2) + 1*uniform_queue(t=3)"
    v2 = load_config("imagenet100_mocov2", ["data.root=/data/in100"])
    assert v2.model.options["head"] == "mlp"
    assert v2.optim.schedule == "cosine"
    assert v2.data.preset == "imagenet"
    assert load_config("digits_moco").method == "moco"


def test_queue_term_needs_moco():
    with pytest.raises(ConfigError, match="need the MoCo queue; set method: moco"):
        load_config("digits", ["objective=1*uniform_queue(t=3)"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("moco.momentum=1.0", "invalid moco.momentum"),
        ("moco.queue_size=0", "invalid moco.queue_size"),
        ("moco.bn_splits=100", "smaller than moco.bn_splits=100"),
        ("method=byol", "invalid method='byol'"),
    ],
)
def test_invalid_moco_config(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("digits", [*MOCO_OVERRIDES, override])


def test_state_holds_query_encoder_once():
    module = build_module(load_config("digits", MOCO_OVERRIDES))
    assert isinstance(module, MoCoModule)
    keys = list(module.state_dict())
    assert not any(key.startswith("encoder.") for key in keys)
    assert "moco.queue" in keys
    assert module.encoder is module.moco.encoder_q
    optimizer = module.configure_optimizers()["optimizer"]
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert trained == {id(p) for p in module.moco.encoder_q.parameters()}


def test_evaluation_changes_nothing():
    module = MoCoModule(load_config("digits", MOCO_OVERRIDES))
    images = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8)
    view1, view2 = module.make_views(images, 0)
    module.train()
    module.compute_objective(view1, view2)
    queue = module.moco.queue.clone()
    pointer = module.moco.queue_ptr.clone()
    key_state = {k: v.clone() for k, v in module.moco.encoder_k.state_dict().items()}
    module.eval()
    with torch.no_grad():
        module.compute_objective(view1, view2)
        module(view1)
    measure_heldout(
        module.encoder,
        images,
        augmentation=module.augmentation,
        transform=module.preset.eval_transform(),
        alpha=2.0,
        t=2.0,
    )
    assert torch.equal(module.moco.queue, queue)
    assert torch.equal(module.moco.queue_ptr, pointer)
    for key, value in module.moco.encoder_k.state_dict().items():
        assert torch.equal(value, key_state[key]), key


def test_short_run_trains_and_exports(tmp_path):
    config = load_config(
        "digits_moco",
        [
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=3",
            "heldout.num_images=0",
            "trainer.log_every_n_steps=1",
            "moco.queue_size=300",
        ],
    )
    result = train(config, tmp_path / "run", progress_bar=False)
    checkpoint = torch.load(result.last_checkpoint, weights_only=True)
    # 3 steps of 128 keys into a queue of 300.
    assert int(checkpoint["state_dict"]["moco.queue_ptr"]) == 3 * 128 % 300
    from_ckpt, loaded_config = load_encoder(result.last_checkpoint)
    from_export, _ = load_encoder(result.encoder_path)
    assert loaded_config.method == "moco"
    for key, value in from_export.state_dict().items():
        assert torch.equal(from_ckpt.state_dict()[key], value), key
    bare = build_encoder("mlp", input_dim=64, in_channels=1, out_dim=32)
    report = load_backbone_weights(bare, result.last_checkpoint)
    assert report.unused == []
    for key, value in bare.state_dict().items():
        assert torch.equal(from_export.state_dict()[key], value), key
