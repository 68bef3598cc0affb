"""Figures: features on the circle, training dynamics, and the shared print style.

- :mod:`~alignsphere.plots.circle`: encoders with a 2-D output, trained four
  ways, and their held-out features on the circle.
- :mod:`~alignsphere.plots.dynamics`: L_align and L_uniform per epoch from the
  CSV logs of ``alignsphere train``.
- :mod:`~alignsphere.plots.kde`: the Gaussian and von Mises-Fisher kernel
  densities behind the circle figure.
- :mod:`~alignsphere.plots.style`: fonts and sizes for print, and
  :func:`~alignsphere.plots.style.save_figure` (PNG at 200 dpi and PDF).

Every figure is built with matplotlib's object API, which is imported only when
a figure is drawn.
"""

from alignsphere.plots.circle import (
    CIRCLE_DATASETS,
    CIRCLE_METHODS,
    DEFAULT_SETTINGS,
    CircleEncoder,
    CircleFeatures,
    CircleReport,
    CircleSettings,
    CosineClassifier,
    make_circle_figure,
    measure_circle_features,
    plot_circle_features,
    train_circle_encoders,
)
from alignsphere.plots.dynamics import (
    RunDynamics,
    RunLogError,
    load_run_dynamics,
    make_dynamics_figure,
    plot_dynamics,
    read_epoch_metrics,
)
from alignsphere.plots.kde import gaussian_kde_2d, vmf_kde_angles
from alignsphere.plots.style import PNG_DPI, print_style, save_figure

__all__ = [
    "CIRCLE_DATASETS",
    "CIRCLE_METHODS",
    "DEFAULT_SETTINGS",
    "PNG_DPI",
    "CircleEncoder",
    "CircleFeatures",
    "CircleReport",
    "CircleSettings",
    "CosineClassifier",
    "RunDynamics",
    "RunLogError",
    "gaussian_kde_2d",
    "load_run_dynamics",
    "make_circle_figure",
    "make_dynamics_figure",
    "measure_circle_features",
    "plot_circle_features",
    "plot_dynamics",
    "print_style",
    "read_epoch_metrics",
    "save_figure",
    "train_circle_encoders",
    "vmf_kde_angles",
]
