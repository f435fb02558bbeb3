"""The synthetic datasets: determinism, masks and keypoints that match the drawing, the on-disk
layout, torchreid integration, and identity carried by appearance only."""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid_ext.data import synthetic
from reid_ext.data.options import get_dataset_options, set_dataset_options
from reid_ext.data.synthetic import generate_synthetic, resolve_options
from reid_ext.data.synthetic_draw import (
    OCCLUDED_SCORE,
    Canvas,
    PersonPose,
    camera_rng,
    finish_keypoints,
    identity_rng,
    image_rng,
    make_camera,
    person_background,
    person_look,
    person_pose,
    render_person,
    render_sample,
    render_tiger,
    tiger_background,
    tiger_look,
    tiger_pose,
)
from reid_ext.skeletons import ATRW15, COCO17

TINY = {"num_train_ids": 3, "num_test_ids": 2, "images_per_id_per_camera": 2,
        "num_cameras": 2, "height": 64, "width": 32}
SIZES = {"person": (128, 64), "tiger": (64, 128)}
PLAIN = np.array([1, 2, 3], dtype=np.uint8)  # darker than anything the renderers paint


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("kind", ["person", "tiger"])
def test_same_options_give_byte_identical_files(tmp_path, kind):
    serial = generate_synthetic(kind, tmp_path / "a", workers=1, progress=False, **TINY)
    parallel = generate_synthetic(kind, tmp_path / "b", workers=2, progress=False, **TINY)
    reseeded = generate_synthetic(kind, tmp_path / "c", workers=1, progress=False, seed=1,
                                  **TINY)
    files_a, files_b = _all_files(serial), _all_files(parallel)
    assert serial.name == parallel.name != reseeded.name
    assert files_a.keys() == files_b.keys()
    assert all(files_a[k] == files_b[k] for k in files_a), "generation is not deterministic"
    files_c = _all_files(reseeded)
    images = [k for k in files_a if k.endswith(".png") and not k.startswith("aux")]
    assert images and all(files_a[k] != files_c[k] for k in images)


def test_layout_splits_and_aux_cache(tmp_path):
    root = generate_synthetic("synthetic_person", tmp_path, progress=False, **TINY)
    pattern = re.compile(r"^(\d{4})_c(\d)s1_(\d{6})_00\.png$")
    pids = {}
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        names = [p.name for p in (root / split).iterdir()]
        assert all(pattern.match(n) for n in names)
        pids[split] = [int(n[:4]) for n in names]
    n_cams, per = TINY["num_cameras"], TINY["images_per_id_per_camera"]
    assert sorted(set(pids["bounding_box_train"])) == [1, 2, 3]
    assert len(pids["bounding_box_train"]) == 3 * n_cams * per
    assert sorted(pids["query"]) == sorted([4, 5] * n_cams)  # one query per id and camera
    assert len(pids["bounding_box_test"]) == 2 * n_cams * (per - 1)
    assert set(pids["query"]) == set(pids["bounding_box_test"])

    images = sorted(str(p.relative_to(root)) for p in root.glob("[bq]*/*.png"))
    with np.load(root / "aux" / "keypoints" / "keypoints.npz") as npz:
        assert sorted(npz["paths"].tolist()) == images
        assert npz["keypoints"].shape == (len(images), COCO17.num_keypoints, 3)
        assert npz["keypoints"].dtype == np.float32
    for folder, kind in (("masks", "mask"), ("keypoints", "keypoints")):
        manifest = json.loads((root / "aux" / folder / "manifest.json").read_text())
        assert manifest["source"] == "ground_truth" and manifest["count"] == len(images)
        assert manifest["kind"] == kind
    assert manifest["keypoint_format"] == "coco17"
    for rel in images[:5]:
        mask = np.asarray(Image.open(root / "aux" / "masks" / rel))
        assert mask.shape == (TINY["height"], TINY["width"])
        assert set(np.unique(mask).tolist()) <= {0, 255}


