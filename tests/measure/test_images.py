"""torchvision penultimate features on an image folder, with weights from a file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignsphere.cli.main import main
from alignsphere.measure import MeasureInputError, MeasureOptions
from alignsphere.measure.images import (
    PenultimateFeatures,
    encode_image_folder,
    list_images,
    load_torchvision_model,
    measure_image_folder,
)

torchvision = pytest.importorskip("torchvision", reason="torchvision is not installed")


@pytest.fixture
def folder(tmp_path, rng):
    from PIL import Image

    root = tmp_path / "images"
    for index in range(6):
        sub = root / ("cats" if index % 2 else "dogs")
        sub.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(sub / f"{index}.png")
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return path


def test_list_images(folder):
    files = list_images(folder)
    assert len(files) == 6
    assert all(path.suffix == ".png" for path in files)
    with pytest.raises(MeasureInputError, match="image folder not found"):
        list_images(folder / "missing")


def test_penultimate_features_are_the_pooled_vector(resnet_weights):
    model = load_torchvision_model("resnet18", resnet_weights)
    assert model.fc.out_features == 10
    images = torch.randn(3, 3, 32, 32)
    features = PenultimateFeatures(model)(images)
    trunk = torchvision.models.resnet18(num_classes=10)
    trunk.load_state_dict(model.state_dict())
    trunk.fc = torch.nn.Identity()
    torch.testing.assert_close(features, trunk.eval()(images))
    assert features.shape == (3, 512)


def test_measure_folder_without_pairs(folder, resnet_weights):
    report = measure_image_folder(
        folder, "resnet18", resnet_weights, image_size=32, batch_size=4
    )
    assert report.dim == 512
    assert report.alignment is None
    assert report.uniformity.num_rows == 6
    assert report.uniformity.method == "exact"


def test_augmented_views_are_positive_pairs(folder, resnet_weights):
    model = load_torchvision_model("resnet18", resnet_weights)
    files = list_images(folder)
    first, second = encode_image_folder(
        files, model, image_size=32, augmented_pairs=True, seed=1
    )
    again, _ = encode_image_folder(
        files, model, image_size=32, augmented_pairs=True, seed=1
    )
    assert first.shape == second.shape == (6, 512)
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(first, again)
    report = measure_image_folder(
        folder,
        "resnet18",
        resnet_weights,
        image_size=32,
        augmented_pairs=True,
        options=MeasureOptions(seed=1),
    )
    assert report.alignment.num_pairs == 6
    assert report.alignment.value > 0


def test_corrupt_image_names_the_file(folder, resnet_weights):
    (folder / "cats" / "broken.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(
        MeasureInputError,
        match=r"broken.jpg: cannot be read as an image.*remove or replace",
    ):
        measure_image_folder(folder, "resnet18", resnet_weights, image_size=32)


def test_weights_of_another_model(resnet_weights):
    with pytest.raises(
        MeasureInputError,
        match=r"does not match torchvision model 'resnet34'.*missing keys",
    ):
        load_torchvision_model("resnet34", resnet_weights)
    with pytest.raises(
        MeasureInputError, match="unknown torchvision classification model 'resnet19'"
    ):
        load_torchvision_model("resnet19", resnet_weights)


def test_wrapped_checkpoint_loads(tmp_path, resnet_weights):
    state = torch.load(resnet_weights, weights_only=True)
    wrapped = {
        "state_dict": {f"module.{key}": value for key, value in state.items()},
        "epoch": 3,
    }
    torch.save(wrapped, tmp_path / "ddp.ckpt")
    model = load_torchvision_model("resnet18", tmp_path / "ddp.ckpt")
    torch.testing.assert_close(model.fc.weight, state["fc.weight"])


def test_cli_on_image_folder(folder, resnet_weights, capsys):
    code = main(
        [
            "measure",
            "--image-model",
            "resnet18",
            "--weights",
            str(resnet_weights),
            "--image-folder",
            str(folder),
            "--image-size",
            "32",
            "--augmented-pairs",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "alignment (alpha = 2)" in out
    assert "resnet18 features of" in out
    assert (
        main(["measure", "--image-model", "resnet18", "--image-folder", str(folder)])
        == 2
    )
    assert "needs --weights" in capsys.readouterr().err
