"""Per-sample image operations against torchvision's functionals, image by image."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from alignsphere.data import functional as AF


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(6, 3, 12, 10, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    ("ours", "reference"),
    [
        (AF.adjust_brightness, TF.adjust_brightness),
        (AF.adjust_contrast, TF.adjust_contrast),
        (AF.adjust_saturation, TF.adjust_saturation),
    ],
)
def test_blend_ops_match_torchvision(images, ours, reference):
    factors = torch.tensor([0.0, 0.4, 0.9, 1.0, 1.3, 1.6])
    out = ours(images.clone(), factors)
    for index, factor in enumerate(factors.tolist()):
        expected = reference(images[index], factor)
        torch.testing.assert_close(out[index], expected, atol=1e-6, rtol=0)


def test_hue_matches_torchvision(images):
    shifts = torch.tensor([-0.5, -0.3, 0.0, 0.1, 0.25, 0.5])
    out = AF.adjust_hue(images.clone(), shifts)
    for index, shift in enumerate(shifts.tolist()):
        expected = TF.adjust_hue(images[index], shift)
        torch.testing.assert_close(out[index], expected, atol=1e-5, rtol=0)


def test_hue_on_gray_and_saturated_pixels():
    levels = torch.tensor([0.0, 0.5, 1.0])
    gray = levels.view(3, 1, 1, 1).expand(3, 3, 2, 2)
    primaries = torch.eye(3).view(3, 3, 1, 1).expand(3, 3, 2, 2)
    batch = torch.cat([gray, primaries])
    shifts = torch.tensor([0.3, -0.2, 0.5, 1 / 3, -1 / 6, 0.5])
    out = AF.adjust_hue(batch.clone(), shifts)
    for index, shift in enumerate(shifts.tolist()):
        expected = TF.adjust_hue(batch[index], shift)
        torch.testing.assert_close(out[index], expected, atol=1e-5, rtol=0)
    # A third of a turn maps red to green, and minus a sixth maps green to yellow.
    torch.testing.assert_close(out[3, :, 0, 0], torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(out[4, :, 0, 0], torch.tensor([1.0, 1.0, 0.0]))


def test_grayscale_matches_torchvision(images):
    expected = TF.rgb_to_grayscale(images)
    torch.testing.assert_close(AF.rgb_to_grayscale(images), expected, atol=1e-6, rtol=0)


def test_color_ops_keep_one_channel_images():
    gray = torch.rand(3, 1, 5, 5)
    factors = torch.tensor([0.5, 1.0, 1.5])
    assert torch.equal(AF.adjust_saturation(gray, factors), gray)
    assert torch.equal(AF.adjust_hue(gray, factors - 1), gray)
    expected = TF.adjust_contrast(gray[0], 0.5)
    torch.testing.assert_close(AF.adjust_contrast(gray, factors)[0], expected)


def test_blur_matches_torchvision(images):
    sigmas = torch.tensor([0.1, 0.5, 1.0, 1.5, 2.0, 3.0])
    out = AF.gaussian_blur(images, sigmas, kernel_size=5)
    for index, sigma in enumerate(sigmas.tolist()):
        expected = TF.gaussian_blur(images[index], [5, 5], [sigma, sigma])
        torch.testing.assert_close(out[index], expected, atol=1e-5, rtol=0)


def test_blur_rejects_large_kernel():
    with pytest.raises(ValueError, match="too large for 4x4 images"):
        AF.gaussian_blur(torch.rand(1, 3, 4, 4), torch.ones(1), kernel_size=9)


def test_identity_crop_is_exact(images):
    boxes = torch.tensor([[0.0, 0.0, 10.0, 12.0]]).expand(6, 4)
    theta = AF.crop_matrices(boxes, (12, 10), (12, 10))
    out = AF.resample(images, theta, (12, 10), fill=None)
    torch.testing.assert_close(out, images, atol=1e-6, rtol=0)


def test_flip_matches_torchvision(images):
    boxes = torch.tensor([[0.0, 0.0, 10.0, 12.0]]).expand(6, 4)
    flip = torch.tensor([True, False, True, False, False, True])
    theta = AF.crop_matrices(boxes, (12, 10), (12, 10), flip=flip)
    out = AF.resample(images, theta, (12, 10), fill=None)
    for index in range(6):
        expected = TF.horizontal_flip(images[index]) if flip[index] else images[index]
        torch.testing.assert_close(out[index], expected, atol=1e-6, rtol=0)


def bilinear_crop_reference(image, box, output_size):
    """Sample a crop box of a (C, H, W) image bilinearly, in float64.

    Output pixel (i, j) reads the input at pixel-center coordinates
    y = top + (i + 0.5) * height / out_h - 0.5 (x likewise), clamped to the image.
    """
    channels, in_h, in_w = image.shape
    left, top, width, height = box
    out_h, out_w = output_size
    ys = top + (torch.arange(out_h, dtype=torch.float64) + 0.5) * height / out_h - 0.5
    xs = left + (torch.arange(out_w, dtype=torch.float64) + 0.5) * width / out_w - 0.5
    ys, xs = ys.clamp(0, in_h - 1), xs.clamp(0, in_w - 1)
    y0, x0 = ys.floor().long(), xs.floor().long()
    y1, x1 = (y0 + 1).clamp(max=in_h - 1), (x0 + 1).clamp(max=in_w - 1)
    wy, wx = (ys - y0).view(-1, 1), (xs - x0).view(1, -1)
    pixels = image.double()

    def at(rows, cols):
        return pixels[:, rows][:, :, cols]

    top_row = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom_row = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    return (top_row * (1 - wy) + bottom_row * wy).float()


CROP_BOXES = torch.tensor(
    [
        [0.0, 0.0, 10.0, 12.0],
        [2.0, 3.0, 6.0, 6.0],
        [1.0, 0.0, 8.0, 5.0],
        [4.0, 6.0, 6.0, 6.0],
        [0.0, 4.0, 3.0, 8.0],
        [5.0, 1.0, 5.0, 11.0],
    ]
)


def test_upscaling_crop_matches_bilinear_reference(images):
    theta = AF.crop_matrices(CROP_BOXES, (12, 10), (16, 16))
    out = AF.resample(images, theta, (16, 16), fill=None)
    for index, box in enumerate(CROP_BOXES.tolist()):
        expected = bilinear_crop_reference(images[index], box, (16, 16))
        torch.testing.assert_close(out[index], expected, atol=1e-5, rtol=0)


def test_roi_crop_matches_bilinear_reference(images):
    out = AF.crop_resize(images, CROP_BOXES, (16, 16))
    for index, box in enumerate(CROP_BOXES.tolist()):
        expected = bilinear_crop_reference(images[index], box, (16, 16))
        torch.testing.assert_close(out[index], expected, atol=1e-5, rtol=0)


def test_roi_crop_flip(images):
    flip = torch.tensor([True, False, True, False, True, False])
    plain = AF.crop_resize(images, CROP_BOXES, (16, 16))
    flipped = AF.crop_resize(images, CROP_BOXES, (16, 16), flip)
    for index in range(6):
        expected = plain[index].flip(-1) if flip[index] else plain[index]
        assert torch.equal(flipped[index], expected)


def test_roi_and_grid_paths_agree_when_shrinking():
    # Both sample ceil(box / output) points per output pixel and axis when every
    # box of the batch needs the same count.
    images = torch.rand(3, 3, 20, 20, generator=torch.Generator().manual_seed(2))
    boxes = torch.tensor(
        [[0.0, 0.0, 20.0, 20.0], [2.5, 1.0, 15.0, 16.0], [4.0, 3.0, 12.0, 14.0]]
    )
    theta = AF.crop_matrices(boxes, (20, 20), (8, 8))
    supersample = AF.supersample_factor(boxes, (8, 8))
    grid = AF.resample(images, theta, (8, 8), supersample=supersample, fill=None)
    roi = AF.crop_resize(images, boxes, (8, 8))
    torch.testing.assert_close(roi[0], grid[0], atol=1e-5, rtol=0)
    assert (roi - grid).abs().mean() < 0.02


def test_upscaling_crop_matches_resized_crop_inside(images):
    # torchvision crops first, so output pixels within half an input pixel of
    # the box edge repeat the box edge, while resample reads the neighbouring
    # input pixels there. Away from the box edges the two agree.
    theta = AF.crop_matrices(CROP_BOXES, (12, 10), (16, 16))
    out = AF.resample(images, theta, (16, 16), fill=None)
    for index, (left, top, width, height) in enumerate(CROP_BOXES.int().tolist()):
        expected = TF.resized_crop(
            images[index], top, left, height, width, [16, 16], antialias=False
        )
        margin_y = int(16 / height / 2) + 1
        margin_x = int(16 / width / 2) + 1
        inside = (
            slice(None),
            slice(margin_y, 16 - margin_y),
            slice(margin_x, 16 - margin_x),
        )
        torch.testing.assert_close(
            out[index][inside], expected[inside], atol=1e-5, rtol=0
        )
    torch.testing.assert_close(
        out[0],
        TF.resize(images[0], [16, 16], antialias=False),
        atol=1e-5,
        rtol=0,
    )


def test_shrinking_crop_is_antialiased():
    # A one-pixel checkerboard shrunk 4x averages to gray only with a low-pass filter.
    pattern = (torch.arange(16).view(1, 16) + torch.arange(16).view(16, 1)) % 2
    image = pattern.float().expand(1, 3, 16, 16)
    boxes = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    theta = AF.crop_matrices(boxes, (16, 16), (4, 4))
    supersample = AF.supersample_factor(boxes, (4, 4))
    assert supersample == 4
    out = AF.resample(image, theta, (4, 4), supersample=supersample, fill=None)
    torch.testing.assert_close(out, torch.full_like(out, 0.5), atol=1e-6, rtol=0)
    roi = AF.crop_resize(image, boxes, (4, 4))
    torch.testing.assert_close(roi, torch.full_like(roi, 0.5), atol=1e-6, rtol=0)


def test_rotation_fills_uncovered_corners():
    image = torch.ones(1, 1, 9, 9)
    boxes = torch.tensor([[0.0, 0.0, 9.0, 9.0]])
    theta = AF.crop_matrices(boxes, (9, 9), (9, 9), angle=torch.tensor([45.0]))
    out = AF.resample(image, theta, (9, 9), fill=0.0)
    assert out[0, 0, 0, 0] == 0
    assert out[0, 0, 4, 4] == 1


def test_rotation_by_90_degrees_is_exact():
    image = torch.rand(1, 3, 8, 8)
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0]])
    theta = AF.crop_matrices(boxes, (8, 8), (8, 8), angle=torch.tensor([90.0]))
    out = AF.resample(image, theta, (8, 8), fill=None)
    expected = TF.rotate(image[0], 90.0)
    torch.testing.assert_close(out[0], expected, atol=1e-5, rtol=0)
