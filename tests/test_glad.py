"""GLAD: COCO -> GLAD points, head/upper/lower bands, flips, fallbacks, branch dependence."""
from __future__ import annotations

import pytest
import torch

import reid_ext  # noqa: F401
from reid_ext.models.factory import build_model
from reid_ext.models.glad import coco_to_glad_points, glad_boxes
from reid_ext.skeletons import COCO17

H, W = 128, 64


def person(face: bool = True, hips: bool = True) -> torch.Tensor:
    """One upright person [1, 17, 3]: face ~ row 19, shoulders row 30, hips row 70."""
    kp = torch.zeros(1, 17, 3)
    points = {"left_shoulder": (40, 30), "right_shoulder": (24, 30),
              "left_elbow": (44, 50), "right_elbow": (20, 50),
              "left_wrist": (46, 66), "right_wrist": (18, 66),
              "left_knee": (38, 95), "right_knee": (26, 95),
              "left_ankle": (38, 120), "right_ankle": (26, 120)}
    if face:
        points.update({"nose": (32, 20), "left_eye": (34, 18), "right_eye": (30, 18),
                       "left_ear": (36, 19), "right_ear": (28, 19)})
    if hips:
        points.update({"left_hip": (38, 70), "right_hip": (26, 70)})
    for name, (x, y) in points.items():
        kp[0, COCO17.index(name)] = torch.tensor([x, y, 1.0])
    return kp


def test_glad_points_from_coco():
    points = coco_to_glad_points(person())[0]
    # face mean y = (20 + 18 + 18 + 19 + 19) / 5 = 18.8; top = 2 * 18.8 - 30 = 7.6
    expected = torch.tensor([[32.0, 7.6, 1.0], [32.0, 30.0, 1.0], [26.0, 70.0, 1.0],
                             [38.0, 70.0, 1.0]])
    torch.testing.assert_close(points, expected)
    assert coco_to_glad_points(person(face=False))[0, 0, 2] == 0  # no face: no head top


def test_bands_equal_hand_computed_boxes():
    boxes, fallback = glad_boxes(person(), H, W)  # overlap 0.05 * 128 = 6.4
    # continuous rows (+0.5): top 8.1, neck 30.5, hips 70.5
    expected = torch.tensor([[0, 8.1 - 6.4, 64, 30.5 + 6.4], [0, 30.5 - 6.4, 64, 70.5 + 6.4],
                             [0, 70.5 - 6.4, 64, 128]])
    torch.testing.assert_close(boxes[0], expected)
    assert not fallback.any()


def test_head_from_torso_length_without_face():
    boxes, fallback = glad_boxes(person(face=False), H, W)
    top = 30.5 - 0.5 * (70.5 - 30.5)  # half a torso above the neck
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0, top - 6.4, 64, 30.5 + 6.4]))
    assert not fallback.any()


def test_missing_hips_fall_back_to_fixed_bands_and_are_counted():
    kp = torch.cat([person(), person(hips=False), torch.zeros(1, 17, 3)])
    boxes, fallback = glad_boxes(kp, H, W)
    assert fallback.tolist() == [False, True, True]
    # fixed levels 0, 0.2 H = 25.6, 0.55 H = 70.4
    fixed = torch.tensor([[0, 0, 64, 25.6 + 6.4], [0, 25.6 - 6.4, 64, 70.4 + 6.4],
                          [0, 70.4 - 6.4, 64, 128]])
    torch.testing.assert_close(boxes[1], fixed)
    torch.testing.assert_close(boxes[2], fixed)
    model = build_model("glad_r18", num_classes=3, pretrained=False).eval()
    with torch.no_grad():
        model(torch.rand(3, 3, 64, 32), keypoints=kp * 0.5)
    assert int(model.fallback_count) == 2 and int(model.images_seen) == 3
    assert model.fallback_rate() == pytest.approx(2 / 3)


