"""Worker for the two-process gloo MoCo tests; run as a script, one process per rank.

Usage: python moco_worker.py CASE RANK WORLD_SIZE PORT OUTPUT_FILE
CASE is ``step`` or ``all`` (every case). RANK -1 runs one process without a
process group on the global batch. The worker saves a dict of each case's
tensors with torch.save to OUTPUT_FILE.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from torch import nn

from alignsphere.moco import MoCo, shuffled_forward
from alignsphere.models import build_encoder

GLOBAL_BATCH = 8
STEPS = 3
QUEUE_SIZE = 12  # global batch 8: the second step wraps around the end
OBJECTIVE = "3*align(alpha=2) + 1*uniform_queue(t=3) + 0.5*contrastive_queue(tau=0.2)"


def own_rows(rank: int, world_size: int) -> slice:
    if rank < 0:
        return slice(None)
    per_rank = GLOBAL_BATCH // world_size
    return slice(rank * per_rank, (rank + 1) * per_rank)


def case_step(rank: int, world_size: int, gather: bool) -> dict:
    """Three MoCo steps with SGD; gradients averaged over ranks as DDP does."""
    torch.manual_seed(0)
    # norm="none": no batch norm, whose per-rank statistics differ by design.
    encoder = build_encoder("mlp", input_dim=16, in_channels=1, out_dim=8, norm="none")
    moco = MoCo(
        encoder, OBJECTIVE, queue_size=QUEUE_SIZE, momentum=0.9, gather=gather
    ).double()
    optimizer = torch.optim.SGD(moco.encoder_q.parameters(), lr=0.5)
    data = torch.Generator().manual_seed(1)
    rows = own_rows(rank, world_size)
    result: dict[str, torch.Tensor] = {}
    for step in range(STEPS):
        view_q = torch.rand(GLOBAL_BATCH, 1, 4, 4, generator=data, dtype=torch.float64)
        view_k = torch.rand(GLOBAL_BATCH, 1, 4, 4, generator=data, dtype=torch.float64)
        shuffle = torch.Generator().manual_seed(100 + step)
        output = moco(view_q[rows], view_k[rows], generator=shuffle)
        optimizer.zero_grad()
        output.total.backward()
        loss = output.total.detach().clone()
        if rank >= 0:
            for parameter in moco.encoder_q.parameters():
                dist.all_reduce(parameter.grad)
                parameter.grad /= world_size
            dist.all_reduce(loss)
            loss /= world_size
        result[f"loss{step}"] = loss
        for name, parameter in moco.encoder_q.named_parameters():
            result[f"grad{step}.{name}"] = parameter.grad.clone()
        optimizer.step()
    result["queue"] = moco.queue.clone()
    result["queue_ptr"] = moco.queue_ptr.clone()
    for name, value in moco.encoder_k.state_dict().items():
        result[f"key_encoder.{name}"] = value.clone()
    return result


class RecordingStandardizer(nn.Module):
    """Standardise each column over the batch, like batch norm, and record row ids.

    Column 0 of every input row is that row's global id. It is recorded and
    passed on unchanged, so the test can tell which rank saw which rows.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x[:, 0].clone())
        features = x[:, 1:]
        standardized = (features - features.mean(0)) / features.std(0)
        return torch.cat([x[:, :1], standardized], dim=1)


def case_shuffle(rank: int, world_size: int) -> dict:
    data = torch.Generator().manual_seed(2)
    features = torch.randn(GLOBAL_BATCH, 3, generator=data, dtype=torch.float64)
    ids = torch.arange(GLOBAL_BATCH, dtype=torch.float64)[:, None]
    inputs = torch.cat([ids, features], dim=1)
    encoder = RecordingStandardizer()
    keys = shuffled_forward(
        encoder,
        inputs[own_rows(rank, world_size)],
        generator=torch.Generator().manual_seed(3),
    )
    return {"inputs": inputs, "keys": keys, "seen": torch.cat(encoder.seen)}


def main() -> None:
    case, rank, world_size, port, output = sys.argv[1:]
    rank, world_size = int(rank), int(world_size)
    torch.set_num_threads(1)
    if rank >= 0:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
        )
    try:
        if case == "step":
            result = {"step": case_step(rank, world_size, gather=True)}
        elif case == "all":
            # One process group for every case: starting ranks costs seconds.
            result = {
                "step": case_step(rank, world_size, gather=True),
                "step_per_rank": case_step(rank, world_size, gather=False),
                "shuffle": case_shuffle(rank, world_size),
            }
        else:
            raise SystemExit(f"unknown case {case}")
        torch.save(result, output)
    finally:
        if rank >= 0:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
