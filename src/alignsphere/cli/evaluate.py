"""``alignsphere evaluate``: linear probe, k-NN and held-out metrics of a checkpoint."""

from __future__ import annotations

import argparse
import math

from alignsphere.cli.errors import check_output_file
from alignsphere.cli.main import UsageError

_EPILOG = """\
CHECKPOINT is an encoder.pt, a Lightning .ckpt written by alignsphere train, or
the run folder itself. The dataset, splits and preset come from the config
stored in the checkpoint; --data-root points at the data if it has moved.
Every file is loaded with torch.load(weights_only=True).

probes:
  fast   scikit-learn logistic regression (L-BFGS) on standardised features
         extracted once, without augmentation (default; minutes on CPU)
  paper  Wang & Isola (2020): a linear layer trained with Adam (lr 1e-3, betas
         0.5/0.999), batch 128, 100 epochs, lr x0.2 at epochs 60 and 80,
         random crop and flip per image; test images resized and center-cropped
  moco   MoCo's ImageNet protocol, used for the paper's ImageNet-100 numbers:
         SGD (lr 30, momentum 0.9, no weight decay), batch 256, 100 epochs,
         lr x0.1 at epochs 60 and 80, with the same crops as paper
  none   skip the linear probe
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="file or run folder")
    parser.add_argument(
        "--data-root", metavar="DIR", help="data folder (default: the config's)"
    )
    parser.add_argument(
        "--probe",
        choices=("fast", "paper", "moco", "none"),
        default="fast",
        help="linear probe protocol (default: fast)",
    )
    parser.add_argument(
        "--probe-epochs",
        type=int,
        default=100,
        metavar="N",
        help="epochs of the paper probe; its milestones stay at 60%% and 80%% "
        "(default: 100)",
    )
    parser.add_argument(
        "--knn-k",
        type=int,
        default=5,
        metavar="K",
        help="neighbours of the k-NN classifier on cosine similarity; 0 skips it "
        "(default: 5)",
    )
    parser.add_argument(
        "--knn-temperature",
        type=float,
        metavar="T",
        help="weight k-NN votes by exp(cos / T) instead of counting them",
    )
    parser.add_argument(
        "--layer",
        dest="layers",
        action="append",
        metavar="LAYER",
        help="layer to probe: output, pooled (backbone features before the head), "
        "fc7 (AlexNet) or any stage name; repeatable (default: output)",
    )
    parser.add_argument(
        "--heldout-images",
        type=int,
        default=1000,
        metavar="N",
        help="test images for held-out alignment and uniformity; 0 skips them "
        "(default: 1000)",
    )
    parser.add_argument(
        "--probe-split", help="labelled split for the probe and the k-NN bank"
    )
    parser.add_argument("--test-split", help="held-out split to test on")
    parser.add_argument(
        "--probe-limit",
        type=int,
        metavar="N",
        help="use a stratified subset of N probe images",
    )
    parser.add_argument(
        "--test-limit",
        type=int,
        metavar="N",
        help="use a stratified subset of N test images",
    )
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="evaluate the same architecture at random initialisation (seeded by "
        "--seed) instead of the trained weights: the baseline",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the held-out views, the paper probe and --random-init",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=512,
        help="images per forward pass (default: 512)",
    )
    parser.add_argument(
        "--device", help="device, such as cpu or cuda (default: cuda if available)"
    )
    parser.add_argument(
        "--num-threads", type=int, metavar="N", help="CPU threads of PyTorch"
    )
    parser.add_argument(
        "--json", metavar="FILE", help="also write the report as JSON to FILE"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _check_arguments(args: argparse.Namespace) -> None:
    for name in ("probe_epochs", "batch_size", "num_threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"invalid {flag} {value}; it must be >= 1")
    if args.knn_k < 0:
        raise UsageError(f"invalid --knn-k {args.knn_k}; it must be >= 0 (0 skips it)")
    if args.heldout_images < 0 or args.heldout_images == 1:
        raise UsageError(
            f"invalid --heldout-images {args.heldout_images}; it must be 0 (skips "
            "it) or >= 2, since uniformity needs pairs of images"
        )
    for name in ("probe_limit", "test_limit"):
        value = getattr(args, name)
        if value is not None and value < 2:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"invalid {flag} {value}; it must be >= 2")
    temperature = args.knn_temperature
    if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
        raise UsageError(
            f"invalid --knn-temperature {temperature}; it must be a finite number > 0"
        )


def run(args: argparse.Namespace) -> int:
    import torch

    from alignsphere.data import (
        CorruptImageError,
        DatasetNotFoundError,
        InvalidDatasetFileError,
    )
    from alignsphere.evaluation import (
        EvaluationSettings,
        evaluate_encoder,
        format_report,
        stratified_subset,
        write_json,
    )
    from alignsphere.training.checkpoint import CheckpointError, load_encoder
    from alignsphere.training.data import load_split, resolve_preset
    from alignsphere.training.module import build_encoder_from_config

    _check_arguments(args)
    check_output_file(args.json, "--json")
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise UsageError(f"invalid --device {args.device!r}; use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            f"--device {args.device}: PyTorch finds no CUDA device on this machine; "
            "use --device cpu"
        )

    try:
        encoder, config = load_encoder(args.checkpoint, map_location=device)
    except CheckpointError as error:
        raise UsageError(str(error)) from None
    preset = resolve_preset(config.data)
    if args.random_init:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            encoder = build_encoder_from_config(config.model, preset).to(device)

    data_config = config.data
    if args.data_root is not None:
        data_config.root = args.data_root
    probe_split = args.probe_split or data_config.probe_split or data_config.train_split
    test_split = args.test_split or data_config.test_split
    try:
        probe_set = load_split(data_config, probe_split, None, args.seed)
        test_set = load_split(data_config, test_split, None, args.seed)
    except (DatasetNotFoundError, CorruptImageError, InvalidDatasetFileError) as error:
        raise UsageError(
            f"{error} (pass --data-root DIR if the data has moved)"
        ) from None
    except ValueError as error:
        raise UsageError(str(error)) from None
    probe_set = stratified_subset(probe_set, args.probe_limit, args.seed)
    test_set = stratified_subset(test_set, args.test_limit, args.seed)

    settings = EvaluationSettings(
        layers=tuple(args.layers or ("output",)),
        probe=args.probe,
        probe_epochs=args.probe_epochs,
        knn_k=args.knn_k,
        knn_temperature=args.knn_temperature,
        heldout_images=args.heldout_images,
        alpha=config.heldout.alpha,
        t=config.heldout.t,
        seed=args.seed,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    try:
        report = evaluate_encoder(
            encoder, probe_set, test_set, preset, settings, device=device
        )
    except ValueError as error:
        # Bad --layer names and unusable splits land here with their fix.
        raise UsageError(str(error)) from None
    report = {
        "checkpoint": str(args.checkpoint),
        "random_init": bool(args.random_init),
        "model": {"name": config.model.name, "out_dim": config.model.out_dim},
        **report,
        "settings": {
            "probe": args.probe,
            "probe_epochs": args.probe_epochs if args.probe == "paper" else None,
            "knn_k": args.knn_k,
            "knn_temperature": args.knn_temperature,
            "seed": args.seed,
            "device": str(device),
        },
    }
    print(format_report(report))
    if args.json:
        path = write_json(report, args.json)
        print(f"\nwrote {path}")
    return 0
