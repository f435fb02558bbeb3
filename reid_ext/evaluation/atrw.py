"""The ATRW plain Re-ID protocol (CVWC 2019): single-camera and cross-camera queries.

Every test image whose ground-truth record says ``query: "sing"`` (its tiger was seen by one
camera) or ``"multi"`` (seen by several) is a query; its answer is every *other* test image,
ranked by distance. For one query a gallery image is **junk**, i.e. dropped from the ranking,
when it shows the same tiger in the same video (``frame[0:2]`` equal) within 3 frames
(``|frame[2] difference| <= 3``), or when its entity is ``-1`` (unknown tiger). On what is
left: AP (non-interpolated, as sklearn's ``average_precision_score`` on the ranking), top-1
and top-5; a query without any valid true match scores AP 0 and misses every top-k, as in the
challenge's script. mAP and top-k are averaged over the single-camera and the cross-camera
queries separately (the challenge's full "private" split; its public half-split is not used).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

QUERY_KINDS = {"sing": "single_cam", "multi": "cross_cam"}
JUNK_FRAMES = 3


@dataclass(frozen=True)
class PlainRecord:
    """One test image of ``gt_test_plain.json``."""

    imgid: int
    entityid: int
    frame: tuple[int, int, int]
    query: str  # "sing", "multi" or anything else (gallery only)


def junk_mask(query: PlainRecord, gallery: Sequence[PlainRecord]) -> np.ndarray:
    """``[G]`` bool: gallery images ignored for ``query`` (near-duplicate frames, entity -1)."""
    eids = np.array([g.entityid for g in gallery])
    frames = np.array([g.frame for g in gallery], dtype=np.int64).reshape(len(gallery), 3)
    same_video = (frames[:, 0] == query.frame[0]) & (frames[:, 1] == query.frame[1])
    near = np.abs(frames[:, 2] - query.frame[2]) <= JUNK_FRAMES
    return ((eids == query.entityid) & same_video & near) | (eids == -1)


def average_precision(matches: np.ndarray) -> float:
    """Non-interpolated AP of a ranked 0/1 ``matches`` vector (0 when it has no match)."""
    hits = np.flatnonzero(matches)
    if hits.size == 0:
        return 0.0
    return float(np.mean(np.arange(1, hits.size + 1) / (hits + 1)))


def evaluate_plain(
    distmat: np.ndarray,
    query_ids: Sequence[int],
    gallery_ids: Sequence[int],
    records: Mapping[int, PlainRecord],
    topk: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """Plain-protocol metrics of a ``[Q, G]`` distance matrix between test image ids.

    ``records`` maps every image id to its ground truth. Queries whose record is neither
    ``sing`` nor ``multi`` are skipped; the query's own image is removed from its gallery.
    Returns ``mAP(single_cam)``, ``top-1(single_cam)``, ``top-5(single_cam)`` and the same for
    ``cross_cam`` (NaN where there is no query of that kind), plus the query counts.
    """
    distmat = np.asarray(distmat, dtype=np.float64)
    if distmat.shape != (len(query_ids), len(gallery_ids)):
        raise ValueError(f"distmat is {distmat.shape}, expected ({len(query_ids)}, "
                         f"{len(gallery_ids)}) for the query and gallery ids")
    unknown = [i for i in (*query_ids, *gallery_ids) if i not in records]
    if unknown:
        raise KeyError(f"image ids {unknown[:5]} have no ground-truth record")
    gallery = [records[i] for i in gallery_ids]
    g_ids = np.asarray(gallery_ids)
    g_eids = np.array([g.entityid for g in gallery])
    aps: dict[str, list[float]] = {kind: [] for kind in QUERY_KINDS}
    hits: dict[str, list[np.ndarray]] = {kind: [] for kind in QUERY_KINDS}
    for row, qid in enumerate(query_ids):
        query = records[qid]
        if query.query not in QUERY_KINDS:
            continue
        keep = ~junk_mask(query, gallery) & (g_ids != qid)
        order = np.argsort(distmat[row][keep], kind="stable")
        matches = (g_eids[keep] == query.entityid)[order]
        aps[query.query].append(average_precision(matches))
        first = np.flatnonzero(matches)
        hit = np.array([first.size > 0 and first[0] < k for k in topk])
        hits[query.query].append(hit)
    result: dict[str, float] = {}
    for kind, label in QUERY_KINDS.items():
        n = len(aps[kind])
        result[f"mAP({label})"] = float(np.mean(aps[kind])) if n else float("nan")
        rate = np.mean(hits[kind], axis=0) if n else np.full(len(topk), np.nan)
        for k, value in zip(topk, rate):
            result[f"top-{k}({label})"] = float(value)
        result[f"num_queries({label})"] = n
    return result
