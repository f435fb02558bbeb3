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
import yaml


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


class WeightsMismatchError(ValueError):
    """A weights file that does not fit the model (another architecture, too few tensors)."""


MIN_BACKBONE_FRACTION = 0.9


def checkpoint_config_value(state: dict[str, Any], key: str) -> Any:
    """``key`` (dotted, e.g. ``model.name``) of the yaml config a reid_ext checkpoint stores;
    None when the checkpoint has no config or the config lacks the key."""
    text = state.get("config")
    if not isinstance(text, str):
        return None
    try:
        node: Any = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    for part in key.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def checkpoint_model_name(state: dict[str, Any]) -> str | None:
    """``model.name`` from the config a reid_ext checkpoint stores (None if absent)."""
    name = checkpoint_config_value(state, "model.name")
    return name if isinstance(name, str) else None


def is_bare_state_dict(state: dict[str, Any]) -> bool:
    """True for a file holding only tensors (``model.state_dict()``), not a checkpoint."""
    return "state_dict" not in state and all(isinstance(v, torch.Tensor) for v in state.values())


def check_optimizer_matches(saved: dict[str, Any] | None, saved_class: str | None,
                            optimizer: torch.optim.Optimizer, path: str | Path) -> None:
    """Refuse to load one optimizer's state into another kind (it would load silently)."""
    if saved is None:
        return
    current = type(optimizer).__name__
    if saved_class and saved_class != current:
        raise ValueError(f"cannot resume '{path}': the checkpoint was trained with "
                         f"{saved_class}, the config builds {current} (set train.optim back, "
                         f"or load the weights only with model.load_weights)")
    saved_keys = set(saved["param_groups"][0]) - {"params", "initial_lr"}
    own_keys = set(optimizer.state_dict()["param_groups"][0]) - {"params", "initial_lr"}
    if not saved_class and saved_keys != own_keys:
        raise ValueError(f"cannot resume '{path}': its optimizer state (hyper-parameters "
                         f"{sorted(saved_keys - own_keys)}) is not that of the config's "
                         f"{current} (which has {sorted(own_keys - saved_keys)})")


def apply_lr_override(saved_lr: Any, lr: float, optimizer: torch.optim.Optimizer,
                      scheduler: Any) -> str | None:
    """Rescale a resumed optimizer (and scheduler) to a ``train.lr`` other than the saved one.

    Loading an optimizer state restores the saved learning rates, which would silently
    ignore a changed ``train.lr``. Every param group's ``lr``/``initial_lr`` and the
    scheduler's ``base_lrs`` are multiplied by ``lr / saved_lr``; the notice is returned.
    """
    if not isinstance(saved_lr, (int, float)) or saved_lr <= 0 or saved_lr == lr:
        return None
    factor = lr / saved_lr
    for group in optimizer.param_groups:
        group["lr"] *= factor
        if "initial_lr" in group:
            group["initial_lr"] *= factor
    if scheduler is not None and hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [base * factor for base in scheduler.base_lrs]
    return (f"train.lr override on resume applied: {saved_lr} -> {lr} (every param group "
            f"and the scheduler's base lrs x{factor:g})")


@dataclass
class LoadReport:
    """What :func:`load_matching_weights` did: tensors loaded, head tensors and others skipped."""

    loaded: list[str]
    skipped_head: list[str]
    skipped_other: list[str]
    missing: list[str]
    backbone_total: int = 0
    checkpoint_model: str | None = None

    @property
    def backbone_loaded(self) -> int:
        return sum(not is_head_tensor(k) for k in self.loaded)

    def summary(self, path: str | Path) -> str:
        text = (f'Loaded {self.backbone_loaded}/{self.backbone_total} backbone tensors from '
                f'"{path}"')
        if self.skipped_head:
            text += (f"; skipped {len(self.skipped_head)} head tensors "
                     f"{self.skipped_head[:4]} (another number of identities; evaluation does "
                     f"not use them)")
        if self.skipped_other:
            text += f"; skipped {len(self.skipped_other)} other {self.skipped_other[:3]}"
        return text


def load_matching_weights(model: torch.nn.Module, path: str | Path, strict: bool = False,
                          head_prefixes: tuple[str, ...] = HEAD_PREFIXES,
                          verbose: bool = True, model_name: str | None = None,
                          min_backbone_fraction: float = MIN_BACKBONE_FRACTION) -> LoadReport:
    """Load the tensors of ``path`` whose names and shapes fit ``model``.

    The one weight loader of reid_ext (``model.load_weights``, ``tools/test.py``,
    ``tools/export_onnx.py``, the benchmark tool and the models' ``pretrained=<path>``):

    * a reid_ext checkpoint stores its config: when it names another model than
      ``model_name`` this fails with "checkpoint is <A>, config builds <B>";
    * head tensors (names with a component starting with one of ``head_prefixes``, e.g. a
      classifier trained on another number of identities) that do not fit are skipped with a
      one-line notice;
    * fewer than ``min_backbone_fraction`` of the model's other (backbone) tensors loaded
      fails (:class:`WeightsMismatchError`), naming counts and a few keys, not all of them;
    * ``strict=True``: every backbone tensor must load, both ways.
    """
    raw = load_checkpoint(path)
    source_name = checkpoint_model_name(raw) if "state_dict" in raw else None
    if model_name and source_name and source_name != model_name:
        raise WeightsMismatchError(
            f"'{path}' does not fit: checkpoint is {source_name}, config builds {model_name} "
            f"(set model.name {source_name}, or pass weights of a {model_name})")
    state = {key.removeprefix("module."): value
             for key, value in raw.get("state_dict", raw).items()}
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
    backbone = [k for k in own if not is_head_tensor(k, head_prefixes)]
    missing = [k for k in backbone if k not in loaded]
    report = LoadReport(sorted(loaded), skipped_head, skipped_other, missing,
                        backbone_total=len(backbone), checkpoint_model=source_name)
    fraction = report.backbone_loaded / max(len(backbone), 1)
    what = f"checkpoint is {source_name}, " if source_name else ""
    if not loaded or fraction < min_backbone_fraction:
        raise WeightsMismatchError(
            f"'{path}' does not fit {model_name or type(model).__name__}: {what}only "
            f"{report.backbone_loaded} of its {len(backbone)} backbone tensors load "
            f"({fraction:.0%} < {min_backbone_fraction:.0%}); e.g. missing {missing[:3]}, "
            f"not fitting {skipped_other[:3]}. Is it a checkpoint of another architecture?")
    if strict and (skipped_other or missing):
        raise WeightsMismatchError(
            f"weights in '{path}' do not fit {type(model).__name__}: missing "
            f"{missing[:5]}, not fitting {skipped_other[:5]}")
    model.load_state_dict(loaded, strict=False)
    if verbose:
        print(report.summary(path))
    return report
