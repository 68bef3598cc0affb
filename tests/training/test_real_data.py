"""Training and evaluation on real CIFAR-10 JPEG files from the shared archive."""

from __future__ import annotations

import json

import pytest

from alignsphere.cli.main import main


@pytest.mark.slow
def test_cifar10_cpu_trains_and_evaluates(cifar10_jpg_folder, tmp_path, capsys):
    output = tmp_path / "run"
    code = main(
        [
            "train",
            "--config",
            "cifar10_cpu",
            "--data-root",
            str(cifar10_jpg_folder),
            "--output",
            str(output),
            "--no-progress",
            "--set",
            "trainer.max_epochs=1",
            "--set",
            "optim.batch_size=64",
            "--set",
            "heldout.num_images=100",
        ]
    )
    assert code == 0
    report_path = tmp_path / "eval.json"
    code = main(
        [
            "evaluate",
            str(output),
            "--layer",
            "pooled",
            "--layer",
            "output",
            "--json",
            str(report_path),
            "--no-progress",
            "--heldout-images",
            "100",
        ]
    )
    assert code == 0
    report = json.loads(report_path.read_text())
    assert report["data"]["num_probe"] == 300
    assert report["data"]["num_test"] == 100
    assert report["layers"]["pooled"]["feature_dim"] == 256
    assert report["layers"]["output"]["feature_dim"] == 128
    # 300 images and one epoch: only check that the numbers are real accuracies.
    for layer in ("pooled", "output"):
        assert 0.0 <= report["layers"][layer]["linear_probe"]["test_accuracy"] <= 1.0
        assert 0.0 <= report["layers"][layer]["knn"]["accuracy"] <= 1.0
    assert report["heldout"]["uniformity"] > report["heldout"]["uniformity_optimum"]
