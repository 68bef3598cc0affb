"""The stsb preset on the real STS Benchmark files (ALIGNSPHERE_TEST_DATA)."""

from __future__ import annotations

import pytest

from alignsphere.measure import read_sentence_pairs

EXPECTED_PAIRS = {"sts-train.csv": 5749, "sts-dev.csv": 1500, "sts-test.csv": 1379}


@pytest.fixture(scope="module")
def stsb_dir(test_data_dir):
    folder = test_data_dir / "stsb"
    if not folder.is_dir():
        pytest.fail(f"{folder} is missing from the test data folder")
    return folder


@pytest.mark.parametrize("name", sorted(EXPECTED_PAIRS))
def test_stsb_file_reads_every_pair(stsb_dir, name):
    path = stsb_dir / name
    pairs = read_sentence_pairs(path, "stsb")
    assert len(pairs) == EXPECTED_PAIRS[name]

    # An independent reading: split each line on tabs, nothing else.
    lines = path.read_text(encoding="utf-8").split("\n")
    fields = [line.split("\t") for line in lines if line]
    assert pairs.first == [f[5].strip() for f in fields]
    assert pairs.second == [f[6].strip() for f in fields]
    assert list(pairs.scores) == [float(f[4]) for f in fields]
    positives = sum(float(f[4]) > 4 for f in fields)
    assert len(pairs.positives(4.0)) == positives
    assert 0 < positives < len(fields)


def test_stsb_quotes_and_extra_columns_survive(stsb_dir):
    pairs = read_sentence_pairs(sorted(stsb_dir.glob("sts-*.csv")), "stsb")
    assert len(pairs) == sum(EXPECTED_PAIRS.values())
    quoted = [s for s in pairs.first + pairs.second if '"' in s]
    assert len(quoted) > 100
    # A CSV reader would have swallowed tabs into a quoted field; none here has one.
    assert not any("\t" in s for s in pairs.first + pairs.second)
    assert pairs.scores.min() >= 0
    assert pairs.scores.max() <= 5
