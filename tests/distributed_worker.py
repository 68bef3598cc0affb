"""Worker for the two-process gloo tests; run as a script, one process per rank.

Usage: python distributed_worker.py CASE RANK WORLD_SIZE PORT OUTPUT_FILE
Each case writes a dict of tensors with torch.save to OUTPUT_FILE.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from torch.nn import functional as F

from alignsphere import (
    contrastive_loss,
    gather_with_grad,
    parse_objective,
    uniform_loss,
)
from alignsphere.metrics.streaming import Alignment, Uniformity

W = torch.tensor([[1.0, 0.3], [-0.2, 1.0]], dtype=torch.float64)
VIEW1 = torch.tensor([[1.0, 0.2], [0.1, 1.0]], dtype=torch.float64)
VIEW2 = torch.tensor([[0.9, 0.4], [0.3, 0.8]], dtype=torch.float64)


def average_grad(grad: torch.Tensor) -> torch.Tensor:
    """Average a gradient over ranks, as DDP does."""
    grad = grad.clone()
    dist.all_reduce(grad)
    return grad / dist.get_world_size()


def case_nt_xent(rank: int, gather: bool) -> dict:
    weight = W.clone().requires_grad_()
    z1 = F.normalize(VIEW1[rank : rank + 1] @ weight.T, dim=1)
    z2 = F.normalize(VIEW2[rank : rank + 1] @ weight.T, dim=1)
    if gather:
        loss = contrastive_loss(z1, z2, 0.5, gather=True)
    else:
        # A gather whose result carries no gradient to other ranks' rows.
        with torch.no_grad():
            all1 = [torch.empty_like(z1) for _ in range(2)]
            all2 = [torch.empty_like(z2) for _ in range(2)]
            dist.all_gather(all1, z1)
            dist.all_gather(all2, z2)
        all1[rank], all2[rank] = z1, z2
        loss = local_anchor_loss(z1, z2, torch.cat(all1), torch.cat(all2), rank)
    loss.backward()
    global_loss = loss.detach().clone()
    dist.all_reduce(global_loss)
    return {"loss": global_loss / 2, "grad": average_grad(weight.grad)}


def local_anchor_loss(z1, z2, all1, all2, rank):
    """NT-Xent of this rank's two anchors against the other three rows."""
    candidates = torch.cat([all1, all2])
    n = all1.shape[0]
    losses = []
    for anchor, own, positive in ((z1[0], rank, n + rank), (z2[0], n + rank, rank)):
        logits = candidates @ anchor / 0.5
        keep = [i for i in range(2 * n) if i != own]
        losses.append(torch.logsumexp(logits[keep], 0) - logits[positive])
    return torch.stack(losses).mean()


def case_objective(rank: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    x1 = torch.randn(8, 5, generator=generator, dtype=torch.float64)
    x2 = x1 + 0.3 * torch.randn(8, 5, generator=generator, dtype=torch.float64)
    weight = torch.randn(
        4, 5, generator=generator, dtype=torch.float64
    ).requires_grad_()
    # Rank 0 holds rows 0-4 and rank 1 rows 5-7: uneven local batches.
    rows = slice(0, 5) if rank == 0 else slice(5, 8)
    z1 = F.normalize(x1[rows] @ weight.T, dim=1)
    z2 = F.normalize(x2[rows] @ weight.T, dim=1)
    objective = parse_objective(
        "1*uniform(t=2) + 0.5*contrastive(tau=0.3)", gather=True
    )
    out = objective(z1, z2)
    out.total.backward()
    # Summed, not averaged: with uneven batches the global objective of the
    # uniform term is the same on both ranks, so the sum over ranks of the
    # gradients equals twice the single-process gradient of that term.
    grad = weight.grad.clone()
    dist.all_reduce(grad)
    return {"uniform": out.terms["uniform"].detach(), "grad_sum": grad}


def case_gather_uneven(rank: int) -> dict:
    x = torch.arange(3 * (rank + 1), dtype=torch.float64).reshape(-1, 3) + 10 * rank
    x.requires_grad_()
    gathered, offset = gather_with_grad(x)
    # Each rank weighs every gathered row by (rank + 1).
    (gathered.sum(dim=1) * (rank + 1)).sum().backward()
    return {
        "gathered": gathered.detach(),
        "offset": torch.tensor(offset),
        "grad": x.grad,
    }


def case_uniform_gather(rank: int) -> dict:
    generator = torch.Generator().manual_seed(1)
    x = F.normalize(torch.randn(6, 3, generator=generator, dtype=torch.float64), dim=1)
    local = x[rank * 3 : rank * 3 + 3].clone().requires_grad_()
    value = uniform_loss(local, 2.0, gather=True)
    value.backward()
    return {"value": value.detach(), "grad": local.grad}


def case_metrics(rank: int) -> dict:
    generator = torch.Generator().manual_seed(2)
    x = F.normalize(torch.randn(10, 4, generator=generator, dtype=torch.float64), dim=1)
    y = F.normalize(torch.randn(10, 4, generator=generator, dtype=torch.float64), dim=1)
    uniform, align = Uniformity(t=2.0), Alignment(alpha=2.0)
    mine = range(rank, 10, 2)
    for i in mine:
        uniform.update(x[i : i + 1])
        align.update(x[i : i + 1], y[i : i + 1])
    return {"uniform": uniform.compute(), "align": align.compute()}


def main() -> None:
    case, rank, world, port, output = sys.argv[1:]
    rank, world = int(rank), int(world)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        if case == "nt_xent":
            result = case_nt_xent(rank, gather=True)
        elif case == "nt_xent_no_grad_gather":
            result = case_nt_xent(rank, gather=False)
        elif case == "objective":
            result = case_objective(rank)
        elif case == "gather_uneven":
            result = case_gather_uneven(rank)
        elif case == "uniform_gather":
            result = case_uniform_gather(rank)
        elif case == "metrics":
            result = case_metrics(rank)
        else:
            raise SystemExit(f"unknown case {case}")
        torch.save(result, output)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
