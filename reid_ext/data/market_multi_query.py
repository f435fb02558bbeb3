"""``market1501_mq``: Market-1501 with its multiple-query set as the query split.

Market-1501's multiple-query protocol replaces each query image by the pool of the hand-drawn
boxes of the same identity in the same camera, which the dataset ships in ``gt_bbox/``. This
dataset is torchreid's Market-1501 (same folder, train and gallery splits) whose query split is
those ``gt_bbox/`` images, restricted to the (identity, camera) pairs of ``query/`` (``gt_bbox``
also holds the training identities). Rank it with ``test.multi_query mean`` (or ``max``), which
pools each pair's features into one query before ranking (:func:`pool_multi_query`).
"""
from __future__ import annotations

import os.path as osp
import re

from reid_ext import host
from reid_ext.registry import DATASETS

NAME = "market1501_mq"
MULTI_QUERY_DIR = "gt_bbox"
_PID_CAM = re.compile(r"([-\d]+)_c(\d)")


def pid_camera_pairs(items: list[tuple[str, int, int]]) -> set[tuple[int, int]]:
    """The distinct ``(pid, camid)`` of dataset items ``(path, pid, camid, ...)``."""
    return {(int(item[1]), int(item[2])) for item in items}


@DATASETS.register(NAME)
class Market1501MultiQuery(host.module("data.datasets.image.market1501").Market1501):
    """torchreid's Market1501 with ``query`` = the ``gt_bbox/`` boxes of the query pairs."""

    def process_dir(self, dir_path: str, relabel: bool = False) -> list[tuple[str, int, int]]:
        if osp.normpath(dir_path) != osp.normpath(self.query_dir):
            return super().process_dir(dir_path, relabel)
        boxes_dir = osp.join(osp.dirname(dir_path), MULTI_QUERY_DIR)
        if not osp.isdir(boxes_dir):
            raise FileNotFoundError(
                f"{NAME}: '{boxes_dir}' does not exist; the multiple-query protocol needs "
                f"Market-1501's {MULTI_QUERY_DIR}/ folder next to query/")
        wanted = pid_camera_pairs(super().process_dir(dir_path, relabel))
        boxes = [item for item in super().process_dir(boxes_dir, relabel)
                 if (item[1], item[2]) in wanted]
        missing = wanted - pid_camera_pairs(boxes)
        if missing:
            raise ValueError(f"{NAME}: {len(missing)} query (pid, camera) pairs have no image in "
                             f"'{boxes_dir}', e.g. {sorted(missing)[:3]}")
        return boxes
