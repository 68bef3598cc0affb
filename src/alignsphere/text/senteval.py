"""SentEval-style classification on frozen sentence vectors.

The five tasks of Wang & Isola's language experiment, read from the original
release files (the names SentEval's ``data/downstream`` folders use):

====  ============================================  =======  ===================
task  files                                          classes  protocol
====  ============================================  =======  ===================
MR    ``rt-polarity.pos``, ``rt-polarity.neg``       2        10-fold CV
CR    ``custrev.pos``, ``custrev.neg``               2        10-fold CV
SUBJ  ``subj.objective``, ``subj.subjective``        2        10-fold CV
MPQA  ``mpqa.pos``, ``mpqa.neg``                     2        10-fold CV
TREC  ``TREC.train``, ``TREC.test``                  6        fixed train/test
====  ============================================  =======  ===================

Files are read as bytes, decoded as UTF-8 or else cp1252 (several are
cp1252; the rt-polarity files and ``subj.subjective`` contain byte 0x85,
cp1252's ellipsis), and split on ``"\\n"`` only. ``str.splitlines`` would also
break lines at U+0085, which is what Latin-1 makes of that byte. Empty lines
are dropped (2 in each CR file, 3 in MPQA). Duplicate sentences are kept, as
SentEval keeps them, although MPQA repeats many short phrases, so that a
phrase can fall in both the training and the test fold. A TREC line is
``COARSE:fine question``, and the label is the coarse class (ABBR, DESC,
ENTY, HUM, LOC, NUM).

The classifier is scikit-learn's logistic regression on standardised
features. Its inverse regularisation C is chosen from ``2^-2 ... 2^4`` by an
inner k-fold cross-validation on each training split, as SentEval's
``InnerKFoldClassifier`` does (SentEval's own grid for scikit-learn is
``2^-2 ... 2^3``).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alignsphere._validation import is_integer, is_number
from alignsphere.text.corpus import decode_text, split_lines
from alignsphere.text.errors import TextDataError, TextDataNotFoundError

logger = logging.getLogger(__name__)

BINARY_TASKS: dict[str, tuple[str, str]] = {
    # task: (file of label 1, file of label 0)
    "MR": ("rt-polarity.pos", "rt-polarity.neg"),
    "CR": ("custrev.pos", "custrev.neg"),
    "SUBJ": ("subj.subjective", "subj.objective"),
    "MPQA": ("mpqa.pos", "mpqa.neg"),
}
TREC_FILES = ("TREC.train", "TREC.test")
TREC_CLASSES = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
TASKS = (*BINARY_TASKS, "TREC")
DEFAULT_C_GRID = tuple(2.0**k for k in range(-2, 5))

Encoder = Callable[[list[str]], np.ndarray]


@dataclass
class TaskData:
    """The sentences and labels of one task.

    Attributes:
        name: Task name (``MR``, ..., ``TREC``).
        sentences: All sentences; for TREC the training questions come first.
        labels: Integer labels, aligned with ``sentences``.
        classes: Class names by label.
        num_train: For a fixed split, the first ``num_train`` rows train and
            the rest test; None for cross-validated tasks.
    """

    name: str
    sentences: list[str]
    labels: np.ndarray
    classes: tuple[str, ...]
    num_train: int | None = None


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """Read a SentEval file: decode UTF-8 or cp1252, split on ``\\n``, drop empty lines.

    Raises:
        TextDataNotFoundError: If the file is missing.
        TextDataError: If it is neither UTF-8 nor cp1252.
    """
    path = Path(path)
    if not path.is_file():
        raise TextDataNotFoundError(
            f"SentEval file {path} not found; --data must be the folder with the "
            "original release files (rt-polarity.pos, custrev.pos, subj.objective, "
            "mpqa.pos, TREC.train, ...)",
            [path],
        )
    text, _ = decode_text(path.read_bytes(), path)
    return [line.strip() for line in split_lines(text) if line.strip()]


def read_task(name: str, folder: str | os.PathLike[str]) -> TaskData:
    """Read one task from its original release files.

    Args:
        name: ``MR``, ``CR``, ``SUBJ``, ``MPQA`` or ``TREC`` (case-insensitive).
        folder: Folder containing the task's files.

    Raises:
        ValueError: On an unknown task name.
        TextDataNotFoundError: If the folder or a file is missing.
        TextDataError: If a file cannot be decoded or a TREC line has no label.
    """
    task = name.upper()
    folder = Path(folder)
    if not folder.is_dir():
        raise TextDataNotFoundError(
            f"SentEval folder {folder} not found; give the folder with the original "
            "release files of MR, CR, SUBJ, MPQA and TREC",
            [folder],
        )
    if task in BINARY_TASKS:
        positive_file, negative_file = BINARY_TASKS[task]
        positive = read_lines(folder / positive_file)
        negative = read_lines(folder / negative_file)
        labels = np.array([1] * len(positive) + [0] * len(negative), dtype=np.int64)
        classes = ("negative", "positive")
        if task == "SUBJ":
            classes = ("objective", "subjective")
        return TaskData(task, positive + negative, labels, classes)
    if task == "TREC":
        train = _read_trec(folder / TREC_FILES[0])
        test = _read_trec(folder / TREC_FILES[1])
        sentences = [s for s, _ in train] + [s for s, _ in test]
        labels = np.array([c for _, c in train] + [c for _, c in test], np.int64)
        return TaskData(task, sentences, labels, TREC_CLASSES, num_train=len(train))
    raise ValueError(f"unknown SentEval task {name!r}; valid tasks: {', '.join(TASKS)}")


def _read_trec(path: Path) -> list[tuple[str, int]]:
    rows = []
    for number, line in enumerate(read_lines(path), start=1):
        label, _, question = line.partition(" ")
        coarse = label.split(":", 1)[0]
        if coarse not in TREC_CLASSES or not question.strip():
            raise TextDataError(
                f"{path} line {number}: expected 'COARSE:fine question' with COARSE "
                f"in {', '.join(TREC_CLASSES)}, got {line[:60]!r}"
            )
        rows.append((question.strip(), TREC_CLASSES.index(coarse)))
    return rows


@dataclass
class TaskResult:
    """Accuracy of one task.

    Attributes:
        task: Task name.
        accuracy: Mean test accuracy over the folds, or the test accuracy of a
            fixed split, in percent.
        std: Standard deviation over the folds (0 for a fixed split).
        num_sentences: Sentences used.
        fold_accuracies: Test accuracy of each outer fold, in percent.
        chosen_c: Regularisation chosen in each fold.
        seconds: Encoding and classification time.
    """

    task: str
    accuracy: float
    std: float
    num_sentences: int
    fold_accuracies: list[float] = field(default_factory=list)
    chosen_c: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict."""
        return asdict(self)


