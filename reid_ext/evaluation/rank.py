"""CMC, mAP and mINP, vectorised and chunked, equal to torchreid's ``evaluate_rank``.

The host argsorts the whole q x g matrix and loops over queries in Python. Here queries go in
chunks and no argsort is needed: the rank of a correct match among the kept gallery items is
the number of kept non-matches closer than it plus the number of matches before it. With a
chunk's rows value-sorted (``np.sort``, a fraction of ``argsort``'s cost) that is a binary
search per match, minus the few removed items and matches below it. Rows where a non-match ties
a match distance exactly (or holding NaN/inf) are where the host's unstable sort decides the
order, so those rows, and the ``cuhk03`` protocol that needs the full order, are sorted with the
host's own ``np.argsort`` per row, which reproduces its order (same algorithm, same row).

``cuhk03`` samples one gallery image per identity ``num_repeats`` times per query exactly as the
host does with ``np.random.choice``: the same draws, consumed from the same legacy
``RandomState`` stream (the global one for ``seed=None``; ``RandomState(seed)`` otherwise, which
equals calling ``np.random.seed(seed)`` before the host's function).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from reid_ext.evaluation.neighbors import (
    as_numpy,
    as_tensor,
    check_metric,
    distance_chunks,
    rows_per_chunk,
)

PROTOCOLS = ("market", "cuhk03")
CUHK03_REPEATS = 10  # the host's num_repeats


@dataclass
class RankResult:
    """Ranking metrics over the valid queries (those with a correct match in the gallery)."""

    cmc: np.ndarray
    mAP: float  # noqa: N815 - the name every Re-ID paper and torchreid use
    mINP: float  # noqa: N815
    num_valid_queries: int
    num_skipped_queries: int

    def as_host_tuple(self) -> tuple[np.ndarray, float]:
        """``(cmc, mAP)``, what torchreid's ``evaluate_rank`` returns."""
        return self.cmc, self.mAP


