"""Aux-map cache, the AuxMapDataset wrapper, attach_aux_maps and keypoints -> part regions."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reid_ext.data.auxmaps import (
    AuxMapDataset,
    MissingAuxMapError,
    UnreadableImageError,
    attach_aux_maps,
)
from reid_ext.data.parts import PART_SCHEMES, keypoints_to_parts
from reid_ext.data.transforms import build_joint_transforms
from reid_ext.preprocess.cache import (
    CacheError,
    KeypointCache,
    MaskCache,
    image_relpath,
    read_manifest,
    write_keypoints,
    write_manifest,
    write_mask,
)
from reid_ext.skeletons import ATRW15, COCO17

H, W = 20, 10


def _write_image(path: Path, seed: int, size=(H, W)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _mask_for(seed: int) -> np.ndarray:
    return np.random.default_rng(100 + seed).random((H, W)).astype(np.float32)


def _keypoints_for(seed: int) -> np.ndarray:
    rng = np.random.default_rng(200 + seed)
    points = np.stack(
        [rng.uniform(0, W - 1, 17), rng.uniform(0, H - 1, 17), rng.uniform(0.5, 1, 17)], axis=1
    )
    return points.astype(np.float32)


@pytest.fixture
def tiny_root(tmp_path):
    """Three images under a dataset root; masks for two of them, keypoints for two others."""
    root = tmp_path / "set"
    rels = ["train/1/01_a.png", "train/2/02_b.jpg", "query/3/01_c.png"]
    for seed, rel in enumerate(rels):
        _write_image(root / rel, seed)
    mask_dir, kp_dir = tmp_path / "masks", tmp_path / "kps"
    for seed in (0, 1):
        write_mask(mask_dir, rels[seed], _mask_for(seed))
    write_manifest(mask_dir, "mask", source="test", weights="none", version="1", count=2)
    write_keypoints(kp_dir, {rels[s]: _keypoints_for(s) for s in (0, 2)}, "coco17")
    write_manifest(kp_dir, "keypoints", "test", "none", "1", count=2, keypoint_format="coco17")
    data = [(str(root / rel), i, 0, 0) for i, rel in enumerate(rels)]
    return root, rels, data, mask_dir, kp_dir


# --- cache ---------------------------------------------------------------------------------
def test_cache_roundtrip(tmp_path):
    soft = _mask_for(0)
    write_mask(tmp_path, "a/b/img.jpg", soft)
    write_mask(tmp_path, "a/c.png", soft > 0.5)
    write_manifest(tmp_path, "mask", "src", "w.pth", "2", count=2)
    cache = MaskCache(tmp_path)
    assert (tmp_path / "a/b/img.png").is_file()  # extension replaced by .png
    back = cache.get("a/b/img.jpg")
    assert back.dtype == np.float32 and back.shape == (H, W)
    assert np.abs(back - soft).max() <= 0.5 / 255 + 1e-6
    assert np.array_equal(cache.get("a/c.png"), (soft > 0.5).astype(np.float32))
    assert cache.get("a/missing.jpg") is None
    assert cache.available() == {"a/b/img.png", "a/c.png"}

    points = {"x/1.jpg": _keypoints_for(1), "y/2.png": _keypoints_for(2)}
    write_keypoints(tmp_path / "kp", points, "coco17")
    write_manifest(tmp_path / "kp", "keypoints", "src", "w", "1", 2, keypoint_format="coco17")
    kp_cache = KeypointCache(tmp_path / "kp")
    assert kp_cache.keypoint_format == "coco17" and len(kp_cache) == 2
    for rel, value in points.items():
        assert np.array_equal(kp_cache.get(rel), value)
    assert kp_cache.get("z.jpg") is None

    manifest = json.loads((tmp_path / "kp" / "manifest.json").read_text())
    assert {k: manifest[k] for k in ("kind", "source", "weights", "version", "count")} == {
        "kind": "keypoints", "source": "src", "weights": "w", "version": "1", "count": 2,
    }
    assert "created" in manifest
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".") or "tmp" in p.name]
    assert leftovers == []  # atomic writers leave no temporary files behind


def test_manifest_errors_name_the_file(tmp_path):
    write_manifest(tmp_path, "keypoints", "s", "w", "1", 0, keypoint_format="coco17")
    with pytest.raises(CacheError, match=r"manifest\.json.*'keypoints'.*'mask'"):
        MaskCache(tmp_path)
    with pytest.raises(CacheError, match=str(tmp_path / "nothing")):
        MaskCache(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CacheError, match=str(tmp_path / "empty" / "manifest.json")):
        read_manifest(tmp_path / "empty")
    with pytest.raises(CacheError, match="keypoint_format"):
        write_manifest(tmp_path, "keypoints", "s", "w", "1", 0)


def test_bad_cache_entries_are_rejected(tmp_path):
    with pytest.raises(CacheError, match="img7.jpg.*\\(17, 3\\)"):
        write_keypoints(tmp_path, {"img7.jpg": np.zeros((15, 3))}, "coco17")
    with pytest.raises(CacheError, match=r"\[0, 1\]"):
        write_mask(tmp_path, "a.png", np.full((2, 2), 3.0))
    with pytest.raises(CacheError, match="not under"):
        image_relpath("/elsewhere/a.png", tmp_path)


# --- AuxMapDataset -------------------------------------------------------------------------
def test_missing_mask_is_counted_and_falls_back_to_ones(tiny_root, caplog):
    root, rels, data, mask_dir, _ = tiny_root
    dataset = AuxMapDataset(data, root, ("mask",), mask_dir=mask_dir)
    assert dataset.missing_counts == {"mask": 1}
    present, absent = dataset[0], dataset[2]
    assert np.abs(present["mask"][0].numpy() - _mask_for(0)).max() <= 0.5 / 255 + 1e-6
    assert torch.equal(absent["mask"], torch.ones(1, H, W))
    assert present["img"].shape == (3, H, W) and present["img"].dtype == torch.float32
    assert {k: present[k] for k in ("pid", "camid", "dsetid", "impath")} == {
        "pid": 0, "camid": 0, "dsetid": 0, "impath": data[0][0],
    }
    with caplog.at_level("WARNING", logger="reid_ext.data.auxmaps"):
        message = dataset.report()
        dataset.report()
    assert "mask missing for 1" in message
    assert len([r for r in caplog.records if "mask missing" in r.getMessage()]) == 1


def test_missing_map_is_an_error_when_asked(tiny_root):
    root, rels, data, mask_dir, kp_dir = tiny_root
    with pytest.raises(MissingAuxMapError) as info:
        AuxMapDataset(data, root, ("mask",), mask_dir=mask_dir, on_missing="error")
    assert rels[2] in str(info.value) and str(mask_dir) in str(info.value)
    with pytest.raises(MissingAuxMapError) as info:
        AuxMapDataset(data, root, ("keypoints",), keypoints_dir=kp_dir, on_missing="error")
    assert rels[1] in str(info.value) and str(kp_dir) in str(info.value)


def test_keypoints_and_parts_with_fallback(tiny_root):
    root, rels, data, _, kp_dir = tiny_root
    dataset = AuxMapDataset(
        data, root, ("keypoints", "parts"), keypoints_dir=kp_dir, parts_scheme="glad"
    )
    assert dataset.missing_counts == {"keypoints": 1}
    item = dataset[0]
    assert torch.allclose(item["keypoints"], torch.from_numpy(_keypoints_for(0)))
    assert item["parts"].shape == (3, H, W) and item["parts"].sum() > 0
    missing = dataset[1]
    assert torch.equal(missing["keypoints"], torch.zeros(17, 3))
    assert missing["parts"].sum() == 0  # no confident keypoint -> empty regions
    only_parts = AuxMapDataset(data, root, ("parts",), keypoints_dir=kp_dir, parts_scheme="glad")
    assert "keypoints" not in only_parts[0]
    with pytest.raises(ValueError, match="atrw15"):
        AuxMapDataset(data, root, ("parts",), keypoints_dir=kp_dir, parts_scheme="atrw")


def test_joint_transform_is_applied_to_the_maps(tiny_root):
    root, rels, data, mask_dir, kp_dir = tiny_root
    transform = build_joint_transforms(40, 20, is_train=False, keypoint_format="coco17")
    dataset = AuxMapDataset(
        data, root, ("mask", "keypoints"), transform=transform, mask_dir=mask_dir,
        keypoints_dir=kp_dir,
    )
    item = dataset[0]
    assert item["img"].shape == (3, 40, 20) and item["mask"].shape == (1, 40, 20)
    expected = (torch.from_numpy(_keypoints_for(0)[:, :2]) + 0.5) * 2 - 0.5
    assert torch.allclose(item["keypoints"][:, :2], expected)


def test_unreadable_image_names_the_file(tiny_root):
    root, rels, data, mask_dir, _ = tiny_root
    broken = root / "train/1/01_broken.png"
    broken.write_bytes(b"this is not a png")
    dataset = AuxMapDataset([(str(broken), 0, 0, 0)], root, ("mask",), mask_dir=mask_dir)
    with pytest.raises(UnreadableImageError, match=str(broken)):
        dataset[0]
    gone = AuxMapDataset([(str(root / "nope.png"), 0, 0, 0)], root, ("mask",), mask_dir=mask_dir)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        gone[0]


def test_stale_mask_size_is_an_error(tiny_root):
    root, rels, data, mask_dir, _ = tiny_root
    write_mask(mask_dir, rels[0], np.ones((H + 1, W), dtype=np.float32))
    dataset = AuxMapDataset(data, root, ("mask",), mask_dir=mask_dir)
    with pytest.raises(CacheError, match="stale"):
        dataset[0]


# --- attach_aux_maps on a real ImageDataManager ---------------------------------------------
def test_attach_aux_maps_swaps_every_loader(tmp_path):
    from reid_ext import host
    from reid_ext.data.image_folder import ImageFolderDataset
    from reid_ext.data.options import get_dataset_options, set_dataset_options

    root = tmp_path / "folder"
    seed = 0
    for split, pids in (("train", (1, 2, 3, 4)), ("query", (8, 9)), ("gallery", (8, 9))):
        for pid in pids:
            for cam in ("01", "02"):
                seed += 1
                _write_image(root / split / str(pid) / f"{cam}_{seed}.png", seed)
    mask_dir = tmp_path / "masks"
    train_images = sorted((root / "train").rglob("*.png"))
    for path in train_images[:-1]:
        write_mask(mask_dir, image_relpath(path, root), np.ones((H, W), dtype=bool))
    write_manifest(mask_dir, "mask", "test", "none", "1", count=len(train_images) - 1)

    previous = get_dataset_options("image_folder")
    set_dataset_options("image_folder", data_dir=str(root), mask_dir=str(mask_dir))
    try:
        host.get_host().register_dataset("image_folder", ImageFolderDataset)
        manager = host.ImageDataManager(
            root=str(tmp_path), sources="image_folder", height=32, width=16, workers=0,
            batch_size_train=4, batch_size_test=3, train_sampler="RandomIdentitySampler",
            num_instances=2,
        )
    finally:
        set_dataset_options("image_folder", **previous)
    old_train = manager.train_loader
    attach_aux_maps(manager, ("mask",), transforms=["random_flip", "random_crop"])

    train = manager.train_loader
    assert train.sampler is old_train.sampler and train.batch_size == 4 and train.drop_last
    assert manager.aux_datasets["train"].missing_counts == {"mask": 1}
    batch = next(iter(train))
    assert batch["img"].shape == (4, 3, 32, 16) and batch["mask"].shape == (4, 1, 32, 16)
    assert len(set(batch["pid"].tolist())) == 2  # the identity sampler is still in charge
    query = manager.test_loader["image_folder"]["query"]
    assert not query.drop_last and query.batch_size == 3
    assert manager.aux_datasets["image_folder/query"].missing_counts == {"mask": 4}
    batches = list(query)
    assert sum(len(b["pid"]) for b in batches) == 4
    assert all(torch.equal(b["mask"], torch.ones_like(b["mask"])) for b in batches)


# --- parts ---------------------------------------------------------------------------------
def _brute_force_parts(points, height, width, scheme, threshold, margin):
    """One region and one pixel at a time, from the scheme's keypoint names."""
    layout = {"coco17": COCO17, "atrw15": ATRW15}[PART_SCHEMES[scheme].keypoint_format]
    pad = margin * min(height, width)
    out = np.zeros((len(PART_SCHEMES[scheme].regions), height, width), dtype=np.float32)
    for p, (_, names) in enumerate(PART_SCHEMES[scheme].regions):
        xs = [points[layout.index(n)][0] for n in names if points[layout.index(n)][2] > threshold]
        ys = [points[layout.index(n)][1] for n in names if points[layout.index(n)][2] > threshold]
        if not xs:
            continue
        for row in range(height):
            for col in range(width):
                inside_x = min(xs) - pad <= col <= max(xs) + pad
                inside_y = min(ys) - pad <= row <= max(ys) + pad
                out[p, row, col] = float(inside_x and inside_y)
    return out


