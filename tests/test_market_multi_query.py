"""market1501_mq (Market-1501's gt_bbox/ as the query split) and test.multi_query pooling."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from reid_ext.config import ConfigError, load_config
from reid_ext.data.market_multi_query import Market1501MultiQuery
from reid_ext.engine import ReidEngine

FILES = {
    "bounding_box_train": ["0001_c1s1_000001_00.jpg", "0001_c2s1_000002_00.jpg",
                           "0004_c1s1_000003_00.jpg", "0004_c3s1_000004_00.jpg"],
    "query": ["0002_c1s1_000101_00.jpg", "0003_c2s1_000102_00.jpg"],
    "bounding_box_test": ["0002_c2s1_000201_00.jpg", "0003_c1s1_000202_00.jpg",
                          "-1_c1s1_000203_00.jpg"],
    "gt_bbox": ["0002_c1s1_000301_00.jpg", "0002_c1s1_000302_00.jpg",  # pair (2, cam 1)
                "0002_c3s1_000303_00.jpg",                              # not a query pair
                "0003_c2s1_000304_00.jpg", "0003_c2s1_000305_00.jpg",  # pair (3, cam 2)
                "0003_c2s1_000306_00.jpg",
                "0001_c1s1_000307_00.jpg"],                             # a training identity
}


def write_market(root, files=FILES):
    base = root / "market1501" / "Market-1501-v15.09.15"
    for folder, names in files.items():
        (base / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            Image.new("RGB", (8, 16)).save(base / folder / name)
    return base


def test_query_split_is_the_gt_bbox_boxes_of_the_query_pairs(tmp_path):
    base = write_market(tmp_path)
    dataset = Market1501MultiQuery(root=str(tmp_path), verbose=False)
    got = sorted((item[0].split("/")[-1], item[1], item[2]) for item in dataset.query)
    assert got == [("0002_c1s1_000301_00.jpg", 2, 0), ("0002_c1s1_000302_00.jpg", 2, 0),
                   ("0003_c2s1_000304_00.jpg", 3, 1), ("0003_c2s1_000305_00.jpg", 3, 1),
                   ("0003_c2s1_000306_00.jpg", 3, 1)]
    assert all(item[0].startswith(str(base / "gt_bbox")) for item in dataset.query)
    assert len(dataset.gallery) == 2 and len(dataset.train) == 4  # as torchreid's Market1501


def test_missing_boxes_are_named(tmp_path):
    files = {k: v for k, v in FILES.items() if k != "gt_bbox"}
    write_market(tmp_path, files)
    with pytest.raises(FileNotFoundError, match="gt_bbox"):
        Market1501MultiQuery(root=str(tmp_path), verbose=False)
    write_market(tmp_path / "partial", {**files, "gt_bbox": FILES["gt_bbox"][:3]})
    with pytest.raises(ValueError, match=r"1 query \(pid, camera\) pairs have no image"):
        Market1501MultiQuery(root=str(tmp_path / "partial"), verbose=False)


@pytest.mark.parametrize("method", ["mean", "max"])
def test_engine_pools_each_pid_camera_pair(method):
    feats = {"model": torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0], [0.0, 1.0]])}
    pids, camids = np.array([7, 7, 9, 7]), np.array([0, 0, 1, 1])
    pooled, q_pids, q_camids = ReidEngine.pool_queries(SimpleNamespace(multi_query=method),
                                                       feats, pids, camids)
    assert q_pids.tolist() == [7, 7, 9] and q_camids.tolist() == [0, 1, 1]
    first = [2.0, 1.0] if method == "mean" else [3.0, 2.0]
    torch.testing.assert_close(pooled["model"],
                               torch.tensor([first, [0.0, 1.0], [5.0, 5.0]]))


def test_config_checks_the_pooling():
    with pytest.raises(ConfigError, match="test.multi_query must be one of"):
        load_config("configs/quickstart.yaml", ["test.multi_query", "median"])
    with pytest.raises(ConfigError, match="cannot be combined"):
        load_config("configs/quickstart.yaml", ["test.multi_query", "mean",
                                                "test.visrank", "True", "test.evaluate", "True"])


def test_preflight_asks_for_gt_bbox(tmp_path):
    from reid_ext.preflight import missing_dataset

    base = write_market(tmp_path, {k: v for k, v in FILES.items() if k != "gt_bbox"})
    message = missing_dataset("market1501_mq", str(tmp_path))
    assert message is not None and "Market-1501-v15.09.15/gt_bbox" in message
    assert missing_dataset("market1501", str(tmp_path)) is None
    (base / "gt_bbox").mkdir()
    assert missing_dataset("market1501_mq", str(tmp_path)) is None
