"""Identity-balanced training samplers, usable by name in torchreid's ImageDataManager.

``pk``: every batch holds ``P = batch_size // num_instances`` identities with ``K =
num_instances`` images each. ``pk_camera``: the same, with each identity's K images spread
over as many cameras as it has.

How an epoch is built (deterministic given ``seed`` and the epoch number):

1. Each identity's images are shuffled and cut into chunks of K; the last ``n % K`` images
   are left out this epoch (a different random subset each epoch), as torchreid's
   ``RandomIdentitySampler`` does. An identity with fewer than K images gets one chunk: all
   its images plus ``K - n`` drawn again *with replacement*. So each identity has
   ``max(1, n // K)`` chunks and appears in every epoch.
2. Batches are filled with P chunks of P distinct identities, drawn without replacement with
   probability proportional to each identity's remaining chunks, until every chunk is used.
   When fewer than P identities still have chunks (the tail of the epoch), the batch is
   topped up with fresh chunks of other identities.
3. The number of batches is ``ceil(total chunks / P)`` rounded up to a multiple of
   ``world_size``; rank ``r`` takes batches ``r, r + world_size, ...``, so every rank gets
   whole PK batches and the same number of them. ``len()`` is exact.

Indices are yielded flat, batch after batch, for a DataLoader with ``batch_size = P * K``
(torchreid uses ``drop_last=True``); ``batch_size`` must therefore be a multiple of K.

The epoch number is set by :meth:`PKSampler.set_epoch` (as with DistributedSampler) or
otherwise counts the ``__iter__`` calls; ``seed`` defaults to ``torch.initial_seed()`` at
construction, so torchreid's ``train.seed`` governs the order.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from reid_ext.registry import SAMPLERS


class PKSampler(Sampler[int]):
    """P identities x K instances per batch; see the module docstring for the epoch layout."""

    def __init__(self, data_source: Sequence[Sequence[Any]], batch_size: int,
                 num_instances: int, *, spread_cameras: bool = False, seed: int | None = None,
                 rank: int | None = None, world_size: int | None = None) -> None:
        if num_instances < 1:
            raise ValueError(f"PK sampler: num_instances must be >= 1, got {num_instances}")
        if batch_size < num_instances or batch_size % num_instances:
            raise ValueError(
                f"PK sampler: batch_size={batch_size} must be a positive multiple of "
                f"num_instances={num_instances} (each batch is P identities x K instances)"
            )
        self.num_instances = num_instances
        self.num_pids_per_batch = batch_size // num_instances
        self.spread_cameras = spread_cameras
        self.seed = int(torch.initial_seed() if seed is None else seed)
        self.rank, self.world_size = _distributed_place(rank, world_size)
        self.epoch = 0

        pids = np.asarray([int(item[1]) for item in data_source], dtype=np.int64)
        self.camids = np.asarray([int(item[2]) for item in data_source], dtype=np.int64)
        self.pids = np.unique(pids)
        if len(self.pids) < self.num_pids_per_batch:
            raise ValueError(
                f"PK sampler: the training set has {len(self.pids)} identities, fewer than the "
                f"P={self.num_pids_per_batch} per batch (batch_size={batch_size} // "
                f"num_instances={num_instances})"
            )
        self.pid_indices = [np.flatnonzero(pids == pid) for pid in self.pids]
        chunks = sum(max(1, len(idx) // num_instances) for idx in self.pid_indices)
        batches = -(-chunks // self.num_pids_per_batch)
        self.num_batches = -(-batches // self.world_size) * self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Fix the epoch whose order the next ``__iter__`` yields (then it counts on)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches // self.world_size * self.num_pids_per_batch * self.num_instances

    def __iter__(self) -> Iterator[int]:
        batches = self.epoch_batches(self.epoch)
        self.epoch += 1
        mine = batches[self.rank::self.world_size]
        return iter(np.concatenate(mine).tolist() if mine else [])

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """All ranks' batches for ``epoch``, each a ``[P * K]`` index array."""
        rng = np.random.default_rng([self.seed, epoch])
        queues = [self._chunks(p, rng) for p in range(len(self.pids))]
        remaining = np.asarray([len(q) for q in queues], dtype=np.float64)
        batches = []
        for _ in range(self.num_batches):
            chosen = self._choose_identities(remaining, rng)
            batch = []
            for p in chosen:
                if remaining[p] > 0:
                    remaining[p] -= 1
                    batch.append(queues[p].pop())
                else:  # tail padding: a fresh chunk of an identity already used up
                    batch.append(self._chunks(p, rng)[0])
            batches.append(np.concatenate(batch))
        return batches

    def _choose_identities(self, remaining: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """P distinct identity positions, weighted by remaining chunks, topped up if needed."""
        P = self.num_pids_per_batch
        active = np.flatnonzero(remaining > 0)
        if len(active) >= P:
            return rng.choice(len(remaining), size=P, replace=False,
                              p=remaining / remaining.sum())
        spent = np.flatnonzero(remaining == 0)
        return np.concatenate([active, rng.choice(spent, size=P - len(active), replace=False)])

    def _chunks(self, position: int, rng: np.random.Generator) -> list[np.ndarray]:
        """One epoch's K-image chunks of the identity at ``position`` (see module docstring)."""
        K = self.num_instances
        indices = rng.permutation(self.pid_indices[position])
        if self.spread_cameras:
            indices = _interleave_cameras(indices, self.camids[indices], rng)
        if len(indices) < K:
            extra = rng.choice(self.pid_indices[position], size=K - len(indices), replace=True)
            return [np.concatenate([indices, extra])]
        usable = len(indices) // K * K
        return list(indices[:usable].reshape(-1, K))


def _interleave_cameras(indices: np.ndarray, camids: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
    """Reorder ``indices`` round-robin over their cameras, in one random camera order.

    Any K consecutive entries then come from K distinct cameras while at least K cameras
    still have images left; the cameras with the most images fill the tail.
    """
    cameras = rng.permutation(np.unique(camids))
    groups = [indices[camids == cam] for cam in cameras]
    longest = max(len(g) for g in groups)
    return np.asarray([g[r] for r in range(longest) for g in groups if r < len(g)])


def _distributed_place(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """``(rank, world_size)``: given ones, else torch.distributed's when running, else (0, 1)."""
    running = torch.distributed.is_available() and torch.distributed.is_initialized()
    if world_size is None:
        world_size = torch.distributed.get_world_size() if running else 1
    if rank is None:
        rank = torch.distributed.get_rank() if running else 0
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"PK sampler: need 0 <= rank < world_size, got rank={rank}, "
                         f"world_size={world_size}")
    return int(rank), int(world_size)


def _reject_unknown(sampler: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise ValueError(f"sampler '{sampler}' got unknown options {sorted(kwargs)}; it takes "
                         "seed, rank, world_size and spread_cameras")


@SAMPLERS.register("pk")
def pk(data_source: Sequence[Sequence[Any]], batch_size: int = 32, num_instances: int = 4,
       num_cams: int = 1, num_datasets: int = 1, *, spread_cameras: bool = False,
       seed: int | None = None, rank: int | None = None, world_size: int | None = None,
       **kwargs: Any) -> PKSampler:
    """P x K identity sampler; ``num_cams``/``num_datasets`` (host arguments) are unused."""
    _reject_unknown("pk", kwargs)
    return PKSampler(data_source, batch_size, num_instances, spread_cameras=spread_cameras,
                     seed=seed, rank=rank, world_size=world_size)


@SAMPLERS.register("pk_camera")
def pk_camera(data_source: Sequence[Sequence[Any]], batch_size: int = 32,
              num_instances: int = 4, num_cams: int = 1, num_datasets: int = 1, *,
              seed: int | None = None, rank: int | None = None, world_size: int | None = None,
              **kwargs: Any) -> PKSampler:
    """P x K sampler whose K instances of an identity come from distinct cameras if it can."""
    _reject_unknown("pk_camera", kwargs)
    return PKSampler(data_source, batch_size, num_instances, spread_cameras=True, seed=seed,
                     rank=rank, world_size=world_size)