def evaluate(
    distmat: np.ndarray | torch.Tensor | None = None,
    q_pids: np.ndarray | None = None,
    g_pids: np.ndarray | None = None,
    q_camids: np.ndarray | None = None,
    g_camids: np.ndarray | None = None,
    max_rank: int = 50,
    protocol: str = "market",
    *,
    qf: np.ndarray | torch.Tensor | None = None,
    gf: np.ndarray | torch.Tensor | None = None,
    metric: str = "euclidean",
    chunk_size: int | None = None,
    seed: int | None = None,
) -> RankResult:
    """Rank the gallery for each query and score it (CMC, mAP, mINP).

    Give either ``distmat`` [num_q, num_g] or features ``qf``/``gf`` (distances are then
    computed per query chunk with ``metric``, see :mod:`reid_ext.evaluation.neighbors`).
    ``protocol="market"`` drops gallery items with the query's identity *and* camera;
    ``"cuhk03"`` additionally samples one gallery image per identity (single-gallery-shot),
    ``seed`` choosing the legacy ``RandomState`` stream (``None``: the global one); its CMC
    has at most one rank per gallery identity, as in the host.
    ``chunk_size`` is the number of query rows per chunk (default: ~4M distances per chunk).
    mINP follows Ye et al. (TPAMI 2021): mean over queries of (#correct) / (rank of the
    hardest correct match).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{protocol}'; expected one of {', '.join(PROTOCOLS)}")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    num_q, num_g, chunks = _distance_source(distmat, qf, gf, metric, chunk_size)
    if num_q == 0 or num_g == 0:
        raise ValueError(f"need at least one query and one gallery item, got {num_q} x {num_g}")
    ids = _check_ids(q_pids, g_pids, q_camids, g_camids, num_q, num_g)
    length = max_rank
    if num_g < max_rank:
        length = num_g
        warnings.warn(
            f"number of gallery samples ({num_g}) is smaller than max_rank ({max_rank}); "
            f"CMC is truncated to {num_g} ranks, as in torchreid",
            stacklevel=2,
        )
    if protocol == "market":
        return _evaluate_market(chunks, ids, length)
    return _evaluate_cuhk03(chunks, ids, length, seed)


def pool_multi_query(
    features: np.ndarray | torch.Tensor,
    pids: np.ndarray,
    camids: np.ndarray,
    query_pids: np.ndarray | None = None,
    query_camids: np.ndarray | None = None,
    method: str = "mean",
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Multiple-query features for Market-1501: pool the images of one identity in one camera.

    ``features``/``pids``/``camids`` describe the multi-query set (Market's ``gt_query``
    images). With ``query_pids``/``query_camids`` the result has one pooled row per query, in
    query order (the Market-1501 protocol: each query is replaced by the pool of its
    identity's images in its camera); without them, one row per distinct (pid, camid), sorted.
    ``method`` is ``"mean"`` or ``"max"`` (element-wise). Returns ``(pooled, pids, camids)``.
    """
    if method not in ("mean", "max"):
        raise ValueError(f"unknown pooling method '{method}'; expected 'mean' or 'max'")
    feats = as_tensor(features, "features")
    pids, camids = np.asarray(pids).ravel(), np.asarray(camids).ravel()
    if not len(pids) == len(camids) == feats.shape[0]:
        raise ValueError(
            f"features ({feats.shape[0]} rows), pids ({len(pids)}) and camids ({len(camids)}) "
            "must have the same length"
        )
    keys, group = np.unique(np.stack([pids, camids], 1), axis=0, return_inverse=True)
    group = torch.from_numpy(group.ravel().astype(np.int64))
    pooled = feats.new_zeros((len(keys), feats.shape[1]))
    if method == "mean":
        pooled.index_add_(0, group, feats)
        pooled /= torch.bincount(group, minlength=len(keys)).unsqueeze(1).to(feats.dtype)
    else:
        index = group.unsqueeze(1).expand_as(feats)
        pooled = pooled.scatter_reduce(0, index, feats, reduce="amax", include_self=False)
    if query_pids is None and query_camids is None:
        return pooled, keys[:, 0].copy(), keys[:, 1].copy()
    if query_pids is None or query_camids is None:
        raise ValueError("give both query_pids and query_camids, or neither")
    wanted = np.stack([np.asarray(query_pids).ravel(), np.asarray(query_camids).ravel()], 1)
    rows = _find_rows(keys, wanted)
    missing = np.flatnonzero(rows < 0)
    if len(missing):
        first = tuple(int(v) for v in wanted[missing[0]])
        raise ValueError(
            f"{len(missing)} queries have no image of their (pid, camid) in the multi-query set, "
            f"e.g. query {int(missing[0])} with (pid, camid) = {first}"
        )
    return pooled[torch.from_numpy(rows)], wanted[:, 0].copy(), wanted[:, 1].copy()


# --- inputs ---------------------------------------------------------------------------------
def _distance_source(distmat, qf, gf, metric, chunk_size):
    """``(num_q, num_g, generator of (start, stop, distance rows as a tensor))``."""
    if distmat is not None:
        if qf is not None or gf is not None:
            raise ValueError("give either distmat or features (qf, gf), not both")
        array = as_numpy(distmat)
        if array.ndim != 2:
            raise ValueError(f"distmat must be 2-D [num_query, num_gallery], got {array.shape}")
        step = rows_per_chunk(array.shape[1], chunk_size)

        def from_matrix():
            for start in range(0, array.shape[0], step):
                stop = min(start + step, array.shape[0])
                yield start, stop, torch.from_numpy(np.ascontiguousarray(array[start:stop]))

        return array.shape[0], array.shape[1], from_matrix()
    if qf is None or gf is None:
        raise ValueError("give distmat, or both query features qf and gallery features gf")
    check_metric(metric)
    qt, gt = as_tensor(qf, "qf"), as_tensor(gf, "gf")
    return qt.shape[0], gt.shape[0], distance_chunks(qt, gt, metric, chunk_size)


def _check_ids(q_pids, g_pids, q_camids, g_camids, num_q, num_g):
    named = {"q_pids": q_pids, "g_pids": g_pids, "q_camids": q_camids, "g_camids": g_camids}
    expected = {"q_pids": num_q, "g_pids": num_g, "q_camids": num_q, "g_camids": num_g}
    out = {}
    for name, value in named.items():
        if value is None:
            raise ValueError(f"'{name}' is required")
        array = as_numpy(value).ravel()
        if len(array) != expected[name]:
            raise ValueError(
                f"'{name}' has {len(array)} entries but the distances have {expected[name]} "
                f"{'queries' if name.startswith('q') else 'gallery items'}"
            )
        out[name] = array
    return out


