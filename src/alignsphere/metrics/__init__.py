"""Metrics of unit features: exact, sampled, and the population optimum.

The torchmetrics classes live in :mod:`alignsphere.metrics.streaming`, which is
imported on demand so that this package needs torch alone.
"""

from alignsphere.metrics.functional import (
    UniformityEstimate,
    alignment,
    log_bessel_iv,
    uniformity,
    uniformity_optimum,
    uniformity_sampled,
)

__all__ = [
    "UniformityEstimate",
    "alignment",
    "log_bessel_iv",
    "uniformity",
    "uniformity_optimum",
    "uniformity_sampled",
]
