"""SpindleNet: keypoint boxes, fallbacks, flips, the fusion tree and branch dependence."""
from __future__ import annotations

import pytest
import torch
from test_glad import flip, person

import reid_ext  # noqa: F401
from reid_ext.data.parts import keypoints_to_boxes, keypoints_to_parts
from reid_ext.models.factory import build_model
from reid_ext.models.spindle import REGIONS, FeatureFusion, spindle_boxes
from reid_ext.skeletons import COCO17

H, W = 128, 64


def test_boxes_equal_hand_computed_extents():
    boxes, present = keypoints_to_boxes(person(), H, W, "coco17", "coco_spindle", margin=0.1)
    pad = 6.4  # 0.1 * min(128, 64)
    # left arm: shoulder (40, 30), elbow (44, 50), wrist (46, 66); +0.5 to continuous pixels
    torch.testing.assert_close(boxes[0, REGIONS.index("left_arm")],
                               torch.tensor([40.5 - pad, 30.5 - pad, 46.5 + pad, 66.5 + pad]))
    # lower body: hips (26|38, 70), knees, ankles (26|38, 120): bottom clipped at H
    torch.testing.assert_close(boxes[0, REGIONS.index("lower_body")],
                               torch.tensor([26.5 - pad, 70.5 - pad, 38.5 + pad, 120.5 + pad]))
    head = boxes[0, REGIONS.index("head")]  # x 28..36, y 18..20
    torch.testing.assert_close(head, torch.tensor([28.5 - pad, 18.5 - pad, 36.5 + pad,
                                                   20.5 + pad]))
    assert present.all()


def test_boxes_cover_the_part_masks():
    """Pixel c of a mask is inside the region iff its centre c + 0.5 lies in the box."""
    torch.manual_seed(0)
    kp = person().repeat(3, 1, 1)
    kp[..., :2] += torch.randn(3, 17, 2) * 4
    boxes, _ = keypoints_to_boxes(kp, H, W, "coco17", "coco_spindle")
    masks = keypoints_to_parts(kp, H, W, "coco17", "coco_spindle")
    centres_x, centres_y = torch.arange(W) + 0.5, torch.arange(H) + 0.5
    inside_x = (centres_x >= boxes[..., 0:1]) & (centres_x <= boxes[..., 2:3])
    inside_y = (centres_y >= boxes[..., 1:2]) & (centres_y <= boxes[..., 3:4])
    assert torch.equal((inside_y[..., :, None] & inside_x[..., None, :]).float(), masks)


def test_missing_regions_fall_back_and_are_counted():
    kp = person()
    for name in ("left_shoulder", "left_elbow", "left_wrist"):
        kp[0, COCO17.index(name), 2] = 0.0
    boxes, fallback = spindle_boxes(kp, H, W)
    assert fallback[0].tolist() == [name == "left_arm" for name in REGIONS]
    torch.testing.assert_close(boxes[0, REGIONS.index("left_arm")],
                               torch.tensor([0.0, 0.15 * H, W, 0.6 * H]))
    model = build_model("spindle_r18", num_classes=3, pretrained=False).eval()
    with torch.no_grad():
        model(torch.rand(2, 3, 64, 32), keypoints=torch.cat([kp, torch.zeros(1, 17, 3)]) * 0.5)
    expected = torch.ones(7, dtype=torch.long)
    expected[REGIONS.index("left_arm")] = 2
    assert torch.equal(model.fallback_count, expected) and int(model.images_seen) == 2


def test_flipped_regions_are_mirrored_with_left_and_right_swapped():
    torch.manual_seed(1)
    kp = person().repeat(2, 1, 1)
    kp[..., :2] += torch.randn(2, 17, 2) * 3
    image = torch.rand(2, 3, H, W)
    boxes, _ = spindle_boxes(kp, H, W)
    _, f_kp = flip(image, kp)
    f_boxes, _ = spindle_boxes(f_kp, H, W)
    swap = [REGIONS.index(n.replace("left", "@").replace("right", "left").replace("@", "right"))
            for n in REGIONS]
    mirrored = torch.stack([W - boxes[..., 2], boxes[..., 1], W - boxes[..., 0], boxes[..., 3]],
                           -1)[:, swap]
    torch.testing.assert_close(f_boxes, mirrored)
    assert swap[REGIONS.index("left_arm")] == REGIONS.index("right_arm")


def test_fusion_tree_equals_hand_computed_max():
    fusion = FeatureFusion(3, 3)
    eye = torch.eye(3)
    with torch.no_grad():
        for unit, scale in ((fusion.upper, 2.0), (fusion.lower, 3.0), (fusion.body, 1.0)):
            unit.linear.weight.copy_(scale * eye)
            unit.linear.bias.zero_()
        fusion.final.weight.copy_(torch.cat([eye, -eye], dim=1))  # global - body
        fusion.final.bias.zero_()
    torch.manual_seed(0)
    regions, global_feat = torch.rand(2, 7, 3), torch.rand(2, 3)
    head, upper, lower, l_arm, r_arm, l_leg, r_leg = regions.unbind(1)
    upper_f = 2 * torch.maximum(upper, torch.maximum(l_arm, r_arm))
    lower_f = 3 * torch.maximum(lower, torch.maximum(l_leg, r_leg))
    body = torch.maximum(head, torch.maximum(upper_f, lower_f))
    with torch.no_grad():
        torch.testing.assert_close(fusion.regions(regions), body)
        torch.testing.assert_close(fusion(global_feat, regions), global_feat - body)


def test_each_region_depends_on_its_own_keypoints():
    torch.manual_seed(0)
    model = build_model("spindle_r18", num_classes=3, pretrained=False).eval()
    image, kp = torch.rand(1, 3, 64, 32), person() * 0.5
    with torch.no_grad():
        base = model.branch_features(image, kp)  # [1, 8, C]: image, then REGIONS
        wrist = kp.clone()
        wrist[0, COCO17.index("left_wrist"), :2] += torch.tensor([3.0, 5.0])
        moved = model.branch_features(image, wrist)
    changed = [not torch.equal(a, b) for a, b in zip(base[0], moved[0])]
    assert changed == [False, *[name == "left_arm" for name in REGIONS]]
    hip = kp.clone()
    hip[0, COCO17.index("left_hip"), 0] += 6  # outward, past the shoulders and the knees
    with torch.no_grad():
        moved = model.branch_features(image, hip)
    changed = [not torch.equal(a, b) for a, b in zip(base[0], moved[0])]
    assert changed == [False, *[n in ("upper_body", "lower_body", "left_leg") for n in REGIONS]]


def test_training_outputs_and_gradients():
    model = build_model("spindle_r18", num_classes=4, pretrained=False)
    out = model(torch.rand(2, 3, 64, 32), keypoints=person().repeat(2, 1, 1) * 0.5)
    assert out["logits"].shape == (2, 4) and out["feats"].shape == (2, 512)
    (out["logits"].sum() + out["feats"].sum()).backward()
    assert model.fusion.upper.linear.weight.grad.abs().sum() > 0
    assert model.trunk.layer2[0].conv1.weight.grad.abs().sum() > 0


def test_bad_stages_fail_clearly():
    with pytest.raises(ValueError, match="macro_stage before micro_stage before layer4"):
        build_model("spindle_r18", num_classes=3, pretrained=False, macro_stage="layer3",
                    micro_stage="layer2")
    with pytest.raises(ValueError, match=r"keypoints must be \[..., 17, 3\]"):
        keypoints_to_boxes(torch.zeros(1, 5, 3), H, W, "coco17", "coco_spindle")