def _find_rows(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row of ``keys`` (sorted, unique) equal to each row of ``wanted``; -1 where absent."""
    lookup = {(int(a), int(b)): i for i, (a, b) in enumerate(keys.tolist())}
    return np.array([lookup.get((int(a), int(b)), -1) for a, b in wanted.tolist()], np.int64)


# --- per-chunk match ranks ------------------------------------------------------------------
class _GalleryIndex:
    """Gallery items grouped by identity, to list each query's same-identity items directly."""

    def __init__(self, g_pids: np.ndarray, g_cams: np.ndarray) -> None:
        self.order = np.argsort(g_pids, kind="stable")
        self.pids, self.starts, self.counts = np.unique(
            g_pids[self.order], return_index=True, return_counts=True
        )
        self.cams = g_cams

    def same_identity(self, q_pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, cols)``: every (query row, gallery column) pair sharing an identity."""
        slot = np.minimum(np.searchsorted(self.pids, q_pids), len(self.pids) - 1)
        counts = np.where(self.pids[slot] == q_pids, self.counts[slot], 0)
        rows = np.repeat(np.arange(len(q_pids)), counts)
        offsets = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        return rows, self.order[np.repeat(self.starts[slot], counts) + offsets]


def _sorted_per_row(rows: np.ndarray, values: np.ndarray, num_rows: int) -> np.ndarray:
    """``values`` grouped by ``rows`` into a [num_rows, max count] array, ascending, +inf padded."""
    counts = np.bincount(rows, minlength=num_rows)
    out = np.full((num_rows, int(counts.max(initial=0))), np.inf, dtype=values.dtype)
    order = np.lexsort((values, rows))
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    out[rows[order], slot] = values[order]
    return out


def _count_below(sorted_rows: np.ndarray, needles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, how many of ``sorted_rows`` are ``< needle`` and how many are ``== needle``."""
    below = np.zeros(needles.shape, np.int64)
    at_most = np.zeros(needles.shape, np.int64)
    if sorted_rows.shape[1] == 0:
        return below, at_most
    for row in range(len(needles)):  # a per-row binary search beats torch's batched one here
        below[row] = np.searchsorted(sorted_rows[row], needles[row], side="left")
        at_most[row] = np.searchsorted(sorted_rows[row], needles[row], side="right")
    return below, at_most - below


def _match_ranks_by_counting(dist, q_pids, q_cams, gallery):
    """0-based ranks (among kept items) of each query's correct matches, without argsort.

    A match's rank is (#kept non-matches closer) + (#matches before it). With the row's values
    sorted (``np.sort``, much cheaper than the host's ``argsort``) the closer count is a
    binary search minus the few removed items and matches below. Returns ``(ranks [c, M]
    padded, n_match [c], needs_host_sort [c])``; flagged rows (a non-match at exactly a
    match's distance, or a non-finite value) are left to :func:`_match_ranks_by_sorting`.
    """
    rows, cols = gallery.same_identity(q_pids)
    removed = gallery.cams[cols] == q_cams[rows]
    values = dist[rows, cols]
    matches = _sorted_per_row(rows[~removed], values[~removed], len(dist))
    n_match = np.bincount(rows[~removed], minlength=len(dist))
    if matches.shape[1] == 0:
        return matches.astype(np.int64), n_match, np.zeros(len(dist), bool)
    removed_values = _sorted_per_row(rows[removed], values[removed], len(dist))
    row_sorted = np.sort(dist, axis=1)
    all_below, all_equal = _count_below(row_sorted, matches)
    match_below, match_equal = _count_below(matches, matches)
    removed_below, removed_equal = _count_below(removed_values, matches)
    present = np.arange(matches.shape[1])[None, :] < n_match[:, None]
    tied = present & (all_equal > match_equal + removed_equal)
    non_finite = ~(np.isfinite(row_sorted[:, 0]) & np.isfinite(row_sorted[:, -1]))
    needs_host_sort = tied.any(1) | non_finite
    closer_non_matches = all_below - match_below - removed_below
    return closer_non_matches + np.arange(matches.shape[1]), n_match, needs_host_sort


def _host_order(dist_rows: np.ndarray, q_pids, q_cams, g_pids, g_cams):
    """The host's per-row sort and filtering: ``(order, removed, match)``, all [r, g]."""
    order = np.argsort(dist_rows, axis=1)  # same algorithm and ties as the host's
    sorted_pids = g_pids[order]
    same_pid = sorted_pids == q_pids[:, None]
    removed = same_pid & (g_cams[order] == q_cams[:, None])
    return order, removed, same_pid & ~removed


def _match_ranks_by_sorting(dist_rows, q_pids, q_cams, g_pids, g_cams, width):
    """As :func:`_match_ranks_by_counting`, by the host's sort (exact under ties)."""
    _, removed, match = _host_order(dist_rows, q_pids, q_cams, g_pids, g_cams)
    kept_position = np.cumsum(~removed, axis=1) - 1
    rows, cols = np.nonzero(match)
    n_match = np.bincount(rows, minlength=len(dist_rows))
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(n_match) - n_match, n_match)
    ranks = np.zeros((len(dist_rows), max(width, int(n_match.max(initial=0)))), np.int64)
    ranks[rows, slot] = kept_position[rows, cols]
    return ranks, n_match