def test_existing_dataset_is_reused_and_a_crash_leaves_nothing(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(synthetic, "_write_dataset", crash)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic("tiger", tmp_path, progress=False, **TINY)
    assert list((tmp_path / "synthetic_tiger").iterdir()) == []  # no half dataset, no temp
    monkeypatch.undo()
    first = generate_synthetic("tiger", tmp_path, progress=False, **TINY)
    monkeypatch.setattr(synthetic, "_write_dataset", crash)
    assert generate_synthetic("tiger", tmp_path, progress=False, **TINY) == first


@pytest.mark.parametrize("kind", ["person", "tiger"])
def test_mask_is_exactly_the_painted_body(kind):
    """On a plain background, the mask must equal the set of pixels the body changed."""
    height, width = SIZES[kind]
    for pid in range(1, 9):
        rng = image_rng(0, kind, pid, 1, 1)
        canvas = Canvas(np.broadcast_to(PLAIN, (height, width, 3)))
        if kind == "person":
            render_person(canvas, person_look(identity_rng(0, kind, pid)), person_pose(rng),
                          width / 2, 0.08 * height, 0.85 * height)
        else:
            render_tiger(canvas, tiger_look(identity_rng(0, kind, pid)), tiger_pose(rng),
                         width / 2, 0.45 * height, 0.5 * width)
        painted = np.any(canvas.to_uint8() != PLAIN, axis=-1)
        np.testing.assert_array_equal(canvas.mask, painted)
        assert 0.1 < canvas.mask.mean() < 0.6


@pytest.mark.parametrize("kind, fmt", [("person", COCO17), ("tiger", ATRW15)])
def test_keypoints_match_the_drawn_body(kind, fmt):
    height, width = SIZES[kind]
    inside, total = 0, 0
    for pid in range(1, 7):
        for cam in (1, 2, 3):
            sample = render_sample(kind, 0, pid, cam, 1, height, width)
            kp = sample.keypoints
            assert kp.shape == (fmt.num_keypoints, 3) and kp.dtype == np.float32
            assert np.all((kp[:, 2] >= 0) & (kp[:, 2] <= 1))
            shown = kp[kp[:, 2] > 0]
            assert np.all((shown[:, 0] >= 0) & (shown[:, 0] <= width - 1))
            assert np.all((shown[:, 1] >= 0) & (shown[:, 1] <= height - 1))
            grown = _dilate(sample.mask)  # one pixel of slack for polygon rounding
            confident = kp[kp[:, 2] >= 0.5]
            cols = np.rint(confident[:, 0]).astype(int)
            rows = np.rint(confident[:, 1]).astype(int)
            inside += int(grown[rows, cols].sum())
            total += len(confident)
    assert total > 0.7 * 18 * fmt.num_keypoints
    assert inside / total > 0.97


def _dilate(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)
    out = np.zeros_like(mask)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            out |= padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]]
    return out


@pytest.mark.parametrize("facing_front", [True, False])
def test_person_left_and_right_follow_the_facing_direction(facing_front):
    """COCO 'left' is the person's left: image-right when they face the camera."""
    pose = PersonPose(facing_front, (0.2, 0.2), (0.1, 0.1), (0.1, 0.1), (0.0, 0.0))
    canvas = Canvas(np.zeros((128, 64, 3), np.uint8))
    kp = render_person(canvas, person_look(identity_rng(0, "person", 1)), pose, 32, 8, 110)
    for joint in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "eye", "ear"):
        left_x = kp[COCO17.index(f"left_{joint}"), 0]
        right_x = kp[COCO17.index(f"right_{joint}"), 0]
        assert (left_x > right_x) == facing_front, joint
    assert (kp[COCO17.index("nose"), 2] == 1.0) == facing_front


