"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) without any N x N dense matrix.

Same result as torchreid's ``re_ranking(q_g, q_q, g_g, k1, k2, lambda_value)`` (max abs
difference ~1e-7), at a fraction of its time and memory:

* the host's original distance is ``M[i, j] = float32(D[j, i]**2) / max_k float32(D[k, i]**2)``
  over the stacked (query + gallery) matrix ``D``; rows of ``M`` are made chunk by chunk
  (a row of ``M`` is a column of ``D``) and only their ``max(k1 + 1, k2)`` nearest
  neighbours, their maxima and the query-to-gallery block are kept;
* the neighbour lists are the host's: ``argsort`` only matters through the *sets* of the first
  ``k1 + 1``, ``round(k1 / 2) + 1`` and ``k2`` entries; a ``topk`` gives those sets exactly
  unless two values tie across a boundary, and those rows are sorted with the host's own
  ``np.argsort`` (this host version works in float32 throughout; no float16 step to mimic);
* k-reciprocal sets, the 2/3 expansion rule, query expansion and the Jaccard distance are
  sparse (scipy.sparse), the Jaccard overlap ``sum_k min(V[i, k], V[j, k])`` being summed over
  (query, shared neighbour, gallery) triples in bounded chunks.

:func:`k_reciprocal_rerank_features` starts from features instead: distances are computed per
row chunk by matrix products, so galleries of 100k+ fit in a few GiB. Its
original distance is the matrix version's with ``D = pairwise_distance_squared(all, all, metric)``
(``metric="euclidean"`` is torchreid's squared euclidean distance, what the host's engine feeds
``re_ranking``); as ``D`` is then symmetric, the per-column normalisation is per row.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from reid_ext.evaluation.neighbors import (
    DEFAULT_BLOCK_ELEMENTS,
    PRODUCT_BLOCK_ELEMENTS,
    PRODUCT_MIN_ROWS,
    DistanceTo,
    as_numpy,
    as_tensor,
    check_metric,
    faiss_available,
    rows_per_chunk,
)

# Triples per Jaccard chunk: small enough that the scatter target and temporaries stay in
# cache (measured ~2x faster than 8M-triple chunks), large enough to amortise numpy calls.
TRIPLES_PER_CHUNK = 1 << 20
# Approximate neighbours (``approximate=True``): IVF lists, lists probed, points sampled for
# each row's maximum distance.
APPROX_NLIST = 1024
APPROX_NPROBE = 32
APPROX_MAX_SAMPLE = 8192
# Rows/columns of one symmetric distance tile (4096^2 float32 = 64 MiB per tile).
SYMMETRIC_TILE = 4096


def k_reciprocal_rerank(
    q_g_dist: np.ndarray | torch.Tensor,
    q_q_dist: np.ndarray | torch.Tensor,
    g_g_dist: np.ndarray | torch.Tensor,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    *,
    chunk_size: int | None = None,
) -> np.ndarray:
    """Re-ranked query-gallery distances [num_q, num_g] (float32), as torchreid's ``re_ranking``.

    ``chunk_size`` is the number of rows of the stacked matrix handled at a time (default:
    ~4M distances per chunk). Inputs must be finite.
    """
    source = _MatrixDistances(q_g_dist, q_q_dist, g_g_dist)
    return _rerank(source, k1, k2, lambda_value, chunk_size)


def k_reciprocal_rerank_features(
    qf: np.ndarray | torch.Tensor,
    gf: np.ndarray | torch.Tensor,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    *,
    metric: str = "euclidean",
    chunk_size: int | None = None,
    approximate: bool = False,
) -> np.ndarray:
    """Re-ranked distances from query/gallery features, never forming the N x N matrix.

    ``approximate=True`` (needs faiss) trades exactness for speed at large galleries: the
    neighbour lists come from an inverted-file index (:data:`APPROX_NLIST` lists,
    :data:`APPROX_NPROBE` probed) and each row's maximum distance (the host's normalisation)
    from :data:`APPROX_MAX_SAMPLE` sampled points; docs/benchmarks.md gives its measured loss.

    Equals ``k_reciprocal_rerank(D_qg, D_qq, D_gg)`` with ``D_xy = pairwise_distance_squared(x, y,
    metric)`` (up to float rounding of the distances). Neighbours come from one chunked pass
    of matrix products + ``topk``: the host's normalisation needs every row's maximum, i.e. a
    full scan of each row anyway, so an index (faiss) would only add a second scan.
    """
    check_metric(metric)
    source = _FeatureDistances(qf, gf, metric)
    if approximate:
        source.approximate = True
    return _rerank(source, k1, k2, lambda_value, chunk_size)