def _skeleton() -> np.ndarray:
    """A standing person in a 64x32 image (x, y, score); left is the image's right side."""
    joints = {
        "nose": (16, 6), "left_eye": (17, 5), "right_eye": (15, 5), "left_ear": (19, 6),
        "right_ear": (13, 6), "left_shoulder": (22, 14), "right_shoulder": (10, 14),
        "left_elbow": (25, 23), "right_elbow": (7, 23), "left_wrist": (27, 31),
        "right_wrist": (5, 31), "left_hip": (20, 34), "right_hip": (12, 34),
        "left_knee": (21, 46), "right_knee": (11, 46), "left_ankle": (21, 58),
        "right_ankle": (11, 58),
    }
    return np.array([[*joints[n], 0.9] for n in COCO17.names], dtype=np.float32)


def test_parts_of_a_hand_built_skeleton():
    points = _skeleton()
    parts = keypoints_to_parts(points, 64, 32, "coco17", "coco_spindle", margin=0.05)
    names = PART_SCHEMES["coco_spindle"].region_names
    region = {name: parts[i] for i, name in enumerate(names)}
    assert region["head"][6, 16] == 1 and region["head"][40, 16] == 0
    assert region["left_arm"][31, 27] == 1 and region["right_arm"][31, 27] == 0
    assert region["right_leg"][58, 11] == 1 and region["left_leg"][58, 11] == 0
    assert region["upper_body"][24, 16] == 1 and region["lower_body"][50, 16] == 1
    # pad = 0.05 * 32 = 1.6 px: head spans x 13..19, y 5..6 -> cols 12..20, rows 4..7
    head_rows, head_cols = torch.nonzero(region["head"], as_tuple=True)
    assert (head_rows.min(), head_rows.max(), head_cols.min(), head_cols.max()) == (4, 7, 12, 20)
    expected = _brute_force_parts(points, 64, 32, "coco_spindle", 0.1, 0.05)
    assert np.array_equal(parts.numpy(), expected)


