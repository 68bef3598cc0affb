"""MoCo core: queue arithmetic, step order, momentum update, eval without changes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from alignsphere.losses import align_loss, uniform_queue_loss
from alignsphere.moco import MoCo
from alignsphere.models import build_encoder

torch.set_num_threads(1)


def make_moco(queue_size: int, **options) -> MoCo:
    torch.manual_seed(0)
    encoder = build_encoder("mlp", input_dim=16, in_channels=1, out_dim=4, **options)
    return MoCo(
        encoder, "1*align(alpha=2) + 1*uniform_queue(t=2)", queue_size=queue_size
    )


def unit_rows(count: int, start: int) -> torch.Tensor:
    """Rows whose first value encodes their index, so the queue can be read back."""
    rows = torch.zeros(count, 4)
    rows[:, 0] = torch.arange(start, start + count, dtype=torch.float32)
    rows[:, 1] = 1.0
    return F.normalize(rows, dim=1)


def row_ids(queue: torch.Tensor) -> list[int]:
    # Row i is (i, 1, 0, 0) / sqrt(i^2 + 1), so i = x / y.
    return torch.round(queue[:, 0] / queue[:, 1]).long().tolist()


@pytest.mark.parametrize(
    ("queue_size", "batches", "pointer"),
    [
        (10, [4, 4, 4], 2),  # wraps in the third batch
        (10, [3, 3, 3, 1], 0),  # a last batch smaller than the rest
        (7, [5, 5, 2], 5),  # K not a multiple of the batch
        (4, [6], 2),  # a batch larger than the queue keeps its last 4 keys
        (5, [5, 5], 0),  # exact fill
    ],
)
def test_enqueue_wraps_around(queue_size, batches, pointer):
    moco = make_moco(queue_size)
    expected = [None] * queue_size
    position, start = 0, 0
    for size in batches:
        moco.enqueue(unit_rows(size, start))
        for index in range(start, start + size):
            expected[position] = index
            position = (position + 1) % queue_size
        start += size
    assert int(moco.queue_ptr) == pointer
    written = [i for i, value in enumerate(expected) if value is not None]
    assert [row_ids(moco.queue)[i] for i in written] == [expected[i] for i in written]


def test_enqueue_keeps_unwritten_rows():
    moco = make_moco(8)
    initial = moco.queue.clone()
    moco.enqueue(unit_rows(3, 0))
    assert torch.equal(moco.queue[3:], initial[3:])


def test_enqueue_empty_batch_changes_nothing():
    moco = make_moco(8)
    initial = moco.queue.clone()
    moco.enqueue(torch.empty(0, 4))
    assert torch.equal(moco.queue, initial)
    assert int(moco.queue_ptr) == 0


def test_loss_uses_queue_before_step():
    moco = make_moco(16)
    before = moco.queue.clone()
    generator = torch.Generator().manual_seed(1)
    view_q = torch.rand(6, 1, 4, 4, generator=generator)
    view_k = torch.rand(6, 1, 4, 4, generator=generator)
    output = moco(view_q, view_k)
    expected = uniform_queue_loss(output.queries.detach(), before, 2.0)
    torch.testing.assert_close(output.terms["uniform_queue"].detach(), expected)
    torch.testing.assert_close(
        output.terms["align"].detach(), align_loss(output.queries.detach(), output.keys)
    )
    # The keys of this step are written only after the loss was computed.
    torch.testing.assert_close(moco.queue[:6], output.keys)
    assert int(moco.queue_ptr) == 6


def test_backward_after_enqueue():
    moco = make_moco(4)
    output = moco(torch.rand(4, 1, 4, 4), torch.rand(4, 1, 4, 4))
    output.total.backward()
    gradients = [p.grad for p in moco.encoder_q.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in gradients)
    assert all(p.grad is None for p in moco.encoder_k.parameters())


def test_momentum_update_formula():
    moco = make_moco(4)
    moco.momentum = 0.9
    with torch.no_grad():
        for parameter in moco.encoder_q.parameters():
            parameter.add_(1.0)
    keys_before = [p.clone() for p in moco.encoder_k.parameters()]
    queries = [p.clone() for p in moco.encoder_q.parameters()]
    moco.momentum_update()
    for key, before, query in zip(
        moco.encoder_k.parameters(), keys_before, queries, strict=True
    ):
        torch.testing.assert_close(key, 0.9 * before + 0.1 * query)


def test_eval_forward_changes_nothing():
    moco = make_moco(8)
    moco(torch.rand(4, 1, 4, 4), torch.rand(4, 1, 4, 4))  # one training step
    with torch.no_grad():
        for parameter in moco.encoder_q.parameters():
            parameter.mul_(1.5)  # so that a momentum update would be visible
    queue = moco.queue.clone()
    pointer = moco.queue_ptr.clone()
    key_state = {k: v.clone() for k, v in moco.encoder_k.state_dict().items()}
    moco.eval()
    with torch.no_grad():
        moco(torch.rand(4, 1, 4, 4), torch.rand(4, 1, 4, 4))
    moco(torch.rand(4, 1, 4, 4), torch.rand(4, 1, 4, 4))  # eval with gradients
    assert torch.equal(moco.queue, queue)
    assert torch.equal(moco.queue_ptr, pointer)
    for key, value in moco.encoder_k.state_dict().items():
        assert torch.equal(value, key_state[key]), key


def test_key_batch_norm_stats_update():
    moco = make_moco(8)
    running = moco.encoder_k.stages.hidden1[1].running_mean
    before = running.clone()
    moco(torch.rand(4, 1, 4, 4), torch.rand(4, 1, 4, 4))
    assert not torch.equal(running, before)


def test_initial_queue_is_unit_and_seeded():
    first = make_moco(32).queue
    second = make_moco(32).queue
    torch.testing.assert_close(first.norm(dim=1), torch.ones(32))
    assert torch.equal(first, second)


def test_objective_never_gathers():
    moco = make_moco(8)
    assert moco.objective.gather is False


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"queue_size": 0}, "queue_size must be >= 1"),
        ({"momentum": 1.0}, "momentum must be in"),
        ({"bn_splits": 0}, "bn_splits must be >= 1"),
    ],
)
def test_invalid_settings_raise(options, message):
    encoder = build_encoder("mlp", input_dim=16, in_channels=1, out_dim=4)
    with pytest.raises(ValueError, match=message):
        MoCo(encoder, "1*align", **options)


def test_mismatched_views_raise():
    moco = make_moco(8)
    with pytest.raises(ValueError, match="x_q has 4 images but x_k has 3"):
        moco(torch.rand(4, 1, 4, 4), torch.rand(3, 1, 4, 4))


def test_encoder_without_out_dim_needs_dim():
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))
    with pytest.raises(ValueError, match="pass the feature dimension as dim="):
        MoCo(encoder, "1*align")
    assert MoCo(encoder, "1*align", dim=4, queue_size=3).queue.shape == (3, 4)
