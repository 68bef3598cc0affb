"""The paper's central experiment: many encoders, their metrics and accuracy.

:func:`~alignsphere.study.config.load_study` reads a study YAML,
:func:`~alignsphere.study.runner.run_study` trains and evaluates its trials on
Ray Tune, and :func:`~alignsphere.study.report.build_report` correlates the
held-out metrics with downstream accuracy.
"""

from alignsphere.study.config import (
    StudyConfig,
    StudyConfigError,
    Trial,
    load_study,
    parse_study,
)

__all__ = ["StudyConfig", "StudyConfigError", "Trial", "load_study", "parse_study"]
