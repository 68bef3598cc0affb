"""``alignsphere demo``: the metrics on real digits, in a few seconds."""

from __future__ import annotations

import argparse
import json

import torch

from alignsphere.metrics import alignment, uniformity, uniformity_optimum


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--t", type=float, default=2.0, help="uniformity scale t (default 2)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print JSON instead of a table"
    )


def run(args: argparse.Namespace) -> int:
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = torch.tensor(digits.data, dtype=torch.float32)
    labels = torch.tensor(digits.target)
    generator = torch.Generator().manual_seed(0)
    raw = torch.nn.functional.normalize(pixels - pixels.mean(0), dim=1)
    noisy = torch.nn.functional.normalize(
        pixels - pixels.mean(0) + 2 * torch.randn(pixels.shape, generator=generator),
        dim=1,
    )
    random = torch.nn.functional.normalize(
        torch.randn(pixels.shape, generator=generator), dim=1
    )
    rows = {
        "pixels (centred)": raw,
        "pixels + noise": noisy,
        "random directions": random,
    }
    result = {}
    for name, features in rows.items():
        result[name] = {
            "alignment (pixels vs noisy)": alignment(raw, noisy),
            "uniformity": uniformity(features, args.t),
        }
    result["optimum"] = uniformity_optimum(pixels.shape[1], args.t)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"digits: {len(labels)} images of 64 pixels, t = {args.t:g}")
    for name in rows:
        print(f"  {name:<20} uniformity {result[name]['uniformity']:8.4f}")
    print(
        f"  {'uniform on S^63':<20} uniformity {result['optimum']:8.4f} (population optimum)"
    )
    print(
        f"  alignment of centred pixels with their noisy copy: {alignment(raw, noisy):.4f}"
    )
    return 0
