"""Joint transforms: image, mask and keypoints move together; flips swap left and right."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reid_ext.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    JointRandomCrop,
    JointRandomHorizontalFlip,
    JointResize,
    JointTransform,
    build_joint_transforms,
)
from reid_ext.skeletons import ATRW15, COCO17

MARKER = (4, 1)  # (row, column) of the marker pixel, left of centre


def _marked_sample(height: int, width: int, num_keypoints: int) -> dict:
    """An image with one bright marker pixel, a matching mask and keypoints at distinct places.

    Keypoint 0 sits on the marker; the others sit on distinct pixels with distinct scores.
    """
    generator = torch.Generator().manual_seed(1)
    image = torch.randint(0, 100, (3, height, width), dtype=torch.uint8, generator=generator)
    image[:, MARKER[0], MARKER[1]] = 255
    mask = torch.zeros(1, height, width)
    mask[0, :, : width // 3] = 0.25  # something asymmetric besides the marker
    mask[0, MARKER[0], MARKER[1]] = 1.0
    cells = torch.randperm(height * width, generator=generator)[:num_keypoints]
    cells[0] = MARKER[0] * width + MARKER[1]
    scores = torch.linspace(0.2, 1.0, num_keypoints)
    points = torch.stack([(cells % width).float(), (cells // width).float(), scores], dim=1)
    return {"img": image, "mask": mask, "keypoints": points, "pid": 7}


def _marker_position(image: torch.Tensor) -> tuple[int, int]:
    row, col = divmod(int(image[0].argmax()), image.shape[-1])
    return row, col


@pytest.mark.parametrize("layout", [COCO17, ATRW15], ids=lambda f: f.name)
def test_forced_flip_moves_pixels_and_swaps_left_right(layout):
    height, width = 12, 9
    sample = _marked_sample(height, width, layout.num_keypoints)
    flip = JointTransform([JointRandomHorizontalFlip(p=1.0, flip_index=layout.flip_index)])
    out = flip(sample)

    assert torch.equal(out["img"], torch.flip(sample["img"], dims=[-1]))
    assert torch.equal(out["mask"], torch.flip(sample["mask"], dims=[-1]))
    assert out["pid"] == 7

    # x' = W - 1 - x: the point that sat on the marker sits on the marker's new pixel.
    row, col = _marker_position(out["img"])
    assert (row, col) == (MARKER[0], width - 1 - MARKER[1])
    new_index_of_marker_point = layout.flip_index.index(0)
    assert out["keypoints"][new_index_of_marker_point, :2].tolist() == [col, row]

    # Index i now holds the (mirrored) point that was at flip_index[i], score included.
    before, after = sample["keypoints"], out["keypoints"]
    for i, j in enumerate(layout.flip_index):
        assert after[i].tolist() == [width - 1 - before[j, 0], before[j, 1], before[j, 2]]
    # ...which, by name, is left <-> right.
    for name in layout.names:
        if name.startswith("left_"):
            mirror = "right_" + name[len("left_"):]
            source = before[layout.index(mirror)]
            assert after[layout.index(name), 0] == width - 1 - source[0]
            assert after[layout.index(name), 1] == source[1]


def test_random_flip_keeps_image_and_keypoints_in_step():
    """Over many random draws, keypoints are flipped exactly when the image is."""
    sample = _marked_sample(12, 9, COCO17.num_keypoints)
    transform = JointTransform([JointRandomHorizontalFlip(p=0.5, flip_index=COCO17.flip_index)])
    seen = set()
    for _ in range(30):
        out = transform(sample)
        flipped = not torch.equal(out["img"], sample["img"])
        seen.add(flipped)
        marker_point = out["keypoints"][COCO17.flip_index.index(0) if flipped else 0]
        row, col = _marker_position(out["img"])
        assert marker_point[:2].tolist() == [col, row]
        assert out["mask"][0, row, col] == 1.0
    assert seen == {True, False}


def test_resize_keeps_keypoint_on_pixel_centre():
    """3x upscale: the marker pixel becomes a 3x3 block whose centre is 3x + 1."""
    sample = _marked_sample(12, 9, COCO17.num_keypoints)
    out = JointTransform([JointResize(36, 27, mask_interpolation="nearest")])(sample)
    x, y = out["keypoints"][0, :2].tolist()
    assert (x, y) == pytest.approx((3 * MARKER[1] + 1, 3 * MARKER[0] + 1))
    block = out["mask"][0] >= 1.0
    rows, cols = torch.nonzero(block, as_tuple=True)
    assert (rows.float().mean().item(), cols.float().mean().item()) == pytest.approx((y, x))


def test_resize_then_crop_keypoints_land_on_the_marker():
    sample = _marked_sample(12, 9, COCO17.num_keypoints)
    sample["img"][:, MARKER[0] - 1: MARKER[0] + 2, MARKER[1] - 1: MARKER[1] + 2] = 255
    sample["mask"][0, MARKER[0] - 1: MARKER[0] + 2, MARKER[1] - 1: MARKER[1] + 2] = 1.0
    height, width = 29, 20  # a non-integer scale in both directions
    transform = JointTransform(
        [JointResize(height, width), JointRandomCrop(height, width, padding=(4, 6), p=1.0)]
    )
    for _ in range(10):
        out = transform(sample)
        x, y, score = out["keypoints"][0].tolist()
        if score == 0:  # the crop pushed the marker off the image
            assert not (-0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5)
            continue
        row, col = round(y), round(x)
        assert out["img"][0, row, col] == 255
        assert out["mask"][0, row, col] == pytest.approx(1.0)


def test_keypoints_pushed_off_the_image_get_score_zero_and_keep_coordinates():
    sample = _marked_sample(12, 9, COCO17.num_keypoints)
    sample["keypoints"][1] = torch.tensor([0.0, 0.0, 0.9])  # top-left corner pixel
    crop = JointTransform([JointRandomCrop(12, 9, padding=(3, 3), p=1.0)])
    zeroed = kept = 0
    for _ in range(40):
        out = crop(sample)
        x, y, score = out["keypoints"][1].tolist()
        on_image = -0.5 <= x <= 9 - 0.5 and -0.5 <= y <= 12 - 0.5
        assert score == pytest.approx(0.9 if on_image else 0.0)
        # the crop is a pure translation: the offset is the same for every keypoint
        shift = out["keypoints"][:, :2] - sample["keypoints"][:, :2]
        assert torch.allclose(shift, shift[0].expand_as(shift))
        zeroed += not on_image
        kept += on_image
    assert zeroed and kept


def test_photometric_steps_leave_mask_and_keypoints_alone():
    sample = _marked_sample(32, 16, COCO17.num_keypoints)
    plain = build_joint_transforms(32, 16, [], is_train=True)(sample)
    busy = build_joint_transforms(
        32, 16, ["color_jitter", "random_patch", "random_erase"], is_train=True,
        keypoint_format="coco17",
    )
    changed = False
    for _ in range(10):
        out = busy(sample)
        assert torch.equal(out["mask"], plain["mask"])
        assert torch.equal(out["keypoints"], plain["keypoints"])
        changed |= not torch.allclose(out["img"], plain["img"])
    assert changed


def test_test_transform_matches_torchreid_within_one_grey_level():
    from reid_ext import host

    _, reference = host.module("data.transforms").build_transforms(64, 32)
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (16, 6, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    image = Image.fromarray(smooth)  # 128x48, downscaled 2x / 1.5x
    ours = build_joint_transforms(64, 32, is_train=False)({"img": image})["img"]
    theirs = reference(image)
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    assert ours.shape == theirs.shape == (3, 64, 32)
    assert ((ours - theirs).abs() * std).max() <= 1.0 / 255 + 1e-5
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    assert (ours * std + mean).min() >= -1e-6  # normalised with the ImageNet statistics


@pytest.mark.parametrize("keys", [(), ("mask",), ("keypoints",), ("mask", "keypoints")])
def test_full_training_pipeline_with_any_subset_of_maps(keys):
    sample = _marked_sample(24, 12, COCO17.num_keypoints)
    sample = {k: v for k, v in sample.items() if k in ("img", "pid", *keys)}
    names = ["random_flip", "random_crop", "color_jitter", "random_erase"]
    transform = build_joint_transforms(32, 16, names, keypoint_format="coco17")
    for _ in range(20):
        out = transform(sample)
        assert out["img"].shape == (3, 32, 16) and out["img"].dtype == torch.float32
        assert set(out) == set(sample)
        if "mask" in keys:
            assert out["mask"].shape == (1, 32, 16)
        if "keypoints" in keys:
            assert out["keypoints"].shape == (17, 3)


def test_flip_of_keypoints_without_a_format_is_an_error():
    sample = _marked_sample(12, 9, 5)
    flip = JointTransform([JointRandomHorizontalFlip(p=1.0)])
    with pytest.raises(ValueError, match="keypoint format"):
        flip(sample)


def test_bad_names_and_shapes_are_reported():
    with pytest.raises(ValueError, match="random_rotate"):
        build_joint_transforms(32, 16, ["random_flip", "random_rotate"])
    sample = _marked_sample(12, 9, 5)
    sample["mask"] = torch.zeros(11, 9)
    with pytest.raises(ValueError, match="11, 9"):
        build_joint_transforms(32, 16, is_train=False)(sample)
