"""Batched augmentation that draws its random parameters per sample.

A torchvision ``transforms.v2`` pipeline applied to a batched tensor draws one
crop, one flip and one jitter for the whole batch, so all images of a batch would
share one augmentation. :class:`BatchAugmentation` draws every parameter per
image, on the CPU from a ``torch.Generator``. It then transforms the whole batch
at once on the images' device. Crop and flip run as one
``torchvision.ops.roi_align`` call (one ``grid_sample`` call when rotation is
on), and color operations as tensor arithmetic on the images that drew them. The training step calls it twice on a uint8 batch to get two
independent views.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from alignsphere.data import functional as AF
from alignsphere.data.normalization import Normalization

# Crop draws per image before falling back to a center crop, as in torchvision's
# RandomResizedCrop.
_CROP_ATTEMPTS = 10


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")


def _check_range(name: str, bounds: tuple[float, float], low: float = 0.0) -> None:
    if len(bounds) != 2 or not low < bounds[0] <= bounds[1]:
        raise ValueError(
            f"{name} must be (min, max) with {low} < min <= max, got {bounds}"
        )


@dataclass(frozen=True)
class ColorJitterConfig:
    """Random brightness, contrast, saturation and hue, as torchvision's ColorJitter.

    Factors are drawn per image: brightness, contrast and saturation uniformly in
    [max(0, 1 - v), 1 + v], the hue shift uniformly in [-hue, hue] turns.

    Attributes:
        brightness: Strength v of the brightness change, >= 0.
        contrast: Strength of the contrast change, >= 0.
        saturation: Strength of the saturation change, >= 0 (no effect on
            1-channel images).
        hue: Maximum hue shift in [0, 0.5] (no effect on 1-channel images).
        p: Probability that an image is jittered at all (torchvision's
            ``RandomApply([ColorJitter(...)], p)``).
        random_order: Apply the four operations in a random order drawn per image,
            as torchvision does. False applies them in the fixed order brightness,
            contrast, saturation, hue.
    """

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    p: float = 1.0
    random_order: bool = True

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must lie in [0, 0.5], got {self.hue}")
        _check_probability("p", self.p)


@dataclass(frozen=True)
class GaussianBlurConfig:
    """Random Gaussian blur with a standard deviation drawn per image.

    Attributes:
        kernel_size: Odd kernel width in pixels.
        sigma: Range (min, max) of the standard deviation in pixels, drawn
            uniformly per image.
        p: Probability that an image is blurred.
    """

    kernel_size: int
    sigma: tuple[float, float] = (0.1, 2.0)
    p: float = 0.5

    def __post_init__(self) -> None:
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be a positive odd number, got {self.kernel_size}"
            )
        _check_range("sigma", self.sigma)
        _check_probability("p", self.p)


@dataclass(frozen=True)
class AugmentationConfig:
    """Parameters of a training augmentation, applied in the order listed.

    1. Random resized crop to ``size``: area fraction in ``scale``, aspect ratio
       (width / height) log-uniform in ``ratio``, up to 10 draws and then a
       center crop, as torchvision's RandomResizedCrop. Unlike torchvision, crop
       boxes are not rounded to whole pixels.
    2. Horizontal flip with probability ``hflip_p``.
    3. Rotation by an angle uniform in [-rotation, rotation] degrees; uncovered
       corners are filled with 0.
    4. Color jitter (optional), then grayscale with probability ``grayscale_p``.
    5. Gaussian blur (optional), then additive Gaussian noise with standard
       deviation ``noise_std`` (pixel values in [0, 1]), clamped to [0, 1].

    Attributes:
        size: Output size, an int for square outputs or (height, width).
        scale: Range of the crop area as a fraction of the image area.
        ratio: Range of the crop aspect ratio.
        hflip_p: Probability of a horizontal flip.
        rotation: Maximum rotation in degrees, >= 0.
        color_jitter: Color jitter, or None to skip it.
        grayscale_p: Probability of converting an RGB image to gray (3 equal
            channels); no effect on 1-channel images.
        blur: Gaussian blur, or None to skip it.
        noise_std: Standard deviation of additive Gaussian noise, >= 0.
    """

    size: int | tuple[int, int]
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip_p: float = 0.5
    rotation: float = 0.0
    color_jitter: ColorJitterConfig | None = None
    grayscale_p: float = 0.0
    blur: GaussianBlurConfig | None = None
    noise_std: float = 0.0

    def __post_init__(self) -> None:
        height, width = _pair(self.size)
        if height < 1 or width < 1:
            raise ValueError(f"size must be positive, got {self.size}")
        _check_range("scale", self.scale)
        if self.scale[1] > 1.0:
            raise ValueError(f"scale must lie in (0, 1], got {self.scale}")
        _check_range("ratio", self.ratio)
        _check_probability("hflip_p", self.hflip_p)
        _check_probability("grayscale_p", self.grayscale_p)
        if self.rotation < 0:
            raise ValueError(f"rotation must be >= 0 degrees, got {self.rotation}")
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")

    @property
    def output_size(self) -> tuple[int, int]:
        """Output (height, width)."""
        return _pair(self.size)


@dataclass
class AugmentationParams:
    """Random parameters drawn for one batch, one row per image (CPU tensors).

    Attributes:
        boxes: (N, 4) float64 crop boxes (left, top, width, height) in input
            pixels, with the image spanning [0, W] x [0, H].
        flip: (N,) bool, mirror horizontally.
        angle: (N,) float64 rotation in degrees.
        jitter: (N,) bool, apply color jitter.
        jitter_order: (N, 4) int64, the order of the jitter operations, as indices
            into (brightness, contrast, saturation, hue).
        jitter_factors: (N, 4) float64 brightness, contrast and saturation
            factors and the hue shift.
        grayscale: (N,) bool, convert to gray.
        blur: (N,) bool, apply Gaussian blur.
        blur_sigma: (N,) float64 blur standard deviation in pixels.
        noise_seed: Seed of the noise generator on the images' device.
    """

    boxes: Tensor
    flip: Tensor
    angle: Tensor
    jitter: Tensor
    jitter_order: Tensor
    jitter_factors: Tensor
    grayscale: Tensor
    blur: Tensor
    blur_sigma: Tensor
    noise_seed: int = 0

    def __len__(self) -> int:
        return self.boxes.shape[0]


def sample_crop_boxes(
    batch_size: int,
    image_size: tuple[int, int],
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw random resized crop boxes, one per image, as torchvision's RandomResizedCrop.

    For each image, up to 10 candidate boxes are drawn with area
    ``U(scale) * H * W`` and aspect ratio ``exp(U(log ratio))``. The first that
    fits inside the image is placed uniformly at random. An image whose 10
    candidates all fail gets the largest centered box with the ratio clamped to
    ``ratio``. Boxes keep fractional sizes and positions.

    Args:
        batch_size: Number of boxes.
        image_size: Input (H, W).
        scale: (min, max) area fraction.
        ratio: (min, max) aspect ratio, width / height.
        generator: CPU generator; None uses the global generator.

    Returns:
        (batch_size, 4) float64 boxes (left, top, width, height).
    """
    height, width = image_size
    shape = (batch_size, _CROP_ATTEMPTS)
    area = height * width * _uniform(shape, *scale, generator)
    log_ratio = _uniform(shape, math.log(ratio[0]), math.log(ratio[1]), generator)
    aspect = torch.exp(log_ratio)
    crop_w = torch.sqrt(area * aspect)
    crop_h = torch.sqrt(area / aspect)
    position = torch.rand((batch_size, 2), generator=generator, dtype=torch.float64)

    fits = (crop_w <= width) & (crop_h <= height)
    first = fits.to(torch.int64).argmax(dim=1, keepdim=True)
    crop_w = crop_w.gather(1, first).squeeze(1)
    crop_h = crop_h.gather(1, first).squeeze(1)

    fallback_w, fallback_h = _center_crop_size(height, width, ratio)
    found = fits.any(dim=1)
    crop_w = torch.where(found, crop_w, fallback_w)
    crop_h = torch.where(found, crop_h, fallback_h)
    left = position[:, 0] * (width - crop_w)
    top = position[:, 1] * (height - crop_h)
    left = torch.where(found, left, (width - crop_w) / 2)
    top = torch.where(found, top, (height - crop_h) / 2)
    return torch.stack((left, top, crop_w, crop_h), dim=1)


