"""The GRU sentence encoder: word embeddings, a GRU, an L2-normalised output."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from alignsphere.text.vocab import PAD_INDEX, Vocabulary

logger = logging.getLogger(__name__)


class GRUSentenceEncoder(nn.Module):
    """Encode padded word indices to unit vectors with a GRU (quick-thought style).

    The sentence vector is the GRU's last hidden state (the forward and the
    backward final states, concatenated, when bidirectional), taken at each
    sentence's true length through a packed sequence, then L2-normalised.
    Quick-thought (Logeswaran & Lee, ICLR 2018, arXiv:1803.02893) uses the same
    read-out without the normalisation.

    The vocabulary, when set, is part of the state dict (a uint8 tensor under
    ``_extra_state``), so an exported encoder can tokenise new sentences by
    itself and loads with ``torch.load(weights_only=True)``.

    Args:
        vocab_size: Rows of the embedding table, ``<pad>`` (index 0) and
            ``<unk>`` (index 1) included.
        out_dim: Dimension d of the output on S^(d-1). The GRU's hidden size
            is ``out_dim`` or, when bidirectional, ``out_dim / 2`` per direction.
        embedding_dim: Word-embedding size.
        bidirectional: Run a second GRU right to left.
        num_layers: Stacked GRU layers.
        dropout: Dropout on the embeddings and between GRU layers.
        vocabulary: The :class:`~alignsphere.text.vocab.Vocabulary` whose
            indices the inputs use; optional, but needed by
            :meth:`encode_tokens`.

    Shape:
        Input ``(B, L)`` int64 indices padded with 0. Output ``(B, out_dim)``.

    Example:
        >>> encoder = GRUSentenceEncoder(vocab_size=10, out_dim=8)
        >>> encoder(torch.tensor([[2, 3, 0], [4, 0, 0]])).shape
        torch.Size([2, 8])
    """

    def __init__(
        self,
        vocab_size: int,
        out_dim: int = 256,
        *,
        embedding_dim: int = 128,
        bidirectional: bool = False,
        num_layers: int = 1,
        dropout: float = 0.0,
        vocabulary: Vocabulary | None = None,
    ) -> None:
        super().__init__()
        if vocab_size < 3:
            raise ValueError(f"invalid vocab_size={vocab_size}; it must be >= 3")
        if bidirectional and out_dim % 2:
            raise ValueError(
                f"out_dim={out_dim} must be even for a bidirectional GRU, because "
                "the two directions' final states are concatenated"
            )
        if vocabulary is not None and len(vocabulary) != vocab_size:
            raise ValueError(
                f"vocabulary has {len(vocabulary)} words but vocab_size={vocab_size}"
            )
        if not 0 <= dropout < 1:
            raise ValueError(f"invalid dropout={dropout}; it must be in [0, 1)")
        directions = 2 if bidirectional else 1
        self.out_dim = out_dim
        self.vocabulary = vocabulary
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_INDEX)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(
            embedding_dim,
            out_dim // directions,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        if indices.dim() != 2:
            raise ValueError(
                f"expected (batch, length) word indices, got shape {tuple(indices.shape)}"
            )
        # An empty sentence is read as one padding token, so it gets the
        # encoding of a zero embedding instead of failing the packing.
        lengths = (indices != PAD_INDEX).sum(dim=1).clamp(min=1).cpu()
        embedded = self.dropout(self.embedding(indices))
        packed = pack_padded_sequence(
            embedded, lengths, batch_first=True, enforce_sorted=False
        )
        _, hidden = self.gru(packed)
        if self.gru.bidirectional:
            last = torch.cat([hidden[-2], hidden[-1]], dim=1)
        else:
            last = hidden[-1]
        return F.normalize(last, dim=1)

    def get_extra_state(self) -> torch.Tensor:
        if self.vocabulary is None:
            return torch.zeros(0, dtype=torch.uint8)
        return self.vocabulary.to_tensor()

    def set_extra_state(self, state: Any) -> None:
        if isinstance(state, torch.Tensor) and state.numel() > 0:
            vocabulary = Vocabulary.from_tensor(state)
            if len(vocabulary) != self.embedding.num_embeddings:
                raise ValueError(
                    f"stored vocabulary has {len(vocabulary)} words but the embedding "
                    f"has {self.embedding.num_embeddings} rows"
                )
            self.vocabulary = vocabulary

    @torch.no_grad()
    def encode_tokens(
        self,
        sentences: list[list[str]],
        *,
        batch_size: int = 256,
        max_length: int | None = None,
    ) -> torch.Tensor:
        """Encode tokenised sentences with the stored vocabulary, in eval mode.

        Sentences are sorted by length and batched, so padding stays short; the
        output rows are in input order.

        Args:
            sentences: Token lists, as :class:`SentenceSplitter` makes them.
            batch_size: Sentences per forward pass.
            max_length: Keep at most this many tokens of each sentence.

        Returns:
            ``(N, out_dim)`` float32 unit rows on the CPU.

        Raises:
            ValueError: If the encoder has no vocabulary.
        """
        if self.vocabulary is None:
            raise ValueError(
                "this GRUSentenceEncoder has no vocabulary; load it from an "
                "alignsphere checkpoint or pass vocabulary= when building it"
            )
        was_training = self.training
        self.eval()
        device = self.embedding.weight.device
        encoded = [self.vocabulary.encode(tokens[:max_length]) for tokens in sentences]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        output = torch.empty(len(encoded), self.out_dim)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = pad_batch([encoded[i] for i in rows]).to(device)
            output[rows] = self(batch).float().cpu()
        self.train(was_training)
        return output


def pad_batch(sequences: list[list[int]], length: int | None = None) -> torch.Tensor:
    """Stack index lists into a ``(B, L)`` int64 tensor padded with 0.

    Args:
        sequences: Word indices per sentence.
        length: Padded length; defaults to the longest sentence (at least 1).
    """
    if length is None:
        length = max((len(s) for s in sequences), default=1) or 1
    batch = torch.full((len(sequences), length), PAD_INDEX, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        if sequence:
            batch[row, : len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
    return batch