# --- where rows of the original distance come from -------------------------------------------
class _MatrixDistances:
    """Rows of ``D^T`` (the host's row i of M is column i of D) from the three blocks."""

    def __init__(self, q_g, q_q, g_g) -> None:
        self.q_g, self.q_q, self.g_g = as_numpy(q_g), as_numpy(q_q), as_numpy(g_g)
        num_q, num_g = self.q_g.shape if self.q_g.ndim == 2 else (-1, -1)
        for name, array, shape in (
            ("q_g_dist", self.q_g, (num_q, num_g)),
            ("q_q_dist", self.q_q, (num_q, num_q)),
            ("g_g_dist", self.g_g, (num_g, num_g)),
        ):
            if array.ndim != 2 or (num_q >= 0 and array.shape != shape):
                raise ValueError(f"'{name}' must have shape {shape}, got {array.shape}")
        self.num_query, self.num_all = num_q, num_q + num_g
        self.block_budget = (DEFAULT_BLOCK_ELEMENTS, 1)
        # np.concatenate in the host promotes the three blocks to one dtype before squaring;
        # integers are squared exactly in float64 instead
        self.dtype = np.result_type(self.q_g, self.q_q, self.g_g)
        if not np.issubdtype(self.dtype, np.floating):
            self.dtype = np.dtype(np.float64)

    def rows(self, start: int, stop: int) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
        """``(start, stop, |D^T| rows, their maxima)`` for ``start:stop``, split at the query
        border; row i of the host's M is column i of D, so the blocks are transposed copies."""
        q = self.num_query
        if start < q:
            end = min(stop, q)
            block = np.empty((end - start, self.num_all), self.dtype)
            peak = _abs_transposed(block[:, :q], self.q_q[:, start:end])
            np.abs(self.q_g[start:end], out=block[:, q:])
            peak = np.maximum(peak, block[:, q:].max(1, initial=0))
            yield start, end, torch.from_numpy(block), torch.from_numpy(peak)
        if stop > q:
            begin = max(start, q)
            cols = slice(begin - q, stop - q)
            block = np.empty((stop - begin, self.num_all), self.dtype)
            peak = _abs_transposed(block[:, :q], self.q_g[:, cols])
            peak = np.maximum(peak, _abs_transposed(block[:, q:], self.g_g[:, cols]))
            yield begin, stop, torch.from_numpy(block), torch.from_numpy(peak)

    def pair_values(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """The host's ``float32(D[j, i] ** 2)`` at index arrays ``i``, ``j``."""
        q = self.num_query
        out = np.empty(len(i), self.dtype)
        for j_query, i_query, read in (
            (True, True, lambda jj, ii: self.q_q[jj, ii]),
            (True, False, lambda jj, ii: self.q_g[jj, ii - q]),
            (False, True, lambda jj, ii: self.q_g[ii, jj - q]),
            (False, False, lambda jj, ii: self.g_g[jj - q, ii - q]),
        ):
            mask = ((j < q) == j_query) & ((i < q) == i_query)
            out[mask] = read(j[mask], i[mask])
        return np.square(out).astype(np.float32)


def _abs_transposed(dst: np.ndarray, src: np.ndarray, tile: int = 128) -> np.ndarray:
    """``dst[...] = |src.T|``; returns the row maxima of ``dst``.

    Works in tiles of ``tile`` source rows: a column slice of a big C-order matrix transposed
    in one go misses the cache on every element (~5x slower), and each tile's maximum is taken
    while the tile is still in cache.
    """
    peak = np.zeros(dst.shape[0], dst.dtype)
    for start in range(0, src.shape[0], tile):
        part = dst[:, start : start + tile]
        np.abs(src[start : start + tile].T, out=part)
        np.maximum(peak, part.max(1), out=peak)
    return peak


class _FeatureDistances:
    """Rows of ``D[i, j] = d(x_i, x_j)`` computed from features per chunk (D is symmetric)."""

    def __init__(self, qf, gf, metric: str) -> None:
        qt, gt = as_tensor(qf, "qf").float(), as_tensor(gf, "gf").float()
        if qt.shape[1] != gt.shape[1]:
            raise ValueError(f"qf has {qt.shape[1]} feature dims but gf has {gt.shape[1]}")
        self.features = torch.cat([qt, gt])
        self.metric = metric
        self.to_all = DistanceTo(self.features, metric)
        self.block_budget = (PRODUCT_BLOCK_ELEMENTS, PRODUCT_MIN_ROWS)
        self.num_query, self.num_all = qt.shape[0], self.features.shape[0]
        self.approximate = False

    def rows(self, start: int, stop: int) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
        block = self.to_all(self.features[start:stop]).abs_()
        yield start, stop, block, block.amax(1)

    def pair_values(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        out = np.empty(len(i), np.float32)
        step = 1 << 15  # pairs per batch: two [step, dim] gathers
        for s in range(0, len(i), step):
            a = self.features[torch.from_numpy(i[s : s + step])]
            b = self.features[torch.from_numpy(j[s : s + step])]
            out[s : s + step] = _rowwise_distance(a, b, self.metric).square_().numpy()
        return out


def _rowwise_distance(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    """``pairwise_distance_squared`` of matching rows of ``a`` and ``b`` (same formula)."""
    if metric == "cosine":
        a = torch.nn.functional.normalize(a, dim=1)
        b = torch.nn.functional.normalize(b, dim=1)
        return 1 - (a * b).sum(1)
    dist = a.pow(2).sum(1) + b.pow(2).sum(1) - 2 * (a * b).sum(1)
    return dist.clamp_(min=0).sqrt_() if metric == "l2" else dist


# --- the algorithm ----------------------------------------------------------------------------
def _check_parameters(k1: int, k2: int, lambda_value: float) -> None:
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value}")


def _rerank(source, k1: int, k2: int, lambda_value: float, chunk_size: int | None) -> np.ndarray:
    _check_parameters(k1, k2, lambda_value)
    weights, original_qg = _reciprocal_weights(source, k1, k2, chunk_size)
    overlap_out = original_qg  # reuse the buffer: final = (1 - l) * jaccard + l * original
    _jaccard_blend(weights, source.num_query, lambda_value, overlap_out)
    return overlap_out


def k_reciprocal_weights_features(
    features: np.ndarray | torch.Tensor,
    k1: int = 20,
    k2: int = 6,
    *,
    metric: str = "euclidean",
    chunk_size: int | None = None,
) -> sp.csr_matrix:
    """The sparse weights ``V [N, N]`` of the re-ranking among ``features`` themselves.

    Row ``i`` holds the Gaussian-weighted expanded k-reciprocal set of point ``i`` after the
    ``k2`` query expansion; the Jaccard distance of ``i`` and ``j`` is
    ``1 - o / (2 - o)`` with ``o = sum_k min(V[i, k], V[j, k])``. These are the weights
    :func:`k_reciprocal_rerank_features` uses with every point both a query and a gallery item
    (used by ``reid_ext.uda`` to cluster a set on its own Jaccard distances).
    """
    check_metric(metric)
    _check_parameters(k1, k2, 0.0)
    feats = as_tensor(features, "features").float()
    weights, _ = _reciprocal_weights(_FeatureDistances(feats[:0], feats, metric), k1, k2,
                                     chunk_size)
    return weights


def _reciprocal_weights(source, k1: int, k2: int, chunk_size: int | None
                        ) -> tuple[sp.csr_matrix, np.ndarray]:
    """``(V as csr, M's query-gallery block)`` for ``source``."""
    n = source.num_all
    half = int(np.around(k1 / 2.0)) + 1  # the host's expression, round-half-even included
    if not isinstance(source, _FeatureDistances):
        lists = _host_neighbour_lists
    elif source.approximate:
        lists = _approximate_neighbour_lists
    else:
        lists = _symmetric_neighbour_lists
    neighbours, row_max, original_qg = lists(source, (k1 + 1, half, k2), chunk_size)
    forward = _membership(neighbours, k1 + 1, n)
    reciprocal = forward.multiply(forward.T).tocsr()
    half_forward = _membership(neighbours, half, n)
    half_reciprocal = half_forward.multiply(half_forward.T).tocsr()
    expansion = _expand(reciprocal, half_reciprocal)
    weights = _gaussian_weights(expansion, source, row_max)
    if k2 != 1:
        weights = (_membership(neighbours, k2, n) @ weights) / min(k2, n)
    return weights.tocsr(), original_qg


def _host_neighbour_lists(source, boundaries, chunk_size):
    """Each row's ``max(boundaries)`` nearest columns of the host's ``M``, as sets its argsort
    would give at every boundary (ties across a boundary: that row goes through np.argsort).

    Returns ``(neighbours [N, K] int64, row maxima [N] float32, M's query-gallery block)``.
    """
    n, q = source.num_all, source.num_query
    width = min(max(boundaries), n)
    checked = [b for b in set(boundaries) if b < n]  # boundaries where a tie could split a set
    take = min(width + 1, n)
    neighbours = np.empty((n, width), np.int64)
    row_max = np.empty(n, np.float32)
    original_qg = np.empty((q, n - q), np.float32)
    step = rows_per_chunk(n, chunk_size, *source.block_budget)
    spans = [(a, min(a + step, n)) for a in range(0, n, step)]
    for blocks in _prefetched(spans, lambda span: list(source.rows(*span))):
        for start, stop, dist, dist_max in blocks:
            # |D| orders a row as the host's float32(D**2) does (rounding of squares is
            # monotone); squares it merges into ties show up in the check below.
            peak = _square32(dist_max)
            values, index = torch.topk(dist, take, 1, largest=False, sorted=True)
            scaled = _square32(values) / peak.unsqueeze(1)
            tied = torch.zeros(stop - start, dtype=torch.bool)
            for b in checked:
                tied |= scaled[:, b - 1] == scaled[:, b]
            index = index[:, :width].numpy().copy()
            for r in torch.nonzero(tied).flatten().tolist():
                row = (_square32(dist[r]) / peak[r]).numpy()
                index[r] = np.argsort(row)[:width]  # the host's own ordering of this row
            neighbours[start:stop] = index
            row_max[start:stop] = peak.numpy()
            if start < q:  # keep M's query-gallery block: it is the output's other term
                end = min(stop, q)
                target = torch.from_numpy(original_qg[start:end])
                if dist.dtype == torch.float32:
                    torch.square(dist[: end - start, q:], out=target)
                else:
                    target.copy_(_square32(dist[: end - start, q:]))
                target.div_(peak[: end - start].unsqueeze(1))
    return neighbours, row_max, original_qg


def _symmetric_neighbour_lists(source: _FeatureDistances, boundaries, chunk_size):
    """:func:`_host_neighbour_lists` for features, computing each distance block once.

    ``D`` is symmetric, so tile (a, b) with a < b serves rows a (its rows) and rows b (its
    columns): half the matrix products of the row-by-row pass, which dominate at 100k. The
    diagonal tiles come first and give every row a sorted top list; an off-diagonal tile then
    only contributes its entries below a row's current last kept value (a comparison and a
    ``nonzero`` instead of a ``topk`` over the tile and a transpose). Each row also keeps a
    running maximum of ``|D|``. Rows whose final list has a tie at a set boundary are
    recomputed whole and ordered by ``np.argsort``, as in the row pass.
    """
    n, q = source.num_all, source.num_query
    width = min(max(boundaries), n)
    checked = [b for b in set(boundaries) if b < n]
    take = min(width + 1, n)
    tile = int(chunk_size) if chunk_size else SYMMETRIC_TILE
    best_vals = torch.full((n, take), float("inf"))
    best_idx = torch.zeros((n, take), dtype=torch.int64)
    abs_max = torch.zeros(n)
    feats = source.features
    spans = [(a, min(a + tile, n)) for a in range(0, n, tile)]
    for a0, a1 in spans:
        block = DistanceTo(feats[a0:a1], source.metric)(feats[a0:a1]).abs_()
        _merge_top(best_vals, best_idx, block, a0, a0, take)
        abs_max[a0:a1] = block.amax(1)
    for i, (a0, a1) in enumerate(spans):
        to_rows = DistanceTo(feats[a0:a1], source.metric)
        for b0, b1 in spans[i + 1:]:
            block = to_rows(feats[b0:b1]).abs_()  # [b rows, a rows] = D[b, a]
            torch.maximum(abs_max[b0:b1], block.amax(1), out=abs_max[b0:b1])
            torch.maximum(abs_max[a0:a1], block.amax(0), out=abs_max[a0:a1])
            _merge_below(best_vals, best_idx, block, b0, a0, take, transposed=False)
            _merge_below(best_vals, best_idx, block, a0, b0, take, transposed=True)
            del block
    peak = _square32(abs_max)
    scaled = _square32(best_vals) / peak.unsqueeze(1)
    tied = torch.zeros(n, dtype=torch.bool)
    for b in checked:
        tied |= scaled[:, b - 1] == scaled[:, b]
    neighbours = best_idx[:, :width].numpy().copy()
    for r in torch.nonzero(tied).flatten().tolist():
        row = (_square32(source.to_all(feats[r : r + 1]).abs_()[0]) / peak[r]).numpy()
        neighbours[r] = np.argsort(row)[:width]  # the host's own ordering of this row
    original_qg = np.empty((q, n - q), np.float32)
    step = rows_per_chunk(n, None, *source.block_budget)
    to_gallery = DistanceTo(feats[q:], source.metric)
    for start in range(0, q, step):
        stop = min(start + step, q)
        target = torch.from_numpy(original_qg[start:stop])
        torch.square(to_gallery(feats[start:stop]), out=target)
        target.div_(peak[start:stop].unsqueeze(1))
    return neighbours, peak.numpy(), original_qg


def _merge_below(best_vals: torch.Tensor, best_idx: torch.Tensor, block: torch.Tensor,
                 row0: int, col0: int, take: int, transposed: bool) -> None:
    """Fold the entries of ``block`` (or of its transpose) that are below their row's last
    kept value into the running top lists; rows ``row0:``, columns ``col0:``.

    Entries equal to the last kept value are not needed: the list already holds ``take``
    values <= it, and which of several equal values is kept only matters at a tie, which the
    caller resolves with the host's argsort.
    """
    num_rows = block.shape[1] if transposed else block.shape[0]
    last = best_vals[row0 : row0 + num_rows, -1]
    mask = block < (last.unsqueeze(0) if transposed else last.unsqueeze(1))
    hits = torch.nonzero(mask)
    if hits.numel() == 0:
        return
    if transposed:
        rows, cols = hits[:, 1], hits[:, 0]
        values = block[cols, rows]
    else:
        rows, cols = hits[:, 0], hits[:, 1]
        values = block[rows, cols]
    # pack each touched row's candidates into a padded [R, width] matrix, then one topk
    order = torch.argsort(rows, stable=True)
    rows, cols, values = rows[order], cols[order], values[order]
    touched, counts = torch.unique_consecutive(rows, return_counts=True)
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(rows)) - torch.repeat_interleave(first, counts)
    slot_row = torch.repeat_interleave(torch.arange(len(touched)), counts)
    extra = int(counts.max())
    pad_vals = torch.full((len(touched), extra), float("inf"))
    pad_idx = torch.zeros((len(touched), extra), dtype=torch.int64)
    pad_vals[slot_row, slot] = values
    pad_idx[slot_row, slot] = cols + col0
    target = touched + row0
    merged_vals = torch.cat([best_vals[target], pad_vals], 1)
    merged_idx = torch.cat([best_idx[target], pad_idx], 1)
    merged_vals, pick = torch.topk(merged_vals, take, 1, largest=False, sorted=True)
    best_vals[target] = merged_vals
    best_idx[target] = torch.gather(merged_idx, 1, pick)


def _approximate_neighbour_lists(source: _FeatureDistances, boundaries, chunk_size):
    """Approximate :func:`_symmetric_neighbour_lists`: faiss IVF neighbours, sampled maxima."""
    if not faiss_available():
        raise ImportError("approximate re-ranking needs faiss-cpu: pip install 'reid-ext[faiss]'")
    import faiss

    n, q = source.num_all, source.num_query
    width = min(max(boundaries), n)
    feats = source.features
    data = feats.numpy()
    if source.metric == "cosine":  # |a - b|^2 = 2 - 2 cos on unit vectors: same order
        data = torch.nn.functional.normalize(feats, dim=1).numpy()
    data = np.ascontiguousarray(data, dtype=np.float32)
    nlist = max(1, min(APPROX_NLIST, n // 39))  # faiss wants >= 39 training points per list
    quantizer = faiss.IndexFlatL2(data.shape[1])
    index = faiss.IndexIVFFlat(quantizer, data.shape[1], nlist)
    index.cp.seed = 1234
    index.train(data)
    index.add(data)
    index.nprobe = min(APPROX_NPROBE, nlist)
    _, found = index.search(data, width)
    missing = found < 0  # too few points in the probed lists: fill from an exact row
    for r in np.flatnonzero(missing.any(1)).tolist():
        row = source.to_all(feats[r : r + 1]).abs_()[0]
        found[r] = torch.topk(row, width, largest=False, sorted=True).indices.numpy()
    rng = np.random.default_rng(0)
    sample = rng.choice(n, size=min(APPROX_MAX_SAMPLE, n), replace=False)
    to_sample = DistanceTo(feats[torch.from_numpy(np.sort(sample))], source.metric)
    abs_max = torch.empty(n)
    step = rows_per_chunk(len(sample), None, *source.block_budget)
    for start in range(0, n, step):
        stop = min(start + step, n)
        abs_max[start:stop] = to_sample(feats[start:stop]).abs_().amax(1)
    peak = _square32(abs_max)
    original_qg = np.empty((q, n - q), np.float32)
    to_gallery = DistanceTo(feats[q:], source.metric)
    step = rows_per_chunk(n, None, *source.block_budget)
    for start in range(0, q, step):
        stop = min(start + step, q)
        block = to_gallery(feats[start:stop])
        torch.maximum(peak[start:stop], _square32(block.abs().amax(1)), out=peak[start:stop])
        target = torch.from_numpy(original_qg[start:stop])
        torch.square(block, out=target)
        target.div_(peak[start:stop].unsqueeze(1))
    return found.astype(np.int64), peak.numpy(), original_qg


def _merge_top(best_vals: torch.Tensor, best_idx: torch.Tensor, block: torch.Tensor,
               row0: int, col0: int, take: int) -> None:
    """Fold ``block``'s (rows ``row0:``, columns ``col0:``) smallest values into the running
    sorted top lists of those rows."""
    rows = slice(row0, row0 + block.shape[0])
    k = min(take, block.shape[1])
    values, index = torch.topk(block, k, 1, largest=False, sorted=True)
    values = torch.cat([best_vals[rows], values], 1)
    index = torch.cat([best_idx[rows], index + col0], 1)
    values, order = torch.topk(values, take, 1, largest=False, sorted=True)
    best_vals[rows] = values
    best_idx[rows] = torch.gather(index, 1, order)


def _prefetched(items: list, build: Callable[[Any], Any]) -> Iterator[Any]:
    """``build(item)`` for each item, the next one built in a helper thread meanwhile.

    Building a block (numpy copies, or a matrix product) overlaps with ranking the previous
    one; at most two blocks exist at a time.
    """
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(build, items[0])
        for index in range(len(items)):
            ready = pending.result()
            if index + 1 < len(items):
                pending = pool.submit(build, items[index + 1])
            yield ready


def _square32(values: torch.Tensor) -> torch.Tensor:
    """The host's ``np.power(D, 2).astype(np.float32)``: square in D's dtype, then round."""
    return values.square().to(torch.float32)


def _membership(neighbours: np.ndarray, count: int, n: int) -> sp.csr_matrix:
    """Sparse 0/1 matrix with row i holding the first ``count`` neighbours of i."""
    count = min(count, neighbours.shape[1])
    cols = neighbours[:, :count].ravel()
    indptr = np.arange(0, n * count + 1, count)
    return sp.csr_matrix((np.ones(len(cols), np.float64), cols, indptr), shape=(n, n))


def _expand(reciprocal: sp.csr_matrix, half_reciprocal: sp.csr_matrix) -> sp.csr_matrix:
    """The host's expansion: add candidate c's half set when > 2/3 of it lies in i's set."""
    overlap = (reciprocal @ half_reciprocal.T).multiply(reciprocal).tocsr()
    overlap.eliminate_zeros()
    half_size = np.diff(half_reciprocal.indptr).astype(np.float64)
    rows = np.repeat(np.arange(overlap.shape[0]), np.diff(overlap.indptr))
    keep = overlap.data > 2.0 / 3 * half_size[overlap.indices]
    accepted = sp.csr_matrix(
        (np.ones(int(keep.sum())), (rows[keep], overlap.indices[keep])), shape=overlap.shape
    )
    expansion = (reciprocal + accepted @ half_reciprocal).tocsr()
    expansion.data[:] = 1.0
    return expansion


def _gaussian_weights(expansion: sp.csr_matrix, source, row_max: np.ndarray) -> sp.csr_matrix:
    """``V[i, j] = exp(-M[i, j]) / sum_j exp(-M[i, j])`` over i's expanded set."""
    rows = np.repeat(np.arange(expansion.shape[0]), np.diff(expansion.indptr))
    original = source.pair_values(rows, expansion.indices) / row_max[rows]  # float32, as host
    weight = np.exp(-original.astype(np.float64))
    total = np.bincount(rows, weights=weight, minlength=expansion.shape[0])
    return sp.csr_matrix((weight / total[rows], expansion.indices, expansion.indptr),
                         shape=expansion.shape)


def _jaccard_blend(weights: sp.csr_matrix, q: int, lambda_value: float, out: np.ndarray) -> None:
    """In place: ``out = (1 - lambda) * jaccard + lambda * out`` for the query-gallery block.

    ``overlap[i, j] = sum_k min(V[i, k], V[j, k])`` is summed over the triples (query i,
    neighbour k of i, gallery j having k) -- the host's inverted-index loop, vectorised.
    """
    queries = weights[:q]
    gallery = weights[q:].tocsc()
    column_size = np.diff(gallery.indptr)
    query_rows = np.repeat(np.arange(q), np.diff(queries.indptr))
    cost = np.bincount(query_rows, weights=column_size[queries.indices], minlength=q)
    max_rows = max(1, (1 << 22) // max(1, gallery.shape[0]))
    for start, stop in _split_by_cost(cost, TRIPLES_PER_CHUNK, max_rows):
        overlap = _min_overlap(queries[start:stop], gallery)
        jaccard = 1 - overlap / (2 - overlap)
        out[start:stop] = jaccard * (1 - lambda_value) + out[start:stop] * lambda_value


def _min_overlap(block: sp.csr_matrix, gallery: sp.csc_matrix) -> np.ndarray:
    """``sum_k min(block[r, k], gallery[j, k])`` as a float32 [rows, num_gallery] array.

    For each stored (r, k) the gallery's column k is one contiguous slice of the CSC arrays;
    the slices are concatenated, paired with ``block[r, k]`` and summed into (r, j) cells by
    ``bincount``. Keys are int32 (the chunking keeps rows x num_gallery below 2**31).
    """
    rows, num_g = block.shape[0], gallery.shape[0]
    lo = gallery.indptr[block.indices]
    hi = gallery.indptr[block.indices + 1]
    gallery_rows = np.concatenate(
        [gallery.indices[a:b] for a, b in zip(lo.tolist(), hi.tolist())] or [np.zeros(0, int)]
    ).astype(np.int32, copy=False)
    gallery_values = np.concatenate(
        [gallery.data[a:b] for a, b in zip(lo.tolist(), hi.tolist())] or [np.zeros(0)]
    )
    size = hi - lo
    key = np.repeat(np.arange(rows, dtype=np.int32) * np.int32(num_g), np.diff(block.indptr))
    key = np.repeat(key, size)
    key += gallery_rows
    smaller = np.minimum(np.repeat(block.data, size), gallery_values)
    overlap = np.bincount(key, weights=smaller, minlength=rows * num_g)
    return overlap.reshape(rows, num_g).astype(np.float32)


def _split_by_cost(cost: np.ndarray, budget: float, max_rows: int) -> Iterator[tuple[int, int]]:
    """Consecutive row ranges whose summed ``cost`` stays under ``budget`` (at least one row)."""
    start, n = 0, len(cost)
    total = np.concatenate([[0.0], np.cumsum(cost)])
    while start < n:
        stop = int(np.searchsorted(total, total[start] + budget, side="right")) - 1
        stop = min(max(stop, start + 1), start + max_rows, n)
        yield start, stop
        start = stop
