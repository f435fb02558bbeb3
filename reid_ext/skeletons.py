"""Keypoint layouts reid_ext knows: names, index order and the left/right flip permutation."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeypointFormat:
    """An ordered keypoint layout; ``flip_index[i]`` is the index keypoint ``i`` becomes
    after a horizontal flip (left and right swap, centre-line points map to themselves)."""

    name: str
    names: tuple[str, ...]

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    @property
    def flip_index(self) -> tuple[int, ...]:
        def mirrored(name: str) -> str:
            if name.startswith("left_"):
                return "right_" + name[len("left_"):]
            if name.startswith("right_"):
                return "left_" + name[len("right_"):]
            return name

        position = {n: i for i, n in enumerate(self.names)}
        return tuple(position[mirrored(n)] for n in self.names)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(
                f"keypoint '{name}' is not in format '{self.name}': {self.names}") from None


COCO17 = KeypointFormat(
    "coco17",
    (
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
)

# ATRW (Amur tiger re-identification in the wild) pose annotation order.
ATRW15 = KeypointFormat(
    "atrw15",
    (
        "left_ear", "right_ear", "nose",
        "right_shoulder", "right_front_paw", "left_shoulder", "left_front_paw",
        "right_hip", "right_knee", "right_back_paw",
        "left_hip", "left_knee", "left_back_paw",
        "tail", "center",
    ),
)

KEYPOINT_FORMATS: dict[str, KeypointFormat] = {f.name: f for f in (COCO17, ATRW15)}


def get_keypoint_format(name: str) -> KeypointFormat:
    """Look a layout up by name, with the known names in the error."""
    try:
        return KEYPOINT_FORMATS[name]
    except KeyError:
        raise KeyError(
            f"unknown keypoint format '{name}'; known: {sorted(KEYPOINT_FORMATS)}"
        ) from None
