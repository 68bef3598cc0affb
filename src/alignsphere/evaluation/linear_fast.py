"""Fast linear probe: logistic regression on frozen, precomputed features.

This is the CPU-friendly probe and the default of ``alignsphere evaluate``.
Features are extracted once without augmentation, standardised with the
training split's mean and standard deviation, and a multinomial logistic
regression (scikit-learn, L-BFGS, full batch) is fitted to them. It ranks
encoders the way the paper's protocol does at a small fraction of its cost, but
its accuracy is not the paper's number: see :mod:`alignsphere.evaluation.linear`
for the protocol with augmentation and Adam.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinearProbeResult:
    """Accuracy of a linear classifier on frozen features.

    Attributes:
        method: ``"fast"`` (logistic regression on precomputed features) or
            ``"paper"`` (Adam with train-time augmentation).
        train_accuracy: Accuracy on the training split, in [0, 1].
        test_accuracy: Accuracy on the test split, in [0, 1].
        settings: The probe's hyperparameters, for the JSON report.
    """

    method: str
    train_accuracy: float
    test_accuracy: float
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict."""
        return asdict(self)


def _as_numpy(name: str, features: torch.Tensor, labels: torch.Tensor):
    if features.dim() != 2:
        raise ValueError(f"{name} features must be (N, d), got {tuple(features.shape)}")
    if labels.shape != (features.shape[0],):
        raise ValueError(
            f"{name} labels must have shape ({features.shape[0]},), "
            f"got {tuple(labels.shape)}"
        )
    if features.shape[0] == 0:
        raise ValueError(f"{name} split is empty")
    if not bool(torch.isfinite(features).all()):
        raise ValueError(f"{name} features contain NaN or infinite values")
    if int(labels.min()) < 0:
        raise ValueError(f"{name} labels must be >= 0; drop unlabelled rows (label -1)")
    return (
        features.detach().to("cpu", torch.float64).numpy(),
        labels.detach().to("cpu", torch.int64).numpy(),
    )


def linear_probe_fast(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    inverse_regularization: float = 1.0,
    max_iter: int = 1000,
) -> LinearProbeResult:
    """Fit a multinomial logistic regression on standardised frozen features.

    The model is ``softmax(W (x - mean) / std + b)`` with mean and std from the
    training features (a constant feature keeps std 1), fitted by L-BFGS on the
    whole training split with an L2 penalty ``||W||^2 / (2 C)``. The result is
    deterministic for given features.

    Args:
        train_features: ``(N, d)`` training features.
        train_labels: ``(N,)`` labels in ``[0, num_classes)``.
        test_features: ``(M, d)`` test features.
        test_labels: ``(M,)`` labels.
        inverse_regularization: scikit-learn's ``C`` (> 0); smaller is a stronger
            penalty. Defaults to 1, scikit-learn's default, which suits a few
            hundred standardised features and tens of thousands of samples.
        max_iter: L-BFGS iterations at most. Defaults to 1000; a warning is
            logged if the fit stops there before converging.

    Returns:
        A :class:`LinearProbeResult` with ``method="fast"``.

    Raises:
        ValueError: On mismatched shapes, non-finite features, negative labels,
            fewer than two classes in the training split, or a bad setting.

    Example:
        >>> x = torch.cat([torch.randn(50, 2) - 3, torch.randn(50, 2) + 3])
        >>> y = torch.cat([torch.zeros(50), torch.ones(50)]).long()
        >>> linear_probe_fast(x, y, x, y).test_accuracy
        1.0
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if not (math.isfinite(inverse_regularization) and inverse_regularization > 0):
        raise ValueError(
            f"inverse_regularization must be a finite number > 0, "
            f"got {inverse_regularization!r}"
        )
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter!r}")
    x_train, y_train = _as_numpy("train", train_features, train_labels)
    x_test, y_test = _as_numpy("test", test_features, test_labels)
    if x_train.shape[1] != x_test.shape[1]:
        raise ValueError(
            f"train and test features differ in dimension: {x_train.shape[1]} "
            f"and {x_test.shape[1]}"
        )
    if np.unique(y_train).size < 2:
        raise ValueError("the training split has fewer than two classes")

    scaler = StandardScaler().fit(x_train)
    classifier = LogisticRegression(C=inverse_regularization, max_iter=int(max_iter))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        classifier.fit(scaler.transform(x_train), y_train)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        logger.warning(
            "logistic regression did not converge in %d iterations; "
            "accuracy may be slightly low, raise max_iter to fit further",
            max_iter,
        )
    train_accuracy = float(classifier.score(scaler.transform(x_train), y_train))
    test_accuracy = float(classifier.score(scaler.transform(x_test), y_test))
    return LinearProbeResult(
        method="fast",
        train_accuracy=train_accuracy,
        test_accuracy=test_accuracy,
        settings={
            "classifier": "sklearn LogisticRegression (lbfgs, multinomial)",
            "standardize": True,
            "C": inverse_regularization,
            "max_iter": int(max_iter),
            "iterations": int(np.max(classifier.n_iter_)),
        },
    )
