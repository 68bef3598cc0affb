"""Sentence-pair files, the stsb preset, and index files of row pairs."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from alignsphere.measure import (
    MeasureInputError,
    PairFileFormat,
    read_pair_index,
    read_sentence_pairs,
)

# Lines in the layout of the STS Benchmark files: quotes inside sentences, a
# trailing space, a score without decimals and two extra source columns.
STSB_LINES = [
    "main-captions\tMSRvid\t2012test\t0001\t5.000\tA plane is taking off.\tAn air plane is taking off.",
    'main-news\theadlines\t2013\t0042\t4.200\tHe said "no" twice.\t"No," he said, twice. ',
    "main-forums\tanswer-answer\t2016\t0008\t3\tI remained.\tI stayed.\tSource: a (x)\tSource: b (y)",
    "main-news\theadlines\t2014\t0007\t4.000\tExactly four.\tA score of four is not positive.",
]


def _write(path, lines, encoding="utf-8", newline="\n"):
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    return path


def test_stsb_preset_reads_quotes_and_extra_columns(tmp_path):
    pairs = read_sentence_pairs(_write(tmp_path / "sts.csv", STSB_LINES), "stsb")
    assert len(pairs) == 4
    assert pairs.first[1] == 'He said "no" twice.'
    assert pairs.second[1] == '"No," he said, twice.'
    assert pairs.second[2] == "I stayed."
    assert_array_equal(pairs.scores, [5.0, 4.2, 3.0, 4.0])
    assert_array_equal(pairs.lines, [1, 2, 3, 4])
    assert_array_equal(pairs.positives(4.0), [0, 1])
    assert_array_equal(pairs.positives(None), [0, 1, 2, 3])
    assert pairs.location(2) == f"{tmp_path / 'sts.csv'} line 3"


def test_several_files_and_crlf(tmp_path):
    first = _write(tmp_path / "a.csv", STSB_LINES[:2], newline="\r\n")
    second = _write(tmp_path / "b.csv", ["", *STSB_LINES[2:], ""])
    pairs = read_sentence_pairs([first, second], "stsb")
    assert len(pairs) == 4
    assert pairs.first[0] == "A plane is taking off."
    assert pairs.second[0] == "An air plane is taking off."
    assert_array_equal(pairs.files, [0, 0, 1, 1])
    assert_array_equal(pairs.lines, [1, 2, 2, 3])
    assert pairs.file_names == [str(first), str(second)]


def test_line_break_characters_inside_a_sentence(tmp_path):
    # U+0085 and U+2028 are line breaks to str.splitlines but not to the reader.
    path = _write(tmp_path / "p.tsv", ["one\u0085two\tthree\u2028four", "a\tb"])
    pairs = read_sentence_pairs(path, "plain")
    assert pairs.first == ["one\u0085two", "a"]
    assert pairs.second == ["three\u2028four", "b"]
    assert pairs.scores is None


def test_custom_columns_header_and_delimiter(tmp_path):
    path = _write(tmp_path / "p.txt", ["score|left|right", "0.9|a b|c d", "0.1|e|f"])
    layout = PairFileFormat(
        first_column=2, second_column=3, score_column=1, delimiter="|", header_lines=1
    )
    pairs = read_sentence_pairs(path, layout)
    assert pairs.first == ["a b", "e"]
    assert_array_equal(pairs.scores, [0.9, 0.1])
    assert_array_equal(pairs.lines, [2, 3])


def test_cp1252_file_with_encoding(tmp_path):
    path = _write(
        tmp_path / "p.tsv", ["caf\u00e9\u2026\tna\u00efve"], encoding="cp1252"
    )
    with pytest.raises(MeasureInputError) as error:
        read_sentence_pairs(path, "plain")
    message = str(error.value)
    assert message.startswith(f"{path}: line 1 is not valid utf-8 (byte 0xe9")
    assert "--encoding" in message
    assert read_sentence_pairs(path, "plain", encoding="cp1252").first == [
        "caf\u00e9\u2026"
    ]


def test_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_bytes(b"a\tb\nc\td\ne\x85f\tg\n")
    with pytest.raises(
        MeasureInputError,
        match=r"line 3 is not valid utf-8 \(byte 0x85 at byte column 2\)",
    ):
        read_sentence_pairs(path, "plain")


def test_missing_column_names_line_and_fix(tmp_path):
    lines = [STSB_LINES[0], "main-news\theadlines\t2013\t0042\t4.2\tonly one sentence"]
    with pytest.raises(MeasureInputError) as error:
        read_sentence_pairs(_write(tmp_path / "sts.csv", lines), "stsb")
    message = str(error.value)
    assert "sts.csv line 2: has 6 tab-separated column(s)" in message
    assert "column 7 (second sentence) is required" in message
    assert "--pair-format" in message


def test_bad_and_missing_scores(tmp_path):
    header = ["genre\tfile\tyear\tid\tscore\tsentence1\tsentence2", STSB_LINES[0]]
    with pytest.raises(
        MeasureInputError,
        match=r"line 1: column 5 \(score\) is 'score', not a number; if this line is a header, pass --header-lines 1",
    ):
        read_sentence_pairs(_write(tmp_path / "h.csv", header), "stsb")
    bad = [STSB_LINES[0], STSB_LINES[1].replace("4.200", "nan")]
    with pytest.raises(
        MeasureInputError,
        match="line 2: column 5 \\(score\\) is 'nan'; scores must be finite",
    ):
        read_sentence_pairs(_write(tmp_path / "n.csv", bad), "stsb")


def test_empty_sentence(tmp_path):
    with pytest.raises(
        MeasureInputError, match=r"line 1: column 2 \(second sentence\) is empty"
    ):
        read_sentence_pairs(_write(tmp_path / "p.tsv", ["a\t  "]), "plain")


def test_layout_validation():
    with pytest.raises(ValueError, match="counted from 1"):
        PairFileFormat(0, 1)
    with pytest.raises(ValueError, match="must differ"):
        PairFileFormat(2, 2)
    with pytest.raises(MeasureInputError, match="unknown pair file preset 'sts'"):
        read_sentence_pairs("x", "sts")


def test_missing_pair_file(tmp_path):
    with pytest.raises(MeasureInputError, match="missing.csv: file not found"):
        read_sentence_pairs(tmp_path / "missing.csv", "stsb")


def test_pair_index_text_and_npy(tmp_path):
    (tmp_path / "pairs.txt").write_text("# first second\n0 1\n\n2,3\n4\t5\n")
    first, second, lines = read_pair_index(tmp_path / "pairs.txt")
    assert_array_equal(first, [0, 2, 4])
    assert_array_equal(second, [1, 3, 5])
    assert_array_equal(lines, [2, 4, 5])
    np.save(tmp_path / "pairs.npy", np.array([[7, 8], [9, 10]], dtype=np.int32))
    first, second, _ = read_pair_index(tmp_path / "pairs.npy")
    assert_array_equal(first, [7, 9])
    assert first.dtype == np.int64


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "0 1\n2\n",
            "pairs.txt line 2: expected two integer row indices 'i j', got '2'",
        ),
        ("0 1\n2 x\n", "line 2: expected two integer row indices"),
        ("0 1\n-1 3\n", "pairs.txt line 2: has a negative row index"),
        ("# nothing\n", "contains no pairs"),
    ],
)
def test_pair_index_errors(tmp_path, content, message):
    (tmp_path / "pairs.txt").write_text(content)
    with pytest.raises(MeasureInputError, match=message):
        read_pair_index(tmp_path / "pairs.txt")


def test_pair_index_npy_errors(tmp_path):
    np.save(tmp_path / "float.npy", np.zeros((3, 2)))
    with pytest.raises(
        MeasureInputError, match="float64, but pair indices must be integers"
    ):
        read_pair_index(tmp_path / "float.npy")
    np.save(tmp_path / "wide.npy", np.zeros((3, 3), dtype=np.int64))
    with pytest.raises(
        MeasureInputError,
        match=r"shape \(3, 3\), but a pair index must have shape \(P, 2\)",
    ):
        read_pair_index(tmp_path / "wide.npy")