def _fit_and_score(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    c_grid: Sequence[float],
    inner_folds: int,
    seed: int,
) -> tuple[float, float]:
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    train_x = scaler.transform(train_x)
    test_x = scaler.transform(test_x)
    chosen = float(c_grid[0])
    if len(c_grid) > 1:
        inner = StratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=seed)
        scores = np.zeros(len(c_grid))
        for fit_index, score_index in inner.split(train_x, train_y):
            # Ascending C with warm starts: each fit starts from the solution of
            # the stronger regularisation before it, which converges faster.
            model = _logistic_regression(warm_start=True)
            for position, c in enumerate(sorted(c_grid)):
                model.set_params(C=c).fit(train_x[fit_index], train_y[fit_index])
                predicted = model.predict(train_x[score_index])
                scores[position] += (predicted == train_y[score_index]).mean()
        # Ties go to the smallest C, the strongest regularisation.
        chosen = float(sorted(c_grid)[int(np.argmax(scores))])
    model = _logistic_regression(C=chosen).fit(train_x, train_y)
    accuracy = 100.0 * float((model.predict(test_x) == test_y).mean())
    return accuracy, chosen


def _logistic_regression(**kwargs: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, **kwargs)


def evaluate_task(
    task: TaskData,
    features: np.ndarray,
    *,
    folds: int = 10,
    inner_folds: int = 10,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    seed: int = 1111,
) -> TaskResult:
    """Cross-validate (or train and test on the fixed split) a logistic regression.

    Args:
        task: The task's sentences and labels.
        features: ``(N, d)`` sentence vectors aligned with ``task.sentences``.
        folds: Outer stratified folds of the cross-validated tasks (SentEval: 10).
        inner_folds: Inner folds that choose C on each training split
            (SentEval: 10).
        c_grid: Candidate values of C; one value skips the inner search.
        seed: Seed of the fold shuffles (SentEval's default is 1111).

    Returns:
        The :class:`TaskResult`, accuracies in percent.

    Raises:
        ValueError: If the features do not match the task or are not finite.
    """
    from sklearn.model_selection import StratifiedKFold

    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] != len(task.sentences):
        raise ValueError(
            f"{task.name} has {len(task.sentences)} sentences but the features have "
            f"shape {features.shape}; encode every sentence once, in order"
        )
    if not np.isfinite(features).all():
        raise ValueError(f"features of {task.name} contain NaN or infinite values")
    labels = task.labels
    scores: list[float] = []
    chosen: list[float] = []
    if task.num_train is not None:
        n = task.num_train
        accuracy, c = _fit_and_score(
            features[:n],
            labels[:n],
            features[n:],
            labels[n:],
            c_grid=c_grid,
            inner_folds=inner_folds,
            seed=seed,
        )
        scores.append(accuracy)
        chosen.append(c)
    else:
        outer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for train_index, test_index in outer.split(features, labels):
            accuracy, c = _fit_and_score(
                features[train_index],
                labels[train_index],
                features[test_index],
                labels[test_index],
                c_grid=c_grid,
                inner_folds=inner_folds,
                seed=seed,
            )
            scores.append(accuracy)
            chosen.append(c)
    return TaskResult(
        task=task.name,
        accuracy=float(np.mean(scores)),
        std=float(np.std(scores)),
        num_sentences=len(task.sentences),
        fold_accuracies=scores,
        chosen_c=chosen,
    )