def _center_crop_size(
    height: int, width: int, ratio: tuple[float, float]
) -> tuple[float, float]:
    in_ratio = width / height
    if in_ratio < ratio[0]:
        return float(width), width / ratio[0]
    if in_ratio > ratio[1]:
        return height * ratio[1], float(height)
    return float(width), float(height)


def _uniform(
    shape: tuple[int, ...], low: float, high: float, generator: torch.Generator | None
) -> Tensor:
    return low + (high - low) * torch.rand(
        shape, generator=generator, dtype=torch.float64
    )


def _bernoulli(batch_size: int, p: float, generator: torch.Generator | None) -> Tensor:
    return torch.rand(batch_size, generator=generator, dtype=torch.float64) < p


class BatchAugmentation:
    """Augment a batch of images with random parameters drawn per image.

    Call it on a uint8 batch (values 0..255) or a float batch (values in [0, 1]) of
    shape (N, C, H, W) on any device. A single (C, H, W) image also works. It
    returns float32 images of shape (N, C, *config.output_size), normalised with
    ``normalization`` when given. The random parameters come from ``generator``
    (a CPU ``torch.Generator``), so a seed gives the same parameters on every
    device. Only the optional pixel noise is drawn on the images' device.

    Args:
        config: What to apply; see :class:`AugmentationConfig`.
        normalization: Per-channel statistics applied last, or None to return
            values in [0, 1].
        max_supersample: With ``rotation > 0`` only: upper bound on the samples
            per output pixel and axis that antialias crops larger than the
            output. Defaults to 4. Without rotation, crops go through
            ``torchvision.ops.roi_align``, which picks the sample count per box.

    Example:
        >>> from alignsphere.data.presets import get_preset
        >>> preset = get_preset("cifar10")
        >>> augment = BatchAugmentation(preset.train, preset.normalization)
        >>> images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
        >>> view1, view2 = augment.two_views(images, torch.Generator().manual_seed(0))
        >>> view1.shape
        torch.Size([8, 3, 32, 32])
    """

    def __init__(
        self,
        config: AugmentationConfig,
        normalization: Normalization | None = None,
        *,
        max_supersample: int = 4,
    ) -> None:
        if max_supersample < 1:
            raise ValueError(
                f"max_supersample must be at least 1, got {max_supersample}"
            )
        self.config = config
        self.normalization = normalization
        self.max_supersample = max_supersample

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.config}, normalization={self.normalization})"
        )

    def sample_params(
        self,
        batch_size: int,
        image_size: tuple[int, int],
        generator: torch.Generator | None = None,
    ) -> AugmentationParams:
        """Draw the random parameters of one batch on the CPU.

        Every parameter is drawn in a fixed order whether or not the config uses
        it, so for a given generator state the crops stay the same when, say,
        the jitter settings change.

        Args:
            batch_size: Number of images.
            image_size: Input (H, W).
            generator: CPU generator; None uses the global generator.
        """
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(
                "generator must be a CPU torch.Generator because parameters are "
                f"drawn on the CPU, got one on {generator.device}"
            )
        config = self.config
        jitter = config.color_jitter or ColorJitterConfig(p=0.0)
        boxes = sample_crop_boxes(
            batch_size, image_size, config.scale, config.ratio, generator
        )
        flip = _bernoulli(batch_size, config.hflip_p, generator)
        angle = _uniform((batch_size,), -config.rotation, config.rotation, generator)

        apply_jitter = _bernoulli(batch_size, jitter.p, generator)
        order_keys = torch.rand((batch_size, 4), generator=generator)
        if jitter.random_order:
            order = order_keys.argsort(dim=1)
        else:
            order = torch.arange(4).expand(batch_size, 4).clone()
        factors = torch.stack(
            [
                _uniform((batch_size,), max(0.0, 1 - v), 1 + v, generator)
                for v in (jitter.brightness, jitter.contrast, jitter.saturation)
            ]
            + [_uniform((batch_size,), -jitter.hue, jitter.hue, generator)],
            dim=1,
        )

        grayscale = _bernoulli(batch_size, config.grayscale_p, generator)
        blur = config.blur
        apply_blur = _bernoulli(batch_size, blur.p if blur else 0.0, generator)
        sigma_range = blur.sigma if blur else (1.0, 1.0)
        sigma = _uniform((batch_size,), *sigma_range, generator)
        noise_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return AugmentationParams(
            boxes=boxes,
            flip=flip,
            angle=angle,
            jitter=apply_jitter,
            jitter_order=order,
            jitter_factors=factors,
            grayscale=grayscale,
            blur=apply_blur,
            blur_sigma=sigma,
            noise_seed=noise_seed,
        )

    def apply(self, images: Tensor, params: AugmentationParams) -> Tensor:
        """Apply drawn parameters to a batch; see the class docstring for shapes."""
        images = _to_float_batch(images)
        if len(params) != images.shape[0]:
            raise ValueError(
                f"params were drawn for {len(params)} images but the batch has "
                f"{images.shape[0]}"
            )
        config = self.config
        output_size = config.output_size
        device = images.device
        if images.shape[0] == 0:
            return images.new_empty((0, images.shape[1], *output_size))

        if config.rotation > 0:
            boxes = params.boxes.to(device=device, dtype=torch.float32)
            theta = AF.crop_matrices(
                boxes, tuple(images.shape[-2:]), output_size, params.flip, params.angle
            )
            supersample = AF.supersample_factor(
                params.boxes, output_size, limit=self.max_supersample
            )
            out = AF.resample(
                images, theta, output_size, supersample=supersample, fill=0.0
            )
        else:
            # roi_align adapts its antialiasing to each box, and it ran about 5x
            # faster than the supersampled grid_sample in a quick CPU check
            # (256 images cropped from 96 to 64 px, 2 shared cores).
            out = AF.crop_resize(images, params.boxes, output_size, params.flip)

        if config.color_jitter is not None:
            out = self._jitter(out, params)
        if config.grayscale_p > 0 and out.shape[1] == 3:
            index = _indices(params.grayscale, device)
            if index.numel():
                out[index] = AF.rgb_to_grayscale(out[index]).expand(-1, 3, -1, -1)
        if config.blur is not None:
            index = _indices(params.blur, device)
            if index.numel():
                out[index] = AF.gaussian_blur(
                    out[index], params.blur_sigma[params.blur], config.blur.kernel_size
                )
        if config.noise_std > 0:
            # NOTE: the tests run on CPU only; this device generator and the
            # index transfers above have not been exercised on CUDA.
            noise_generator = torch.Generator(device=device)
            noise_generator.manual_seed(params.noise_seed)
            noise = torch.randn(
                out.shape, generator=noise_generator, device=device, dtype=out.dtype
            )
            out = (out + config.noise_std * noise).clamp_(0, 1)
        if self.normalization is not None:
            out = self.normalization.apply(out)
        return out

    def _jitter(self, images: Tensor, params: AugmentationParams) -> Tensor:
        operations = (
            AF.adjust_brightness,
            AF.adjust_contrast,
            AF.adjust_saturation,
            AF.adjust_hue,
        )
        jitter = self.config.color_jitter
        strengths = (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)
        # Step k applies, to every jittered image, the operation at position k of
        # that image's order, so each image gets its four operations in its order.
        for step in range(4):
            for op_index, operation in enumerate(operations):
                if strengths[op_index] == 0:
                    continue
                selected = params.jitter & (params.jitter_order[:, step] == op_index)
                index = _indices(selected, images.device)
                if index.numel() == 0:
                    continue
                factor = params.jitter_factors[selected, op_index]
                images[index] = operation(images[index], factor)
        return images

    def __call__(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Draw parameters per image and augment the batch.

        Args:
            images: uint8 (0..255) or float ([0, 1]) images of shape (N, C, H, W)
                or (C, H, W), with C = 1 or 3.
            generator: CPU generator for reproducible draws; None uses the global
                generator.

        Returns:
            float32 images of shape (N, C, out_h, out_w), or (C, out_h, out_w) for
            a single image.
        """
        single = images.ndim == 3
        batch = images.unsqueeze(0) if single else images
        _check_images(batch)
        params = self.sample_params(batch.shape[0], tuple(batch.shape[-2:]), generator)
        out = self.apply(batch, params)
        return out.squeeze(0) if single else out

    def two_views(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Return two independently augmented views of each image of the batch."""
        return self(images, generator), self(images, generator)


def _indices(mask: Tensor, device: torch.device) -> Tensor:
    return mask.nonzero().squeeze(1).to(device)


def _check_images(images: Tensor) -> None:
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            "images must have shape (N, C, H, W) or (C, H, W) with C = 1 or 3, "
            f"got {tuple(images.shape)}"
        )
    if images.dtype != torch.uint8 and not images.dtype.is_floating_point:
        raise ValueError(
            f"images must be uint8 (0..255) or floating point (0..1), got {images.dtype}"
        )


