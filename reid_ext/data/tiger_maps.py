"""Tiger keypoints (ATRW-15) -> box-shaped semantic class maps for pose-guided segmentation.

Four *structures* (I-IV, from the ATRW plain Re-ID team report) group seven drawn segments
into classes; class 0 is always the background:

- ``I``:   trunk and six leg parts (left/right front leg, left/right thigh, left/right shank)
- ``II``:  trunk, legs (all legs one class)
- ``III``: trunk, front legs, hind legs
- ``IV``:  trunk, front legs, hind thighs, hind shanks

Segments are rotated boxes around a keypoint axis:

- the **trunk** runs from the mean of the visible shoulders to the mean of the visible hips
  (a missing end is replaced by ``center``, a missing hip end first by ``tail``), lengthened by
  ``trunk_extend`` of its length at both ends, ``trunk_width`` of its length wide;
- a **leg** segment (shoulder->front paw, hip->knee, knee->back paw) is
  ``leg_width`` of its length wide (at least ``min_width`` pixels).

A segment with an invisible endpoint (score <= ``threshold``; ATRW writes zeros for
invisible points) is not drawn. Legs are drawn over the trunk; where leg boxes overlap, the
pixel goes to the leg whose axis is nearest relative to its half-width, a rule that commutes
with a horizontal flip (so the map of flipped keypoints is the flipped map, with left and
right classes exchanged in structure I). An image without any visible keypoint gets a map
of :data:`IGNORE_INDEX` (no evidence, so no supervision) instead of an all-background map.

Coordinates are pixel indices (a point at ``x`` sits on the centre of column ``x``), the
convention of :mod:`reid_ext.data.transforms`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reid_ext.skeletons import ATRW15

IGNORE_INDEX = -1
BACKGROUND = "background"
TRUNK = "trunk"

# segment name -> (start keypoint, end keypoint); the trunk is built separately
LEG_SEGMENTS: dict[str, tuple[str, str]] = {
    "left_front_leg": ("left_shoulder", "left_front_paw"),
    "right_front_leg": ("right_shoulder", "right_front_paw"),
    "left_thigh": ("left_hip", "left_knee"),
    "left_shank": ("left_knee", "left_back_paw"),
    "right_thigh": ("right_hip", "right_knee"),
    "right_shank": ("right_knee", "right_back_paw"),
}
SEGMENTS = (TRUNK, *LEG_SEGMENTS)


@dataclass(frozen=True)
class TigerStructure:
    """Which class each drawn segment belongs to; ``classes[0]`` is the background."""

    name: str
    classes: tuple[str, ...]
    segment_class: dict[str, str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def pathways(self) -> tuple[str, ...]:
        """Re-ID pathways: the global one (the whole image) and one per foreground class."""
        return ("global", *self.classes[1:])

    @property
    def leg_classes(self) -> tuple[int, ...]:
        """Indices of the leg classes (every class but background and trunk)."""
        return tuple(i for i, c in enumerate(self.classes) if c not in (BACKGROUND, TRUNK))

    def segment_index(self) -> torch.Tensor:
        """``[len(SEGMENTS)]`` long: the class index of each segment."""
        return torch.tensor([self.classes.index(self.segment_class[s]) for s in SEGMENTS])

    def flip_permutation(self) -> tuple[int, ...]:
        """``perm[c]``: the class a pixel of class ``c`` has after a horizontal flip."""
        def mirrored(name: str) -> str:
            for a, b in (("left_", "right_"), ("right_", "left_")):
                if name.startswith(a):
                    return b + name[len(a):]
            return name

        return tuple(self.classes.index(mirrored(c)) for c in self.classes)


def _structure(name: str, groups: dict[str, tuple[str, ...]]) -> TigerStructure:
    segment_class = {seg: cls for cls, segs in groups.items() for seg in segs}
    return TigerStructure(name, (BACKGROUND, *groups), segment_class)


_FRONT = ("left_front_leg", "right_front_leg")
_THIGHS = ("left_thigh", "right_thigh")
_SHANKS = ("left_shank", "right_shank")
STRUCTURES: dict[str, TigerStructure] = {
    s.name: s
    for s in (
        _structure("I", {TRUNK: (TRUNK,), **{seg: (seg,) for seg in LEG_SEGMENTS}}),
        _structure("II", {TRUNK: (TRUNK,), "legs": tuple(LEG_SEGMENTS)}),
        _structure("III", {TRUNK: (TRUNK,), "front_legs": _FRONT,
                           "hind_legs": _THIGHS + _SHANKS}),
        _structure("IV", {TRUNK: (TRUNK,), "front_legs": _FRONT, "hind_thighs": _THIGHS,
                          "hind_shanks": _SHANKS}),
    )
}


def get_structure(name: str) -> TigerStructure:
    """A structure by name (``I``, ``II``, ``III``, ``IV``; case-insensitive)."""
    key = str(name).upper()
    if key not in STRUCTURES:
        raise KeyError(f"unknown tiger structure '{name}'; known: {list(STRUCTURES)}")
    return STRUCTURES[key]


def _mean_visible(points: torch.Tensor, visible: torch.Tensor, names: tuple[str, ...]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``[..., 2]`` of the visible keypoints among ``names`` and whether any was visible."""
    idx = [ATRW15.index(n) for n in names]
    weight = visible[..., idx].float()  # [..., n]
    total = weight.sum(-1)
    mean = (points[..., idx, :2] * weight[..., None]).sum(-2) / total.clamp_min(1)[..., None]
    return mean, total > 0


