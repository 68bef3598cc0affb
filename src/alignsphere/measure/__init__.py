"""Measure alignment, uniformity and related diagnostics of any embeddings.

The inputs are embedding files (``.npy``, ``.safetensors``, ``.pt``, ``.npz``),
tensors, a sentence-transformers model on sentence-pair files
(:mod:`alignsphere.measure.sentences`), or a torchvision classifier's
penultimate features on an image folder (:mod:`alignsphere.measure.images`).
Importing this package needs torch and numpy only: the sentence, image, plot
and Lightning modules import their dependencies when they are used.

Example:
    >>> import torch
    >>> from alignsphere.measure import measure_embeddings
    >>> x = torch.randn(1000, 32)
    >>> report = measure_embeddings(x, x + 0.1 * torch.randn(1000, 32))
    >>> report.uniformity.method, report.alignment.num_pairs
    ('exact', 1000)
"""

from alignsphere.measure.arrays import (
    EMBEDDING_SUFFIXES,
    EmbeddingArray,
    FileArray,
    MappedArray,
    TensorArray,
    open_embeddings,
)
from alignsphere.measure.core import (
    MeasureOptions,
    PositivePairs,
    UniformityRows,
    measure_embeddings,
    measure_rows,
)
from alignsphere.measure.errors import MeasureInputError
from alignsphere.measure.pairs import (
    PAIR_FILE_PRESETS,
    STSB_POSITIVE_THRESHOLD,
    PairFileFormat,
    SentencePairs,
    read_pair_index,
    read_sentence_pairs,
)
from alignsphere.measure.report import AlignmentResult, MeasureReport, UniformityResult
from alignsphere.measure.rows import RowSegment, RowSet, distinct_rows
from alignsphere.measure.sampling import sample_pair_sq_distances, sampled_uniformity
from alignsphere.measure.statistics import (
    FeatureStatistics,
    NormStatistics,
    PowerLawFit,
    RowStatistics,
    Spectrum,
    alpha_req,
    effective_rank,
    feature_statistics,
)

__all__ = [
    "EMBEDDING_SUFFIXES",
    "PAIR_FILE_PRESETS",
    "STSB_POSITIVE_THRESHOLD",
    "AlignmentResult",
    "EmbeddingArray",
    "FeatureStatistics",
    "FileArray",
    "MappedArray",
    "MeasureInputError",
    "MeasureOptions",
    "MeasureReport",
    "NormStatistics",
    "PairFileFormat",
    "PositivePairs",
    "PowerLawFit",
    "RowSegment",
    "RowSet",
    "RowStatistics",
    "SentencePairs",
    "Spectrum",
    "TensorArray",
    "UniformityResult",
    "UniformityRows",
    "alpha_req",
    "distinct_rows",
    "effective_rank",
    "feature_statistics",
    "measure_embeddings",
    "measure_rows",
    "open_embeddings",
    "read_pair_index",
    "read_sentence_pairs",
    "sample_pair_sq_distances",
    "sampled_uniformity",
]
