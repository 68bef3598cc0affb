"""GPU check of the ImageNet-100 MoCo recipe: throughput, peak memory, falling loss.

Trains ResNet-50 with MoCo on ``3*align(alpha=2) + 1*uniform_queue(t=3)``, batch
128, lr 0.03, queue 16384 and momentum 0.999 for a few hundred steps, and
reports images per second, the peak GPU memory
(``torch.cuda.max_memory_allocated``) and whether the loss fell. Images are
the CIFAR-10 JPEGs in ``$ALIGNSPHERE_TEST_DATA/cifar10-jpg.tar.gz`` when that
file exists (decoded with torchvision and upscaled by the crop), otherwise
synthetic smooth random images. Views come from alignsphere's own per-sample
augmentation with the ``imagenet_mocov1`` preset when ``alignsphere.data``
imports, else from a torch-only fallback (crop, flip, brightness, grayscale).

It needs torch, torchvision and alignsphere's losses, encoders and MoCo core,
and no Lightning, torchmetrics or Ray. The defaults finish in under 5 minutes
on one recent GPU.

    python benchmarks/gpu_check.py                      # the recipe, on cuda
    python benchmarks/gpu_check.py --steps 2 --device cpu --batch-size 8 \
        --queue-size 64 --image-size 64                 # CPU smoke run

The exit code is 1 when a run of 50 steps or more ends with a loss that did
not fall. The mean over the last 10 % of the steps is compared with the mean
over as many steps from step ceil(K / batch) on (128 for the recipe), when the
queue contains trained keys only. Shorter runs compare from step 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tarfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from alignsphere.moco import MoCo
from alignsphere.models import build_encoder

OBJECTIVE = "3*align(alpha=2) + 1*uniform_queue(t=3)"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps")
    parser.add_argument("--warmup", type=int, default=10, help="untimed first steps")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step")
    parser.add_argument("--queue-size", type=int, default=16384, help="queue size K")
    parser.add_argument("--momentum", type=float, default=0.999)
    parser.add_argument("--lr", type=float, default=0.03, help="SGD learning rate")
    parser.add_argument("--image-size", type=int, default=224, help="view side, px")
    parser.add_argument("--arch", default="resnet50", help="alignsphere encoder name")
    parser.add_argument("--bn-splits", type=int, default=1, help="MoCo bn_splits")
    parser.add_argument(
        "--pool", type=int, default=5000, help="distinct training images"
    )
    parser.add_argument(
        "--precision", choices=("fp32", "bf16"), default="fp32", help="autocast"
    )
    parser.add_argument("--device", default=None, help="default: cuda if available")
    parser.add_argument(
        "--max-seconds", type=float, default=240.0, help="stop the loop after this"
    )
    parser.add_argument("--json", metavar="FILE", help="also write results as JSON")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def load_images(count: int, generator: torch.Generator) -> tuple[torch.Tensor, str]:
    """Return ``(count, 3, 32, 32)`` uint8 images and where they came from."""
    root = os.environ.get("ALIGNSPHERE_TEST_DATA")
    archive = Path(root) / "cifar10-jpg.tar.gz" if root else None
    if archive is not None and archive.is_file():
        from torchvision.io import decode_jpeg

        images = []
        with tarfile.open(archive, mode="r|gz") as stream:
            for member in stream:
                if not (member.isfile() and member.name.startswith("train/")):
                    continue
                data = torch.frombuffer(
                    bytearray(stream.extractfile(member).read()), dtype=torch.uint8
                )
                images.append(decode_jpeg(data))
                if len(images) == count:
                    break
        return torch.stack(images), f"{len(images)} CIFAR-10 JPEGs from {archive}"
    # Smooth random images: 4x4 noise upsampled, so that crops of one image
    # resemble each other more than crops of two images.
    coarse = torch.rand(count, 3, 4, 4, generator=generator)
    smooth = F.interpolate(coarse, size=32, mode="bicubic", align_corners=False)
    images = (smooth.clamp(0, 1) * 255).to(torch.uint8)
    return images, f"{count} synthetic smooth random images"


class FallbackViews:
    """Torch-only views: random resized crop (scale 0.2-1), flip, brightness, gray."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, images: torch.Tensor, generator: torch.Generator):
        count, _, height, width = images.shape
        area = torch.empty(count).uniform_(0.2, 1.0, generator=generator)
        log_ratio = torch.empty(count).uniform_(
            math.log(3 / 4), math.log(4 / 3), generator=generator
        )
        ratio = log_ratio.exp()
        crop_w = (area * ratio).sqrt().clamp(max=1.0) * width
        crop_h = (area / ratio).sqrt().clamp(max=1.0) * height
        left = torch.rand(count, generator=generator) * (width - crop_w)
        top = torch.rand(count, generator=generator) * (height - crop_h)
        boxes = torch.stack(
            [torch.arange(count).float(), left, top, left + crop_w, top + crop_h], 1
        ).to(images.device)
        views = roi_align(images.float() / 255, boxes, self.size, aligned=True)
        flip = (torch.rand(count, generator=generator) < 0.5).to(images.device)
        views = torch.where(flip[:, None, None, None], views.flip(3), views)
        scale = torch.empty(count).uniform_(0.6, 1.4, generator=generator)
        views = (views * scale.to(images.device)[:, None, None, None]).clamp(0, 1)
        gray = (torch.rand(count, generator=generator) < 0.2).to(images.device)
        luma = views.mean(1, keepdim=True).expand_as(views)
        views = torch.where(gray[:, None, None, None], luma, views)
        mean = torch.tensor(IMAGENET_MEAN, device=images.device)[:, None, None]
        std = torch.tensor(IMAGENET_STD, device=images.device)[:, None, None]
        return (views - mean) / std


