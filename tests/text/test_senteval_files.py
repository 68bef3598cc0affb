"""SentEval readers on the original release files, and the classification protocol."""

from __future__ import annotations

import numpy as np
import pytest

from alignsphere.text.errors import TextDataError, TextDataNotFoundError
from alignsphere.text.senteval import (
    TREC_CLASSES,
    TaskData,
    evaluate_task,
    read_lines,
    read_task,
    subsample_task,
)
from alignsphere.text.sts import read_sts

# Non-empty lines per file: CR has 2 empty lines per file, MPQA 1 and 2.
EXPECTED = {
    "MR": (5331, 5331),
    "CR": (2405, 1366),
    "SUBJ": (5000, 5000),
    "MPQA": (3311, 7292),
}


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_binary_task_counts(senteval_dir, task):
    data = read_task(task, senteval_dir)
    positives, negatives = EXPECTED[task]
    assert int((data.labels == 1).sum()) == positives
    assert int((data.labels == 0).sum()) == negatives
    assert all(sentence for sentence in data.sentences)


def test_trec_split(senteval_dir):
    data = read_task("TREC", senteval_dir)
    assert data.num_train == 5452
    assert len(data.sentences) - data.num_train == 500
    assert set(np.unique(data.labels)) == set(range(len(TREC_CLASSES)))
    assert data.sentences[0] == "How did serfdom develop in and then leave Russia ?"


def test_ellipsis_byte_stays_in_line(senteval_dir):
    # rt-polarity.pos has lines with byte 0x85; str.splitlines on Latin-1 text
    # would break them and report more than 5,331 lines.
    raw = (senteval_dir / "rt-polarity.pos").read_bytes()
    assert b"\x85" in raw
    lines = read_lines(senteval_dir / "rt-polarity.pos")
    assert len(lines) == 5331
    assert any("\u2026" in line for line in lines)
    assert not any("\u0085" in line for line in lines)
    assert len(raw.decode("latin-1").splitlines()) > 5331


def test_mpqa_duplicates_kept(senteval_dir):
    data = read_task("MPQA", senteval_dir)
    assert len(set(data.sentences)) < len(data.sentences)


def test_missing_folder(tmp_path):
    with pytest.raises(TextDataNotFoundError, match="not found"):
        read_task("MR", tmp_path / "nowhere")


def test_bad_trec_line(tmp_path):
    (tmp_path / "TREC.train").write_text("WHAT:x How ?\n")
    (tmp_path / "TREC.test").write_text("NUM:date When ?\n")
    with pytest.raises(TextDataError, match="line 1"):
        read_task("TREC", tmp_path)


def test_unknown_task(tmp_path):
    with pytest.raises(ValueError, match="valid tasks"):
        read_task("SST", tmp_path)


def _separable_task(
    n: int, num_train: int | None = None
) -> tuple[TaskData, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    features = rng.normal(size=(n, 4)) + 3.0 * labels[:, None]
    task = TaskData("toy", [f"s{i}" for i in range(n)], labels, ("a", "b"), num_train)
    return task, features


def test_cross_validation_on_separable_data():
    task, features = _separable_task(200)
    result = evaluate_task(task, features, folds=5, inner_folds=3, c_grid=(0.1, 1.0))
    assert len(result.fold_accuracies) == 5
    assert result.accuracy > 95
    assert set(result.chosen_c) <= {0.1, 1.0}


def test_fixed_split_uses_test_rows_only():
    task, features = _separable_task(100, num_train=80)
    result = evaluate_task(task, features, c_grid=(1.0,))
    assert len(result.fold_accuracies) == 1
    assert result.std == 0


def test_features_must_match_sentences():
    task, features = _separable_task(20)
    with pytest.raises(ValueError, match="encode every sentence"):
        evaluate_task(task, features[:10])


def test_subsample_is_stratified():
    task, _ = _separable_task(100)
    subset = subsample_task(task, 20)
    assert len(subset.sentences) == 20
    assert int(subset.labels.sum()) == 10


def test_real_stsb_counts(stsb_dir):
    for split, count in (("train", 5749), ("dev", 1500), ("test", 1379)):
        pairs = read_sts(stsb_dir / f"sts-{split}.csv")
        assert len(pairs.scores) == count
        assert pairs.scores.min() >= 0
        assert pairs.scores.max() <= 5


def test_sts_extra_columns_and_quotes(tmp_path):
    path = tmp_path / "sts.csv"
    path.write_text(
        'g\tf\t2012\t1\t4.5\tA "quoted\tB.\textra\tcolumns\n'
        "g\tf\t2012\t2\t0.0\tC.\tD.\n",
        encoding="utf-8",
    )
    pairs = read_sts(path)
    assert pairs.first == ['A "quoted', "C."]
    assert pairs.second == ["B.", "D."]
    assert pairs.scores.tolist() == [4.5, 0.0]


def test_sts_short_line(tmp_path):
    path = tmp_path / "sts.csv"
    path.write_text("g\tf\t2012\t1\t4.5\tonly one\n", encoding="utf-8")
    with pytest.raises(TextDataError, match="line 1 has 6"):
        read_sts(path)