def test_finish_keypoints_scores_outside_and_occluded_points():
    occluded = np.zeros((10, 20), dtype=bool)
    occluded[:, 15:] = True
    kp = np.array([[2, 3, 1.0], [-1, 3, 1.0], [5, 10, 0.8], [16, 4, 1.0], [16, 4, 0.2]],
                  dtype=np.float32)
    out = finish_keypoints(kp, occluded)
    np.testing.assert_allclose(out[:, 2], [1.0, 0.0, 0.0, OCCLUDED_SCORE, 0.2])
    np.testing.assert_array_equal(out[:, :2], kp[:, :2])


def _nearest_neighbour_accuracy(features: np.ndarray, pids: np.ndarray,
                                cams: np.ndarray) -> float:
    """Rank-1 accuracy of leave-one-out nearest neighbour over other cameras' images."""
    dist = ((features[:, None] - features[None]) ** 2).sum(-1)
    dist[cams[:, None] == cams[None]] = np.inf
    return float((pids[dist.argmin(1)] == pids).mean())


def _colour_halves(image: np.ndarray, region: np.ndarray, split_row: int) -> np.ndarray:
    """Mean colour of ``region`` above and below ``split_row``."""
    upper = region.copy()
    upper[split_row:] = False
    return np.concatenate([image[upper].mean(0), image[region & ~upper].mean(0)])


