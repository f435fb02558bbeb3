"""Model cost and speed: parameters, FLOPs, timed forwards, training throughput, peak memory.

Definitions (the benchmark table uses exactly these):

- parameters: every parameter of the model, the ID classifier included (as torchreid's
  ``compute_model_complexity`` counts them).
- FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` on one eval-mode forward of one image.
  It counts a multiply-add as **2 FLOPs** (GFLOPs = 2 x GMACs) and covers convolutions and
  matrix products only (batch norm, activations and pooling are not counted).
- inference img/s: ``batch / median(seconds per forward)`` over repeated eval-mode forwards
  after warm-up forwards; CUDA is synchronised around each forward.
- training img/s: images / seconds spent in the engine's ``forward_backward`` (forward, losses,
  backward, optimizer step) over all training iterations; data loading is excluded.
- peak memory: CUDA ``max_memory_allocated``; on CPU the process's peak resident set size
  (``ru_maxrss``), which includes the Python/torch baseline but not data-loader workers.
"""
from __future__ import annotations

import resource
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

MIB = 1024 * 1024


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(forward: Callable[[], Any]) -> int:
    """FLOPs of one call of ``forward`` (multiply-add = 2 FLOPs; conv/matmul only)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        forward()
    return int(counter.get_total_flops())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], Any], warmup: int, repeats: int, device: torch.device,
                   clock: Callable[[], float] = time.perf_counter) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    if repeats < 1:
        raise ValueError(f"timing repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        synchronize(device)
        times.append(clock() - start)
    return statistics.median(times)


def images_per_second(batch_size: int, seconds: float) -> float:
    return batch_size / seconds if seconds > 0 else float("nan")


def tile_batch(batch: Mapping[str, torch.Tensor], size: int) -> dict[str, torch.Tensor]:
    """Repeat the rows of every tensor in ``batch`` until there are exactly ``size`` of them."""
    tiled = {}
    for key, value in batch.items():
        reps = -(-size // value.shape[0])
        tiled[key] = value.repeat(reps, *([1] * (value.dim() - 1)))[:size]
    return tiled


@dataclass
class TrainingMeter:
    """Images and seconds spent in training steps (see module docstring)."""

    images: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return images_per_second(self.images, self.seconds) if self.images else float("nan")


def attach_training_meter(engine: Any, device: torch.device) -> TrainingMeter:
    """Wrap ``engine.forward_backward`` (on the instance) so every step is timed and counted."""
    meter = TrainingMeter()
    inner = engine.forward_backward

    def timed_forward_backward(data: Mapping[str, Any]) -> Any:
        synchronize(device)
        start = time.perf_counter()
        summary = inner(data)
        synchronize(device)
        meter.seconds += time.perf_counter() - start
        meter.images += int(data["img"].shape[0])
        return summary

    engine.forward_backward = timed_forward_backward
    return meter


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> float:
    """Peak CUDA allocation on ``device``, or this process's peak RSS on CPU, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / MIB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / MIB if sys.platform == "darwin" else peak / 1024
