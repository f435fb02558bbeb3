"""Build a torchvision detection model with weights from a file, a torchvision weights name,
or (tests only) random initialisation. Shared by the torchvision mask and keypoint sources."""
from __future__ import annotations

from typing import Any

from reid_ext.preprocess.base import AuxSource, SourceError, WeightsError, weights_file


def build_detector(
    source: AuxSource,
    model: str,
    allowed: tuple[str, ...],
    weights: str | None,
    random_weights: bool,
    device: str,
    **model_kwargs: Any,
) -> Any:
    """``torchvision.models.detection.<model>`` in eval mode on ``device``.

    ``weights``: a path to a state-dict file (``torch.save(model.state_dict())``), or a
    torchvision weights name (``"MaskRCNN_ResNet50_FPN_Weights.COCO_V1"``, or just
    ``"COCO_V1"``/``"DEFAULT"`` for the model's own enum), which torchvision loads from its
    cache or downloads. Records the weights on ``source`` (path + SHA-256 for a file).
    """
    import torch
    import torchvision
    from torchvision.models import detection

    if model not in allowed:
        raise SourceError(f"source '{source.name}' model must be one of {allowed}, got '{model}'")
    if weights and random_weights:
        raise SourceError("pass either weights or random_weights=True, not both")
    if not weights and not random_weights:
        raise WeightsError(
            f"source '{source.name}' ({model}) needs weights: pass --weights PATH (a state-dict "
            f"file) or --weights NAME (a torchvision weights enum, e.g. "
            f"{_enum_of(model).__name__}.DEFAULT, loaded from the torch hub cache); "
            f"--random-weights only for tests"
        )
    builder = getattr(detection, model)
    net = None
    if random_weights:
        net = builder(weights=None, weights_backbone=None, **model_kwargs)
        source.set_weights("random", random_weights=True)
    elif _looks_like_path(weights):
        file = weights_file(weights)
        net = builder(weights=None, weights_backbone=None, **model_kwargs)
        state = torch.load(file, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise WeightsError(f"weights file '{file}' does not fit {model}: {err}") from err
        source.set_weights(str(file.resolve()), path=file)
    else:
        enum = _resolve_enum(model, weights)
        try:
            net = builder(weights=enum, **model_kwargs)
        except Exception as err:  # download failures come as many types (URLError, OSError)
            raise WeightsError(
                f"cannot load torchvision weights {enum} (from {enum.url}): {err}. Put the file "
                f"in the torch hub cache or pass --weights PATH"
            ) from err
        source.set_weights(f"torchvision:{enum}")
    source.torchvision_version = torchvision.__version__
    return net.eval().to(device)


def _looks_like_path(weights: str) -> bool:
    return any(mark in weights for mark in ("/", "\\")) or weights.endswith((".pth", ".pt"))


def _enum_of(model: str) -> Any:
    import torchvision

    return torchvision.models.get_model_weights(model)


def _resolve_enum(model: str, name: str) -> Any:
    """A weights enum member of ``model`` from its full or short name."""
    enum = _enum_of(model)
    short = name.split(".", 1)[1] if name.startswith(enum.__name__ + ".") else name
    try:
        return enum[short]
    except KeyError:
        known = [f"{enum.__name__}.{member}" for member in enum.__members__]
        raise WeightsError(
            f"'{name}' is neither a weights file nor a weights name of {model}; known names: "
            f"{known}"
        ) from None


COCO_PERSON = 1  # torchvision's COCO detection label of a person


def detect_people(net: Any, images: list[Any], device: str, score_threshold: float
                  ) -> list[dict[str, Any]]:
    """Run a torchvision detector on HxWx3 uint8 crops; per crop, its outputs restricted to
    person detections scoring at least ``score_threshold`` (tensors still on ``device``)."""
    import torch

    tensors = [torch.tensor(image).permute(2, 0, 1).float().div(255).to(device)
               for image in images]
    with torch.inference_mode():
        outputs = net(tensors)
    kept = []
    for out in outputs:
        keep = (out["labels"] == COCO_PERSON) & (out["scores"] >= score_threshold)
        kept.append({key: value[keep] for key, value in out.items()})
    return kept


class TorchvisionDetection:
    """What the torchvision R-CNN sources share: building the detector, running it on crops
    (person detections only), and recording its settings in the cache manifest."""

    torchvision_version: str  # set by build_detector

    def init_detector(self, model: str, allowed: tuple[str, ...], weights: str | None,
                      random_weights: bool, score_threshold: float, min_size: int,
                      detections_per_img: int, device: str) -> None:
        """Keep the settings and build the detector (``min_size``: the short side it resizes
        to; ``detections_per_img``: the instances its heads process)."""
        self.model_name = model
        self.score_threshold = float(score_threshold)
        self.min_size = int(min_size)
        self.detections_per_img = int(detections_per_img)
        self.device = device
        self.net = build_detector(self, model, allowed, weights, random_weights, device,
                                  min_size=self.min_size,
                                  box_detections_per_img=self.detections_per_img)

    def detect(self, images: list[Any]) -> list[dict[str, Any]]:
        """Per crop, the detector's outputs for people scoring >= ``score_threshold``."""
        return detect_people(self.net, images, self.device, self.score_threshold)

    def library_version(self) -> str:
        return f"torchvision {self.torchvision_version}"

    def detector_options(self) -> dict[str, Any]:
        return {"model": self.model_name, "score_threshold": self.score_threshold,
                "min_size": self.min_size, "detections_per_img": self.detections_per_img}
