"""k-nearest-neighbour classification on cosine similarity, in blocks of queries.

The bank (the labelled training features) stays whole and the queries are
visited in blocks. Memory is ``O(block_size x bank size)`` for the similarities
and ``O(block_size x k)`` for the neighbours, whatever the number of queries.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

#: Queries per block. A block of 1,024 queries against a bank of 50,000 holds a
#: 200 MB float32 similarity matrix.
DEFAULT_BLOCK_SIZE = 1024


def _check_bank_and_queries(
    bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor
) -> None:
    if bank.dim() != 2 or queries.dim() != 2:
        raise ValueError(
            "bank and queries must be 2-D (rows, features), got shapes "
            f"{tuple(bank.shape)} and {tuple(queries.shape)}"
        )
    if bank.shape[1] != queries.shape[1]:
        raise ValueError(
            f"bank and queries must have the same feature dimension, got "
            f"{bank.shape[1]} and {queries.shape[1]}"
        )
    if bank_labels.shape != (bank.shape[0],):
        raise ValueError(
            f"bank_labels must have shape ({bank.shape[0]},) to match the bank, "
            f"got {tuple(bank_labels.shape)}"
        )
    if bank_labels.dtype.is_floating_point or bank_labels.dtype == torch.bool:
        raise ValueError(f"bank_labels must be integers, got dtype {bank_labels.dtype}")
    if bank_labels.numel() and int(bank_labels.min()) < 0:
        raise ValueError(
            "bank_labels must be >= 0; drop unlabelled rows (label -1) from the bank"
        )
    for name, tensor in (("bank", bank), ("queries", queries)):
        if not tensor.dtype.is_floating_point:
            raise TypeError(f"{name} must be floating point, got dtype {tensor.dtype}")
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name} contains NaN or infinite values")


def _vote(
    similarities: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    temperature: float | None,
) -> torch.Tensor:
    """Return the class chosen for each row of ``(B, k)`` neighbour similarities."""
    if temperature is None:
        weights = torch.ones_like(similarities)
    else:
        # exp(sim / T) with the row's largest similarity subtracted: the argmax of
        # the votes is unchanged and small T cannot overflow. It runs in float64,
        # because float32 rounds a T below about 1e-45 to 0, and 0 / 0 is NaN.
        rows = similarities.double()
        shifted = (rows - rows.amax(dim=1, keepdim=True)) / temperature
        weights = shifted.exp()
    shape = (similarities.shape[0], num_classes)
    votes = similarities.new_zeros(shape, dtype=torch.float64)
    votes.scatter_add_(1, labels, weights.double())
    summed = similarities.new_zeros(shape, dtype=torch.float64)
    summed.scatter_add_(1, labels, similarities.double())

    # Lexicographic argmax: most votes, then the larger summed similarity, then
    # the smaller class index (argmax returns the first of equal maxima).
    leaders = votes == votes.amax(dim=1, keepdim=True)
    summed = summed.masked_fill(~leaders, -math.inf)
    leaders &= summed == summed.amax(dim=1, keepdim=True)
    return leaders.to(torch.uint8).argmax(dim=1)


@torch.no_grad()
def knn_predict(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    *,
    k: int = 5,
    temperature: float | None = None,
    num_classes: int | None = None,
    exclude_self: bool = False,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> torch.Tensor:
    """Classify each query by a vote of its k most cosine-similar bank rows.

    Rows are L2-normalised here, so the similarity of query q and bank row b is
    ``cos(q, b)``. Each of the k neighbours votes for its label with weight 1
    (majority vote, the protocol of Wang & Isola 2020 with k = 5) or, when
    ``temperature`` is given, with weight ``exp(cos / temperature)``. The class
    with the most votes wins. A tie goes to the class whose neighbours have the
    larger summed similarity, and a tie of that too goes to the smaller class
    index. Ties of similarity at the k-th place are the one case where the
    order of the bank can matter, because ``torch.topk`` picks among them.

    Args:
        bank: ``(N, d)`` labelled features.
        bank_labels: ``(N,)`` integer labels in ``[0, num_classes)``.
        queries: ``(Q, d)`` features to classify, on the bank's device.
        k: Neighbours per query, at least 1. Defaults to 5.
        temperature: If given (> 0), weight votes by ``exp(cos / temperature)``
            instead of counting them.
        num_classes: Number of classes; defaults to ``max(bank_labels) + 1``.
        exclude_self: The queries are the bank itself (``Q == N``, row i of both
            is one sample), so query i never counts bank row i as a neighbour.
        block_size: Queries per block; memory is ``O(block_size x N)``.

    Returns:
        ``(Q,)`` int64 predicted labels on the queries' device.

    Raises:
        ValueError: On mismatched shapes, non-finite features, negative labels,
            ``k`` larger than the number of candidate neighbours, a non-positive
            temperature or block size, or ``exclude_self`` with ``Q != N``.

    Example:
        >>> bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
        >>> labels = torch.tensor([0, 0, 1])
        >>> knn_predict(bank, labels, torch.tensor([[1.0, 0.2]]), k=2).tolist()
        [0]
    """
    _check_bank_and_queries(bank, bank_labels, queries)
    if int(k) != k or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    k = int(k)
    if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"temperature must be a finite number > 0, got {temperature!r}"
        )
    if int(block_size) < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size!r}")
    if exclude_self and queries.shape[0] != bank.shape[0]:
        raise ValueError(
            "exclude_self=True needs the queries to be the bank itself, got "
            f"{queries.shape[0]} queries for a bank of {bank.shape[0]} rows"
        )
    candidates = bank.shape[0] - (1 if exclude_self else 0)
    if k > candidates:
        raise ValueError(
            f"k={k} is larger than the {candidates} bank rows available as "
            "neighbours; use a smaller k or a larger bank"
        )
    if num_classes is None:
        num_classes = int(bank_labels.max()) + 1 if bank_labels.numel() else 1
    elif bank_labels.numel() and int(bank_labels.max()) >= num_classes:
        raise ValueError(
            f"bank_labels go up to {int(bank_labels.max())}, which is not below "
            f"num_classes={num_classes}"
        )

    dtype = torch.float64 if bank.dtype == torch.float64 else torch.float32
    bank_unit = F.normalize(bank.to(dtype), dim=1)
    labels = bank_labels.to(device=bank.device, dtype=torch.int64)
    predictions = torch.empty(
        queries.shape[0], dtype=torch.int64, device=queries.device
    )
    for start in range(0, queries.shape[0], int(block_size)):
        block = F.normalize(queries[start : start + int(block_size)].to(dtype), dim=1)
        similarities = block @ bank_unit.T
        if exclude_self:
            rows = torch.arange(block.shape[0], device=block.device)
            similarities[rows, rows + start] = -math.inf
        top_sim, top_index = similarities.topk(k, dim=1)
        predictions[start : start + block.shape[0]] = _vote(
            top_sim, labels[top_index], num_classes, temperature
        )
    return predictions


def knn_accuracy(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    **kwargs: object,
) -> float:
    """Return the fraction of queries that :func:`knn_predict` labels correctly.

    Args:
        bank: ``(N, d)`` labelled features.
        bank_labels: ``(N,)`` labels of the bank.
        queries: ``(Q, d)`` features to classify.
        query_labels: ``(Q,)`` true labels of the queries.
        **kwargs: Passed to :func:`knn_predict` (``k``, ``temperature``,
            ``exclude_self``, ``block_size``, ``num_classes``).

    Returns:
        Accuracy in [0, 1].
    """
    if query_labels.shape != (queries.shape[0],):
        raise ValueError(
            f"query_labels must have shape ({queries.shape[0]},), "
            f"got {tuple(query_labels.shape)}"
        )
    if queries.shape[0] == 0:
        raise ValueError("queries is empty; accuracy needs at least one query")
    predictions = knn_predict(bank, bank_labels, queries, **kwargs)  # type: ignore[arg-type]
    return float((predictions.cpu() == query_labels.cpu()).double().mean())
