"""The small distributed helpers the round engine, the trainer and the evaluator share.

A plain run is one process (rank 0 of 1) and every helper here is then a no-op. Under ``accelerate launch``
with several processes, each process holds every prompt and sample, works on its share (:func:`shard`), and
the results are put back together on every process in their original order (:func:`gather_objects`). Training
averages gradients across processes (:func:`average_across_processes`) so the weights stay identical everywhere,
which :func:`check_in_sync` verifies after training.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ProcessInfo",
    "average_across_processes",
    "barrier",
    "check_in_sync",
    "gather_objects",
    "process_info",
    "shard",
]


@dataclass(frozen=True)
class ProcessInfo:
    """This process's place among the processes of a launch (``rank`` 0 of 1 when run plainly)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def process_info() -> ProcessInfo:
    """The current process's rank and world size; joins the process group when launched with several processes."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return ProcessInfo()
    import torch
    from accelerate import PartialState  # lazy: only multi-process launches need it

    # Without a GPU the processes talk over gloo; accelerate needs to be told (its ``--cpu`` flag alone starts a
    # single process unless MPI is installed, so CPU runs use ``--multi_gpu`` with ACCELERATE_USE_CPU=1).
    use_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or not torch.cuda.is_available()
    state = PartialState(cpu=use_cpu)
    return ProcessInfo(rank=state.process_index, world_size=state.num_processes)


def shard(items: Sequence[Any], info: ProcessInfo) -> list[tuple[int, Any]]:
    """This process's share of ``items`` as ``(index, item)`` pairs (round-robin: rank, rank + world, ...)."""
    return [(i, item) for i, item in enumerate(items) if i % info.world_size == info.rank]


def gather_objects(pairs: list[tuple[int, Any]], info: ProcessInfo) -> list[Any]:
    """Every process's ``(index, item)`` pairs, gathered on all processes and put back in index order."""
    if info.distributed:
        from accelerate.utils import gather_object

        pairs = list(gather_object(pairs))
    return [item for _, item in sorted(pairs, key=lambda pair: pair[0])]


def barrier(info: ProcessInfo) -> None:
    """Wait for every process (no-op in a single process)."""
    if info.distributed:
        import torch

        torch.distributed.barrier()


def average_across_processes(tensors: list[Any], info: ProcessInfo) -> None:
    """Replace each tensor by its mean over the processes, in place (no-op in a single process)."""
    if not info.distributed:
        return
    import torch

    for tensor in tensors:
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        tensor.div_(info.world_size)


def check_in_sync(params: list[Any], info: ProcessInfo) -> None:
    """Fail loudly if the processes' weights drifted apart (they must stay identical after averaged steps)."""
    if not info.distributed:
        return
    import torch

    checksum = torch.stack([p.detach().double().sum() for p in params]).sum()
    low, high = checksum.clone(), checksum.clone()
    torch.distributed.all_reduce(low, op=torch.distributed.ReduceOp.MIN)
    torch.distributed.all_reduce(high, op=torch.distributed.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise RuntimeError(f"weights differ across processes after training (checksums {float(low)} vs {float(high)})")
