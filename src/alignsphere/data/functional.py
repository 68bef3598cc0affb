"""Per-sample image operations on batches of float images in [0, 1].

Every function takes a batch of shape (N, C, H, W) and one parameter per image
(a tensor of shape (N,)), so one call transforms a whole batch with a different
crop, jitter factor or blur width for each image. torchvision's v2 transforms
draw a single set of parameters per call, which would give every image of a
batch the same augmentation. The color operations follow the formulas of
``torchvision.transforms.v2.functional`` for float images (tests compare them).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# ITU-R BT.601 luma weights, the values torchvision's rgb_to_grayscale uses.
_LUMA_WEIGHTS = (0.2989, 0.587, 0.114)


def crop_matrices(
    boxes: Tensor,
    input_size: tuple[int, int],
    output_size: tuple[int, int],
    flip: Tensor | None = None,
    angle: Tensor | None = None,
) -> Tensor:
    """Build the affine matrices that crop, flip and rotate each image of a batch.

    The matrices map normalized output coordinates to normalized input
    coordinates, the convention of :func:`torch.nn.functional.affine_grid` with
    ``align_corners=False``. Output pixel p (relative to the output center, in
    output pixels) samples the input at ``center + D_box R(angle) F p``, where F
    mirrors x when ``flip`` is set, R rotates by ``angle`` degrees, and
    D_box = diag(w / out_w, h / out_h) scales the output onto the crop box. So the
    result equals: crop the box, resize it to the output size, mirror, then
    rotate about the center.

    Args:
        boxes: (N, 4) crop boxes (left, top, width, height) in input pixels, where
            the image spans [0, W] x [0, H] and boxes may have fractional corners.
        input_size: Input (H, W).
        output_size: Output (H, W).
        flip: (N,) bool, mirror horizontally. Defaults to no flip.
        angle: (N,) rotation in degrees, counter-clockwise. Defaults to 0.

    Returns:
        (N, 2, 3) matrices, in the dtype and on the device of ``boxes``.
    """
    in_h, in_w = input_size
    out_h, out_w = output_size
    left, top, width, height = boxes.unbind(dim=1)
    mirror = torch.ones_like(left)
    if flip is not None:
        mirror = torch.where(flip.to(boxes.device), -mirror, mirror)
    radians = torch.zeros_like(left)
    if angle is not None:
        radians = torch.deg2rad(angle.to(boxes))
    cos, sin = torch.cos(radians), torch.sin(radians)
    # Pixel offsets from the output center, scaled to normalized output units
    # (a = mirror * out_w / 2, b = out_h / 2), are rotated, scaled onto the box,
    # then expressed in normalized input units (kx, ky).
    a = mirror * (out_w / 2)
    b = torch.full_like(left, out_h / 2)
    kx = 2 * width / (in_w * out_w)
    ky = 2 * height / (in_h * out_h)
    theta = torch.empty((boxes.shape[0], 2, 3), dtype=boxes.dtype, device=boxes.device)
    theta[:, 0, 0] = kx * cos * a
    theta[:, 0, 1] = -kx * sin * b
    theta[:, 0, 2] = 2 * (left + width / 2) / in_w - 1
    theta[:, 1, 0] = ky * sin * a
    theta[:, 1, 1] = ky * cos * b
    theta[:, 1, 2] = 2 * (top + height / 2) / in_h - 1
    return theta


def resample(
    images: Tensor,
    theta: Tensor,
    output_size: tuple[int, int],
    *,
    supersample: int = 1,
    fill: float | None = 0.0,
) -> Tensor:
    """Resample each image with its own affine matrix (bilinear).

    With ``supersample = k > 1`` the images are sampled on a grid k times finer
    and averaged over k x k blocks. This box filter prevents aliasing when a crop
    larger than the output is shrunk. torchvision's tensor resize uses an
    antialiased bilinear filter for the same purpose, and the two agree closely
    but not exactly. Sample points within the image but less than half a pixel from
    its edge repeat the edge pixel, as torchvision's resize does. Within half an
    input pixel of a crop box edge that lies inside the image, bilinear
    sampling reads the neighbouring pixels outside the box, where torchvision's
    crop-then-resize would repeat the box edge.

    Args:
        images: Float images of shape (N, C, H, W).
        theta: (N, 2, 3) matrices from :func:`crop_matrices`.
        output_size: Output (H, W).
        supersample: Samples per output pixel along each axis, at least 1.
        fill: Value of output points that fall outside the input image (corners
            uncovered by a rotation); None repeats the edge instead.

    Returns:
        Float images of shape (N, C, *output_size).
    """
    if supersample < 1:
        raise ValueError(f"supersample must be at least 1, got {supersample}")
    out_h, out_w = output_size
    batch, channels = images.shape[:2]
    grid = F.affine_grid(
        theta.to(images.dtype),
        [batch, channels, out_h * supersample, out_w * supersample],
        align_corners=False,
    )
    out = F.grid_sample(
        images, grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    if fill is not None:
        # A small tolerance keeps points on the image edge (up to rounding) inside.
        outside = (grid.abs() > 1 + 1e-6).any(dim=-1).unsqueeze(1)
        out = out.masked_fill(outside, fill)
    if supersample > 1:
        out = F.avg_pool2d(out, supersample)
    return out


def crop_resize(
    images: Tensor,
    boxes: Tensor,
    output_size: tuple[int, int],
    flip: Tensor | None = None,
) -> Tensor:
    """Crop a box from each image and resize it to ``output_size`` (bilinear).

    Uses :func:`torchvision.ops.roi_align` with ``aligned=True`` and adaptive
    sampling. Each output pixel averages ``ceil(box_h / out_h) x ceil(box_w /
    out_w)`` bilinear samples spread over its footprint, so a box larger than the
    output is low-pass filtered (about as torchvision's antialiased resize), and
    a smaller one is plain bilinear upsampling. The sample positions and edge
    handling equal :func:`resample` with :func:`crop_matrices`, which also
    rotates but applies one supersampling factor to the whole batch.

    Args:
        images: Float images of shape (N, C, H, W).
        boxes: (N, 4) boxes (left, top, width, height) in input pixels.
        output_size: Output (H, W).
        flip: (N,) bool, mirror the result horizontally.

    Returns:
        Float images of shape (N, C, *output_size).
    """
    from torchvision.ops import roi_align

    batch = images.shape[0]
    boxes = boxes.to(device=images.device, dtype=images.dtype)
    rois = torch.empty((batch, 5), dtype=images.dtype, device=images.device)
    rois[:, 0] = torch.arange(batch, dtype=images.dtype, device=images.device)
    rois[:, 1:3] = boxes[:, :2]
    rois[:, 3:5] = boxes[:, :2] + boxes[:, 2:]
    out = roi_align(
        images, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=True
    )
    if flip is not None and bool(flip.any()):
        index = flip.nonzero().squeeze(1).to(images.device)
        out[index] = out[index].flip(-1)
    return out


def rgb_to_grayscale(images: Tensor) -> Tensor:
    """Convert (N, 3, H, W) RGB to (N, 1, H, W) luma; pass 1-channel input through."""
    if images.shape[1] == 1:
        return images
    red, green, blue = images.unbind(dim=1)
    gray = _LUMA_WEIGHTS[0] * red + _LUMA_WEIGHTS[1] * green + _LUMA_WEIGHTS[2] * blue
    return gray.unsqueeze(1)


def _per_image(values: Tensor, images: Tensor) -> Tensor:
    return values.to(device=images.device, dtype=images.dtype).view(-1, 1, 1, 1)


def _blend(images: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    ratio = _per_image(factor, images)
    return (ratio * images + (1 - ratio) * other).clamp_(0, 1)


def adjust_brightness(images: Tensor, factor: Tensor) -> Tensor:
    """Multiply each image by its factor (N,) and clamp to [0, 1]."""
    return (images * _per_image(factor, images)).clamp_(0, 1)


def adjust_contrast(images: Tensor, factor: Tensor) -> Tensor:
    """Blend each image with its mean gray level: ``f * x + (1 - f) * mean(gray(x))``."""
    mean = rgb_to_grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(images, mean, factor)


def adjust_saturation(images: Tensor, factor: Tensor) -> Tensor:
    """Blend each RGB image with its grayscale version; 1-channel input is unchanged."""
    if images.shape[1] == 1:
        return images
    return _blend(images, rgb_to_grayscale(images), factor)


def adjust_hue(images: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue of each RGB image by its shift (N,) in [-0.5, 0.5] turns.

    Equals torchvision's RGB -> HSV -> shift hue -> RGB round trip, computed
    without building the HSV image: a hue rotation keeps each pixel's maximum
    v and chroma c = max - min, so channel n (R: 5, G: 3, B: 1) of the result is
    ``v - c * clamp(min(k, 4 - k), 0, 1)`` with ``k = (n + 6 h') mod 6`` and h'
    the shifted hue in turns. 1-channel input is returned unchanged.
    """
    if images.shape[1] == 1:
        return images
    red, green, blue = images.unbind(dim=1)
    value = torch.maximum(torch.maximum(red, green), blue)
    chroma = value - torch.minimum(torch.minimum(red, green), blue)
    inverse = chroma.clamp_min(1e-12).reciprocal_()
    # Hue in sixths of a turn, by which channel is the maximum (red wins ties,
    # then green, as in torchvision). Gray pixels get an arbitrary hue, which
    # the zero chroma cancels below.
    sixths = torch.where(
        value == red,
        (green - blue) * inverse,
        torch.where(
            value == green, (blue - red) * inverse + 2, (red - green) * inverse + 4
        ),
    )
    sixths = sixths + 6 * shift.to(images).view(-1, 1, 1)
    channels = []
    for offset in (5.0, 3.0, 1.0):
        k = torch.remainder(sixths + offset, 6.0)
        weight = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
        channels.append(value - chroma * weight)
    return torch.stack(channels, dim=1).clamp_(0, 1)


def gaussian_blur(images: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Blur each image with a Gaussian of its own standard deviation (pixels).

    The kernel is separable, ``kernel_size`` taps wide, normalized to sum 1,
    with reflect padding, as in torchvision's gaussian_blur.

    Args:
        images: Float images of shape (N, C, H, W).
        sigma: (N,) standard deviations in pixels, positive.
        kernel_size: Odd kernel width, smaller than twice the image size.

    Returns:
        Blurred images of the same shape.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size must be a positive odd number, got {kernel_size}"
        )
    batch, channels, height, width = images.shape
    radius = kernel_size // 2
    if radius >= min(height, width):
        raise ValueError(
            f"kernel_size {kernel_size} is too large for {height}x{width} images; "
            f"use at most {2 * min(height, width) - 1}"
        )
    if batch == 0 or radius == 0:
        return images
    taps = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    sigma = sigma.to(images).view(-1, 1)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    kernel = kernel.repeat_interleave(channels, dim=0)
    # Treat the batch as channels of one image so a grouped convolution applies
    # a different kernel to every (image, channel) pair.
    flat = images.reshape(1, batch * channels, height, width)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="reflect")
    flat = F.conv2d(flat, kernel.view(-1, 1, 1, kernel_size), groups=batch * channels)
    flat = F.conv2d(flat, kernel.view(-1, 1, kernel_size, 1), groups=batch * channels)
    return flat.view(batch, channels, height, width)


def supersample_factor(
    boxes: Tensor, output_size: tuple[int, int], limit: int = 4
) -> int:
    """Samples per output pixel and axis that avoid aliasing for the largest crop.

    Returns ``ceil(max(box_w / out_w, box_h / out_h))`` over the batch, clamped
    to [1, limit], because a crop shrunk by a factor s needs about s samples per
    output pixel along each axis.
    """
    if boxes.numel() == 0:
        return 1
    out_h, out_w = output_size
    shrink = torch.maximum(boxes[:, 2] / out_w, boxes[:, 3] / out_h).max().item()
    return max(1, min(limit, math.ceil(shrink - 1e-6)))
