"""Evaluating frozen encoders: linear probes, k-NN and held-out metrics.

All feature extraction runs in eval mode and leaves the encoder's weights and
train/eval flags as it found them.
"""

from alignsphere.evaluation.features import (
    encode_views,
    eval_mode,
    extract_features,
    resolve_layer,
)
from alignsphere.evaluation.heldout import HeldOutMetrics, measure_heldout
from alignsphere.evaluation.knn import knn_accuracy, knn_predict
from alignsphere.evaluation.linear import linear_probe_paper
from alignsphere.evaluation.linear_fast import LinearProbeResult, linear_probe_fast
from alignsphere.evaluation.report import (
    EvaluationSettings,
    evaluate_encoder,
    format_report,
    write_json,
)
from alignsphere.evaluation.subsets import stratified_subset

__all__ = [
    "EvaluationSettings",
    "HeldOutMetrics",
    "LinearProbeResult",
    "encode_views",
    "eval_mode",
    "evaluate_encoder",
    "extract_features",
    "format_report",
    "knn_accuracy",
    "knn_predict",
    "linear_probe_fast",
    "linear_probe_paper",
    "measure_heldout",
    "resolve_layer",
    "stratified_subset",
    "write_json",
]
