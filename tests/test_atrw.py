"""ATRW plain Re-ID: readers on fixtures in the published formats, the dataset's protocols and
keypoint cache, the plain-protocol metrics with the junk rule, and synthetic_tiger written in
ATRW's layout end to end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid_ext.data import atrw
from reid_ext.data.options import set_dataset_options
from reid_ext.evaluation.atrw import PlainRecord, average_precision, evaluate_plain, junk_mask
from reid_ext.preprocess.cache import KeypointCache
from reid_ext.skeletons import ATRW15


def _image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _kp(shift: float) -> list[float]:
    flat = []
    for k in range(15):
        flat += [0, 0, 0] if k == 4 else [1.0 + k + shift, 2.0 + shift, 2]
    return flat


@pytest.fixture
def atrw_dir(tmp_path) -> Path:
    """A tiny ATRW folder: 6 training tigers x 3 images, 6 test images with plain ground truth."""
    root = tmp_path / "atrw"
    train_rows, train_kp = [], {}
    for eid in range(6):
        for j in range(3):
            name = f"{100 + 3 * eid + j:06d}.jpg"
            _image(root / atrw.TRAIN_IMAGES / name, 3 * eid + j)
            train_rows.append(f"{eid * 7},{name}")
            train_kp[name] = _kp(eid)
    (root / "atrw_anno_reid_train").mkdir(parents=True)
    (root / atrw.TRAIN_LIST).write_text("\n".join(train_rows) + "\n")
    (root / atrw.TRAIN_KEYPOINTS).write_text(json.dumps(train_kp))
    gt = [{"query": "sing", "entityid": 1, "frame": [0, 0, 0], "imgid": 0},
          {"query": "sing", "entityid": 1, "frame": [0, 0, 9], "imgid": 1},
          {"query": "multi", "entityid": 2, "frame": [0, 1, 0], "imgid": 2},
          {"query": "multi", "entityid": 2, "frame": [0, 2, 4], "imgid": 3},
          {"query": "", "entityid": -1, "frame": [0, 0, 1], "imgid": 4},
          {"query": "", "entityid": 3, "frame": [0, 3, 0], "imgid": 5}]
    (root / "atrw_anno_reid_test").mkdir()
    for item in gt:
        _image(root / atrw.TEST_IMAGES / f"{item['imgid']:06d}.jpg", 50 + item["imgid"])
    (root / atrw.TEST_LIST).write_text("".join(f"{i:06d}.jpg\n" for i in range(6)))
    (root / atrw.TEST_KEYPOINTS).write_text(json.dumps({"000000.jpg": _kp(0.5)}))
    (root / atrw.GT_PLAIN).write_text(json.dumps(gt))
    return root


# --- readers ------------------------------------------------------------------------------
def test_readers_parse_the_published_formats(atrw_dir):
    rows = atrw.read_train_list(atrw_dir / atrw.TRAIN_LIST)
    assert rows[0] == (0, "000100.jpg") and rows[-1] == (35, "000117.jpg") and len(rows) == 18
    kp = atrw.read_keypoints_json(atrw_dir / atrw.TRAIN_KEYPOINTS)["000103.jpg"]
    assert kp.shape == (15, 3)
    assert kp[0].tolist() == [2.0, 3.0, 1.0]  # x, y, visible -> score 1
    assert kp[4].tolist() == [0.0, 0.0, 0.0]  # zeros: invisible -> score 0
    gt = atrw.read_plain_gt(atrw_dir / atrw.GT_PLAIN)
    assert gt[3] == PlainRecord(3, 2, (0, 2, 4), "multi")
    assert atrw.read_test_list(atrw_dir / atrw.TEST_LIST)[:2] == ["000000.jpg", "000001.jpg"]


@pytest.mark.parametrize("name, content, message", [
    ("list.csv", "3,a.jpg,extra\n", r"list\.csv, line 1: expected 'entityid,filename'"),
    ("list.csv", "tiger,a.jpg\n", r"line 1: expected 'entityid,filename'"),
    ("list.csv", "\n", r"holds no 'entityid,filename' rows"),
    ("kp.json", '{"a.jpg": [1, 2, 3]}', r"kp\.json: keypoints of 'a\.jpg' must be a list of 45"),
    ("kp.json", "[1, 2]", r"kp\.json must hold an object"),
    ("kp.json", "{not json", r"kp\.json is not valid JSON"),
    ("gt.json", '[{"imgid": 1, "entityid": 2, "query": "sing"}]', r"gt\.json, record 0"),
    ("gt.json", '[{"imgid": 1, "entityid": 2, "query": "sing", "frame": [1, 2]}]',
     r"'frame' must have 3 numbers"),
])
def test_malformed_files_fail_naming_the_file_and_what_was_expected(tmp_path, name, content,
                                                                     message):
    path = tmp_path / name
    path.write_text(content)
    reader = {"list.csv": atrw.read_train_list, "kp.json": atrw.read_keypoints_json,
              "gt.json": atrw.read_plain_gt}[name]
    with pytest.raises(atrw.ATRWFormatError, match=message):
        reader(path)


def test_missing_files_are_named(atrw_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="reid_list_train.csv' is missing"):
        atrw.read_train_list(tmp_path / "reid_list_train.csv")
    (atrw_dir / atrw.TRAIN_IMAGES / "000101.jpg").unlink()
    set_dataset_options("atrw", data_dir=str(atrw_dir))
    with pytest.raises(FileNotFoundError, match="000101.jpg' listed in .*reid_list_train.csv"):
        atrw.ATRW()
    set_dataset_options("atrw", data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="ATRW dataset not found"):
        atrw.ATRW()


# --- the dataset ------------------------------------------------------------------------------
def test_val_protocol_is_a_seeded_identity_split_with_a_keypoint_cache(atrw_dir):
    set_dataset_options("atrw", data_dir=str(atrw_dir), val_fraction=0.34, seed=3)
    first = atrw.ATRW()
    again = atrw.ATRW()
    assert [q[0] for q in first.query] == [q[0] for q in again.query]
    held = {q[1] for q in first.query} | {g[1] for g in first.gallery}
    assert len(held) == 2 and len(first.query) == 2 and len(first.gallery) == 4
    assert {q[2] for q in first.query} == {0} and {g[2] for g in first.gallery} == {1}
    assert sorted({t[1] for t in first.train}) == [0, 1, 2, 3]  # relabelled
    train_paths = {t[0] for t in first.train}
    assert not train_paths & {q[0] for q in first.query + first.gallery}
    set_dataset_options("atrw", data_dir=str(atrw_dir), val_fraction=0.34, seed=4)
    other = atrw.ATRW()
    assert {q[1] for q in other.query} != {q[1] for q in first.query}  # another seed, ids
    cache = KeypointCache(first.aux_dirs["keypoints"])
    assert cache.manifest["source"] == "annotations" and first.keypoint_format == "atrw15"
    assert cache.get(f"{atrw.TRAIN_IMAGES}/000103.jpg")[1].tolist() == [3.0, 3.0, 1.0]
    assert cache.get(f"{atrw.TEST_IMAGES}/000000.jpg")[0].tolist() == [1.5, 2.5, 1.0]
    assert len(cache) == 19


def test_test_protocol_queries_gallery_and_records(atrw_dir):
    set_dataset_options("atrw", data_dir=str(atrw_dir), protocol="test")
    data = atrw.ATRW()
    assert data.query_ids == [0, 1, 2, 3] and data.gallery_ids == list(range(6))
    assert len({g[2] for g in data.gallery}) == 6  # one camid per image: only self drops
    assert [g[1] for g in data.gallery] == [1, 1, 2, 2, -1, 3]
    assert len(data.train) == 18 and data.num_train_pids == 6
    (atrw_dir / atrw.GT_PLAIN).unlink()
    with pytest.raises(FileNotFoundError, match="gt_test_plain.json' is missing"):
        atrw.ATRW()


# --- metrics ----------------------------------------------------------------------------------
RECORDS = {r.imgid: r for r in [
    PlainRecord(0, 1, (0, 0, 0), "sing"),
    PlainRecord(1, 1, (0, 0, 2), "sing"),
    PlainRecord(2, 1, (0, 0, 10), "sing"),
    PlainRecord(3, 2, (0, 1, 0), "multi"),
    PlainRecord(4, 2, (0, 2, 50), "multi"),
    PlainRecord(5, -1, (0, 0, 5), ""),
    PlainRecord(6, 3, (0, 0, 20), ""),
    PlainRecord(7, 4, (0, 0, 30), "sing"),
    PlainRecord(8, 4, (0, 0, 31), ""),
]}


def test_junk_rule():
    gallery = [RECORDS[i] for i in range(9)]
    assert junk_mask(RECORDS[0], gallery).tolist() == [
        True, True, False, False, False, True, False, False, False]  # self-frame, +2, entity -1
    assert np.flatnonzero(junk_mask(RECORDS[2], gallery)).tolist() == [2, 5]  # 8 and 10 apart
    assert np.flatnonzero(junk_mask(RECORDS[3], gallery)).tolist() == [3, 5]  # other video: kept


def test_plain_metrics_against_a_hand_worked_example():
    """Query 0: drop self, 1 (junk, same video 2 frames apart), 5 (entity -1); ranking
    3, 6, 2, 4, 8, 7 -> the match (2) is third: AP 1/3, top-1 miss, top-5 hit.
    Query 2: ranking 6, 3, 1, 4, 0, ... -> matches at 3 and 5: AP (1/3 + 2/5)/2 = 11/30.
    Query 7: its only other image (8) is junk -> AP 0, misses. Query 3: 4 (other video) is
    first -> AP 1, top-1."""
    gallery_ids = list(range(9))
    query_ids = [0, 2, 3, 7]
    dist = np.array([
        [0.0, 0.1, 0.5, 0.3, 0.9, 0.05, 0.4, 0.99, 0.95],
        [0.4, 0.2, 0.0, 0.1, 0.3, 0.6, 0.05, 0.8, 0.9],
        [0.2, 0.6, 0.7, 0.0, 0.1, 0.05, 0.3, 0.8, 0.9],
        [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0, 0.01],
    ])
    result = evaluate_plain(dist, query_ids, gallery_ids, RECORDS)
    assert result["mAP(single_cam)"] == pytest.approx((1 / 3 + 11 / 30 + 0) / 3)
    assert result["top-1(single_cam)"] == 0.0
    assert result["top-5(single_cam)"] == pytest.approx(2 / 3)
    assert result["mAP(cross_cam)"] == 1.0 and result["top-1(cross_cam)"] == 1.0
    assert result["num_queries(single_cam)"] == 3 and result["num_queries(cross_cam)"] == 1
    # without the junk rule query 0 would have found image 1 second: the rule matters here
    assert average_precision(np.array([0, 1, 0, 0, 1])) == pytest.approx((1 / 2 + 2 / 5) / 2)


def test_average_precision_matches_sklearn():
    sklearn = pytest.importorskip("sklearn.metrics", reason="scikit-learn not installed")
    rng = np.random.default_rng(0)
    for _ in range(20):
        matches = rng.random(12) < 0.3
        if not matches.any():
            continue
        scores = 1.0 / (np.arange(12) + 1.0)
        assert average_precision(matches) == pytest.approx(
            sklearn.average_precision_score(matches, scores))


def test_metrics_input_errors():
    with pytest.raises(ValueError, match="distmat is"):
        evaluate_plain(np.zeros((1, 2)), [0], [0, 1, 2], RECORDS)
    with pytest.raises(KeyError, match="no ground-truth record"):
        evaluate_plain(np.zeros((1, 1)), [0], [99], RECORDS)


# --- synthetic_tiger in the ATRW layout, end to end -------------------------------------------
def test_synthetic_tiger_written_as_atrw_runs_the_plain_protocol(tmp_path):
    out = atrw.write_synthetic_atrw(tmp_path, num_train_ids=3, num_test_ids=4,
                                    images_per_id_per_camera=4, num_cameras=2, height=32,
                                    width=64)
    set_dataset_options("atrw", data_dir=str(out), protocol="test")
    data = atrw.ATRW()
    kinds = [data.plain_records[i].query for i in data.query_ids]
    assert kinds.count("sing") == 8 and kinds.count("multi") == 8  # ids 4, 6 sing; 5 multi
    assert len(data.gallery_ids) == 4 + 8 + 4 + 8  # the last id (unknown, -1) has 8 images
    assert len(data.train) == 3 * 2 * 4
    # an oracle embedding (one-hot of the entity) is perfect under the protocol
    eids = {i: data.plain_records[i].entityid for i in data.gallery_ids}
    onehot = {i: np.eye(10)[eids[i] % 10] for i in data.gallery_ids}
    q = np.stack([onehot[i] for i in data.query_ids])
    g = np.stack([onehot[i] for i in data.gallery_ids])
    result = atrw.plain_protocol_from_features(q, g, data)
    assert result["mAP(single_cam)"] == 1.0 and result["mAP(cross_cam)"] == 1.0
    assert result["top-1(cross_cam)"] == 1.0 and result["num_queries(single_cam)"] == 8
    # an embedding that ignores identity ranks by image order: far from perfect
    noise = np.random.default_rng(0).normal(size=(len(data.gallery_ids), 4))
    index = {i: r for r, i in enumerate(data.gallery_ids)}
    chance = atrw.plain_protocol_from_features(
        noise[[index[i] for i in data.query_ids]], noise, data)
    assert chance["mAP(cross_cam)"] < 0.9
    cache = KeypointCache(data.aux_dirs["keypoints"])
    first = cache.get(f"{atrw.TRAIN_IMAGES}/000000.jpg")
    assert first.shape == (ATRW15.num_keypoints, 3) and first[:, 2].max() == 1.0