def test_bands_keep_a_minimum_height_and_sorted_levels():
    kp = person()
    kp[0, [COCO17.index("left_hip"), COCO17.index("right_hip")], 1] = 20.0  # hips above neck
    boxes, _ = glad_boxes(kp, H, W)
    heights = boxes[0, :, 3] - boxes[0, :, 1]
    assert (heights >= 0.1 * H - 1e-4).all()
    assert (boxes[0, :, 1] <= boxes[0, :, 3]).all() and boxes[0, 0, 1] <= boxes[0, 1, 1]


def flip(image: torch.Tensor, keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal flip as the data pipeline does it: x' = W - 1 - x, left/right swapped."""
    flipped = keypoints.clone()
    flipped[..., 0] = image.shape[-1] - 1 - flipped[..., 0]
    return image.flip(-1), flipped[:, list(COCO17.flip_index)]


def test_regions_of_flipped_image_are_flipped_regions():
    torch.manual_seed(0)
    kp = person().repeat(2, 1, 1)
    kp[..., :2] += torch.randn(2, 17, 2) * 3
    image = torch.rand(2, 3, H, W)
    boxes, _ = glad_boxes(kp, H, W)
    f_image, f_kp = flip(image, kp)
    f_boxes, _ = glad_boxes(f_kp, H, W)
    mirrored = torch.stack([W - boxes[..., 2], boxes[..., 1], W - boxes[..., 0], boxes[..., 3]],
                           -1)
    torch.testing.assert_close(f_boxes, mirrored)
    model = build_model("glad_r18", num_classes=3, pretrained=False).eval()
    crops = model.branch_inputs(image, kp)
    torch.testing.assert_close(model.branch_inputs(f_image, f_kp), crops.flip(-1))


def test_part_branches_depend_on_their_keypoints_only():
    torch.manual_seed(0)
    model = build_model("glad_r18", num_classes=3, pretrained=False).eval()
    image = torch.rand(1, 3, 64, 32)
    kp = person() * 0.5
    with torch.no_grad():
        base_in, base = model.branch_inputs(image, kp), model.branch_features(image, kp)
        moved = kp.clone()
        moved[0, COCO17.index("left_hip"), 1] += 6  # the hip level: upper and lower body
        moved_in, moved_feats = model.branch_inputs(image, moved), model.branch_features(image,
                                                                                         moved)
    changed = [not torch.equal(a, b) for a, b in zip(base_in, moved_in)]
    assert changed == [False, False, True, True]  # global, head, upper, lower
    assert [not torch.equal(a, b) for a, b in zip(base, moved_feats)] == changed
    nose = kp.clone()
    nose[0, COCO17.index("nose"), 1] -= 4  # the head top only
    with torch.no_grad():
        nose_in = model.branch_inputs(image, nose)
    assert [not torch.equal(a, b) for a, b in zip(base_in, nose_in)] == [False, True, False,
                                                                         False]


def test_training_outputs_and_embedding():
    model = build_model("glad_r18", num_classes=4, pretrained=False)
    image, kp = torch.rand(2, 3, 64, 32), person().repeat(2, 1, 1) * 0.5
    out = model(image, keypoints=kp)
    assert len(out["logits"]) == 4 and all(t.shape == (2, 4) for t in out["logits"])
    assert len(out["feats"]) == 4 and all(t.shape == (2, 512) for t in out["feats"])
    model.eval()
    with torch.no_grad():
        embedding = model(image, keypoints=kp)
        necks = [head(f)[0] for head, f in zip(model.heads, model.branch_features(image, kp))]
    torch.testing.assert_close(embedding, torch.cat(necks, 1))
    assert embedding.shape == (2, 4 * 512)


def test_bad_inputs_fail_clearly():
    with pytest.raises(ValueError, match=r"COCO-17 keypoints \[..., 17, 3\], got \(2, 15, 3\)"):
        coco_to_glad_points(torch.zeros(2, 15, 3))
    with pytest.raises(ValueError, match="overlap must be in"):
        build_model("glad_r18", num_classes=3, pretrained=False, overlap=0.7)
