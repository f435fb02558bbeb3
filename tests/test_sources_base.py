"""Source interface and the instance-choice rule, on hand-made instances."""
from __future__ import annotations

import math

import numpy as np
import pytest

from reid_ext.preprocess.base import KeypointSource, MaskSource, SourceError
from reid_ext.preprocess.instances import box_scores, choose_box, choose_mask, mask_scores


def _rect_mask(height, width, y0, y1, x0, x1, value=1.0):
    mask = np.zeros((height, width), np.float32)
    mask[y0:y1, x0:x1] = value
    return mask


def test_mask_score_matches_hand_computation():
    # 20x10 crop, a 10x4 block at rows 5..14, cols 0..3: area 40/200 = 0.2,
    # centroid (x=1.5, y=9.5); centre (4.5, 9.5); dx = -3/5, dy = 0 -> d = 0.6/sqrt(2).
    mask = _rect_mask(20, 10, 5, 15, 0, 4)
    expected = 0.2 * (1 - 0.6 / math.sqrt(2))
    assert mask_scores(mask[None])[0] == pytest.approx(expected)


def test_centred_person_beats_larger_bystander_cut_by_the_border():
    height, width = 128, 64
    person = _rect_mask(height, width, 10, 120, 20, 44)        # 110x24, centred
    bystander = _rect_mask(height, width, 0, 128, 40, 64)      # 128x24, on the right edge
    assert bystander.sum() > person.sum()
    assert choose_mask(np.stack([bystander, person])) == 1


def test_larger_instance_wins_when_both_centred():
    small = _rect_mask(64, 64, 28, 36, 28, 36)
    large = _rect_mask(64, 64, 8, 56, 8, 56)
    assert choose_mask(np.stack([small, large])) == 1


def test_threshold_decides_the_area():
    faint = _rect_mask(32, 32, 0, 32, 0, 32, value=0.4)   # covers all, but below 0.5
    solid = _rect_mask(32, 32, 8, 24, 8, 24, value=0.9)
    assert choose_mask(np.stack([faint, solid]), threshold=0.5) == 1
    assert choose_mask(np.stack([faint, solid]), threshold=0.3) == 0


def test_no_instance_or_empty_instances_give_none():
    assert choose_mask(np.zeros((0, 8, 8), np.float32)) is None
    assert choose_mask(np.zeros((2, 8, 8), np.float32)) is None
    assert choose_box(np.zeros((0, 4)), 8, 8) is None


def test_ties_go_to_the_first_instance():
    mask = _rect_mask(16, 16, 4, 12, 4, 12)
    assert choose_mask(np.stack([mask, mask.copy()])) == 0


def test_box_scores_agree_with_mask_scores_for_filled_boxes():
    height, width = 40, 30
    boxes = np.array([[3, 5, 20, 35], [10, 0, 30, 40], [25, 30, 60, 70]], np.float64)
    masks = np.stack([_rect_mask(height, width, int(max(b[1], 0)), int(min(b[3], height)),
                                 int(max(b[0], 0)), int(min(b[2], width))) for b in boxes])
    np.testing.assert_allclose(box_scores(boxes, height, width), mask_scores(masks), rtol=1e-9)


class _Constant(MaskSource):
    name = "constant"

    def __init__(self, value, **kwargs):
        super().__init__(**kwargs)
        self.value = value

    def predict(self, images, relpaths):
        return [np.full(image.shape[:2], self.value, np.float32) for image in images]


def test_mask_source_checks_inputs_and_binarises():
    source = _Constant(0.7, threshold=0.5, binary=True)
    image = np.zeros((6, 4, 3), np.uint8)
    (mask,) = source([image])
    assert mask.dtype == np.float32 and mask.shape == (6, 4) and np.all(mask == 1.0)
    assert np.all(_Constant(0.3, binary=True)([image])[0] == 0.0)
    assert np.allclose(_Constant(0.3)([image])[0], 0.3)
    with pytest.raises(SourceError, match="HxWx3 uint8"):
        source([np.zeros((6, 4), np.uint8)])
    with pytest.raises(SourceError, match="threshold"):
        _Constant(0.3, threshold=1.5)


class _WrongShape(KeypointSource):
    name = "wrong"

    def predict(self, images, relpaths):
        return [np.zeros((5, 3), np.float32) for _ in images]


def test_keypoint_source_checks_the_skeleton_size():
    source = _WrongShape("coco17")
    with pytest.raises(SourceError, match=r"coco17.*\(17, 3\)"):
        source([np.zeros((8, 8, 3), np.uint8)])
    info = source.manifest_info()
    assert info["source"] == "wrong" and info["random_weights"] is False
