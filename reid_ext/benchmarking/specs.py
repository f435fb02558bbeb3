"""What to benchmark: model specs (``name`` or ``name@HxW``) and the per-model job.

A :class:`Job` is everything one child process needs to train (or load) and measure one model.
It is a plain picklable dataclass so that ``multiprocessing`` can hand it to a spawned child.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SIZE_PATTERN = re.compile(r"^(\d+)x(\d+)$")
LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]")


@dataclass(frozen=True)
class ModelSpec:
    """A model name with an optional input size of its own (``height, width``)."""

    name: str
    size: tuple[int, int] | None = None

    @property
    def label(self) -> str:
        """The spec as written: ``resnet50`` or ``bignet@128x48``."""
        return self.name if self.size is None else f"{self.name}@{self.size[0]}x{self.size[1]}"

    @property
    def dir_name(self) -> str:
        """A file-system-safe folder name for this model's outputs."""
        return LABEL_UNSAFE.sub("-", self.label)


def parse_model_spec(text: str) -> ModelSpec:
    """``"resnet50"`` -> ModelSpec('resnet50'); ``"bignet@128x48"`` -> size (128, 48)."""
    text = text.strip()
    name, sep, size_text = text.partition("@")
    if not name:
        raise ValueError(f"model spec '{text}' has no model name; expected NAME or NAME@HxW")
    if not sep:
        return ModelSpec(name)
    match = SIZE_PATTERN.match(size_text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise ValueError(
            f"model spec '{text}': input size '{size_text}' is not HEIGHTxWIDTH with positive "
            f"integers, e.g. bignet@128x48"
        )
    return ModelSpec(name, (int(match[1]), int(match[2])))


def parse_model_list(text: str) -> list[ModelSpec]:
    """Comma-separated specs; duplicates (same label) are an error, not silently merged."""
    specs = [parse_model_spec(item) for item in text.split(",") if item.strip()]
    if not specs:
        raise ValueError(f"--models got no model names: '{text}'")
    labels = [s.label for s in specs]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ValueError(f"--models lists {dupes} more than once")
    return specs


@dataclass
class Job:
    """One model's benchmark: its config, where to write, how to measure.

    ``opts`` are the ``KEY VALUE`` overrides applied on top of ``config_file`` (the benchmark's
    defaults, the user's overrides, then this model's own keys), so the child rebuilds exactly
    the config the parent validated.
    """

    spec: ModelSpec
    dataset: str
    out_dir: Path
    config_file: str | None = None
    opts: list[str] = field(default_factory=list)
    weights: Path | None = None
    timing_warmup: int = 3
    timing_repeats: int = 10
    timing_batch_sizes: tuple[int, ...] = (32, 1)
    cpu_threads: int = 0  # 0: torch's default

    @property
    def result_path(self) -> Path:
        return self.out_dir / "result.json"

    @property
    def status_path(self) -> Path:
        """Where a skipped or failed run records why (never read by ``--resume``)."""
        return self.out_dir / "status.json"

    @property
    def log_path(self) -> Path:
        return self.out_dir / "log.txt"
