"""reid_ext.evaluation.rank against torchreid's python evaluate_rank and brute-force references."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from reid_ext import host
from reid_ext.evaluation.neighbors import pairwise_distance_squared
from reid_ext.evaluation.rank import RankResult, evaluate, pool_multi_query


def host_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50, cuhk03=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return host.metrics.evaluate_rank(
            distmat, q_pids, g_pids, q_camids, g_camids, max_rank,
            use_metric_cuhk03=cuhk03, use_cython=False,
        )


def make_ids(rng, num_q, num_g, num_pids, num_cams):
    return (
        rng.integers(0, num_pids, num_q), rng.integers(0, num_pids, num_g),
        rng.integers(0, num_cams, num_q), rng.integers(0, num_cams, num_g),
    )


def brute_force(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """Textbook per-query metrics on tie-free distances (order is then unambiguous)."""
    cmc_rows, aps, inps = [], [], []
    for i in range(len(q_pids)):
        order = sorted(range(len(g_pids)), key=lambda j: distmat[i, j])
        kept = [j for j in order if not (g_pids[j] == q_pids[i] and g_camids[j] == q_camids[i])]
        hits = [k for k, j in enumerate(kept) if g_pids[j] == q_pids[i]]
        if not hits:
            continue
        cmc_rows.append([1.0 if r >= hits[0] else 0.0 for r in range(max_rank)])
        aps.append(sum((n + 1) / (rank + 1) for n, rank in enumerate(hits)) / len(hits))
        inps.append(len(hits) / (hits[-1] + 1))
    return np.mean(cmc_rows, 0), np.mean(aps), np.mean(inps), len(aps)


def assert_same_as_host(result: RankResult, reference) -> None:
    cmc, m_ap = reference
    assert result.cmc.shape == cmc.shape
    np.testing.assert_allclose(result.cmc, cmc, rtol=0, atol=1e-6)
    assert abs(result.mAP - m_ap) <= 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunk_size", [None, 7])
def test_market_equals_host_on_random_distances(dtype, chunk_size):
    rng = np.random.default_rng(0)
    ids = make_ids(rng, 60, 400, 40, 4)
    distmat = rng.random((60, 400)).astype(dtype)
    result = evaluate(distmat, *ids, max_rank=50, chunk_size=chunk_size)
    assert_same_as_host(result, host_rank(distmat, *ids))
    assert result.num_valid_queries + result.num_skipped_queries == 60


def test_metrics_equal_brute_force_including_minp():
    rng = np.random.default_rng(1)
    ids = make_ids(rng, 30, 200, 20, 3)
    distmat = rng.permutation(30 * 200).reshape(30, 200).astype(np.float64)  # no ties
    result = evaluate(distmat, *ids, max_rank=20, chunk_size=8)
    cmc, m_ap, m_inp, valid = brute_force(distmat, *ids, 20)
    np.testing.assert_allclose(result.cmc, cmc, atol=1e-6)
    assert result.mAP == pytest.approx(m_ap, abs=1e-12)
    assert result.mINP == pytest.approx(m_inp, abs=1e-12)
    assert result.num_valid_queries == valid


@pytest.mark.parametrize("levels", [2, 5])
def test_ties_follow_the_hosts_order_exactly(levels):
    """Integer-valued distances: most rows tie a match with a non-match."""
    rng = np.random.default_rng(levels)
    ids = make_ids(rng, 50, 300, 15, 3)
    distmat = rng.integers(0, levels, (50, 300)).astype(np.float32)
    assert_same_as_host(evaluate(distmat, *ids, chunk_size=16), host_rank(distmat, *ids))


def test_duplicate_gallery_items_and_nan_rows_follow_the_host():
    rng = np.random.default_rng(3)
    ids = make_ids(rng, 20, 120, 10, 2)
    distmat = rng.random((20, 120))
    distmat[:, 60:] = distmat[:, :60]  # every value appears twice in its row
    distmat[4, 7] = np.nan
    distmat[9, :5] = np.inf
    assert_same_as_host(evaluate(distmat, *ids), host_rank(distmat, *ids))


def test_queries_without_a_valid_match_are_skipped_and_counted():
    rng = np.random.default_rng(4)
    q_pids, g_pids, q_camids, g_camids = make_ids(rng, 40, 300, 30, 3)
    q_pids[:5] = 1000  # identity absent from the gallery
    g_pids[:4], g_camids[:4] = 2000, 0  # identity present only in the query's own camera
    q_pids[5:8], q_camids[5:8] = 2000, 0
    ids = (q_pids, g_pids, q_camids, g_camids)
    distmat = rng.random((40, 300)).astype(np.float32)
    result = evaluate(distmat, *ids)
    assert_same_as_host(result, host_rank(distmat, *ids))
    expected_skipped = sum(
        not np.any((g_pids == p) & (g_camids != c)) for p, c in zip(q_pids, q_camids)
    )
    assert result.num_skipped_queries == expected_skipped >= 8


def test_gallery_smaller_than_max_rank_truncates_like_the_host():
    rng = np.random.default_rng(5)
    q_pids, q_camids = rng.integers(0, 4, 12), np.zeros(12, int)
    g_pids, g_camids = rng.integers(0, 4, 9), np.ones(9, int)  # nothing gets removed
    distmat = rng.random((12, 9))
    with pytest.warns(UserWarning, match="smaller than max_rank"):
        result = evaluate(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50)
    assert result.cmc.shape == (9,)
    assert_same_as_host(result, host_rank(distmat, q_pids, g_pids, q_camids, g_camids, 50))


@pytest.mark.parametrize("integer_distances", [False, True])
def test_cuhk03_replays_the_hosts_random_draws(integer_distances):
    rng = np.random.default_rng(6)
    ids = make_ids(rng, 40, 250, 25, 2)
    distmat = rng.random((40, 250))
    if integer_distances:
        distmat = np.floor(distmat * 4)
    np.random.seed(11)
    reference = host_rank(distmat, *ids, max_rank=30, cuhk03=True)
    host_next = np.random.random()
    ours = evaluate(distmat, *ids, max_rank=30, protocol="cuhk03", seed=11, chunk_size=9)
    assert_same_as_host(ours, reference)
    np.random.seed(11)  # seed=None draws from (and advances) the global stream like the host
    ours_global = evaluate(distmat, *ids, max_rank=30, protocol="cuhk03")
    assert_same_as_host(ours_global, reference)
    assert np.random.random() == host_next


def test_features_path_equals_distance_matrix_path():
    torch.manual_seed(0)
    rng = np.random.default_rng(7)
    ids = make_ids(rng, 35, 180, 20, 3)
    qf, gf = torch.randn(35, 16), torch.randn(180, 16)
    for metric in ("euclidean", "cosine", "l2"):
        distmat = pairwise_distance_squared(qf, gf, metric).numpy()
        from_features = evaluate(None, *ids, qf=qf, gf=gf, metric=metric, chunk_size=6)
        from_matrix = evaluate(torch.from_numpy(distmat), *ids)
        np.testing.assert_array_equal(from_features.cmc, from_matrix.cmc)
        assert from_features.mAP == from_matrix.mAP
        assert from_features.mINP == from_matrix.mINP


def test_pool_multi_query_mean_and_max_against_loops():
    rng = np.random.default_rng(8)
    feats = torch.randn(30, 5)
    pids, camids = rng.integers(0, 4, 30), rng.integers(0, 2, 30)
    query_pids, query_camids = np.array([pids[3], pids[10]]), np.array([camids[3], camids[10]])
    for method, reduce in (("mean", lambda x: x.mean(0)), ("max", lambda x: x.max(0).values)):
        pooled, out_pids, out_cams = pool_multi_query(feats, pids, camids, method=method)
        for row, (p, c) in enumerate(zip(out_pids, out_cams)):
            members = torch.from_numpy((pids == p) & (camids == c))
            torch.testing.assert_close(pooled[row], reduce(feats[members]))
        assert len(pooled) == len(set(zip(pids.tolist(), camids.tolist())))
        per_query, qp, _ = pool_multi_query(
            feats, pids, camids, query_pids, query_camids, method=method
        )
        members = torch.from_numpy((pids == pids[10]) & (camids == camids[10]))
        torch.testing.assert_close(per_query[1], reduce(feats[members]))
        np.testing.assert_array_equal(qp, query_pids)


def test_bad_inputs_name_the_problem():
    rng = np.random.default_rng(9)
    q_pids, g_pids, q_camids, g_camids = make_ids(rng, 5, 10, 3, 2)
    distmat = rng.random((5, 10))
    with pytest.raises(ValueError, match="g_pids"):
        evaluate(distmat, q_pids, g_pids[:9], q_camids, g_camids)
    with pytest.raises(ValueError, match="protocol"):
        evaluate(distmat, q_pids, g_pids, q_camids, g_camids, protocol="duke")
    with pytest.raises(ValueError, match="no query has a correct match"):
        evaluate(distmat, q_pids + 100, g_pids, q_camids, g_camids, max_rank=5)
    with pytest.raises(ValueError, match="not both"):
        evaluate(distmat, q_pids, g_pids, q_camids, g_camids, qf=np.ones((5, 2)), gf=None)
    with pytest.raises(ValueError, match="pid, camid"):
        pool_multi_query(np.ones((3, 2)), [1, 1, 2], [0, 0, 0], [3], [0])
