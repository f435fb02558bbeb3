"""Atomic checkpoints, safe loading (``weights_only=True``) and RNG state for exact resume."""
from __future__ import annotations

import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


def save_atomic(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` via a temporary file and ``os.replace``.

    A crash mid-write leaves the previous file at ``path`` intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes it owner-only
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _numpy_safe_globals() -> list[Any]:
    """numpy objects found in torchreid's own checkpoints (``rank1`` is a numpy float)."""
    scalar = getattr(np, "_core", np.core).multiarray.scalar
    dtypes = [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32")]
    return [scalar, np.dtype, *dtypes]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``.

    torch >= 2.6 defaults to ``weights_only=True`` and torchreid's own loader then fails on
    the numpy scalar its checkpoints hold; those numpy types are allow-listed here, so both
    reid_ext and torchreid checkpoints load without unpickling arbitrary code.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    with torch.serialization.safe_globals(_numpy_safe_globals()):
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:
            raise RuntimeError(
                f"cannot load checkpoint '{path}' safely (weights_only=True): {err}"
            ) from err
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint '{path}' holds a {type(state).__name__}, expected a dict")
    return state


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states in a ``weights_only``-loadable form."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npy = state["numpy"]
    np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file: a reid_ext/torchreid checkpoint (its ``state_dict``) or a
    bare state dict, loaded with ``weights_only=True``, DataParallel ``module.`` prefixes removed.
    """
    state = load_checkpoint(path)
    state = state.get("state_dict", state)
    return {key.removeprefix("module."): value for key, value in state.items()}


HEAD_PREFIXES = ("classifier",)


def is_head_tensor(key: str, head_prefixes: tuple[str, ...] = HEAD_PREFIXES) -> bool:
    """True for a classifier tensor (any dotted component starting with a head prefix)."""
    return any(part.startswith(head_prefixes) for part in key.split("."))


@dataclass
class LoadReport:
    """What :func:`load_matching_weights` did: tensors loaded, head tensors and others skipped."""

    loaded: list[str]
    skipped_head: list[str]
    skipped_other: list[str]
    missing: list[str]

    def summary(self, path: str | Path) -> str:
        return (f'Loaded {len(self.loaded)} weights from "{path}"; skipped '
                f"{len(self.skipped_head)} head and {len(self.skipped_other)} other tensors "
                f"{(self.skipped_head + self.skipped_other)[:5]}")


def load_matching_weights(model: torch.nn.Module, path: str | Path, strict: bool = False,
                          head_prefixes: tuple[str, ...] = HEAD_PREFIXES,
                          verbose: bool = True) -> LoadReport:
    """Load the tensors of ``path`` whose names and shapes fit ``model``.

    The one weight loader of reid_ext (``model.load_weights``, ``tools/test.py``, the
    benchmark tool and the models' ``pretrained=<path>``). Head tensors (names starting with
    one of ``head_prefixes``, e.g. a classifier trained on another number of identities) are
    skipped when they do not fit. ``strict=True``: every other tensor must load, both ways;
    otherwise entries that do not fit are skipped and only a file where nothing fits fails.
    """
    state = load_state_dict_file(path)
    own = model.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    skipped_head, skipped_other = [], []
    for key, value in state.items():
        if key in own and own[key].shape == value.shape:
            loaded[key] = value
        elif is_head_tensor(key, head_prefixes):
            skipped_head.append(key)
        else:
            skipped_other.append(key)
    missing = [k for k in own if k not in loaded and not is_head_tensor(k, head_prefixes)]
    if not loaded:
        raise ValueError(f"no weight in '{path}' fits {type(model).__name__} (first keys: "
                         f"{list(state)[:5]}); is it a checkpoint of another architecture?")
    if strict and (skipped_other or missing):
        raise ValueError(f"weights in '{path}' do not fit {type(model).__name__}: missing "
                         f"{missing[:5]}, not fitting {skipped_other[:5]}")
    model.load_state_dict(loaded, strict=False)
    report = LoadReport(sorted(loaded), skipped_head, skipped_other, missing)
    if verbose:
        print(report.summary(path))
    return report
