"""Corpus reading: encodings, line endings, Gutenberg boilerplate, paragraphs."""

from __future__ import annotations

import pytest

from alignsphere.text.corpus import (
    decode_text,
    iter_documents,
    list_corpus_files,
    read_document,
    split_lines,
)
from alignsphere.text.data import TextDataOptions, read_sentence_corpus
from alignsphere.text.errors import TextDataError, TextDataNotFoundError

HEADER = (
    "The Project Gutenberg eBook of A Test\r\n\r\nTitle: A Test\r\n\r\n"
    "*** START OF THE PROJECT GUTENBERG EBOOK A TEST ***\r\n\r\n"
)
FOOTER = (
    "\r\n*** END OF THE PROJECT GUTENBERG EBOOK A TEST ***\r\n\r\n"
    "Section 1. General Terms of Use\r\n"
)
BODY = (
    "It was a dark night, and the wind\r\nblew hard. She waited\u2026 then left.\r\n"
    "\r\n"
    "The second paragraph\r\nis here.\r\n"
)


def test_cp1252_with_ellipsis_byte(tmp_path):
    path = tmp_path / "book.txt"
    path.write_bytes(BODY.encode("cp1252"))
    document = read_document(path)
    assert document.encoding == "cp1252"
    # 0x85 is cp1252's ellipsis; it must stay inside its paragraph.
    assert document.paragraphs[0] == (
        "It was a dark night, and the wind blew hard. She waited\u2026 then left."
    )
    assert document.paragraphs[1] == "The second paragraph is here."


def test_utf8_bom_and_crlf(tmp_path):
    path = tmp_path / "book.txt"
    path.write_bytes(b"\xef\xbb\xbf" + BODY.encode("utf-8"))
    document = read_document(path)
    assert document.encoding == "utf-8"
    assert document.paragraphs[0].startswith("It was")
    assert all("\r" not in p for p in document.paragraphs)


def test_gutenberg_header_footer_removed(tmp_path):
    path = tmp_path / "book.txt"
    path.write_bytes((HEADER + BODY + FOOTER).encode("cp1252"))
    document = read_document(path)
    assert document.boilerplate_removed
    assert len(document.paragraphs) == 2
    assert not any("Gutenberg" in p for p in document.paragraphs)
    assert not any("Section 1" in p for p in document.paragraphs)


def test_no_markers_keeps_everything(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("Title line\n\n" + BODY, encoding="utf-8")
    document = read_document(path)
    assert not document.boilerplate_removed
    assert document.paragraphs[0] == "Title line"


def test_lines_layout(tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_bytes(b"first sentence .\r\n\r\nsecond one \x85 here .\n")
    document = read_document(path, layout="lines")
    assert document.paragraphs == ["first sentence .", "second one \u2026 here ."]


def test_split_lines_keeps_unicode_separators():
    assert split_lines("a\u0085b\r\nc\rd") == ["a\u0085b", "c", "d"]


def test_invalid_bytes_rejected(tmp_path):
    path = tmp_path / "bad.txt"
    # 0x81 is undefined in cp1252 and invalid as a UTF-8 start byte.
    path.write_bytes(b"good text\n\x81 bad\n")
    with pytest.raises(TextDataError, match="neither UTF-8") as error:
        read_document(path)
    assert "0x81" in str(error.value)
    assert "\n" not in str(error.value)


def test_decode_prefers_utf8():
    text, encoding = decode_text("caf\u00e9".encode(), "x")
    assert (text, encoding) == ("caf\u00e9", "utf-8")


def test_missing_folder(tmp_path):
    with pytest.raises(TextDataNotFoundError, match="not found"):
        list_corpus_files(tmp_path / "nowhere")


def test_folder_without_txt(tmp_path):
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(TextDataNotFoundError, match="contains no .txt"):
        list_corpus_files(tmp_path)


def test_empty_corpus_rejected(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(TextDataError, match="no training pair"):
        read_sentence_corpus(tmp_path, TextDataOptions(min_freq=1))


def test_pairs_stay_inside_documents(tmp_path):
    (tmp_path / "a.txt").write_text("One. Two. Three. Four.\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("Five. Six.\n", encoding="utf-8")
    corpus = read_sentence_corpus(
        tmp_path, TextDataOptions(min_freq=1, heldout_fraction=0.25)
    )
    assert corpus.num_sentences == 6
    # a.txt: sentences 0-2 train, 3 held out; b.txt (2 sentences): all train.
    assert corpus.train_pairs.tolist() == [0, 1, 4]
    assert corpus.heldout_pairs.tolist() == []
    first, second = corpus.pair_batch([4])
    words = corpus.vocabulary.words
    assert [words[i] for i in first[0].tolist() if i] == ["five", "."]
    assert [words[i] for i in second[0].tolist() if i] == ["six", "."]


def test_real_gutenberg_files(gutenberg_dir):
    documents = list(iter_documents(gutenberg_dir))
    assert len(documents) == 16
    encodings = {d.path.stem: d.encoding for d in documents}
    for name in ("pg2641", "pg37106", "pg64317", "pg84"):
        assert encodings[name] == "cp1252"
    assert encodings["pg11"] == "utf-8"
    for document in documents:
        text = " ".join(document.paragraphs)
        assert "*** START OF" not in text
        assert "*** END OF" not in text
        assert "\r" not in text
        assert "\u0085" not in text
    frankenstein = next(d for d in documents if d.path.stem == "pg84")
    assert frankenstein.boilerplate_removed
    assert not any("Project Gutenberg License" in p for p in frankenstein.paragraphs)
    # Hard wraps are joined: the closing paragraph is one line.
    assert frankenstein.paragraphs[-1].startswith("He sprang from the cabin-window")
    assert frankenstein.paragraphs[-1].endswith("lost in darkness and distance.")