def _stripe_profile(image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Brightness sampled on two lines along a tiger's back, from the tail root towards the
    head, standardised: the stripe sequence, independent of the facing direction."""
    gray = image.mean(-1)
    tail = keypoints[ATRW15.index("tail"), :2]
    axis = keypoints[ATRW15.index("center"), :2] - tail
    up = np.array([axis[1], -axis[0]]) * (1 if axis[0] < 0 else -1)  # towards the back
    samples = []
    for offset in (0.15, 0.3):
        for t in np.linspace(0.05, 1.9, 32):
            x, y = np.rint(tail + t * axis + offset * up).astype(int)
            inside = 0 <= y < gray.shape[0] and 0 <= x < gray.shape[1]
            samples.append(gray[y, x] if inside else 0.0)
    profile = np.array(samples)
    return (profile - profile.mean()) / (profile.std() + 1e-6)


def _background_grid_colours(kind: str, pid: int, cam: int, index: int, height: int,
                             width: int) -> np.ndarray:
    """Mean colours of a 2x2 grid over the background ``render_sample`` paints first (the same
    generator state reproduces it without the body)."""
    camera = make_camera(camera_rng(0, kind, cam), kind)
    draw = person_background if kind == "person" else tiger_background
    picture = draw(image_rng(0, kind, pid, cam, index), camera, height, width)
    cells = picture.reshape(2, height // 2, 2, width // 2, 3).astype(np.float32)
    return cells.mean(axis=(1, 3)).ravel()


N_IDS = 16  # identities in the appearance tests; chance rank-1 is 1/16


@functools.lru_cache(maxsize=2)
def _appearance_samples(kind: str) -> tuple[list, np.ndarray, np.ndarray]:
    """Two frames of each of 16 identities in each of 3 cameras, with their pids and cams."""
    height, width = SIZES[kind]
    samples, pids, cams = [], [], []
    for pid in range(1, N_IDS + 1):
        for cam in (1, 2, 3):
            for index in (1, 2):
                samples.append((render_sample(kind, 0, pid, cam, index, height, width), index))
                pids.append(pid)
                cams.append(cam)
    return samples, np.array(pids), np.array(cams)


@pytest.mark.parametrize("kind", ["person", "tiger"])
def test_identity_is_in_the_body_not_in_the_background(kind):
    """Body features (clothing colours; a tiger's stripe sequence) find the same identity in
    another camera far above chance; colour statistics of the very backgrounds those pictures
    were drawn on stay near chance."""
    height, width = SIZES[kind]
    samples, pids, cams = _appearance_samples(kind)
    fg, bg = [], []
    for (sample, index), pid, cam in zip(samples, pids, cams):
        image, mask = sample.image.astype(np.float32), sample.mask
        if kind == "person":
            rows = np.flatnonzero(mask.any(axis=1))
            fg.append(_colour_halves(image, mask, (rows[0] + rows[-1]) // 2))
        else:
            fg.append(_stripe_profile(image, sample.keypoints))
        bg.append(_background_grid_colours(kind, int(pid), int(cam), index, height, width))
    chance = 1.0 / N_IDS
    fg_acc = _nearest_neighbour_accuracy(np.array(fg), pids, cams)
    bg_acc = _nearest_neighbour_accuracy(np.array(bg), pids, cams)
    assert fg_acc > 6 * chance, fg_acc
    assert bg_acc < 2.5 * chance, bg_acc


def test_clutter_hurts_features_that_ignore_the_mask():
    """The same colour features taken over the person's bounding box, background included,
    match identities far worse than over the mask: masks have something to offer."""
    samples, pids, cams = _appearance_samples("person")
    in_mask, in_box = [], []
    for sample, _ in samples:
        image, mask = sample.image.astype(np.float32), sample.mask
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        box = np.zeros_like(mask)
        box[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = True
        middle = (rows[0] + rows[-1]) // 2
        in_mask.append(_colour_halves(image, mask, middle))
        in_box.append(_colour_halves(image, box, middle))
    mask_acc = _nearest_neighbour_accuracy(np.array(in_mask), pids, cams)
    box_acc = _nearest_neighbour_accuracy(np.array(in_box), pids, cams)
    assert mask_acc > box_acc + 0.2, (mask_acc, box_acc)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="num_identities"):
        resolve_options("person", {"num_identities": 3})
    with pytest.raises(ValueError, match="num_cameras"):
        resolve_options("tiger", {"num_cameras": 12})
    with pytest.raises(ValueError, match="height"):
        resolve_options("person", {"height": 64.5})
    with pytest.raises(ValueError, match="unknown synthetic dataset kind 'horse'"):
        generate_synthetic("horse", "/nonexistent")


@pytest.fixture
def tiny_person_options():
    saved = get_dataset_options("synthetic_person")
    set_dataset_options("synthetic_person", **TINY)
    yield TINY
    set_dataset_options("synthetic_person", **saved)


def test_torchreid_builds_and_loads_the_dataset(tmp_path, tiny_person_options):
    import reid_ext  # noqa: F401  (registers the datasets into torchreid)
    from reid_ext import host

    manager = host.ImageDataManager(
        root=str(tmp_path), sources="synthetic_person", height=64, width=32,
        batch_size_train=8, batch_size_test=8, workers=0, transforms=["random_flip"],
        use_gpu=False,
    )
    assert manager.num_train_pids == TINY["num_train_ids"]
    batch = next(iter(manager.train_loader))
    assert tuple(batch["img"].shape) == (8, 3, 64, 32)
    assert set(batch["pid"].tolist()) <= set(range(TINY["num_train_ids"]))

    dataset = synthetic.SyntheticPerson(root=str(tmp_path), mode="train", verbose=False)
    file_pid = lambda path: int(Path(path).name[:4])  # noqa: E731
    train_ids = {file_pid(item[0]) for item in dataset.train}
    test_ids = {file_pid(item[0]) for item in dataset.query + dataset.gallery}
    assert train_ids.isdisjoint(test_ids)
    assert {item[2] for item in dataset.train} == set(range(TINY["num_cameras"]))
    assert dataset.keypoint_format == "coco17"
    assert Path(dataset.aux_dirs["mask"], "manifest.json").is_file()
    assert Path(dataset.aux_dirs["keypoints"], "keypoints.npz").is_file()
    assert all(Path(item[0]).is_absolute() for item in dataset.query)


def test_dataset_rejects_unknown_option(tmp_path):
    saved = get_dataset_options("synthetic_tiger")
    set_dataset_options("synthetic_tiger", num_train_id=4)
    try:
        with pytest.raises(ValueError, match="num_train_id"):
            synthetic.SyntheticTiger(root=str(tmp_path))
    finally:
        set_dataset_options("synthetic_tiger", **saved)
