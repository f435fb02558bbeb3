"""Atomic checkpoints, safe loading (``weights_only=True``) and RNG state for exact resume."""
from __future__ import annotations

import os
import random
import tempfile
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


def load_matching_weights(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Load the entries of a checkpoint whose names and shapes fit ``model``.

    The replacement for torchreid's ``load_pretrained_weights`` (which fails under
    torch >= 2.6): loads with ``weights_only=True``, strips a DataParallel ``module.`` prefix,
    and skips entries that do not fit (typically the classifier of another dataset). Returns
    the skipped names; raises if nothing fits, which means the wrong file.
    """
    state = load_checkpoint(path)
    state = state.get("state_dict", state)
    own = model.state_dict()
    fitting, skipped = {}, []
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if key in own and own[key].shape == value.shape:
            fitting[key] = value
        else:
            skipped.append(key)
    if not fitting:
        raise ValueError(f"no weight in '{path}' fits the model (first keys: "
                         f"{list(state)[:5]}); is it a checkpoint of another architecture?")
    model.load_state_dict(fitting, strict=False)
    print(f'Loaded {len(fitting)} weights from "{path}"; skipped {len(skipped)}: {skipped[:5]}')
    return skipped
