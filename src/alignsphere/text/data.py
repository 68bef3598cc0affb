"""Adjacent-sentence pairs from a text corpus, tokenised once and batched lazily.

A corpus (see :mod:`alignsphere.text.corpus`) is read one file at a time and
split into sentences with :class:`~alignsphere.text.sentences.SentenceSplitter`.
Each file is one document, and the pairs ``(s_i, s_{i+1})`` never cross two
documents. The last ``heldout_fraction`` of every document's sentences is held
out: no held-out sentence trains the encoder or enters the vocabulary, and the
held-out pairs measure alignment and uniformity during training.

Sentences are stored as one flat int32 tensor of word indices with offsets, so
the 1.6 million words of 16 novels take about 8 MB. A batch is assembled and
padded to its own longest sentence only when the DataLoader requests it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from alignsphere.text.corpus import LAYOUTS, iter_documents
from alignsphere.text.encoder import pad_batch
from alignsphere.text.errors import TextDataError
from alignsphere.text.sentences import SentenceSplitter
from alignsphere.text.vocab import Vocabulary

if TYPE_CHECKING:
    from alignsphere.training.config import DataConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextDataOptions:
    """Settings of a text corpus, set as ``data.options`` in a training config.

    Attributes:
        layout: ``paragraphs`` (hard-wrapped prose with blank lines between
            paragraphs, Gutenberg boilerplate removed) or ``lines`` (one
            sentence per line).
        min_freq: Words seen fewer times in the training sentences map to
            ``<unk>``.
        max_vocab: Vocabulary size at most, ``<pad>`` and ``<unk>`` included.
        max_length: Tokens kept per sentence; longer sentences are cut.
        lowercase: Lower-case all tokens.
        heldout_fraction: Fraction of each document's sentences, taken from its
            end, held out from training for the alignment and uniformity
            measured every epoch.
        max_sentences: Stop reading the corpus after this many sentences;
            empty reads all. Files are read in sorted path order.
    """

    layout: str = "paragraphs"
    min_freq: int = 2
    max_vocab: int = 20000
    max_length: int = 40
    lowercase: bool = True
    heldout_fraction: float = 0.05
    max_sentences: int | None = None

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field."""
        if self.layout not in LAYOUTS:
            raise ValueError(
                f"invalid data.options.layout={self.layout!r}; valid values: "
                f"{', '.join(LAYOUTS)}"
            )
        for key, minimum in (("min_freq", 1), ("max_vocab", 3), ("max_length", 1)):
            if getattr(self, key) < minimum:
                raise ValueError(
                    f"invalid data.options.{key}={getattr(self, key)!r}; it must be "
                    f">= {minimum}"
                )
        if not 0 <= self.heldout_fraction < 1:
            raise ValueError(
                f"invalid data.options.heldout_fraction={self.heldout_fraction!r}; "
                "it must be in [0, 1)"
            )
        if self.max_sentences is not None and self.max_sentences < 2:
            raise ValueError(
                f"invalid data.options.max_sentences={self.max_sentences!r}; it must "
                "be >= 2 or empty"
            )


def text_data_options(options: dict[str, Any]) -> TextDataOptions:
    """Build and validate :class:`TextDataOptions` from ``data.options``.

    Raises:
        ValueError: On an unknown key (the message lists the valid keys) or an
            invalid value.
    """
    fields = {f.name: f for f in dataclasses.fields(TextDataOptions)}
    hints = typing.get_type_hints(TextDataOptions)
    values: dict[str, Any] = {}
    for key, value in options.items():
        if key not in fields:
            raise ValueError(
                f"unknown key 'data.options.{key}'; valid keys for data.name=text: "
                f"{', '.join(fields)}"
            )
        values[key] = _coerce_option(key, value, hints[key])
    result = TextDataOptions(**values)
    result.validate()
    return result


def _coerce_option(key: str, value: Any, hint: Any) -> Any:
    accepted = typing.get_args(hint) or (hint,)
    if value is None and type(None) in accepted:
        return None
    for kind in (bool, int, float, str):
        if kind not in accepted:
            continue
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)):
            if not isinstance(value, bool):
                return float(value)
        if kind is str and isinstance(value, str):
            return value
    raise ValueError(
        f"invalid data.options.{key}={value!r}; expected "
        f"{' or '.join(getattr(a, '__name__', str(a)) for a in accepted)}"
    )


