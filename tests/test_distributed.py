"""Losses and metrics in a real two-process gloo group on CPU."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from alignsphere import (
    contrastive_loss,
    gather_with_grad,
    parse_objective,
    uniform_loss,
    uniformity,
)

WORKER = Path(__file__).with_name("distributed_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_ranks(case: str, tmp_path: Path) -> list[dict]:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outputs = [tmp_path / f"{case}-{rank}.pt" for rank in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), case, str(rank), "2", str(port), str(out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank, out in enumerate(outputs)
    ]
    logs = [p.communicate(timeout=120)[0] for p in procs]
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log
    return [torch.load(out, weights_only=True) for out in outputs]


W = torch.tensor([[1.0, 0.3], [-0.2, 1.0]], dtype=torch.float64)
VIEW1 = torch.tensor([[1.0, 0.2], [0.1, 1.0]], dtype=torch.float64)
VIEW2 = torch.tensor([[0.9, 0.4], [0.3, 0.8]], dtype=torch.float64)
EXPECTED_GRAD = torch.tensor(
    [[0.0662992, 0.5289479], [0.5501727, -0.1149490]], dtype=torch.float64
)


def test_single_process_reference_values():
    weight = W.clone().requires_grad_()
    loss = contrastive_loss(
        F.normalize(VIEW1 @ weight.T, dim=1), F.normalize(VIEW2 @ weight.T, dim=1), 0.5
    )
    loss.backward()
    assert loss.item() == pytest.approx(0.6491442, abs=1e-7)
    assert torch.allclose(weight.grad, EXPECTED_GRAD, atol=1e-7)


def test_nt_xent_two_ranks_equals_one_process(tmp_path):
    results = run_two_ranks("nt_xent", tmp_path)
    for result in results:
        assert result["loss"].item() == pytest.approx(0.6491442, abs=1e-7)
        assert torch.allclose(result["grad"], EXPECTED_GRAD, atol=1e-7)


def test_gather_without_gradient_is_wrong(tmp_path):
    # The same loss with a gather that drops the other ranks' gradients: the
    # check above must be able to fail.
    result = run_two_ranks("nt_xent_no_grad_gather", tmp_path)[0]
    assert result["loss"].item() == pytest.approx(0.6491442, abs=1e-7)
    assert not torch.allclose(result["grad"], EXPECTED_GRAD, atol=1e-3)


def test_gather_uneven_batches(tmp_path):
    results = run_two_ranks("gather_uneven", tmp_path)
    expected = torch.cat(
        [
            torch.arange(3, dtype=torch.float64).reshape(1, 3),
            torch.arange(6, dtype=torch.float64).reshape(2, 3) + 10,
        ]
    )
    for rank, result in enumerate(results):
        assert torch.equal(result["gathered"], expected)
        assert int(result["offset"]) == (0 if rank == 0 else 1)
        # Rank weights 1 and 2 summed over ranks: every row's gradient is 3.
        assert torch.equal(result["grad"], torch.full_like(result["grad"], 3.0))


def test_uniform_gather_matches_global(tmp_path):
    generator = torch.Generator().manual_seed(1)
    x = F.normalize(torch.randn(6, 3, generator=generator, dtype=torch.float64), dim=1)
    full = x.clone().requires_grad_()
    value = uniform_loss(full, 2.0)
    value.backward()
    results = run_two_ranks("uniform_gather", tmp_path)
    for rank, result in enumerate(results):
        assert result["value"].item() == pytest.approx(value.item(), rel=1e-12)
        # Each rank computes the same global loss, so the summed gradient
        # reaching rank r's rows is twice the single-process gradient; DDP's
        # average over the two ranks then gives exactly the single-process step.
        assert torch.allclose(
            result["grad"], 2 * full.grad[rank * 3 : rank * 3 + 3], atol=1e-12
        )


def test_objective_uneven_batches(tmp_path):
    generator = torch.Generator().manual_seed(0)
    x1 = torch.randn(8, 5, generator=generator, dtype=torch.float64)
    x2 = x1 + 0.3 * torch.randn(8, 5, generator=generator, dtype=torch.float64)
    weight = torch.randn(
        4, 5, generator=generator, dtype=torch.float64
    ).requires_grad_()
    z1, z2 = F.normalize(x1 @ weight.T, dim=1), F.normalize(x2 @ weight.T, dim=1)
    objective = parse_objective("1*uniform(t=2) + 0.5*contrastive(tau=0.3)")
    out = objective(z1, z2)
    results = run_two_ranks("objective", tmp_path)
    for result in results:
        assert result["uniform"].item() == pytest.approx(
            out.terms["uniform"].item(), rel=1e-12
        )
    # Sum over ranks: the uniform term counts twice (each rank computes the
    # global value) and the contrastive term once per anchor, weighted by
    # 1/n_rank instead of 1/N. Rebuild that target in one process.
    uniform_part = torch.autograd.grad(out.terms["uniform"], weight, retain_graph=True)[
        0
    ]
    contrastive_part = torch.zeros_like(weight)
    for rows in (slice(0, 5), slice(5, 8)):
        weight_r = weight.detach().clone().requires_grad_()
        a1, a2 = (
            F.normalize(x1 @ weight_r.T, dim=1),
            F.normalize(x2 @ weight_r.T, dim=1),
        )
        anchors = torch.cat([a1[rows], a2[rows]])
        candidates = torch.cat([a1, a2])
        logits = anchors @ candidates.T / 0.3
        n, idx = 8, torch.arange(8)[rows]
        own = torch.cat([idx, idx + n])
        positive = torch.cat([idx + n, idx])
        logits = logits.scatter(1, own[:, None], -torch.inf)
        loss = (
            torch.logsumexp(logits, 1) - logits.gather(1, positive[:, None])[:, 0]
        ).mean()
        contrastive_part += torch.autograd.grad(loss, weight_r)[0]
    expected = 2 * uniform_part + 0.5 * contrastive_part
    for result in results:
        assert torch.allclose(result["grad_sum"], expected, atol=1e-10)


def test_streaming_metrics_across_ranks(tmp_path):
    generator = torch.Generator().manual_seed(2)
    x = F.normalize(torch.randn(10, 4, generator=generator, dtype=torch.float64), dim=1)
    y = F.normalize(torch.randn(10, 4, generator=generator, dtype=torch.float64), dim=1)
    results = run_two_ranks("metrics", tmp_path)
    for result in results:
        assert result["uniform"].item() == pytest.approx(uniformity(x, 2.0), rel=1e-12)
        assert result["align"].item() == pytest.approx(
            float((x - y).pow(2).sum(1).mean()), rel=1e-12
        )


def test_gather_outside_group_is_identity():
    x = torch.randn(3, 2)
    gathered, offset = gather_with_grad(x)
    assert gathered is x
    assert offset == 0
