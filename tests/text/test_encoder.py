"""GRUSentenceEncoder: shapes, unit norm, lengths, the stored vocabulary."""

from __future__ import annotations

import pytest
import torch

from alignsphere.text.encoder import GRUSentenceEncoder, pad_batch
from alignsphere.text.vocab import Vocabulary


@pytest.fixture
def vocabulary() -> Vocabulary:
    return Vocabulary.build([["the", "cat", "sat", "the", "mat"]], min_freq=1)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_shape_and_unit_norm(vocabulary, bidirectional):
    torch.manual_seed(0)
    encoder = GRUSentenceEncoder(
        len(vocabulary), 16, embedding_dim=8, bidirectional=bidirectional
    )
    output = encoder(torch.tensor([[2, 3, 4], [5, 0, 0]]))
    assert output.shape == (2, 16)
    assert torch.allclose(output.norm(dim=1), torch.ones(2), atol=1e-6)


def test_padding_does_not_change_output(vocabulary):
    torch.manual_seed(0)
    encoder = GRUSentenceEncoder(len(vocabulary), 8, embedding_dim=4).eval()
    short = encoder(torch.tensor([[2, 3]]))
    padded = encoder(torch.tensor([[2, 3, 0, 0, 0]]))
    assert torch.allclose(short, padded, atol=1e-6)


def test_empty_sentence_is_finite(vocabulary):
    encoder = GRUSentenceEncoder(len(vocabulary), 8, embedding_dim=4)
    output = encoder(torch.zeros(2, 3, dtype=torch.long))
    assert torch.isfinite(output).all()


def test_vocabulary_round_trip(tmp_path, vocabulary):
    encoder = GRUSentenceEncoder(len(vocabulary), 8, vocabulary=vocabulary)
    path = tmp_path / "encoder.pt"
    torch.save(encoder.state_dict(), path)
    state = torch.load(path, weights_only=True)
    loaded = GRUSentenceEncoder(len(vocabulary), 8)
    loaded.load_state_dict(state)
    assert loaded.vocabulary is not None
    assert loaded.vocabulary.words == vocabulary.words


def test_encode_tokens_keeps_order(vocabulary):
    torch.manual_seed(0)
    encoder = GRUSentenceEncoder(len(vocabulary), 8, vocabulary=vocabulary)
    sentences = [["the", "cat", "sat"], ["mat"], ["unknown", "words"], []]
    batched = encoder.encode_tokens(sentences, batch_size=2)
    for row, tokens in enumerate(sentences):
        single = encoder.encode_tokens([tokens])
        assert torch.allclose(batched[row], single[0], atol=1e-6)


def test_encode_without_vocabulary_raises():
    encoder = GRUSentenceEncoder(5, 8)
    with pytest.raises(ValueError, match="no vocabulary"):
        encoder.encode_tokens([["a"]])


def test_odd_out_dim_bidirectional_raises():
    with pytest.raises(ValueError, match="must be even"):
        GRUSentenceEncoder(5, 7, bidirectional=True)


def test_pad_batch():
    batch = pad_batch([[4, 5], [], [6]])
    assert batch.tolist() == [[4, 5], [0, 0], [6, 0]]


def test_vocabulary_order_and_limits():
    vocab = Vocabulary.build([["b", "a", "a", "c", "b", "a"]], min_freq=2, max_size=3)
    assert vocab.words == ["<pad>", "<unk>", "a"]
    assert vocab.encode(["a", "b"]) == [2, 1]