def subsample_task(task: TaskData, limit: int | None, seed: int = 0) -> TaskData:
    """Return a stratified random subset of at most ``limit`` sentences.

    For a fixed split, the training and the test part are each cut in
    proportion. Meant for quick checks; accuracies on a subset are not
    comparable with published numbers.
    """
    if limit is None or limit >= len(task.sentences):
        return task
    rng = np.random.default_rng(seed)

    def pick(indices: np.ndarray, count: int) -> np.ndarray:
        chosen = []
        for label in np.unique(task.labels[indices]):
            members = indices[task.labels[indices] == label]
            share = max(1, round(count * len(members) / len(indices)))
            chosen.append(
                rng.choice(members, size=min(share, len(members)), replace=False)
            )
        return np.sort(np.concatenate(chosen))

    everything = np.arange(len(task.sentences))
    if task.num_train is None:
        rows = pick(everything, limit)
        num_train = None
    else:
        n = task.num_train
        train_count = round(limit * n / len(task.sentences))
        train_rows = pick(everything[:n], max(train_count, 2))
        test_rows = pick(everything[n:], max(limit - train_count, 1))
        rows = np.concatenate([train_rows, test_rows])
        num_train = len(train_rows)
    return TaskData(
        task.name,
        [task.sentences[i] for i in rows],
        task.labels[rows],
        task.classes,
        num_train,
    )