def _to_float_batch(images: Tensor) -> Tensor:
    _check_images(images)
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    return images.to(torch.float32)


@dataclass(frozen=True)
class EvalConfig:
    """Deterministic evaluation transform: resize, then center crop.

    Attributes:
        resize: Target length of the shorter image side (antialiased bilinear),
            or None to keep the size.
        crop: Side of the square center crop, or None to skip cropping.
    """

    resize: int | None = None
    crop: int | None = None

    def __post_init__(self) -> None:
        for name in ("resize", "crop"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive size or None, got {value}")


class EvalTransform:
    """Resize, center-crop and normalise images for evaluation.

    These operations are deterministic, so torchvision's v2 functionals apply
    them to a whole batch at once.

    Args:
        config: Resize and crop sizes.
        normalization: Per-channel statistics, or None to return values in [0, 1].
    """

    def __init__(
        self,
        config: EvalConfig | None = None,
        normalization: Normalization | None = None,
    ) -> None:
        self.config = config or EvalConfig()
        self.normalization = normalization

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.config}, normalization={self.normalization})"
        )

    def __call__(self, images: Tensor) -> Tensor:
        """Transform uint8 or [0, 1] float images of shape (..., C, H, W) to float32."""
        from torchvision.transforms.v2 import functional as TF

        if images.ndim < 3 or images.shape[-3] not in (1, 3):
            raise ValueError(
                "images must have shape (..., C, H, W) with C = 1 or 3, "
                f"got {tuple(images.shape)}"
            )
        if images.dtype == torch.uint8:
            out = images.to(torch.float32).div_(255.0)
        else:
            out = images.to(torch.float32)
        if self.config.resize is not None:
            out = TF.resize(out, [self.config.resize], antialias=True).clamp_(0, 1)
        if self.config.crop is not None:
            out = TF.center_crop(out, [self.config.crop, self.config.crop])
        if self.normalization is not None:
            out = self.normalization.apply(out)
        return out