def _trunk_axis(points: torch.Tensor, visible: torch.Tensor, extend: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Trunk box axis ends ``[..., 2]`` (extended) and whether the trunk can be drawn."""
    front, has_front = _mean_visible(points, visible, ("left_shoulder", "right_shoulder"))
    back, has_back = _mean_visible(points, visible, ("left_hip", "right_hip"))
    tail, has_tail = _mean_visible(points, visible, ("tail",))
    center, has_center = _mean_visible(points, visible, ("center",))
    back = torch.where(has_back[..., None], back, tail)
    has_back = has_back | has_tail
    front_ok = has_front | (has_center & has_back)
    back_ok = has_back | (has_center & has_front)
    front = torch.where(has_front[..., None], front, center)
    back = torch.where(has_back[..., None], back, center)
    axis = front - back
    ok = front_ok & back_ok & (axis.norm(dim=-1) > 0)
    return front + extend * axis, back - extend * axis, ok


def keypoints_to_class_map(
    keypoints: Any,
    height: int,
    width: int,
    structure: str | TigerStructure = "III",
    *,
    threshold: float = 0.1,
    trunk_extend: float = 0.3,
    trunk_width: float = 0.6,
    leg_width: float = 0.4,
    min_width: float = 2.0,
) -> torch.Tensor:
    """Class map ``[..., H, W]`` (long) of ATRW-15 keypoints ``[..., 15, 3]`` in pixels.

    See the module doc for the geometry; classes index ``get_structure(structure).classes``.
    """
    spec = structure if isinstance(structure, TigerStructure) else get_structure(structure)
    points = keypoints if torch.is_tensor(keypoints) else torch.as_tensor(np.asarray(keypoints))
    points = points.float()
    if points.ndim < 2 or tuple(points.shape[-2:]) != (ATRW15.num_keypoints, 3):
        raise ValueError(f"tiger keypoints must be [..., {ATRW15.num_keypoints}, 3] (atrw15), "
                         f"got {tuple(points.shape)}")
    visible = points[..., 2] > threshold  # [..., K]

    starts, ends, oks, halves = [], [], [], []
    t0, t1, t_ok = _trunk_axis(points, visible, trunk_extend)
    starts.append(t1)
    ends.append(t0)
    oks.append(t_ok)
    halves.append(0.5 * trunk_width * (t0 - t1).norm(dim=-1) / (1 + 2 * trunk_extend))
    for a, b in LEG_SEGMENTS.values():
        ia, ib = ATRW15.index(a), ATRW15.index(b)
        p0, p1 = points[..., ia, :2], points[..., ib, :2]
        starts.append(p0)
        ends.append(p1)
        oks.append(visible[..., ia] & visible[..., ib])
        halves.append((0.5 * leg_width * (p1 - p0).norm(dim=-1)).clamp_min(0.5 * min_width))
    p0, p1 = torch.stack(starts, -2), torch.stack(ends, -2)  # [..., S, 2]
    ok, half = torch.stack(oks, -1), torch.stack(halves, -1)  # [..., S]

    d = p1 - p0
    length2 = (d * d).sum(-1).clamp_min(1e-9)[..., None, None]  # [..., S, 1, 1]
    xs = torch.arange(width, dtype=points.dtype, device=points.device)
    ys = torch.arange(height, dtype=points.dtype, device=points.device)[:, None]
    rx = xs - p0[..., 0, None, None]  # [..., S, H, W] after broadcasting
    ry = ys - p0[..., 1, None, None]
    dx, dy = d[..., 0, None, None], d[..., 1, None, None]
    t = (rx * dx + ry * dy) / length2
    perp = (rx * dy - ry * dx).abs() / length2.sqrt()
    inside = ok[..., None, None] & (t >= 0) & (t <= 1) & (perp <= half[..., None, None])
    closeness = torch.where(inside, perp / half[..., None, None], torch.inf)

    seg_class = spec.segment_index().to(points.device)
    legs = closeness[..., 1:, :, :]
    best, which = legs.min(dim=-3)  # nearest leg axis, relative to its half-width
    out = torch.zeros(best.shape, dtype=torch.long, device=points.device)
    out = torch.where(inside[..., 0, :, :], seg_class[0], out)
    out = torch.where(torch.isfinite(best), seg_class[1:][which], out)
    return torch.where(visible.any(-1)[..., None, None], out, IGNORE_INDEX)