def check_text_data_config(data: DataConfig) -> None:
    """Validate the ``data`` section of a text run (called by ``DataConfig.validate``).

    Raises:
        ConfigError: On invalid ``data.options`` or an image-only field.
    """
    from alignsphere.training.config import ConfigError

    try:
        text_data_options(data.options)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    for key in ("preset", "image_size", "decode_size", "probe_split"):
        if getattr(data, key) is not None:
            raise ConfigError(
                f"data.{key} applies to image datasets only, not data.name=text; "
                "remove it"
            )


@dataclass
class SentenceCorpus:
    """Tokenised sentences and the indices of their adjacent pairs.

    Attributes:
        tokens: Word indices of all sentences, concatenated (int32).
        offsets: ``(S + 1,)`` int64; sentence k is
            ``tokens[offsets[k]:offsets[k + 1]]``.
        train_pairs: Indices k of the training pairs ``(k, k + 1)``.
        heldout_pairs: Indices k of the held-out pairs.
        vocabulary: Built from the training sentences.
        num_documents: Files read.
    """

    tokens: torch.Tensor
    offsets: torch.Tensor
    train_pairs: torch.Tensor
    heldout_pairs: torch.Tensor
    vocabulary: Vocabulary
    num_documents: int

    @property
    def num_sentences(self) -> int:
        """Sentences in the corpus, held-out ones included."""
        return self.offsets.numel() - 1

    def sentence(self, index: int) -> list[int]:
        """Return the word indices of sentence ``index``."""
        start, stop = int(self.offsets[index]), int(self.offsets[index + 1])
        return self.tokens[start:stop].tolist()

    def pair_batch(self, pairs: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the padded ``(B, L)`` first and second sentences of some pairs.

        Both tensors share one length L, so the two halves can pass through the
        encoder in one call.
        """
        first = [self.sentence(int(k)) for k in pairs]
        second = [self.sentence(int(k) + 1) for k in pairs]
        length = max(len(s) for s in first + second)
        return pad_batch(first, length), pad_batch(second, length)


def read_sentence_corpus(
    root: str | os.PathLike[str], options: TextDataOptions | None = None
) -> SentenceCorpus:
    """Read, split, hold out, build the vocabulary and index a corpus.

    Args:
        root: A text file or a folder of ``.txt`` files.
        options: Corpus settings; defaults to :class:`TextDataOptions`.

    Returns:
        The :class:`SentenceCorpus`.

    Raises:
        TextDataNotFoundError: If the corpus does not exist or has no ``.txt``.
        TextDataError: If a file is neither UTF-8 nor cp1252, or the corpus has
            no training pair.
    """
    options = options or TextDataOptions()
    options.validate()
    splitter = SentenceSplitter(lowercase=options.lowercase)
    documents: list[list[list[str]]] = []
    total = 0
    for document in iter_documents(root, options.layout):
        if options.layout == "lines":
            sentences = [s for s in splitter.tokenize(document.paragraphs) if s]
        else:
            sentences = list(splitter.iter_sentences(document.paragraphs))
        sentences = [s[: options.max_length] for s in sentences]
        if options.max_sentences is not None:
            sentences = sentences[: options.max_sentences - total]
        documents.append(sentences)
        total += len(sentences)
        logger.info(
            "%s: %d sentences (%s)", document.path, len(sentences), document.encoding
        )
        if options.max_sentences is not None and total >= options.max_sentences:
            break

    train_ranges = []
    heldout_ranges = []
    start = 0
    for sentences in documents:
        count = len(sentences)
        num_heldout = math.ceil(count * options.heldout_fraction) if count >= 4 else 0
        split = start + count - num_heldout
        train_ranges.append((start, split))
        heldout_ranges.append((split, start + count))
        start += count

    flat = [s for sentences in documents for s in sentences]
    vocabulary = Vocabulary.build(
        (flat[i] for a, b in train_ranges for i in range(a, b)),
        min_freq=options.min_freq,
        max_size=options.max_vocab,
    )
    lengths = torch.tensor([len(s) for s in flat], dtype=torch.int64)
    offsets = torch.zeros(len(flat) + 1, dtype=torch.int64)
    torch.cumsum(lengths, dim=0, out=offsets[1:])
    tokens = torch.tensor(
        [index for s in flat for index in vocabulary.encode(s)], dtype=torch.int32
    )

    def pair_indices(ranges: list[tuple[int, int]]) -> torch.Tensor:
        parts = [torch.arange(a, b - 1) for a, b in ranges if b - a >= 2]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)

    corpus = SentenceCorpus(
        tokens=tokens,
        offsets=offsets,
        train_pairs=pair_indices(train_ranges),
        heldout_pairs=pair_indices(heldout_ranges),
        vocabulary=vocabulary,
        num_documents=len(documents),
    )
    if corpus.train_pairs.numel() == 0:
        raise TextDataError(
            f"corpus {root} has {corpus.num_sentences} sentences and no training "
            "pair of adjacent sentences; give a corpus with at least 2 sentences per "
            "document"
        )
    logger.info(
        "corpus %s: %d documents, %d sentences, %d training and %d held-out pairs",
        root,
        corpus.num_documents,
        corpus.num_sentences,
        corpus.train_pairs.numel(),
        corpus.heldout_pairs.numel(),
    )
    return corpus


class _PairIndices(Dataset):
    def __init__(self, pairs: torch.Tensor) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return self.pairs.numel()

    def __getitem__(self, index: int) -> int:
        return int(self.pairs[index])


def subset_pairs(pairs: torch.Tensor, limit: int | None, seed: int) -> torch.Tensor:
    """Return at most ``limit`` pairs, a random subset fixed by ``seed``, in order."""
    if limit is None or limit >= pairs.numel():
        return pairs
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(pairs.numel(), generator=generator)[:limit]
    return pairs[chosen.sort().values]


class TextDataModule(L.LightningDataModule):
    """Batches of adjacent-sentence pairs for :class:`~alignsphere.text.TextModule`.

    A batch is ``(first, second)``, two ``(B, L)`` int64 tensors padded with 0.
    The epoch order depends on the seed and the epoch alone
    (``DistributedSampler`` with ``set_epoch``), and under DDP each of W ranks
    takes ``batch_size / W`` pairs of every global batch.

    Args:
        config: The ``data`` section (``name: text``).
        batch_size: Global batch size, in pairs.
        seed: Seed of the epoch order and of ``train_limit``'s subset.
    """

    def __init__(self, config: DataConfig, batch_size: int, seed: int) -> None:
        super().__init__()
        self.config = config
        self.options = text_data_options(config.options)
        self.batch_size = batch_size
        self.seed = seed
        self.corpus: SentenceCorpus | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.corpus is None:
            assert self.config.root is not None
            self.corpus = read_sentence_corpus(self.config.root, self.options)

    @property
    def train_pairs(self) -> torch.Tensor:
        """Training pair indices after ``data.train_limit``."""
        assert self.corpus is not None, "call setup() first"
        return subset_pairs(self.corpus.train_pairs, self.config.train_limit, self.seed)

    def _collate(self, pairs: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.corpus is not None
        return self.corpus.pair_batch(pairs)

    def train_dataloader(self) -> DataLoader:
        pairs = self.train_pairs
        world_size = self.trainer.world_size if self.trainer else 1
        rank = self.trainer.global_rank if self.trainer else 0
        if self.batch_size % world_size:
            raise ValueError(
                f"optim.batch_size={self.batch_size} is not divisible by the "
                f"{world_size} DDP ranks; use a multiple of {world_size}"
            )
        batch_size = self.batch_size // world_size
        if pairs.numel() // world_size < batch_size:
            raise TextDataError(
                f"corpus {self.config.root} has {pairs.numel()} training pairs, fewer "
                f"than one batch of optim.batch_size={self.batch_size}; lower "
                "optim.batch_size or read more of the corpus"
            )
        dataset = _PairIndices(pairs)
        sampler = DistributedSampler(
            dataset,
            num_replicas=world_size,
            rank=rank,
            shuffle=True,
            seed=self.seed,
            drop_last=True,
        )
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=True,
            collate_fn=self._collate,
            num_workers=self.config.num_workers,
            persistent_workers=self.config.num_workers > 0,
        )
