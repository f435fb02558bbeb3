"""Tiger class maps (structures I-IV) from hand-made ATRW-15 keypoints: pixel checks, flips."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reid_ext.data.tiger_maps import (
    IGNORE_INDEX,
    STRUCTURES,
    get_structure,
    keypoints_to_class_map,
)
from reid_ext.skeletons import ATRW15

H, W = 40, 80


def side_view_tiger() -> np.ndarray:
    """A tiger facing right: trunk on y=20 from x=20 (hips) to x=60 (shoulders), straight legs.

    Trunk: axis 40 px, extended by 0.3*40 = 12 at both ends -> x in [8, 72], half-width
    0.5*0.6*40 = 12 -> y in [8, 32]. Front legs: x=64 (left) and x=56 (right), y 20..38,
    half-width 0.2*18 = 3.6. Hind legs: x=24 (left), x=16 (right): thigh y 20..30, shank 30..38.
    """
    kp = np.zeros((15, 3), np.float32)
    points = {
        "left_ear": (70, 8), "right_ear": (72, 8), "nose": (76, 14),
        "left_shoulder": (64, 20), "right_shoulder": (56, 20),
        "left_front_paw": (64, 38), "right_front_paw": (56, 38),
        "left_hip": (24, 20), "right_hip": (16, 20),
        "left_knee": (24, 30), "right_knee": (16, 30),
        "left_back_paw": (24, 38), "right_back_paw": (16, 38),
        "tail": (10, 18), "center": (40, 20),
    }
    for name, (x, y) in points.items():
        kp[ATRW15.index(name)] = (x, y, 1.0)
    return kp


def cls(structure: str, name: str) -> int:
    return get_structure(structure).classes.index(name)


# (row, col) -> class name per structure
EXPECTED = {
    (20, 40): {"I": "trunk", "II": "trunk", "III": "trunk", "IV": "trunk"},
    (20, 9): {"I": "trunk", "II": "trunk", "III": "trunk", "IV": "trunk"},
    (20, 5): {s: "background" for s in STRUCTURES},
    (5, 40): {s: "background" for s in STRUCTURES},
    (39, 40): {s: "background" for s in STRUCTURES},
    (35, 64): {"I": "left_front_leg", "II": "legs", "III": "front_legs", "IV": "front_legs"},
    (35, 56): {"I": "right_front_leg", "II": "legs", "III": "front_legs", "IV": "front_legs"},
    (35, 60): {s: "background" for s in STRUCTURES},  # between the front legs, below trunk
    (25, 24): {"I": "left_thigh", "II": "legs", "III": "hind_legs", "IV": "hind_thighs"},
    (35, 24): {"I": "left_shank", "II": "legs", "III": "hind_legs", "IV": "hind_shanks"},
    (35, 16): {"I": "right_shank", "II": "legs", "III": "hind_legs", "IV": "hind_shanks"},
    (25, 16): {"I": "right_thigh", "II": "legs", "III": "hind_legs", "IV": "hind_thighs"},
}


@pytest.mark.parametrize("structure", list(STRUCTURES))
def test_class_map_pixels_for_every_structure(structure):
    out = keypoints_to_class_map(side_view_tiger(), H, W, structure)
    assert out.shape == (H, W) and out.dtype == torch.long
    for (row, col), names in EXPECTED.items():
        assert out[row, col].item() == cls(structure, names[structure]), (row, col, structure)
    # the trunk box ends where the geometry says: column 8 is in, column 7 is out (row 20)
    assert out[20, 8] == cls(structure, "trunk") and out[20, 7] == 0
    assert out[8, 40] == cls(structure, "trunk") and out[7, 40] == 0
    assert set(out.unique().tolist()) == set(range(get_structure(structure).num_classes))


def test_structure_classes_and_pathways():
    assert get_structure("iii").classes == ("background", "trunk", "front_legs", "hind_legs")
    assert get_structure("III").pathways == ("global", "trunk", "front_legs", "hind_legs")
    assert get_structure("I").num_classes == 8 and len(get_structure("I").pathways) == 8
    assert get_structure("II").leg_classes == (2,)
    assert get_structure("IV").leg_classes == (2, 3, 4)
    with pytest.raises(KeyError, match="unknown tiger structure 'V'"):
        get_structure("V")


def test_invisible_points_drop_their_segments_and_no_points_is_ignored():
    kp = side_view_tiger()
    kp[ATRW15.index("left_front_paw")] = 0  # ATRW writes zeros for an invisible point
    out = keypoints_to_class_map(kp, H, W, "I")
    assert out[35, 64] == 0  # the left front leg is gone
    assert out[35, 56] == cls("I", "right_front_leg")
    # hips invisible: the trunk falls back to tail -> shoulders
    kp = side_view_tiger()
    kp[[ATRW15.index("left_hip"), ATRW15.index("right_hip")], 2] = 0
    out = keypoints_to_class_map(kp, H, W, "III")
    assert out[20, 40] == cls("III", "trunk")
    assert (keypoints_to_class_map(np.zeros((15, 3)), H, W, "III") == IGNORE_INDEX).all()


@pytest.mark.parametrize("structure", list(STRUCTURES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flip_consistency(structure, seed):
    """Map of flipped keypoints (x -> W-1-x, left/right swapped) == flipped map, classes
    permuted left<->right."""
    rng = np.random.default_rng(seed)
    kp = np.concatenate([rng.integers(0, W, (15, 1)), rng.integers(0, H, (15, 1)),
                         (rng.random((15, 1)) > 0.15)], axis=1).astype(np.float32)
    flipped = kp.copy()
    flipped[:, 0] = W - 1 - flipped[:, 0]
    flipped = flipped[list(ATRW15.flip_index)]
    spec = get_structure(structure)
    a = keypoints_to_class_map(kp, H, W, structure)
    b = keypoints_to_class_map(flipped, H, W, structure)
    perm = torch.tensor(spec.flip_permutation())
    expected = torch.where(a.flip(-1) >= 0, perm[a.flip(-1).clamp_min(0)], IGNORE_INDEX)
    assert torch.equal(b, expected)
    if structure == "I":
        assert spec.flip_permutation() != tuple(range(spec.num_classes))


def test_batched_equals_per_sample():
    kp = side_view_tiger()
    other = kp.copy()
    other[:, 0] = other[:, 0] - 5
    batch = keypoints_to_class_map(np.stack([kp, other]), H, W, "IV")
    assert batch.shape == (2, H, W)
    assert torch.equal(batch[1], keypoints_to_class_map(other, H, W, "IV"))
    with pytest.raises(ValueError, match=r"\[\.\.\., 15, 3\]"):
        keypoints_to_class_map(np.zeros((17, 3)), H, W, "IV")


def test_aux_dataset_draws_seg_after_the_joint_flip(tmp_path):
    """Batch key 'seg': drawn from the transformed keypoints, so a flip mirrors the map and
    exchanges left/right classes."""
    from PIL import Image
    from torchvision.transforms import v2

    from reid_ext.data.auxmaps import AuxMapDataset
    from reid_ext.data.transforms import ImageOnly, JointRandomHorizontalFlip, JointTransform
    from reid_ext.preprocess.cache import write_keypoints, write_manifest

    root = tmp_path / "set"
    (root / "train").mkdir(parents=True)
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / "train" / "a.png")
    kp_dir = tmp_path / "kps"
    write_keypoints(kp_dir, {"train/a.png": side_view_tiger()}, "atrw15")
    write_manifest(kp_dir, "keypoints", "annotations", "", "1", 1, keypoint_format="atrw15")
    data = [(str(root / "train" / "a.png"), 0, 0, 0)]
    to_float = ImageOnly(v2.ToDtype(torch.float32, scale=True))
    plain = AuxMapDataset(data, root, ("seg",), keypoints_dir=kp_dir, seg_structure="I",
                          transform=JointTransform([to_float]))
    flip = JointRandomHorizontalFlip(1.0, ATRW15.flip_index)
    flipped = AuxMapDataset(data, root, ("seg",), keypoints_dir=kp_dir, seg_structure="I",
                            transform=JointTransform([flip, to_float]))
    a, b = plain[0], flipped[0]
    assert "keypoints" not in a and a["seg"].shape == (H, W)
    assert torch.equal(a["seg"], keypoints_to_class_map(side_view_tiger(), H, W, "I"))
    perm = torch.tensor(get_structure("I").flip_permutation())
    assert torch.equal(b["seg"], perm[a["seg"].flip(-1)])
    assert b["seg"][35, W - 1 - 64] == get_structure("I").classes.index("right_front_leg")
    with pytest.raises(ValueError, match="needs a seg_structure"):
        AuxMapDataset(data, root, ("seg",), keypoints_dir=kp_dir)
