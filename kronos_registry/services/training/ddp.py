"""Data-parallel training under torchrun: who this process is, and the few collectives used.

``torchrun --nproc-per-node N -m kronos_registry finetune ...`` starts N copies of the
command with ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set; :func:`join` then opens the
process group (gloo on the CPU, nccl on GPUs, one GPU per local rank). Every rank reads the
same data and cuts the same windows; each global batch is split over the ranks
(``shard``), and DistributedDataParallel averages the gradients, so N processes step as one
process with the whole batch would. Only rank 0 writes checkpoints, logs and the registry.
Without ``WORLD_SIZE`` (or with 1) everything here is a no-op: one process, no group.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
from attrs import frozen


@frozen
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    grouped: bool = False          # True: a process group is open (torchrun with >1 process)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def join(device: str | None) -> World:
    """This process's place in the job (see the module doc); ``device`` as --device gives it."""
    import torch

    from kronos_registry.kronos.predictor import default_device

    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    chosen = device or default_device()
    if size <= 1:
        return World(device=chosen)
    import torch.distributed as dist

    on_gpu = torch.device(chosen).type == "cuda"
    if on_gpu:
        chosen = f"cuda:{local}"
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if on_gpu else "gloo")
    return World(rank=rank, size=size, local_rank=local, device=chosen, grouped=True)


def leave(world: World) -> None:
    if world.grouped:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def shard(indices: np.ndarray, world: World) -> np.ndarray:
    """This rank's contiguous share of one global batch (sizes differ by at most one)."""
    return np.array_split(indices, world.size)[world.rank]


def all_sum(world: World, values: Sequence[float]) -> list[float]:
    """The element-wise sum of ``values`` over every rank (float64)."""
    if not world.grouped:
        return [float(v) for v in values]
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=world.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather(world: World, value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order (on every rank)."""
    if not world.grouped:
        return [value]
    import torch.distributed as dist

    found: list[Any] = [None] * world.size
    dist.all_gather_object(found, value)
    return found


def from_main(world: World, value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a decision, a path, an error's text)."""
    if not world.grouped:
        return value
    import torch.distributed as dist

    box = [value if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World) -> None:
    if world.grouped:
        import torch.distributed as dist

        dist.barrier()


def wrap(module, world: World):
    """The module as the ranks train it: DistributedDataParallel in a group, else itself."""
    if not world.grouped:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [world.local_rank] if world.device.startswith("cuda") else None
    return DistributedDataParallel(module, device_ids=ids)


__all__ = ["World", "all_sum", "barrier", "from_main", "gather", "join", "leave", "shard", "wrap"]