def evaluate_senteval(
    encode: Encoder,
    folder: str | os.PathLike[str],
    tasks: Sequence[str] = TASKS,
    *,
    folds: int = 10,
    inner_folds: int = 10,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    seed: int = 1111,
    limit: int | None = None,
) -> dict[str, TaskResult]:
    """Encode each task's sentences and run its classification protocol.

    Args:
        encode: Maps a list of sentences to an ``(N, d)`` array.
        folder: Folder of the original release files.
        tasks: Task names, any of ``MR``, ``CR``, ``SUBJ``, ``MPQA``, ``TREC``.
        folds: Outer folds of the binary tasks.
        inner_folds: Inner folds that choose C.
        c_grid: Candidate values of C.
        seed: Seed of the folds and of ``limit``'s subset.
        limit: Use at most this many sentences per task (a stratified
            subset); None uses all.

    Returns:
        Task name to :class:`TaskResult`.
    """
    results = {}
    for name in tasks:
        start = time.perf_counter()
        task = subsample_task(read_task(name, folder), limit, seed)
        features = np.asarray(encode(task.sentences))
        result = evaluate_task(
            task,
            features,
            folds=folds,
            inner_folds=inner_folds,
            c_grid=c_grid,
            seed=seed,
        )
        result.seconds = time.perf_counter() - start
        logger.info(
            "%s: %.2f%% (+- %.2f) on %d sentences, %.1f s",
            result.task,
            result.accuracy,
            result.std,
            result.num_sentences,
            result.seconds,
        )
        results[task.name] = result
    return results


@dataclass
class SentEvalSettings:
    """SentEval settings of the trained encoders of a text study.

    The fields are the keys of a text study's ``evaluation`` section.

    Attributes:
        data: Folder of the original release files; ``alignsphere study
            --eval-data DIR`` sets it on the command line.
        tasks: Task names, any of :data:`TASKS`.
        folds: Outer folds of the binary tasks.
        inner_folds: Inner folds that choose C.
        c_grid: Candidate values of C.
        limit: At most this many sentences per task (a stratified subset);
            None uses all.
        seed: Seed of the folds and of ``limit``'s subset.
        batch_size: Sentences per forward pass.
    """

    data: str | None = None
    tasks: Sequence[str] = TASKS
    folds: int = 10
    inner_folds: int = 10
    c_grid: Sequence[float] = DEFAULT_C_GRID
    limit: int | None = None
    seed: int = 1111
    batch_size: int = 256

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field and its valid values."""
        tasks = self.tasks
        if not isinstance(tasks, list | tuple) or not tasks:
            raise ValueError(
                f"tasks must be a non-empty list of task names, got {tasks!r}; "
                f"valid tasks: {', '.join(TASKS)}"
            )
        unknown = [task for task in tasks if task not in TASKS]
        if unknown:
            raise ValueError(
                f"invalid SentEval tasks {unknown}; valid tasks: {', '.join(TASKS)}"
            )

        for name in ("folds", "inner_folds"):
            value = getattr(self, name)
            if not is_integer(value) or value < 2:
                raise ValueError(f"{name} must be an integer >= 2, got {value!r}")

        grid = self.c_grid
        if (
            not isinstance(grid, list | tuple)
            or not grid
            or not all(is_number(c) and math.isfinite(c) and c > 0 for c in grid)
        ):
            raise ValueError(
                f"c_grid must be a non-empty list of finite numbers > 0, got {grid!r}"
            )

        smallest = self.folds * self.inner_folds
        if self.limit is not None and (
            not is_integer(self.limit) or self.limit < smallest
        ):
            raise ValueError(
                f"limit must be empty or an integer >= folds x inner_folds = "
                f"{smallest}, got {self.limit!r}"
            )

        if not is_integer(self.seed):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not is_integer(self.batch_size) or self.batch_size < 1:
            raise ValueError(
                f"batch_size must be a positive integer, got {self.batch_size!r}"
            )