def build_views(size: int):
    """Return the product's MoCo v1 augmentation, or the fallback, and its name."""
    try:
        import dataclasses

        from alignsphere.moco.presets import MOCO_V1_PRESET
    except ImportError as error:
        return FallbackViews(size), f"torch-only fallback ({error})"
    preset = MOCO_V1_PRESET
    train = dataclasses.replace(preset.train, size=size)
    augmentation = dataclasses.replace(preset, train=train).train_augmentation()
    return augmentation, "alignsphere BatchAugmentation, preset imagenet_mocov1"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(
        args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    )
    torch.manual_seed(args.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats(device)
    generator = torch.Generator().manual_seed(args.seed)
    images, source = load_images(args.pool, generator)
    images = images.to(device)
    views, views_name = build_views(args.image_size)

    encoder = build_encoder(args.arch, out_dim=128)
    moco = MoCo(
        encoder,
        OBJECTIVE,
        queue_size=args.queue_size,
        momentum=args.momentum,
        bn_splits=args.bn_splits,
        seed=args.seed,
    ).to(device)
    moco.train()
    optimizer = torch.optim.SGD(
        moco.encoder_q.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4
    )
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"
    )

    # Steps before this one are not timed (cuDNN autotuning, allocator growth);
    # a short smoke run still times its second half.
    warmup = min(args.warmup, args.steps // 2)
    losses: list[float] = []
    terms: list[dict[str, float]] = []
    timed_images = 0
    timed_seconds = 0.0
    started = time.perf_counter()
    for step in range(args.steps):
        index = torch.randint(
            0, images.shape[0], (args.batch_size,), generator=generator
        )
        batch = images[index.to(device)]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        step_start = time.perf_counter()
        view_q, view_k = views(batch, generator), views(batch, generator)
        with autocast:
            output = moco(view_q, view_k)
        optimizer.zero_grad(set_to_none=True)
        output.total.backward()
        optimizer.step()
        losses.append(float(output.total.detach()))  # synchronises the device
        terms.append({name: float(v.detach()) for name, v in output.terms.items()})
        if step >= warmup:
            timed_images += args.batch_size
            timed_seconds += time.perf_counter() - step_start
        if not math.isfinite(losses[-1]):
            print(f"step {step}: loss is {losses[-1]}; stopping", file=sys.stderr)
            break
        if step % 50 == 0 or step == args.steps - 1:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in terms[-1].items())
            print(f"step {step:4d}  loss {losses[-1]:.4f}  ({shown})", flush=True)
        if time.perf_counter() - started > args.max_seconds:
            print(f"stopped after {step + 1} steps: --max-seconds reached")
            break

    # Until ceil(K / batch) steps have run, part of the queue still contains its
    # random initial unit vectors, which are more uniform than any trained
    # keys, so the loss is compared from the first step after that.
    window = max(1, len(losses) // 10)
    fill_steps = math.ceil(args.queue_size / args.batch_size)
    start = fill_steps if len(losses) >= fill_steps + 2 * window else 0
    first = sum(losses[start : start + window]) / window
    last = sum(losses[-window:]) / window
    result = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else "cpu",
        "torch": torch.__version__,
        "arch": args.arch,
        "objective": OBJECTIVE,
        "batch_size": args.batch_size,
        "queue_size": args.queue_size,
        "image_size": args.image_size,
        "precision": args.precision,
        "images": source,
        "views": views_name,
        "steps": len(losses),
        "images_per_second": timed_images / timed_seconds if timed_seconds else None,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30
        if device.type == "cuda"
        else None,
        "loss_compared_from_step": start,
        "loss_first": first,
        "loss_last": last,
        "loss_fell": last < first,
        "terms_first": terms[0] if terms else {},
        "terms_last": terms[-1] if terms else {},
        "queue_ptr": int(moco.queue_ptr),
        "wall_seconds": time.perf_counter() - started,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if len(losses) >= 50 and not result["loss_fell"]:
        print("the loss did not fall", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
