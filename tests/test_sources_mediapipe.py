"""MediaPipe sources on real COL780 crops (skips where the extra or the data is absent)."""
from __future__ import annotations

import numpy as np
import pytest

from reid_ext.preprocess.keypoints.mediapipe import BLAZEPOSE_TO_COCO17, landmarks_to_coco17


def test_canvas_maps_points_and_masks_back_to_the_crop():
    from reid_ext.preprocess.mediapipe_backend import Canvas

    crop = np.zeros((128, 48, 3), np.uint8)
    crop[10, 20] = 255
    canvas = Canvas(crop, min_height=256, pad=0.25)
    assert canvas.scale == 2.0 and (canvas.inner_h, canvas.inner_w) == (256, 96)
    height, width = canvas.pixels.shape[:2]
    assert canvas.top == 64 and canvas.left == 64 + 80 and height == 384 and width == 384
    # the centre of crop pixel (20, 10) lands at canvas (left + 41, top + 21) continuous
    x, y = canvas.to_crop(np.array([(canvas.left + 41) / width]),
                          np.array([(canvas.top + 21) / height]))
    np.testing.assert_allclose([x[0], y[0]], [20.5, 10.5])
    full = np.zeros((height, width), np.float32)
    full[canvas.top:canvas.top + 256, canvas.left:canvas.left + 96] = 1.0
    assert canvas.crop_mask(full).shape == (256, 96) and canvas.crop_mask(full).min() == 1.0


def test_blazepose_to_coco17_mapping_by_names():
    from reid_ext.skeletons import COCO17

    blazepose = {0: "nose", 2: "left_eye", 5: "right_eye", 7: "left_ear", 8: "right_ear",
                 11: "left_shoulder", 12: "right_shoulder", 13: "left_elbow",
                 14: "right_elbow", 15: "left_wrist", 16: "right_wrist", 23: "left_hip",
                 24: "right_hip", 25: "left_knee", 26: "right_knee", 27: "left_ankle",
                 28: "right_ankle"}
    assert [blazepose[i] for i in BLAZEPOSE_TO_COCO17] == list(COCO17.names)


def test_landmarks_to_pixel_indices_and_off_crop_scores():
    landmarks = np.zeros((33, 3), np.float32)
    landmarks[:, 2] = 0.8
    landmarks[0] = (24.0, 32.0, 0.9)    # nose, continuous coordinates
    landmarks[27] = (57.6, 64.0, 0.95)  # left ankle predicted right of the 48-wide crop
    points = landmarks_to_coco17(landmarks, height=128, width=48)
    np.testing.assert_allclose(points[0], (23.5, 31.5, 0.9))
    assert points[15, 2] == 0.0 and points[15, 0] == pytest.approx(57.1)
    assert points[1, 2] == pytest.approx(0.8)


@pytest.fixture(scope="module")
def col780_crops(col780_root):
    from reid_ext.preprocess.extract import read_image

    paths = sorted((col780_root / "data" / "train").glob("*/*.png"))[::97][:8]
    return [read_image(str(p)) for p in paths]


@pytest.fixture(scope="module")
def mediapipe_solutions():
    from reid_ext.preprocess.base import BackendMissingError
    from reid_ext.preprocess.mediapipe_backend import solutions

    try:
        return solutions()
    except BackendMissingError as err:
        pytest.skip(f"mediapipe extra absent: {err}")


def test_mediapipe_masks_cover_a_centred_person(mediapipe_solutions, col780_crops):
    from reid_ext.preprocess.masks.mediapipe import MediaPipeMaskSource

    masks = MediaPipeMaskSource()(col780_crops)
    covered = 0
    for mask, crop in zip(masks, col780_crops):
        assert mask.shape == crop.shape[:2] and 0 <= mask.min() and mask.max() <= 1
        person = mask >= 0.5
        if not person.any():
            continue
        covered += 1
        height, width = mask.shape
        area = person.mean()
        rows, cols = np.nonzero(person)
        assert 0.1 <= area <= 0.9, area                   # a person, not the whole frame
        assert abs(cols.mean() - (width - 1) / 2) < width / 4
        assert abs(rows.mean() - (height - 1) / 2) < height / 4
    assert covered >= len(col780_crops) * 3 // 4


def test_mediapipe_keypoints_fall_inside_the_crop(mediapipe_solutions, col780_crops):
    from reid_ext.preprocess.keypoints.mediapipe import MediaPipeKeypointSource

    results = MediaPipeKeypointSource()(col780_crops)
    found = 0
    for points, crop in zip(results, col780_crops):
        assert points.shape == (17, 3)
        confident = points[points[:, 2] > 0.5]
        if len(confident) < 5:
            continue
        found += 1
        height, width = crop.shape[:2]
        assert np.all((confident[:, 0] >= -0.5) & (confident[:, 0] <= width - 0.5))
        assert np.all((confident[:, 1] >= -0.5) & (confident[:, 1] <= height - 0.5))
        nose, ankles = points[0], points[[15, 16]]
        if nose[2] > 0.5 and np.all(ankles[:, 2] > 0.5):
            assert nose[1] < ankles[:, 1].min()          # head above feet
    assert found >= len(col780_crops) * 3 // 4
