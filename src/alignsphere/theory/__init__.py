"""Numerical checks of the theory: Theorem 1's limit and the uniformity bound.

- :mod:`~alignsphere.theory.theorem1`: the contrastive loss with M negatives
  minus log M, its limit as M grows, and the gap with its power-law slope.
- :mod:`~alignsphere.theory.uniformity_bound`: uniform samples against the
  closed-form optimum, and von Mises-Fisher distributions of growing
  concentration scoring worse.
- :mod:`~alignsphere.theory.distributions`: the fixed encoders, as distributions
  on the sphere with exact log-partition functions, and Wood's vMF sampler.
- :mod:`~alignsphere.theory.special`: the Bessel-function closed forms they rest on.

The figures live in :mod:`alignsphere.theory.figures`, which imports matplotlib.
"""

from alignsphere.theory.distributions import (
    EmpiricalSphere,
    FeaturePairs,
    PairDistribution,
    PerturbedPairs,
    SphereDistribution,
    UniformSphere,
    VonMisesFisher,
    VonMisesFisherMixture,
    sample_vmf,
)
from alignsphere.theory.scenarios import (
    Scenario,
    checkpoint_scenario,
    synthetic_scenarios,
)
from alignsphere.theory.special import (
    log_bessel_iv,
    log_bessel_series,
    log_mean_exp_dot_uniform,
    vmf_log_normalizer,
    vmf_mean_resultant_length,
)
from alignsphere.theory.theorem1 import (
    DEFAULT_NEGATIVE_COUNTS,
    PowerLawFit,
    Theorem1Result,
    contrastive_terms_by_prefix,
    estimate_theorem1,
    fit_gap_power_law,
)
from alignsphere.theory.uniformity_bound import (
    UniformityWithError,
    UniformSampleCheck,
    VMFUniformityRow,
    check_uniform_samples,
    uniform_sample_std_error,
    uniformity_with_std_error,
    vmf_population_uniformity,
    vmf_uniformity_sweep,
)

__all__ = [
    "DEFAULT_NEGATIVE_COUNTS",
    "EmpiricalSphere",
    "FeaturePairs",
    "PairDistribution",
    "PerturbedPairs",
    "PowerLawFit",
    "Scenario",
    "SphereDistribution",
    "Theorem1Result",
    "UniformSampleCheck",
    "UniformSphere",
    "UniformityWithError",
    "VMFUniformityRow",
    "VonMisesFisher",
    "VonMisesFisherMixture",
    "check_uniform_samples",
    "checkpoint_scenario",
    "contrastive_terms_by_prefix",
    "estimate_theorem1",
    "fit_gap_power_law",
    "log_bessel_iv",
    "log_bessel_series",
    "log_mean_exp_dot_uniform",
    "sample_vmf",
    "synthetic_scenarios",
    "uniform_sample_std_error",
    "uniformity_with_std_error",
    "vmf_log_normalizer",
    "vmf_mean_resultant_length",
    "vmf_population_uniformity",
    "vmf_uniformity_sweep",
]
