"""End to end: train a GRU on a slice of the real corpus, then evaluate it."""

from __future__ import annotations

import json

import pytest
import torch

from alignsphere.cli.main import main
from alignsphere.text.training import load_text_encoder


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, gutenberg_dir):
    torch.set_num_threads(1)
    output = tmp_path_factory.mktemp("gru_run")
    code = main(
        [
            "train",
            "--config",
            "gutenberg_gru_cpu",
            "--output",
            str(output),
            "--data-root",
            str(gutenberg_dir),
            "--set",
            "data.options.max_sentences=600",
            "--set",
            "data.train_limit=256",
            "--set",
            "optim.batch_size=64",
            "--set",
            "model.out_dim=32",
            "--set",
            "model.options.embedding_dim=16",
            "--set",
            "trainer.max_epochs=1",
            "--set",
            "trainer.num_threads=1",
            "--set",
            "heldout.num_images=20",
            "--set",
            "objective=1*quick_thought(tau=0.1) + 0.5*uniform(t=2)",
            "--no-progress",
        ]
    )
    assert code == 0
    return output


def test_train_writes_text_encoder(trained_run):
    encoder, config = load_text_encoder(trained_run)
    assert config.data.name == "text"
    assert encoder.out_dim == 32
    assert encoder.vocabulary is not None
    assert encoder.embedding.num_embeddings == len(encoder.vocabulary)
    metrics = (trained_run / "csv" / "version_0" / "metrics.csv").read_text()
    assert "heldout/align" in metrics
    assert "train/quick_thought" in metrics


def test_senteval_on_task_subset(trained_run, senteval_dir, tmp_path, capsys):
    output = tmp_path / "senteval.json"
    code = main(
        [
            "senteval",
            str(trained_run),
            "--data",
            str(senteval_dir),
            "--tasks",
            "CR",
            "--limit",
            "300",
            "--folds",
            "3",
            "--c",
            "1.0",
            "--output",
            str(output),
        ]
    )
    assert code == 0
    result = json.loads(output.read_text())["tasks"]["CR"]
    assert result["num_sentences"] == 300
    assert 0 <= result["accuracy"] <= 100
    assert "CR" in capsys.readouterr().out


def test_sts_random_init(trained_run, stsb_dir, tmp_path):
    output = tmp_path / "sts.json"
    code = main(
        [
            "sts",
            str(trained_run),
            "--random-init",
            "--data",
            str(stsb_dir / "sts-dev.csv"),
            "--output",
            str(output),
        ]
    )
    assert code == 0
    result = json.loads(output.read_text())
    assert "random init" in result["model"]
    assert -100 <= result["splits"]["sts-dev.csv"]["spearman"] <= 100


def test_train_missing_corpus_one_line(tmp_path, capsys):
    code = main(
        [
            "train",
            "--config",
            "gutenberg_gru_cpu",
            "--output",
            str(tmp_path / "run"),
            "--data-root",
            str(tmp_path / "nowhere"),
        ]
    )
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert "not found" in error
    assert len(error.splitlines()) == 1


def test_train_undecodable_corpus_one_line(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "bad.txt").write_bytes(b"Some text.\n\x81\x8d bytes.\n")
    code = main(
        [
            "train",
            "--config",
            "gutenberg_gru_cpu",
            "--output",
            str(tmp_path / "run"),
            "--data-root",
            str(corpus),
        ]
    )
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert "neither UTF-8" in error
    assert len(error.splitlines()) == 1


def test_unknown_text_option(tmp_path, capsys):
    code = main(
        [
            "train",
            "--config",
            "gutenberg_gru_cpu",
            "--output",
            str(tmp_path / "run"),
            "--data-root",
            str(tmp_path),
            "--set",
            "data.options.min_count=2",
        ]
    )
    assert code == 2
    assert "valid keys for data.name=text" in capsys.readouterr().err


def test_senteval_missing_folder(tmp_path, capsys):
    code = main(["senteval", "minilm", "--data", str(tmp_path / "none")])
    assert code == 2
    assert "not found" in capsys.readouterr().err


def test_senteval_bad_model(tmp_path, senteval_dir, capsys):
    code = main(["senteval", str(tmp_path / "nothing"), "--data", str(senteval_dir)])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert "not found" in error
    assert len(error.splitlines()) == 1


def test_evaluate_rejects_text_run(trained_run, capsys):
    code = main(["evaluate", str(trained_run)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert "is a text encoder; evaluate it with alignsphere senteval" in err
