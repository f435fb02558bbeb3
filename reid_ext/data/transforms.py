"""Joint image / mask / keypoint transforms on torchvision.transforms.v2.

One random draw moves the image, its mask and its keypoints together, so the aux maps stay
aligned with the pixels. The training pipeline mirrors torchreid's ``build_transforms`` (same
names, same order, same strengths) with these conventions:

- **Keypoint coordinates are pixel indices**: ``x`` is the column of the pixel whose centre
  the point sits on. v2's horizontal flip uses this convention (``x' = W - 1 - x``); v2's
  resize scales raw coordinates (``x' = x * W'/W``, pixel corners), so the resize here shifts by
  half a pixel around it: ``x' = (x + 0.5) * W'/W - 0.5`` keeps a point on the same image content.
- **A flip swaps left and right**: after flipping, keypoint ``i`` holds what was keypoint
  ``flip_index[i]`` (v2 moves the coordinates but cannot know the labels).
- **Keypoints that leave the image** (``x`` outside ``[-0.5, W - 0.5]`` or ``y`` outside
  ``[-0.5, H - 0.5]``, i.e. off every pixel) get score 0; their coordinates are kept.
- **Masks are soft** ([0, 1] floats): resized bilinearly with antialiasing (``"nearest"`` keeps
  a binary mask binary), padded with 0 (background). Photometric transforms, normalisation,
  random patch and random erasing touch the image only.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from reid_ext.skeletons import get_keypoint_format

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TRANSFORM_NAMES = ("random_flip", "random_crop", "random_patch", "color_jitter", "random_erase")


@dataclass
class JointSample:
    """An image with its optional mask and keypoints (coordinates and scores kept apart)."""

    image: tv_tensors.Image
    mask: tv_tensors.Mask | None = None
    points: tv_tensors.KeyPoints | None = None
    scores: torch.Tensor | None = None

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.image.shape[-2:])  # type: ignore[return-value]


# --- conversions ----------------------------------------------------------------------------
def _to_image(img: Any) -> tv_tensors.Image:
    if isinstance(img, torch.Tensor):
        if img.ndim != 3:
            raise ValueError(f"an image tensor must be [C, H, W], got {tuple(img.shape)}")
        return tv_tensors.Image(img)
    return F.to_image(img)  # PIL image or HxWxC numpy array


def _to_mask(mask: Any, size: tuple[int, int]) -> tv_tensors.Mask:
    """A [1, H, W] float mask in [0, 1] from HxW / 1xHxW bool, uint8 (0..255) or float."""
    tensor = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
    if tensor.ndim == 2:
        tensor = tensor[None]
    if tensor.ndim != 3 or tensor.shape[0] != 1 or tuple(tensor.shape[-2:]) != size:
        raise ValueError(
            f"mask of shape {tuple(tensor.shape)} does not fit the image: expected {size} "
            f"or (1, {size[0]}, {size[1]})"
        )
    if tensor.dtype == torch.uint8:
        tensor = tensor.float() / 255.0
    return tv_tensors.Mask(tensor.float())


def _to_keypoints(points: Any, size: tuple[int, int]) -> tuple[tv_tensors.KeyPoints, torch.Tensor]:
    tensor = torch.as_tensor(np.asarray(points) if not isinstance(points, torch.Tensor) else points)
    tensor = tensor.float()
    if tensor.ndim != 2 or tensor.shape[1] != 3:
        raise ValueError(f"keypoints must be [K, 3] (x, y, score), got {tuple(tensor.shape)}")
    return tv_tensors.KeyPoints(tensor[:, :2], canvas_size=size), tensor[:, 2].clone()


def _on_image(points: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """True for points that lie on some pixel of an image of ``size`` (pixel-index coords)."""
    height, width = size
    x, y = points[:, 0], points[:, 1]
    return (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)


# --- steps (each: JointSample -> JointSample) -----------------------------------------------
class JointResize:
    """Resize image, mask and keypoints to ``(height, width)``."""

    def __init__(self, height: int, width: int, mask_interpolation: str = "bilinear") -> None:
        if mask_interpolation not in ("bilinear", "nearest"):
            raise ValueError(
                f"mask_interpolation must be 'bilinear' or 'nearest', got '{mask_interpolation}'"
            )
        self.size = [height, width]
        self.mask_interpolation = mask_interpolation

    def __call__(self, sample: JointSample) -> JointSample:
        if list(sample.size) == self.size:
            return sample
        image = F.resize(sample.image, self.size, antialias=True)
        mask = sample.mask
        if mask is not None and self.mask_interpolation == "bilinear":
            resized = F.resize_image(
                mask.as_subclass(torch.Tensor), self.size,
                interpolation=v2.InterpolationMode.BILINEAR, antialias=True,
            )
            mask = tv_tensors.Mask(resized.clamp_(0.0, 1.0))
        elif mask is not None:
            mask = F.resize(mask, self.size)
        points = sample.points
        if points is not None:  # pixel centres to v2's corner convention and back
            shifted = tv_tensors.wrap(points.as_subclass(torch.Tensor) + 0.5, like=points)
            resized_points = F.resize(shifted, self.size)
            points = tv_tensors.wrap(
                resized_points.as_subclass(torch.Tensor) - 0.5, like=resized_points
            )
        return replace(sample, image=image, mask=mask, points=points)


class JointRandomHorizontalFlip:
    """Flip with probability ``p``; keypoint labels are permuted by ``flip_index``."""

    def __init__(self, p: float = 0.5, flip_index: Sequence[int] | None = None) -> None:
        self.p = p
        self.flip_index = None if flip_index is None else torch.as_tensor(flip_index)

    def __call__(self, sample: JointSample) -> JointSample:
        if torch.rand(()) >= self.p:
            return sample
        image = F.horizontal_flip(sample.image)
        mask = None if sample.mask is None else F.horizontal_flip(sample.mask)
        points, scores = sample.points, sample.scores
        if points is not None:
            if self.flip_index is None or len(self.flip_index) != len(points):
                raise ValueError(
                    f"flipping {len(points)} keypoints needs a keypoint format with as many "
                    f"points (pass keypoint_format to build_joint_transforms)"
                )
            flipped = F.horizontal_flip(points)
            points = tv_tensors.wrap(
                flipped.as_subclass(torch.Tensor)[self.flip_index], like=flipped
            )
            scores = scores[self.flip_index]
        return JointSample(image, mask, points, scores)


class JointRandomCrop:
    """With probability ``p``, zero-pad by ``padding`` = (left/right, top/bottom) and crop back.

    The default padding, 1/16 of each side, gives the same translation range as torchreid's
    ``random_crop`` (enlarge by 1.125 then crop), without its rescaling.
    """

    def __init__(self, height: int, width: int, padding: Sequence[int], p: float = 0.5) -> None:
        self.p = p
        self.crop = v2.RandomCrop((height, width), padding=list(padding), fill=0)

    def __call__(self, sample: JointSample) -> JointSample:
        if torch.rand(()) >= self.p:
            return sample
        inputs = tuple(x for x in (sample.image, sample.mask, sample.points) if x is not None)
        outputs = iter(self.crop(inputs))  # a tuple in, a tuple out (even of one image)
        image = next(outputs)
        mask = next(outputs) if sample.mask is not None else None
        points = next(outputs) if sample.points is not None else None
        return JointSample(image, mask, points, sample.scores)


class ImageOnly:
    """Apply an image transform to the image alone (``pil=True``: it takes a PIL image)."""

    def __init__(self, transform: Callable[[Any], Any], pil: bool = False) -> None:
        self.transform = transform
        self.pil = pil

    def __call__(self, sample: JointSample) -> JointSample:
        if self.pil:
            image = F.to_image(self.transform(F.to_pil_image(sample.image)))
        else:
            image = self.transform(sample.image)
        return replace(sample, image=tv_tensors.Image(image))

    def __repr__(self) -> str:
        return f"ImageOnly({self.transform!r})"


class JointTransform:
    """Run steps over a sample dict: ``img`` (PIL / tensor) and optional ``mask``, ``keypoints``.

    Returns a new dict with ``img`` as a tensor, ``mask`` as [1, H, W] float and ``keypoints``
    as [K, 3] float (scores of points off the image set to 0); other keys pass through.
    """

    def __init__(self, steps: Sequence[Callable[[JointSample], JointSample]]) -> None:
        self.steps = list(steps)

    def __call__(self, sample: dict) -> dict:
        image = _to_image(sample["img"])
        joint = JointSample(image)
        if sample.get("mask") is not None:
            joint.mask = _to_mask(sample["mask"], joint.size)
        if sample.get("keypoints") is not None:
            joint.points, joint.scores = _to_keypoints(sample["keypoints"], joint.size)
        for step in self.steps:
            joint = step(joint)
        out = dict(sample)
        out["img"] = joint.image.as_subclass(torch.Tensor)
        if joint.mask is not None:
            out["mask"] = joint.mask.as_subclass(torch.Tensor).float()
        if joint.points is not None:
            xy = joint.points.as_subclass(torch.Tensor).float()
            scores = torch.where(_on_image(xy, joint.size), joint.scores, 0.0)
            out["keypoints"] = torch.cat([xy, scores[:, None]], dim=1)
        return out

    def __repr__(self) -> str:
        return "JointTransform(\n  " + ",\n  ".join(map(repr, self.steps)) + "\n)"


class _HostRandomPatch:
    """torchreid's RandomPatch (a PIL transform; each DataLoader worker fills its own pool)."""

    def __init__(self) -> None:
        from reid_ext import host

        self.patch = host.module("data.transforms").RandomPatch()

    def __call__(self, img: Any) -> Any:
        return self.patch(img)


