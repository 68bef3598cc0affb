"""Word vocabulary: built from a corpus, stored inside encoder checkpoints."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

logger = logging.getLogger(__name__)

PAD = "<pad>"
UNK = "<unk>"
PAD_INDEX = 0
UNK_INDEX = 1


class Vocabulary:
    """A mapping between words and indices, with padding at 0 and unknown at 1.

    Args:
        words: The words in index order. Index 0 must be ``<pad>`` and index 1
            ``<unk>``; they are added when missing.

    Raises:
        ValueError: If a word repeats, is empty or contains a newline (the
            stored form joins words with newlines).

    Example:
        >>> vocab = Vocabulary.build([["a", "b", "a"]], min_freq=1)
        >>> vocab.encode(["a", "c"])
        [2, 1]
    """

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        if words[:2] != [PAD, UNK]:
            words = [PAD, UNK, *[w for w in words if w not in (PAD, UNK)]]
        index: dict[str, int] = {}
        for position, word in enumerate(words):
            if not word or "\n" in word:
                raise ValueError(
                    f"invalid vocabulary word {word!r} at index {position}: words "
                    "must be non-empty and contain no newline"
                )
            if word in index:
                raise ValueError(
                    f"vocabulary word {word!r} repeats at index {position}"
                )
            index[word] = position
        self.words = words
        self._index = index

    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """Count the words of tokenised sentences and keep the frequent ones.

        Words are ordered by descending count, ties by the word itself, so the
        same corpus always gives the same indices.

        Args:
            sentences: Token lists.
            min_freq: Keep words seen at least this often.
            max_size: Keep at most this many words, the two special entries
                included; None keeps all.
        """
        if min_freq < 1:
            raise ValueError(f"invalid min_freq={min_freq}; it must be >= 1")
        if max_size is not None and max_size < 3:
            raise ValueError(f"invalid max_size={max_size}; it must be >= 3")
        counts: Counter[str] = Counter()
        for tokens in sentences:
            counts.update(tokens)
        ranked = sorted(
            (word for word, count in counts.items() if count >= min_freq),
            key=lambda word: (-counts[word], word),
        )
        ranked = [w for w in ranked if w not in (PAD, UNK) and "\n" not in w]
        if max_size is not None:
            ranked = ranked[: max_size - 2]
        vocab = cls([PAD, UNK, *ranked])
        covered = sum(counts[w] for w in ranked)
        total = sum(counts.values())
        logger.info(
            "vocabulary: %d words (min_freq %d) cover %.1f%% of %d tokens",
            len(vocab),
            min_freq,
            100.0 * covered / max(total, 1),
            total,
        )
        return vocab

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Map tokens to indices; unknown words map to ``UNK_INDEX``."""
        get = self._index.get
        return [get(token, UNK_INDEX) for token in tokens]

    def to_tensor(self) -> torch.Tensor:
        """Return the words as a uint8 tensor of UTF-8 text joined by newlines.

        A tensor fits in a state dict, so the vocabulary travels inside
        checkpoints that load with ``torch.load(weights_only=True)``.
        """
        data = "\n".join(self.words).encode("utf-8")
        return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()

    @classmethod
    def from_tensor(cls, tensor: torch.Tensor) -> Vocabulary:
        """Rebuild a vocabulary from :meth:`to_tensor`'s output."""
        data = bytes(tensor.detach().cpu().to(torch.uint8).tolist())
        return cls(data.decode("utf-8").split("\n"))