def _query_scores(ranks: np.ndarray, n_match: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AP and INP of rows with >= 1 match, from the 0-based ranks of their matches."""
    slots = np.arange(ranks.shape[1])
    present = slots[None, :] < n_match[:, None]
    precision = np.where(present, (slots + 1.0) / (ranks + 1.0), 0.0)
    ap = precision.sum(1) / n_match
    hardest = ranks[np.arange(len(ranks)), n_match - 1]
    return ap, n_match / (hardest + 1.0)


# --- protocols -------------------------------------------------------------------------------
class _Accumulator:
    """Per-query CMC rows, APs and INPs of the valid queries, and the skipped count."""

    def __init__(self) -> None:
        self.cmc_rows: list[np.ndarray] = []
        self.ap: list[np.ndarray] = []
        self.inp: list[np.ndarray] = []
        self.skipped = 0

    def add(self, cmc_rows: np.ndarray, ap: np.ndarray, inp: np.ndarray) -> None:
        self.cmc_rows.append(cmc_rows.astype(np.float32))
        self.ap.append(ap)
        self.inp.append(inp)

    def result(self) -> RankResult:
        num_valid = sum(len(a) for a in self.ap)
        if num_valid == 0:
            raise ValueError(
                "no query has a correct match in the gallery (after removing same-identity "
                "same-camera images): all query identities are missing from the gallery"
            )
        # the host's arithmetic: float32 rows summed in order, divided by a python float
        cmc = np.concatenate(self.cmc_rows).sum(0) / float(num_valid)
        return RankResult(
            cmc=cmc,
            mAP=float(np.mean(np.concatenate(self.ap))),
            mINP=float(np.mean(np.concatenate(self.inp))),
            num_valid_queries=num_valid,
            num_skipped_queries=self.skipped,
        )


def _evaluate_market(chunks, ids, length: int) -> RankResult:
    g_pids, g_cams = ids["g_pids"], ids["g_camids"]
    gallery = _GalleryIndex(g_pids, g_cams)
    acc = _Accumulator()
    for start, stop, dist in chunks:
        dist = _comparable(dist)
        qp, qc = ids["q_pids"][start:stop], ids["q_camids"][start:stop]
        ranks, n_match, needs_sort = _match_ranks_by_counting(dist, qp, qc, gallery)
        redo = np.flatnonzero(needs_sort)
        if len(redo):
            sorted_ranks, _ = _match_ranks_by_sorting(
                dist[redo], qp[redo], qc[redo], g_pids, g_cams, ranks.shape[1]
            )
            ranks[redo] = sorted_ranks[:, : ranks.shape[1]]
        valid = n_match > 0
        acc.skipped += int((~valid).sum())
        ranks, n_match = ranks[valid], n_match[valid]
        if not len(n_match):
            continue
        ap, inp = _query_scores(ranks, n_match)
        acc.add(np.arange(length)[None, :] >= ranks[:, :1], ap, inp)
    return acc.result()


def _comparable(dist: torch.Tensor) -> np.ndarray:
    """The chunk as a numpy array whose order and ties are the host's: integers go to float64
    (exact below 2**53), half precision to float32 (exact)."""
    array = dist.numpy()
    if not np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float64)
    if array.dtype.itemsize < 4:
        return array.astype(np.float32)
    return array


def _evaluate_cuhk03(chunks, ids, length: int, seed: int | None) -> RankResult:
    g_pids, g_cams = ids["g_pids"], ids["g_camids"]
    sampler = HostChoiceStream(seed)
    acc = _Accumulator()
    try:
        for start, stop, dist in chunks:
            qp, qc = ids["q_pids"][start:stop], ids["q_camids"][start:stop]
            order, removed, match = _host_order(_comparable(dist), qp, qc, g_pids, g_cams)
            for row in range(len(order)):
                kept = order[row][~removed[row]]
                raw = match[row][~removed[row]]
                if not raw.any():
                    acc.skipped += 1
                    continue
                cmc = _single_gallery_shot_cmc(g_pids[kept], qp[row], length, sampler)
                ranks = np.flatnonzero(raw)[None, :]
                ap, inp = _query_scores(ranks, np.array([ranks.shape[1]]))
                acc.add(cmc[None, :], ap, inp)
    finally:
        sampler.commit()
    return acc.result()


def _single_gallery_shot_cmc(kept_pids, q_pid, length, sampler) -> np.ndarray:
    """One query's CMC averaged over the host's repeats of one-image-per-identity sampling."""
    codes_sorted, first_seen, code = np.unique(kept_pids, return_index=True, return_inverse=True)
    code = code.ravel()
    visit = np.argsort(first_seen)  # the host's dict order: first appearance in the ranking
    counts = np.bincount(code)
    by_identity = np.argsort(code, kind="stable")  # positions grouped by identity, ascending
    starts = np.cumsum(counts) - counts
    draws = sampler.choose(np.tile(counts[visit], CUHK03_REPEATS)).reshape(CUHK03_REPEATS, -1)
    chosen = by_identity[starts[visit][None, :] + draws]  # [repeats, identities] positions
    own = int(np.flatnonzero(codes_sorted[visit] == q_pid)[0])
    rank = (chosen < chosen[:, own : own + 1]).sum(1)
    width = min(length, len(visit))
    hits = (np.arange(width)[None, :] >= rank[:, None]).sum(0)
    return hits.astype(np.float32) / CUHK03_REPEATS


class HostChoiceStream:
    """``np.random.choice(list_of_n)`` draws, reproduced in bulk from a legacy ``RandomState``.

    Legacy ``choice`` of an n-list is ``randint(0, n)``: no draw for n == 1, otherwise 32-bit
    MT19937 outputs masked to the next power of two, rejected until < n. Raw outputs are read
    ahead from a copy of the state; :meth:`commit` then advances the real state by exactly the
    number consumed, so the stream ends where the host's loop would leave it.
    """

    BLOCK = 1 << 16

    def __init__(self, seed: int | None) -> None:
        self.state_owner = np.random if seed is None else np.random.RandomState(seed)
        self._reader = np.random.RandomState()
        self._sync()

    def _sync(self) -> None:
        """Read ahead from the owner's current state, nothing consumed yet."""
        self._reader.set_state(self.state_owner.get_state())
        self._raw: list[int] = []
        self._pos = 0
        self._consumed = 0

    def choose(self, sizes: np.ndarray) -> np.ndarray:
        """One ``np.random.choice`` of an ``n``-element list for each ``n`` in ``sizes``."""
        out = np.zeros(len(sizes), np.int64)
        masks = (1 << np.ceil(np.log2(np.maximum(sizes, 1))).astype(np.int64)) - 1
        raw, pos = self._raw, self._pos
        for i, (n, mask) in enumerate(zip(sizes.tolist(), masks.tolist())):
            if n == 1:
                continue
            while True:
                if pos == len(raw):
                    self._consumed += pos
                    raw = self._reader.randint(0, 2**32, size=self.BLOCK, dtype=np.uint32).tolist()
                    pos = 0
                value = raw[pos] & mask
                pos += 1
                if value < n:
                    break
            out[i] = value
        self._raw, self._pos = raw, pos
        return out

    def commit(self) -> None:
        """Advance the real stream by the draws consumed so far."""
        used = self._consumed + self._pos
        if used:
            self.state_owner.randint(0, 2**32, size=used, dtype=np.uint32)
        self._sync()
