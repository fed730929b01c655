"""Several training processes under ``torchrun``: joining the group, who this process is, the shared loss."""

from __future__ import annotations

import os

import torch


def rank_world() -> tuple[int, int]:
    """This process's rank and the number of training processes (0, 1 without torch.distributed)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def mean_over_processes(value: torch.Tensor, world: int) -> torch.Tensor:
    """The batch loss every process agrees on: the sum of the weighted shares over processes / world."""
    if world == 1:
        return value
    import torch.distributed as dist

    value = value.clone()
    dist.all_reduce(value)
    return value / world


def init_distributed() -> tuple[int, int]:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1 in the environment): NCCL on
    GPUs (one per process, by ``LOCAL_RANK``), gloo on CPUs. Returns ``(rank, world)``."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return rank_world()
