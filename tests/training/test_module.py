"""The LightningModule's optimiser, schedules, views and data order."""

from __future__ import annotations

import pytest
import torch

from alignsphere.training import HypersphereModule, build_optimizer, load_config
from alignsphere.training.data import ImageDataModule, resolve_preset, view_generator

torch.set_num_threads(1)


def test_paper_learning_rate_scaling():
    config = load_config("stl10_alexnet", ["data.root=/data"])
    optimizer, scheduler = build_optimizer([torch.nn.Parameter(torch.ones(2))], config)
    group = optimizer.param_groups[0]
    assert group["lr"] == pytest.approx(0.36)
    assert group["momentum"] == 0.9
    assert group["weight_decay"] == 1e-4
    rates = []
    for _ in range(200):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[154] == pytest.approx(0.36)
    assert rates[155] == pytest.approx(0.036)
    assert rates[170] == pytest.approx(0.0036)
    assert rates[185] == pytest.approx(0.00036)


def test_cosine_and_constant_schedules():
    config = load_config("digits", ["trainer.max_epochs=4", "optim.lr=0.1"])
    optimizer, scheduler = build_optimizer([torch.nn.Parameter(torch.ones(2))], config)
    rates = []
    for _ in range(4):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx(
        [0.1, 0.1 * (1 + 2**-0.5) / 2, 0.05, 0.1 * (1 - 2**-0.5) / 2]
    )
    constant = load_config("digits", ["optim.schedule=constant"])
    assert build_optimizer([torch.nn.Parameter(torch.ones(2))], constant)[1] is None


def test_view_generator_per_batch_and_rank():
    def draw(*key):
        return torch.rand(4, generator=view_generator(*key))

    assert torch.equal(draw(0, 1, 2, 0), draw(0, 1, 2, 0))
    for other in [(1, 1, 2, 0), (0, 2, 2, 0), (0, 1, 3, 0), (0, 1, 2, 1)]:
        assert not torch.equal(draw(0, 1, 2, 0), draw(*other))


def test_views_differ_per_sample_and_between_views():
    config = load_config("digits")
    module = HypersphereModule(config)
    images = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    images[:] = images[0]
    view1, view2 = module.make_views(images, step=0)
    assert view1.shape == (6, 1, 8, 8)
    assert not torch.equal(view1, view2)
    # One image repeated: per-sample augmentation makes the copies differ.
    assert not torch.equal(view1[0], view1[1])
    again1, _ = module.make_views(images, step=0)
    assert torch.equal(view1, again1)


def test_training_step_loss_terms():
    config = load_config("digits", ["objective=1*align(alpha=2) + 1*uniform(t=2)"])
    module = HypersphereModule(config)
    images = torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8)
    output = module.compute_objective(*module.make_views(images, step=0))
    assert set(output.terms) == {"align", "uniform"}
    expected = output.terms["align"] + output.terms["uniform"]
    assert torch.allclose(output.total, expected)
    output.total.backward()
    assert all(p.grad is not None for p in module.encoder.parameters())


def test_data_order_depends_on_epoch_only():
    config = load_config("digits", ["optim.batch_size=100"])
    data = ImageDataModule(config.data, 100, seed=0)
    data.setup()

    def first_labels(epoch):
        loader = data.train_dataloader()
        loader.sampler.set_epoch(epoch)
        images, labels = next(iter(loader))
        assert images.dtype == torch.uint8
        assert images.shape == (100, 1, 8, 8)
        return labels

    assert torch.equal(first_labels(3), first_labels(3))
    assert not torch.equal(first_labels(3), first_labels(4))
    assert len(data.train_dataloader()) == 1347 // 100


def test_batch_larger_than_dataset():
    config = load_config("digits", ["data.train_limit=50"])
    data = ImageDataModule(config.data, 64, seed=0)
    data.setup()
    with pytest.raises(ValueError, match="fewer than one global batch"):
        data.train_dataloader()


def test_resolve_preset_image_size():
    config = load_config("stl10_alexnet", ["data.root=/d", "data.image_size=32"])
    preset = resolve_preset(config.data)
    assert preset.image_size == (32, 32)
    assert preset.eval.crop == 32
    assert preset.eval.resize == 35
