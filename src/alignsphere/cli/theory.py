"""``alignsphere theory``: numerical checks of Theorem 1 and of the uniformity bound.

Writes to the output folder::

    theorem1.json, theorem1.png, theorem1.pdf
    uniformity_bound.json, uniformity_bound.png, uniformity_bound.pdf

and prints both tables.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

from alignsphere.cli.errors import UsageError

_SYNTHETIC_NAMES = (
    "uniform-d3",
    "uniform-d32",
    "vmf-d3",
    "mixture-d16",
    "uniform-d32-tau0.1",
)
_BOUND_DIMS = (2, 3, 16, 128)
_BOUND_KAPPAS = (0.0, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
_BOUND_SAMPLE_SIZES = (256, 1024, 4096)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``alignsphere theory`` to ``parser``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Theorem 1 is checked on synthetic encoders (distributions on the sphere\n"
        "with perturbed positive pairs):\n  "
        + ", ".join(_SYNTHETIC_NAMES)
        + "\nand, with --checkpoint, on a trained encoder's features of two\n"
        "augmented views of its test images.\n\n"
        "examples:\n"
        "  alignsphere theory --output theory/\n"
        "  alignsphere theory --checkpoint runs/digits --scenarios none --output t/\n"
    )
    parser.add_argument(
        "--output", required=True, metavar="DIR", help="folder for figures and JSON"
    )

    # The trained encoder to check besides the synthetic ones.
    parser.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="also check an encoder trained by alignsphere train (encoder.pt, "
        ".ckpt or run folder)",
    )
    parser.add_argument(
        "--data-root",
        metavar="DIR",
        help="data folder of the checkpoint's dataset, if it has moved",
    )
    parser.add_argument(
        "--checkpoint-images",
        type=int,
        default=2000,
        metavar="N",
        help="test images the checkpoint encodes, two views each (default: 2000)",
    )
    parser.add_argument(
        "--tau",
        type=float,
        metavar="TAU",
        help="temperature for the checkpoint (default: the tau of its objective's "
        "contrastive term, else 0.5)",
    )

    # Theorem 1: which encoders, and the size of the Monte Carlo estimate.
    parser.add_argument(
        "--scenarios",
        default="all",
        metavar="NAMES",
        help="comma-separated synthetic encoders to check, 'all' (default) or 'none'",
    )
    parser.add_argument(
        "--max-negatives",
        type=int,
        default=16384,
        metavar="M",
        help="largest number of negatives; M runs over powers of 2 up to it "
        "(default: 16384)",
    )
    parser.add_argument(
        "--pools",
        type=int,
        default=128,
        metavar="N",
        help="independent pools of negatives per encoder (default: 128)",
    )
    parser.add_argument(
        "--anchors-per-pool",
        type=int,
        default=64,
        metavar="N",
        help="positive pairs that share a pool (default: 64)",
    )
    parser.add_argument(
        "--limit-pairs",
        type=int,
        default=65536,
        metavar="N",
        help="positive pairs for the limit and c1 (default: 65536)",
    )
    parser.add_argument(
        "--fit-min-negatives",
        type=int,
        default=64,
        metavar="M",
        help="smallest M in the power-law fit of the gap (default: 64)",
    )

    # The uniformity bound.
    parser.add_argument(
        "--bound-samples",
        type=int,
        default=2048,
        metavar="N",
        help="samples per von Mises-Fisher distribution in the uniformity-bound "
        "check (default: 2048)",
    )
    parser.add_argument(
        "--bound-dims",
        default=",".join(str(d) for d in _BOUND_DIMS),
        metavar="D,...",
        help="comma-separated dimensions of the uniformity-bound check "
        "(default: " + ",".join(str(d) for d in _BOUND_DIMS) + ")",
    )

    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--num-threads", type=int, metavar="N", help="CPU threads of PyTorch"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bars"
    )


def _negative_counts(max_negatives: int) -> list[int]:
    counts = [2**k for k in range(max_negatives.bit_length()) if 2**k <= max_negatives]
    if counts[-1] != max_negatives:
        counts.append(max_negatives)
    return counts


def _parse_dims(text: str) -> list[int]:
    try:
        dims = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        dims = []
    if not dims or min(dims) < 2:
        raise UsageError(
            f"invalid --bound-dims {text!r}; give comma-separated integers >= 2, "
            "such as 2,3,16,128"
        )
    return dims


def _check_arguments(args: argparse.Namespace) -> list[str]:
    for name, minimum in (
        ("max_negatives", 2),
        ("pools", 2),
        ("anchors_per_pool", 1),
        ("limit_pairs", 2),
        ("fit_min_negatives", 1),
        ("bound_samples", 3),
        ("checkpoint_images", 2),
    ):
        value = getattr(args, name)
        if value < minimum:
            option = "--" + name.replace("_", "-")
            raise UsageError(f"{option} must be >= {minimum}, got {value}")
    if args.tau is not None and not (args.tau > 0 and math.isfinite(args.tau)):
        raise UsageError(f"--tau must be a positive number, got {args.tau}")
    if args.num_threads is not None and args.num_threads < 1:
        raise UsageError(f"--num-threads must be >= 1, got {args.num_threads}")
    text = args.scenarios.strip()
    if text == "all":
        names = list(_SYNTHETIC_NAMES)
    elif text == "none":
        names = []
    else:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in _SYNTHETIC_NAMES]
        if unknown:
            raise UsageError(
                f"unknown --scenarios {', '.join(unknown)}; valid: "
                f"{', '.join(_SYNTHETIC_NAMES)}, all or none"
            )
    if not names and args.checkpoint is None:
        raise UsageError(
            "--scenarios none leaves nothing to check; give --checkpoint PATH too"
        )
    return names


def run(args: argparse.Namespace) -> int:
    """Run the checks, print the tables and write figures and JSON."""
    import torch

    from alignsphere.evaluation.report import write_json
    from alignsphere.theory import (
        check_uniform_samples,
        estimate_theorem1,
        synthetic_scenarios,
        vmf_uniformity_sweep,
    )
    from alignsphere.theory.figures import plot_theorem1, plot_uniformity_bound

    names = _check_arguments(args)
    bound_dims = _parse_dims(args.bound_dims)
    # PDF font subsetting logs every glyph at INFO.
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)
    output = Path(args.output)
    scenarios = [s for s in synthetic_scenarios(args.seed) if s.name in names]
    if args.checkpoint is not None:
        scenarios.append(_load_checkpoint_scenario(args))

    counts = _negative_counts(args.max_negatives)
    generator = torch.Generator().manual_seed(args.seed)
    results = []
    for scenario in scenarios:
        results.append(
            estimate_theorem1(
                scenario.pairs,
                scenario.tau,
                negative_counts=counts,
                num_pools=args.pools,
                anchors_per_pool=args.anchors_per_pool,
                limit_pairs=args.limit_pairs,
                fit_min_negatives=args.fit_min_negatives,
                name=scenario.name,
                generator=generator,
                progress=not args.no_progress,
            )
        )
    theorem1 = {
        "description": (
            "L(M) - log M for M negatives, its limit as M grows (Theorem 1), and "
            "the gap between them; std errors are over independent pools"
        ),
        "seed": args.seed,
        "encoders": [
            {"description": s.description, **r.to_dict()}
            for s, r in zip(scenarios, results, strict=True)
        ],
    }
    files = [write_json(_json_safe(theorem1), output / "theorem1.json")]
    files += plot_theorem1(results, output / "theorem1")
    print(format_theorem1_table(results, counts))

    uniform_checks = [
        check_uniform_samples(dim, n, generator=generator)
        for dim in bound_dims
        for n in _BOUND_SAMPLE_SIZES
    ]
    vmf_rows = vmf_uniformity_sweep(
        bound_dims,
        _BOUND_KAPPAS,
        num_samples=args.bound_samples,
        generator=generator,
    )
    bound = {
        "description": (
            "uniformity (t = 2) of uniform samples against the closed-form optimum, "
            "and of von Mises-Fisher distributions of growing concentration"
        ),
        "seed": args.seed,
        "uniform_samples": [vars(c) for c in uniform_checks],
        "von_mises_fisher": [vars(r) for r in vmf_rows],
    }
    files.append(write_json(_json_safe(bound), output / "uniformity_bound.json"))
    files += plot_uniformity_bound(
        vmf_rows, uniform_checks, output / "uniformity_bound"
    )
    print()
    print(format_bound_tables(uniform_checks, vmf_rows))
    print()
    print("wrote " + ", ".join(str(path) for path in files))
    return 0


def _load_checkpoint_scenario(args: argparse.Namespace) -> Any:
    from alignsphere.data import (
        CorruptImageError,
        DatasetNotFoundError,
        InvalidDatasetFileError,
    )
    from alignsphere.theory import checkpoint_scenario
    from alignsphere.training.checkpoint import CheckpointError

    try:
        return checkpoint_scenario(
            args.checkpoint,
            tau=args.tau,
            num_images=args.checkpoint_images,
            seed=args.seed,
            data_root=args.data_root,
        )
    except CheckpointError as error:
        raise UsageError(str(error)) from None
    except (DatasetNotFoundError, CorruptImageError, InvalidDatasetFileError) as error:
        raise UsageError(
            f"{error} (pass --data-root DIR if the data has moved)"
        ) from None


def _json_safe(value: Any) -> Any:
    """Replace NaN and infinite floats by None, which JSON can represent."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def format_theorem1_table(results: list[Any], counts: list[int]) -> str:
    """Format the Theorem 1 results as a plain-text table."""
    last = counts[-1]
    first = results[0] if results else None
    lines = [
        f"Theorem 1: L(M) - log M and its limit, M = {counts[0]} to {last} "
        + (
            f"({first.num_pools} pools x {first.anchors_per_pool} anchors; "
            f"limit from {first.limit_pairs} pairs)"
            if first
            else ""
        ),
        f"{'encoder':<20} {'d':>4} {'tau':>5} {'limit':>9} {'gap M=1':>9} "
        f"{'gap M=' + str(last):>12} {'M*gap':>8} {'c1':>8} {'last':>6}  "
        "slope of gap (fit range)",
    ]
    for result in results:
        fit = result.fit
        slope = (
            f"{fit.slope:.4f} +- {fit.slope_std_error:.4f} "
            f"(M {fit.min_negatives}-{fit.max_negatives})"
            if fit is not None
            else "no fit (gap not above noise)"
        )
        final = "" if result.final_slope is None else f"{result.final_slope:.3f}"
        lines.append(
            f"{result.name:<20} {result.dim:>4} {result.tau:>5g} "
            f"{result.limit:>9.4f} {result.gap[0]:>9.4f} {result.gap[-1]:>12.3e} "
            f"{last * result.gap[-1]:>8.3f} {result.first_order_coefficient:>8.3f} "
            f"{final:>6}  {slope}"
        )
    lines.append(
        "gap ~ c1/M to first order; the paper bounds it by O(M^(-2/3)). "
        "last: slope over the last doubling of M."
    )
    return "\n".join(lines)


def format_bound_tables(uniform_checks: list[Any], vmf_rows: list[Any]) -> str:
    """Format the uniformity-bound checks as two plain-text tables."""
    lines = [
        "Uniformity bound (t = 2): samples of the uniform distribution against the "
        "closed-form optimum",
        f"{'d':>4} {'n':>6} {'measured':>10} {'optimum':>10} {'std err':>9} {'z':>6}",
    ]
    for check in uniform_checks:
        lines.append(
            f"{check.dim:>4} {check.num_samples:>6} {check.value:>10.5f} "
            f"{check.optimum:>10.5f} {check.std_error:>9.2e} {check.z_score:>6.2f}"
        )
    lines += [
        "",
        "von Mises-Fisher(kappa): uniformity rises with concentration "
        "(population by quadrature)",
        f"{'d':>4} {'kappa':>7} {'population':>11} {'sample':>10} {'std err':>9} "
        f"{'optimum':>10}",
    ]
    for row in vmf_rows:
        lines.append(
            f"{row.dim:>4} {row.kappa:>7g} {row.population:>11.5f} "
            f"{row.sample:>10.5f} {row.sample_std_error:>9.2e} {row.optimum:>10.5f}"
        )
    return "\n".join(lines)
