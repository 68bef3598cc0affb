"""Encoders trained here: a checkpoint on its dataset, and the Lightning callback."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from alignsphere.cli.main import main
from alignsphere.measure import MeasureInputError, MeasureOptions

from .conftest import reference_alignment, reference_uniformity

lightning = pytest.importorskip("lightning", reason="lightning is not installed")


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    from alignsphere.training.checkpoint import save_encoder_file
    from alignsphere.training.config import TrainConfig
    from alignsphere.training.data import resolve_preset
    from alignsphere.training.module import build_encoder_from_config

    config = TrainConfig()
    config.model.out_dim = 16
    torch.manual_seed(0)
    encoder = build_encoder_from_config(config.model, resolve_preset(config.data))
    path = tmp_path_factory.mktemp("run") / "encoder.pt"
    save_encoder_file(path, encoder, config.to_dict())
    return path


def test_checkpoint_on_its_test_split(encoder_file):
    from alignsphere.data import load_dataset
    from alignsphere.measure.checkpoint import encode_dataset, measure_checkpoint
    from alignsphere.training.checkpoint import load_encoder
    from alignsphere.training.data import resolve_preset

    report = measure_checkpoint(encoder_file, options=MeasureOptions(seed=5))
    encoder, config = load_encoder(encoder_file)
    preset = resolve_preset(config.data)
    images = load_dataset("digits", split="test", progress=False).images
    view1, view2, clean = encode_dataset(
        encoder,
        images,
        augmentation=preset.train_augmentation(),
        transform=preset.eval_transform(),
        seed=5,
    )
    assert report.alignment.num_pairs == len(images) == 450
    assert report.alignment.value == pytest.approx(
        reference_alignment(view1.numpy(), view2.numpy()), rel=1e-6
    )
    assert report.uniformity.value == pytest.approx(
        reference_uniformity(clean.numpy()), abs=2e-6
    )
    assert "un-augmented images of the digits test split" in report.uniformity.over


def test_checkpoint_layer_and_limit(encoder_file, capsys):
    args = [
        "measure",
        "--checkpoint",
        str(encoder_file),
        "--layer",
        "pooled",
        "--limit",
        "100",
        "--uniformity-over",
        "mean",
        "--json",
        "-",
    ]
    assert main(args) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["alignment"]["num_pairs"] == 100
    assert report["dim"] == 256
    assert len(report["uniformity"]["sides"]) == 2


def test_checkpoint_errors(encoder_file, tmp_path, capsys):
    from alignsphere.measure.checkpoint import measure_checkpoint

    with pytest.raises(MeasureInputError, match="has no layer 'fc9'; valid layers"):
        measure_checkpoint(encoder_file, layer="fc9")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert main(["measure", "--checkpoint", str(tmp_path / "junk.pt")]) == 2
    assert "junk.pt is not a PyTorch checkpoint" in capsys.readouterr().err
    assert (
        main(["measure", str(tmp_path / "junk.pt"), "--uniformity-over", "images"]) == 2
    )
    assert "applies to --checkpoint only" in capsys.readouterr().err


def test_cli_choices_match_the_module():
    from alignsphere.cli.measure import CHECKPOINT_UNIFORMITY_SIDES as cli_choices
    from alignsphere.measure.checkpoint import CHECKPOINT_UNIFORMITY_SIDES

    assert set(cli_choices) == set(CHECKPOINT_UNIFORMITY_SIDES)


class _TinyModule(lightning.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(6, 4)

    def forward(self, x):
        return torch.nn.functional.normalize(self.net(x), dim=1)

    def training_step(self, batch, index):
        a, b = self(batch[0]), self(batch[1])
        return (a - b).pow(2).sum(1).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _views(n: int, seed: int) -> torch.utils.data.TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=generator)
    return torch.utils.data.TensorDataset(
        x, x + 0.1 * torch.randn(n, 6, generator=generator)
    )


def test_callback_logs_every_metric(tmp_path):
    from torch.utils.data import DataLoader

    from alignsphere.measure.callback import EmbeddingMetricsCallback

    held_out = DataLoader(_views(200, 1), batch_size=64)
    callback = EmbeddingMetricsCallback(held_out, every_n_epochs=2)
    trainer = lightning.Trainer(
        max_epochs=4,
        accelerator="cpu",
        logger=lightning.pytorch.loggers.CSVLogger(tmp_path, name="run"),
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    model = _TinyModule()
    trainer.fit(model, DataLoader(_views(64, 2), batch_size=32))

    rows = list(csv.DictReader(open(next(tmp_path.glob("run/*/metrics.csv")))))
    logged = [row for row in rows if row.get("heldout/align")]
    assert [int(row["epoch"]) for row in logged] == [1, 3]
    for name in (
        "align",
        "uniform",
        "uniform_optimum",
        "uniform_gap",
        "effective_rank",
        "alpha_req",
        "normalized_std",
        "mean_cosine",
        "norm_mean",
    ):
        assert logged[-1][f"heldout/{name}"], name

    # The last values are those of the final weights.
    x, y = held_out.dataset.tensors
    with torch.no_grad():
        first, second = model(x).numpy(), model(y).numpy()
    assert float(logged[-1]["heldout/align"]) == pytest.approx(
        reference_alignment(first, second), rel=1e-5
    )
    expected = np.mean([reference_uniformity(first), reference_uniformity(second)])
    assert float(logged[-1]["heldout/uniform"]) == pytest.approx(expected, abs=1e-5)
    assert model.training


def test_callback_with_labelled_batches():
    from torch.utils.data import DataLoader, TensorDataset

    from alignsphere.measure.callback import EmbeddingMetricsCallback

    data = TensorDataset(torch.randn(50, 6), torch.arange(50))
    callback = EmbeddingMetricsCallback(DataLoader(data, batch_size=16))
    report = callback.measure(_TinyModule())
    assert report.alignment is None
    assert "heldout/align" not in callback.metrics(report)
    assert report.uniformity.num_rows == 50
