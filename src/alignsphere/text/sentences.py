"""Sentence splitting and word tokenisation with spaCy's rule-based pipeline.

:class:`SentenceSplitter` wraps a blank English spaCy pipeline (``spacy.blank
("en")``) with the rule-based ``sentencizer`` component. It needs no trained
model and downloads nothing. The tokenizer's exception rules keep ``Mr.`` or
``e.g.`` in one token. The sentencizer ends a sentence at a token made of
sentence-final punctuation (``.``, ``!``, ``?`` and their Unicode relatives),
and closing quotes and brackets after it stay in that sentence. It does not split at an ellipsis
followed by a capital letter. The same tokenizer turns evaluation sentences
into words, so that training and evaluation see one tokenisation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

logger = logging.getLogger(__name__)


class SentenceSplitter:
    """Split paragraphs into sentences of word tokens (spaCy sentencizer).

    Args:
        lowercase: Lower-case every token. Defaults to True, as quick-thought
            and SentEval's bag-of-words baselines do.
        batch_size: Paragraphs per ``nlp.pipe`` batch.

    Raises:
        ImportError: If spaCy is not installed (``pip install alignsphere[text]``).

    Example:
        >>> splitter = SentenceSplitter()
        >>> splitter.split("Mr. Brown came. He sat down!")
        [['mr.', 'brown', 'came', '.'], ['he', 'sat', 'down', '!']]
    """

    def __init__(self, *, lowercase: bool = True, batch_size: int = 256) -> None:
        try:
            import spacy
        except ImportError:
            raise ImportError(
                "sentence splitting needs spaCy; install it with "
                "pip install 'alignsphere[text]' (or pip install spacy)"
            ) from None
        self.lowercase = lowercase
        self.batch_size = batch_size
        self.nlp = spacy.blank("en")
        self.nlp.add_pipe("sentencizer")

    def _tokens(self, span: Iterable) -> list[str]:
        words = [token.text for token in span if not token.is_space]
        if self.lowercase:
            words = [word.lower() for word in words]
        return words

    def split(self, paragraph: str) -> list[list[str]]:
        """Split one paragraph into sentences, each a list of word tokens."""
        return [self._tokens(sentence) for sentence in self.nlp(paragraph).sents]

    def iter_sentences(self, paragraphs: Iterable[str]) -> Iterator[list[str]]:
        """Yield the sentences of many paragraphs, in order, as token lists.

        Sentences with no token (whitespace only) are skipped.
        """
        for doc in self.nlp.pipe(paragraphs, batch_size=self.batch_size):
            for sentence in doc.sents:
                tokens = self._tokens(sentence)
                if tokens:
                    yield tokens

    def tokenize(self, sentences: Iterable[str]) -> list[list[str]]:
        """Tokenise sentences that are already split, without sentence splitting.

        An empty sentence becomes an empty list.
        """
        tokenizer = self.nlp.tokenizer
        return [self._tokens(doc) for doc in tokenizer.pipe(sentences, batch_size=1000)]
