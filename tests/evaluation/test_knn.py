"""k-NN on cosine similarity against a brute-force float64 reference."""

from __future__ import annotations

import math

import pytest
import torch

from alignsphere.evaluation import knn_accuracy, knn_predict

torch.set_num_threads(1)


def reference_knn(bank, labels, queries, k, temperature=None, exclude_self=False):
    """Vote over the k most similar bank rows, one query at a time, in float64."""
    bank = torch.nn.functional.normalize(bank.double(), dim=1)
    queries = torch.nn.functional.normalize(queries.double(), dim=1)
    num_classes = int(labels.max()) + 1
    predictions = []
    for i, query in enumerate(queries):
        candidates = [
            (float(query @ bank[j]), j)
            for j in range(bank.shape[0])
            if not (exclude_self and j == i)
        ]
        # Largest similarity first; the tests avoid ties in similarity.
        candidates.sort(key=lambda pair: -pair[0])
        votes = [0.0] * num_classes
        summed = [0.0] * num_classes
        for similarity, j in candidates[:k]:
            label = int(labels[j])
            weight = 1.0 if temperature is None else math.exp(similarity / temperature)
            votes[label] += weight
            summed[label] += similarity
        best = max(range(num_classes), key=lambda c: (votes[c], summed[c], -c))
        predictions.append(best)
    return torch.tensor(predictions)


@pytest.mark.parametrize("k", [1, 4, 5, 10])
@pytest.mark.parametrize("block_size", [1, 7, 1024])
def test_knn_matches_brute_force(k, block_size):
    generator = torch.Generator().manual_seed(k)
    bank = torch.randn(60, 6, generator=generator)
    labels = torch.randint(0, 4, (60,), generator=generator)
    queries = torch.randn(25, 6, generator=generator)
    expected = reference_knn(bank, labels, queries, k)
    actual = knn_predict(bank, labels, queries, k=k, block_size=block_size)
    assert torch.equal(actual, expected)


@pytest.mark.parametrize("temperature", [0.05, 0.5, 10.0])
def test_knn_temperature_matches_reference(temperature):
    generator = torch.Generator().manual_seed(1)
    bank = torch.randn(80, 5, generator=generator)
    labels = torch.randint(0, 5, (80,), generator=generator)
    queries = torch.randn(30, 5, generator=generator)
    expected = reference_knn(bank, labels, queries, 7, temperature=temperature)
    actual = knn_predict(bank, labels, queries, k=7, temperature=temperature)
    assert torch.equal(actual, expected)


@pytest.mark.parametrize("temperature", [1e-4, 1e-46, 5e-324])
def test_knn_small_temperature_stays_finite(temperature):
    """Even a T that float32 rounds to 0 lets the nearest neighbour decide."""
    generator = torch.Generator().manual_seed(2)
    bank = torch.randn(40, 4, generator=generator)
    labels = torch.randint(0, 3, (40,), generator=generator)
    queries = torch.randn(10, 4, generator=generator)
    actual = knn_predict(bank, labels, queries, k=5, temperature=temperature)
    # With T -> 0 the nearest neighbour decides alone.
    nearest = knn_predict(bank, labels, queries, k=1)
    assert torch.equal(actual, nearest)


def test_knn_tie_goes_to_larger_summed_similarity():
    # Query e1; two neighbours of class 0 at cos 0.9 and 0.1, two of class 1
    # at cos 0.8 and 0.6: 2 votes each, class 1 sums 1.4 > 1.0.
    angles = torch.tensor([0.9, 0.1, 0.8, 0.6]).acos()
    bank = torch.stack([angles.cos(), angles.sin()], dim=1)
    labels = torch.tensor([0, 0, 1, 1])
    query = torch.tensor([[1.0, 0.0]])
    assert knn_predict(bank, labels, query, k=4).item() == 1
    assert reference_knn(bank, labels, query, 4).item() == 1


def test_knn_full_tie_goes_to_smaller_class():
    # Identical bank rows of classes 3 and 1: same votes, same summed similarity.
    bank = torch.tensor([[0.6, 0.8], [0.6, 0.8], [-1.0, 0.0]])
    labels = torch.tensor([3, 1, 2])
    query = torch.tensor([[1.0, 0.0]])
    assert knn_predict(bank, labels, query, k=2).item() == 1


def test_knn_majority_beats_similarity():
    # One very close class-0 neighbour against two farther class-1 neighbours.
    angles = torch.tensor([0.99, 0.5, 0.4]).acos()
    bank = torch.stack([angles.cos(), angles.sin()], dim=1)
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.0]])
    assert knn_predict(bank, labels, query, k=3).item() == 1


@pytest.mark.parametrize("block_size", [1, 5, 100])
def test_knn_excludes_self(block_size):
    generator = torch.Generator().manual_seed(3)
    bank = torch.randn(50, 4, generator=generator)
    labels = torch.randint(0, 3, (50,), generator=generator)
    expected = reference_knn(bank, labels, bank, 5, exclude_self=True)
    actual = knn_predict(
        bank, labels, bank, k=5, exclude_self=True, block_size=block_size
    )
    assert torch.equal(actual, expected)


def test_knn_self_is_excluded_for_k1():
    # Without exclusion every row finds itself; with it, its nearest other row.
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([0, 1, 2, 3])
    assert knn_predict(bank, labels, bank, k=1).tolist() == [0, 1, 2, 3]
    assert knn_predict(bank, labels, bank, k=1, exclude_self=True).tolist() == [
        1,
        0,
        3,
        2,
    ]


def test_knn_does_not_depend_on_scale():
    generator = torch.Generator().manual_seed(4)
    bank = torch.randn(30, 3, generator=generator)
    labels = torch.randint(0, 3, (30,), generator=generator)
    queries = torch.randn(9, 3, generator=generator)
    assert torch.equal(
        knn_predict(bank, labels, queries, k=3),
        knn_predict(bank * 7.0, labels, queries * 0.01, k=3),
    )


def test_knn_accuracy_on_clusters():
    generator = torch.Generator().manual_seed(5)
    centers = torch.eye(4) * 5
    labels = torch.arange(4).repeat_interleave(25)
    bank = centers[labels] + torch.randn(100, 4, generator=generator)
    queries = centers[labels] + torch.randn(100, 4, generator=generator)
    assert knn_accuracy(bank, labels, queries, labels, k=5) > 0.95


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be"),
        ({"k": 11}, "larger than"),
        ({"temperature": 0.0}, "temperature"),
        ({"block_size": 0}, "block_size"),
        ({"num_classes": 2}, "num_classes"),
    ],
)
def test_knn_rejects_bad_arguments(kwargs, message):
    bank = torch.randn(10, 3)
    labels = torch.arange(10) % 3
    with pytest.raises(ValueError, match=message):
        knn_predict(bank, labels, torch.randn(2, 3), **kwargs)


def test_knn_rejects_exclude_self_on_other_queries():
    with pytest.raises(ValueError, match="exclude_self"):
        knn_predict(
            torch.randn(10, 3),
            torch.zeros(10).long(),
            torch.randn(4, 3),
            exclude_self=True,
        )


def test_knn_rejects_nan_and_unlabelled():
    bank = torch.randn(10, 3)
    bank[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        knn_predict(bank, torch.zeros(10).long(), torch.randn(2, 3))
    labels = torch.zeros(10).long()
    labels[0] = -1
    with pytest.raises(ValueError, match="unlabelled"):
        knn_predict(torch.randn(10, 3), labels, torch.randn(2, 3))
