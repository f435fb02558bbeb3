"""``synthetic_person_target``: a second synthetic pedestrian domain for adaptation experiments.

Same generator as ``synthetic_person`` (so a different ``seed`` gives disjoint identities and
different cameras), plus a per-camera *style* that the source domain never sees: each camera
``c`` multiplies the colour channels by gains drawn in ``[1 - s, 1 + s]`` and applies a tone
curve ``x ** gamma`` with ``gamma`` in ``[1 - s, 1 + s]``, ``s = camera_style``. It widens the
domain gap and makes features cluster by camera, which camera-guided normalisation has to undo.
Options (``data.options.synthetic_person_target``): every ``synthetic_person`` option plus
``camera_style`` (float in [0, 0.9], default 0.3). The styled images are written once under
``<root>/synthetic_person_target/<signature>/``, built in a temporary folder and renamed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from reid_ext import host
from reid_ext.data.options import get_dataset_options
from reid_ext.data.synthetic import SPLIT_DIRS, generate_synthetic, read_split, resolve_options
from reid_ext.registry import DATASETS

TARGET_DATASET = "synthetic_person_target"
STYLE_VERSION = "1"
DEFAULT_STYLE = 0.3


def camera_style_params(seed: int, cam: int, strength: float) -> tuple[np.ndarray, float]:
    """Channel gains [3] and gamma of camera ``cam`` (0-based) for a style ``strength``."""
    rng = np.random.default_rng([seed, 7919, cam])
    gains = 1.0 + rng.uniform(-strength, strength, 3)
    gamma = 1.0 + rng.uniform(-strength, strength)
    return gains.astype(np.float32), float(gamma)


def apply_camera_style(image: np.ndarray, gains: np.ndarray, gamma: float) -> np.ndarray:
    """``uint8 [H, W, 3]`` -> the same picture under the camera's gains and tone curve."""
    x = (image.astype(np.float32) / 255.0) ** gamma * gains
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _split_options(options: dict[str, Any]) -> tuple[dict[str, int], float]:
    options = dict(options)
    style = options.pop("camera_style", DEFAULT_STYLE)
    if isinstance(style, bool) or not isinstance(style, (int, float)) or not 0 <= style <= 0.9:
        raise ValueError(f"option 'camera_style' of dataset '{TARGET_DATASET}' must be a number "
                         f"in [0, 0.9], got {style!r}")
    return resolve_options("person", options), float(style)


def generate_target_domain(root: str | os.PathLike[str], **options: Any) -> Path:
    """The styled copy of the generated set for ``options``; made on first use."""
    generator_options, style = _split_options(options)
    base = generate_synthetic("person", root, progress=False, **generator_options)
    payload = json.dumps({"base": base.name, "style": style, "version": STYLE_VERSION,
                          **generator_options}, sort_keys=True)
    final = (Path(root).expanduser().resolve() / TARGET_DATASET
             / hashlib.sha1(payload.encode()).hexdigest()[:10])
    if (final / "style.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        for split, folder in SPLIT_DIRS.items():
            (tmp / folder).mkdir()
            for path, _, cam in read_split(base, split):
                gains, gamma = camera_style_params(generator_options["seed"], cam, style)
                image = np.asarray(Image.open(path).convert("RGB"))
                Image.fromarray(apply_camera_style(image, gains, gamma)).save(
                    tmp / folder / Path(path).name, format="PNG")
        (tmp / "style.json").write_text(payload + "\n")
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "style.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


@DATASETS.register(TARGET_DATASET)
class SyntheticPersonTarget(host.get_host().ImageDataset):
    """A synthetic pedestrian domain with its own identities, cameras and camera style."""

    def __init__(self, root: str = "", **kwargs: Any) -> None:
        self.root = os.path.abspath(os.path.expanduser(root))
        self.dataset_dir = str(generate_target_domain(self.root,
                                                      **get_dataset_options(TARGET_DATASET)))
        train = read_split(self.dataset_dir, "train", relabel=True)
        query = read_split(self.dataset_dir, "query")
        gallery = read_split(self.dataset_dir, "gallery")
        super().__init__(train, query, gallery, **kwargs)
