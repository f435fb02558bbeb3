"""``detectron2`` masks: Mask R-CNN through detectron2's own config system, person class only.

``config``: a model-zoo config name (``COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml``,
found inside the installed detectron2 package by path, so ``pkg_resources`` is not needed) or a
config file. ``weights``: a checkpoint path or URL (detectron2's checkpointer reads both;
``detectron2://...`` model-zoo URLs too). Crops are resized as ``DefaultPredictor`` does
(``INPUT.MIN_SIZE_TEST``/``MAX_SIZE_TEST``) and sent to the model as one batch. detectron2
pastes masks already binarised at 0.5, so the masks are binary. The person (COCO class 0 in
detectron2's contiguous ids) is chosen by :mod:`reid_ext.preprocess.instances`.

detectron2 is not on PyPI; install it from source as its INSTALL.md says
(``pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git'``
with torch already installed), or from a wheel built so.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from reid_ext.preprocess.base import (
    BackendMissingError,
    MaskSource,
    SourceError,
    WeightsError,
    sha256_of,
)
from reid_ext.preprocess.instances import choose_mask
from reid_ext.registry import MASK_SOURCES

DEFAULT_CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
PERSON = 0  # detectron2's contiguous COCO id of "person"


def _detectron2() -> Any:
    try:
        import detectron2
    except ImportError as err:
        raise BackendMissingError(
            "the detectron2 mask source needs detectron2, which is not on PyPI: build it from "
            "source (pip install --no-build-isolation "
            "'git+https://github.com/facebookresearch/detectron2.git'), see README "
            f"({err})") from err
    return detectron2


def config_path(config: str) -> Path:
    """A config file path, or the packaged model-zoo file of that name."""
    given = Path(config).expanduser()
    if given.is_file():
        return given
    package = Path(_detectron2().__file__).parent
    for candidate in (package / "model_zoo" / "configs" / config, package / "configs" / config):
        if candidate.is_file():
            return candidate
    raise SourceError(f"detectron2 config '{config}' is neither a file nor a model-zoo config "
                      f"under {package / 'model_zoo' / 'configs'}")


@MASK_SOURCES.register("detectron2")
class Detectron2MaskSource(MaskSource):
    """Mask R-CNN from detectron2 (config + weights), batched, person only."""

    name = "detectron2"

    def __init__(self, config: str = DEFAULT_CONFIG, weights: str | None = None,
                 random_weights: bool = False, threshold: float = 0.5, binary: bool = False,
                 score_threshold: float = 0.5, device: str = "cpu",
                 min_size: int | None = None) -> None:
        super().__init__(threshold=threshold, binary=binary)
        detectron2 = _detectron2()
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.config import get_cfg
        from detectron2.data import transforms as T
        from detectron2.modeling import build_model

        if weights and random_weights:
            raise SourceError("pass either weights or random_weights=True, not both")
        if not weights and not random_weights:
            raise WeightsError(
                "source 'detectron2' needs weights: pass --weights PATH or URL (e.g. the model "
                "zoo's detectron2://COCO-InstanceSegmentation/... .pkl); --random-weights only "
                "for tests")
        self.config = str(config_path(config))
        cfg = get_cfg()
        cfg.merge_from_file(self.config)
        cfg.MODEL.DEVICE = device
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = float(score_threshold)
        if min_size is not None:
            cfg.INPUT.MIN_SIZE_TEST = int(min_size)
        cfg.MODEL.WEIGHTS = "" if random_weights else str(weights)
        self.score_threshold = float(score_threshold)
        self.min_size = int(cfg.INPUT.MIN_SIZE_TEST)
        self.model = build_model(cfg).eval()
        if random_weights:
            self.set_weights("random", random_weights=True)
        else:
            is_file = os.path.isfile(os.path.expanduser(str(weights)))
            try:
                DetectionCheckpointer(self.model).load(str(weights))
            except Exception as err:  # missing file, download failure, wrong format
                raise WeightsError(f"cannot load detectron2 weights '{weights}': {err}") from err
            self.set_weights(str(weights), path=os.path.expanduser(str(weights))
                             if is_file else None)
        self.resize = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
        self.input_format = cfg.INPUT.FORMAT
        self.detectron2_version = detectron2.__version__

    def predict(self, images: list[np.ndarray], relpaths: list[str] | None) -> list[np.ndarray]:
        import torch

        inputs = []
        for image in images:
            pixels = image[:, :, ::-1] if self.input_format == "BGR" else image
            resized = self.resize.get_transform(pixels).apply_image(pixels)
            tensor = torch.as_tensor(np.ascontiguousarray(resized).astype("float32")
                                     .transpose(2, 0, 1))
            inputs.append({"image": tensor, "height": image.shape[0], "width": image.shape[1]})
        with torch.inference_mode():
            outputs = self.model(inputs)
        masks = []
        for image, out in zip(images, outputs):
            found = out["instances"].to("cpu")
            keep = (found.pred_classes == PERSON) & (found.scores >= self.score_threshold)
            instances = found.pred_masks[keep].numpy().astype(np.float32)
            best = choose_mask(instances, self.threshold)
            masks.append(np.zeros(image.shape[:2], np.float32) if best is None
                         else instances[best])
        return masks

    def library_version(self) -> str:
        return f"detectron2 {self.detectron2_version}"

    def options(self) -> dict[str, Any]:
        return {**super().options(), "config": self.config,
                "config_sha256": sha256_of(self.config),
                "score_threshold": self.score_threshold, "min_size": self.min_size}