def test_parts_ignore_unconfident_keypoints_and_batch():
    points = _skeleton()
    points[COCO17.index("left_ankle"), 2] = 0.05
    points[[COCO17.index(n) for n in ("left_hip", "left_knee")], 2] = 0.0
    parts = keypoints_to_parts(points, 64, 32, "coco17", "coco_spindle")
    left_leg = PART_SCHEMES["coco_spindle"].region_names.index("left_leg")
    assert parts[left_leg].sum() == 0  # every left-leg keypoint unconfident -> empty
    assert np.array_equal(parts.numpy(), _brute_force_parts(points, 64, 32, "coco_spindle", 0.1,
                                                             0.1))
    batch = np.stack([_skeleton(), points])
    batched = keypoints_to_parts(torch.from_numpy(batch), 64, 32, "coco17", "glad")
    assert batched.shape == (2, 3, 64, 32)
    for b in range(2):
        assert torch.equal(batched[b], keypoints_to_parts(batch[b], 64, 32, "coco17", "glad"))


def test_atrw_parts_match_brute_force():
    rng = np.random.default_rng(3)
    points = np.stack(
        [rng.uniform(0, 60, 15), rng.uniform(0, 30, 15), rng.uniform(0, 1, 15)], axis=1
    )
    parts = keypoints_to_parts(points, 30, 60, "atrw15", "atrw", threshold=0.3)
    assert parts.shape == (5, 30, 60)
    assert np.array_equal(parts.numpy(), _brute_force_parts(points, 30, 60, "atrw", 0.3, 0.1))
    with pytest.raises(ValueError, match="coco17"):
        keypoints_to_parts(points, 30, 60, "atrw15", "glad")
