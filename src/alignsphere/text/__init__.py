"""Sentence encoders on the hypersphere: corpora, the GRU encoder, text evaluation.

The paper's language setting (Wang & Isola, ICML 2020): a quick-thought-style
GRU sentence encoder trained on books, where adjacent sentences are positive
pairs, evaluated with SentEval-style logistic regression and STS-B.

Submodules import spaCy, Lightning and scikit-learn only when used, so
``import alignsphere.text`` stays light.
"""

from alignsphere.text.corpus import (
    Document,
    decode_text,
    iter_documents,
    list_corpus_files,
    read_document,
    split_lines,
)
from alignsphere.text.encoder import GRUSentenceEncoder, pad_batch
from alignsphere.text.errors import TextDataError, TextDataNotFoundError
from alignsphere.text.vocab import Vocabulary

__all__ = [
    "Document",
    "GRUSentenceEncoder",
    "TextDataError",
    "TextDataNotFoundError",
    "Vocabulary",
    "decode_text",
    "iter_documents",
    "list_corpus_files",
    "pad_batch",
    "read_document",
    "split_lines",
]