def _normalize(mean: Sequence[float], std: Sequence[float]) -> Callable[[Any], Any]:
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def build_joint_transforms(
    height: int,
    width: int,
    transforms: str | Sequence[str] | None = "random_flip",
    norm_mean: Sequence[float] | None = None,
    norm_std: Sequence[float] | None = None,
    keypoint_format: str | None = None,
    is_train: bool = True,
    *,
    crop_padding: Sequence[int] | None = None,
    mask_interpolation: str = "bilinear",
) -> JointTransform:
    """The joint counterpart of torchreid's ``build_transforms`` (one of its two outputs).

    ``transforms`` takes torchreid's names: ``random_flip``, ``random_crop``, ``random_patch``,
    ``color_jitter``, ``random_erase``; they apply only when ``is_train``. ``keypoint_format``
    (``coco17`` / ``atrw15``) is needed to flip keypoints. Random erasing fills with 0 after
    normalisation, i.e. with the mean colour.
    """
    names = [transforms] if isinstance(transforms, str) else list(transforms or [])
    names = [name.lower() for name in names]
    unknown = sorted(set(names) - set(TRANSFORM_NAMES))
    if unknown:
        raise ValueError(f"unknown transform(s) {unknown}; known: {list(TRANSFORM_NAMES)}")
    if norm_mean is None or norm_std is None:
        norm_mean, norm_std = IMAGENET_MEAN, IMAGENET_STD
    flip_index = None
    if keypoint_format:
        flip_index = get_keypoint_format(keypoint_format).flip_index

    steps: list[Callable[[JointSample], JointSample]] = [
        JointResize(height, width, mask_interpolation)
    ]
    if is_train and "random_flip" in names:
        steps.append(JointRandomHorizontalFlip(0.5, flip_index))
    if is_train and "random_crop" in names:
        padding = crop_padding or (round(width / 16), round(height / 16))
        steps.append(JointRandomCrop(height, width, padding))
    if is_train and "random_patch" in names:
        steps.append(ImageOnly(_HostRandomPatch(), pil=True))
    if is_train and "color_jitter" in names:
        steps.append(ImageOnly(v2.ColorJitter(brightness=0.2, contrast=0.15)))
    steps.append(ImageOnly(_normalize(norm_mean, norm_std)))
    if is_train and "random_erase" in names:
        steps.append(ImageOnly(v2.RandomErasing(p=0.5, scale=(0.02, 0.4), ratio=(0.3, 1 / 0.3))))
    return JointTransform(steps)
