"""Pairwise distances and k-nearest neighbours in row chunks, never a full N x N at once.

Metric names follow torchreid: ``"euclidean"`` is the *squared* euclidean distance (what the
host's ``compute_distance_matrix(metric="euclidean")`` returns), ``"cosine"`` is
``1 - cos``; ``"l2"`` is the plain (square-rooted) euclidean distance.

``knn(..., backend="faiss")`` uses an exact flat faiss index when ``faiss-cpu`` is installed
(the ``faiss`` extra); ``backend="auto"`` picks it for large sets and falls back to torch.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

METRICS = ("euclidean", "l2", "cosine")
# Elements of one distance block (rows x columns); bounds the working memory of every chunked loop.
DEFAULT_BLOCK_ELEMENTS = 1 << 22
# Distance blocks made by a matrix product read all of the other side's features once per
# block: fewer, taller blocks keep the product compute-bound (a 40-row block over 100k features
# is memory-bound, ~3x slower).
PRODUCT_BLOCK_ELEMENTS = 1 << 25
PRODUCT_MIN_ROWS = 256
FAISS_AUTO_MIN_ROWS = 50_000


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"unknown metric '{metric}'; expected one of {', '.join(METRICS)}")
    return metric


def as_tensor(array: np.ndarray | torch.Tensor, name: str, ndim: int = 2) -> torch.Tensor:
    """A CPU tensor view of ``array`` (no copy for numpy input), checked to be ``ndim``-D."""
    tensor = array.detach().cpu() if isinstance(array, torch.Tensor) else torch.as_tensor(array)
    if tensor.dim() != ndim:
        raise ValueError(f"'{name}' must be {ndim}-D, got shape {tuple(tensor.shape)}")
    return tensor


def as_numpy(array: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def rows_per_chunk(
    num_columns: int,
    chunk_size: int | None,
    budget: int = DEFAULT_BLOCK_ELEMENTS,
    min_rows: int = 1,
) -> int:
    """``chunk_size`` if given, else as many rows as fit ``budget`` elements (>= ``min_rows``)."""
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
        return int(chunk_size)
    return max(min_rows, budget // max(1, num_columns))


class DistanceTo:
    """Distances from any rows to a fixed set ``b`` [n, d], with ``b``'s norms prepared once.

    ``DistanceTo(b, metric)(a)`` is :func:`pairwise_distance_squared` ``(a, b, metric)``;
    calling it on row chunks of ``a`` gives the rows of the full matrix without recomputing
    ``b``'s side.
    """

    def __init__(self, b: torch.Tensor, metric: str = "euclidean") -> None:
        self.metric = check_metric(metric)
        self.b = F.normalize(b, dim=1) if metric == "cosine" else b
        self.b_sq = None if metric == "cosine" else b.pow(2).sum(1).unsqueeze(0)

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        if a.shape[1] != self.b.shape[1]:
            raise ValueError(
                f"feature sizes differ: {a.shape[1]} (rows) vs {self.b.shape[1]} (gallery)"
            )
        if self.metric == "cosine":
            return 1 - F.normalize(a, dim=1) @ self.b.t()
        dist = a.pow(2).sum(1, keepdim=True) + self.b_sq
        dist.addmm_(a, self.b.t(), beta=1, alpha=-2)
        if self.metric == "l2":
            dist = dist.clamp_(min=0).sqrt_()
        return dist


def pairwise_distance_squared(a: torch.Tensor, b: torch.Tensor,
                              metric: str = "euclidean") -> torch.Tensor:
    """Distances between the rows of ``a`` [m, d] and ``b`` [n, d] as an [m, n] tensor.

    ``"euclidean"`` uses the same formula as torchreid's ``euclidean_squared_distance``
    (``|a|^2 + |b|^2 - 2 a.b``, not clamped) so its values match the host's to rounding.
    """
    return DistanceTo(b, metric)(a)


def distance_chunks(
    a: torch.Tensor, b: torch.Tensor, metric: str = "euclidean", chunk_size: int | None = None
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield ``(start, stop, distance block of rows start:stop of a against all of b)``."""
    to_b = DistanceTo(b, metric)
    step = rows_per_chunk(b.shape[0], chunk_size, DEFAULT_BLOCK_ELEMENTS, min_rows=64)
    for start in range(0, a.shape[0], step):
        stop = min(start + step, a.shape[0])
        yield start, stop, to_b(a[start:stop])


def faiss_available() -> bool:
    return importlib.util.find_spec("faiss") is not None


def _resolve_backend(backend: str, num_rows: int) -> str:
    if backend not in ("auto", "torch", "faiss"):
        raise ValueError(f"unknown knn backend '{backend}'; expected 'auto', 'torch' or 'faiss'")
    if backend == "faiss" and not faiss_available():
        raise ImportError("knn backend 'faiss' needs faiss-cpu: pip install 'reid-ext[faiss]'")
    if backend == "auto":
        return "faiss" if faiss_available() and num_rows >= FAISS_AUTO_MIN_ROWS else "torch"
    return backend


def knn(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor | None = None,
    k: int = 10,
    metric: str = "euclidean",
    chunk_size: int | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest rows of ``y`` (default ``x`` itself) for each row of ``x``.

    Returns ``(distances, indices)``, both [len(x), k], nearest first. With ``y=None`` a point
    is its own neighbour (distance ~0), as in the host's re-ranking. Distances use ``metric``;
    faiss and torch agree up to float rounding (order of exact ties may differ).
    """
    check_metric(metric)
    xt = as_tensor(x, "x").float()
    yt = xt if y is None else as_tensor(y, "y").float()
    if not 1 <= k <= yt.shape[0]:
        raise ValueError(f"k must be in [1, {yt.shape[0]}] (the number of points), got {k}")
    if _resolve_backend(backend, yt.shape[0]) == "faiss":
        return _knn_faiss(xt, yt, k, metric)
    dists, idxs = [], []
    for _, _, block in distance_chunks(xt, yt, metric, chunk_size):
        values, indices = torch.topk(block, k, dim=1, largest=False, sorted=True)
        dists.append(values)
        idxs.append(indices)
    return torch.cat(dists), torch.cat(idxs)


def _knn_faiss(x: torch.Tensor, y: torch.Tensor, k: int, metric: str) -> tuple[torch.Tensor, ...]:
    import faiss

    xs = np.ascontiguousarray(x.numpy(), dtype=np.float32)
    ys = np.ascontiguousarray(y.numpy(), dtype=np.float32)
    if metric == "cosine":
        xs = xs / np.maximum(np.linalg.norm(xs, axis=1, keepdims=True), 1e-12)
        ys = ys / np.maximum(np.linalg.norm(ys, axis=1, keepdims=True), 1e-12)
        index = faiss.IndexFlatIP(ys.shape[1])
        index.add(ys)
        sims, idx = index.search(xs, k)
        dist = 1 - sims
    else:
        index = faiss.IndexFlatL2(ys.shape[1])
        index.add(ys)
        dist, idx = index.search(xs, k)  # squared L2
        if metric == "l2":
            dist = np.sqrt(np.maximum(dist, 0))
    return torch.from_numpy(dist), torch.from_numpy(idx.astype(np.int64))
