"""DistributedDataParallel on torch's own launcher: ``torchrun --nproc_per_node N tools/train.py``.

torchreid has no DDP; this module adds it around the unchanged host loop:

* :func:`init_distributed` reads torchrun's environment (``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``) and joins the process group: ``nccl`` on CUDA, ``gloo`` on CPU. Without
  torchrun (``WORLD_SIZE`` unset or 1) it does nothing and every helper is a no-op.
* :func:`wrap_ddp` wraps the engine's training forward in ``DistributedDataParallel``
  (gradients averaged over ranks); the engine's ``_models`` stay the bare modules, so
  checkpoints keep their plain key names and evaluation runs the bare model.
* ``train.batch_size`` is per process; the ``pk`` / ``pk_camera`` samplers give each rank
  whole, distinct PK batches (other samplers would feed every rank the same images, so they
  are refused).
* Evaluation: each rank embeds every ``world_size``-th test batch (:func:`shard_loader`), the
  features are gathered to rank 0 (:func:`gather_batches`) in the original order, and only
  rank 0 ranks them.
* Only rank 0 writes checkpoints, logs and TensorBoard files (:func:`is_main`).

If a worker dies, torchrun stops the others (its default ``--max-restarts 0``) and exits
non-zero; the collective ops of the survivors time out after ``REID_EXT_DIST_TIMEOUT`` seconds
(default 300) at the latest. Resume from the last checkpoint with the same command plus
``model.resume``.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

RANK_AWARE_SAMPLERS = ("pk", "pk_camera")


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def context() -> DistContext:
    """Where this process stands (``DistContext()`` when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistContext()
    return DistContext(dist.get_rank(), dist.get_world_size(),
                       int(os.environ.get("LOCAL_RANK", 0)), dist.get_backend())


def is_main() -> bool:
    """True on rank 0 and in a non-distributed run: the process that writes files."""
    return context().rank == 0


def init_distributed() -> DistContext:
    """Join torchrun's process group (idempotent); a no-op outside torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return context()
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        timeout = datetime.timedelta(seconds=float(os.environ.get("REID_EXT_DIST_TIMEOUT", 300)))
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
    return context()


def check_distributed_config(cfg: Any) -> None:
    """Refuse settings that would silently train wrong under DDP."""
    if not context().enabled:
        return
    if cfg.sampler.train_sampler not in RANK_AWARE_SAMPLERS:
        raise ValueError(
            f"under torchrun every rank needs its own batches: set sampler.train_sampler to one "
            f"of {RANK_AWARE_SAMPLERS} (got '{cfg.sampler.train_sampler}', which would give "
            f"every rank the same images)")
    if cfg.mutual.models:
        raise ValueError("mutual learning (mutual.models) is not supported under torchrun yet")


def wrap_ddp(engine: Any) -> None:
    """Train ``engine``'s (single) model through DistributedDataParallel."""
    ctx = context()
    if not ctx.enabled:
        return
    if len(engine.get_model_names()) != 1:
        raise ValueError("DDP supports one model per engine")
    device_ids = [ctx.local_rank] if engine.device.type == "cuda" else None
    engine.model = DistributedDataParallel(engine.model, device_ids=device_ids)
    if not is_main():
        engine.writer = NullWriter()


class NullWriter:
    """A TensorBoard writer that writes nothing (ranks other than 0)."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def shard_loader(loader: DataLoader) -> DataLoader:
    """``loader`` restricted to this rank's batches (``rank, rank + world_size, ...``)."""
    ctx = context()
    if not ctx.enabled:
        return loader
    batches = list(loader.batch_sampler)[ctx.rank::ctx.world_size]
    kwargs: dict[str, Any] = {"num_workers": loader.num_workers, "pin_memory": loader.pin_memory,
                              "collate_fn": loader.collate_fn,
                              "worker_init_fn": loader.worker_init_fn}
    return type(loader)(loader.dataset, batch_sampler=batches, **kwargs)


def gather_batches(items: Sequence[Any]) -> list[Any]:
    """Rank 0: every rank's per-batch ``items`` back in loader order; other ranks: []."""
    ctx = context()
    if not ctx.enabled:
        return list(items)
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, list(items))
    if ctx.rank != 0:
        return []
    ordered = []
    for position in range(max(len(g) for g in gathered)):
        ordered += [g[position] for g in gathered if position < len(g)]
    return ordered


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. generating a dataset), then the others."""
    ctx = context()
    if ctx.enabled and ctx.rank != 0:
        dist.barrier()
    yield
    if ctx.enabled and ctx.rank == 0:
        dist.barrier()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model
