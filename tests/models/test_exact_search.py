# Copyright (c) cribo-mm contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F

from cribo_mm.models.utils import exact_search as es

LOWP = [torch.bfloat16, torch.float16]


def fp32_topk(keys, normalize, block_size, k):
    """Reference fp32 path: running top-k over blocks, strict merge."""

    def search(queries, blocks=None):
        bounds = es.block_bounds(keys.shape[0], block_size)
        if blocks is not None:
            bounds = [bounds[b] for b in blocks]
        best_val = best_idx = None
        for start, end in bounds:
            block = keys[start:end].float()
            if normalize:
                block = F.normalize(block, dim=1)
            val, idx = (queries @ block.t()).topk(min(k, end - start), dim=1)
            idx = idx + start
            if best_val is not None:
                val = torch.cat([best_val, val], dim=1)
                idx = torch.cat([best_idx, idx], dim=1)
                val, pos = val.topk(k, dim=1)
                idx = idx.gather(1, pos)
            best_val, best_idx = val, idx
        return best_val, best_idx

    return search


def random_keys(num, dim, gen):
    """Rows of very different norms, some planted near the queries."""
    keys = torch.randn(num, dim, generator=gen)
    return keys * torch.exp(2 * torch.randn(num, 1, generator=gen))


def test_block_bounds():
    assert es.block_bounds(100, 30) == [(0, 30), (30, 60), (60, 100)]
    assert es.block_bounds(100, 45) == [(0, 45), (45, 100)]  # tail < 16
    assert es.block_bounds(100, 42) == [(0, 42), (42, 84), (84, 100)]
    assert es.block_bounds(100, None) == [(0, 100)]
    assert es.block_bounds(10, 4) == [(0, 4), (4, 10)]
    assert es.block_bounds(0, 4) == []


def test_resolve_search_dtype():
    assert es.resolve_search_dtype('float32') is None
    assert es.resolve_search_dtype(None) is None
    assert es.resolve_search_dtype('bf16') is torch.bfloat16
    assert es.resolve_search_dtype(torch.float16) is torch.float16
    assert es.resolve_search_dtype('auto', 'cpu') in (None, torch.bfloat16)
    with pytest.raises(ValueError, match='int8'):
        es.resolve_search_dtype('int8')


@pytest.mark.parametrize('dtype', LOWP)
@pytest.mark.parametrize('normalize', [True, False])
def test_error_bound_holds_for_every_key(dtype, normalize):
    """|fast score - fp32 score| <= E for every query and key."""
    gen = torch.Generator().manual_seed(1)
    dim = 48
    keys = random_keys(700, dim, gen)
    queries = torch.randn(20, dim, generator=gen) * 3
    if normalize:
        queries = F.normalize(queries, dim=1)
    lowp = es.LowPrecisionKeys(keys, dtype, normalize, 256)
    q_low, terms = es._query_terms(queries, dtype)
    fast, exact = [], []
    for start, end, block, scale in lowp.blocks():
        fast.append((q_low @ block.t()).double() / (terms[3] * scale))
        rows = keys[start:end]
        rows = F.normalize(rows, dim=1) if normalize else rows
        exact.append((queries @ rows.t()).double())
    fast, exact = torch.cat(fast, 1), torch.cat(exact, 1)
    bound = es.fast_error_bound(terms, fast, lowp.norm_bound, dim, dtype,
                                lowp.min_scale, True)
    err = (fast - exact).abs()
    assert bool((err <= bound).all())
    if normalize:  # cosines: the bound is a few units of bf16/fp16
        u = 2.0**-8 if dtype == torch.bfloat16 else 2.0**-11
        assert float(bound.max()) < 3 * u
        assert float(bound.max()) < 30 * float(err.max())


@pytest.mark.parametrize('dtype', LOWP)
@pytest.mark.parametrize('normalize', [True, False])
@pytest.mark.parametrize('k', [1, 5])
def test_same_values_and_indices_as_fp32(dtype, normalize, k):
    gen = torch.Generator().manual_seed(2)
    dim, num = 32, 3000
    keys = random_keys(num, dim, gen)
    queries = F.normalize(torch.randn(40, dim, generator=gen), dim=1)
    queries[::4] = F.normalize(keys[:40:4] + 0.05 * torch.randn(
        10, dim, generator=gen), dim=1)
    exact = fp32_topk(keys, normalize, 512, k)
    stats = es.SearchStats()
    val, idx = es.certified_topk(queries, keys, k, exact, normalize, 512,
                                 dtype, stats=stats)
    ref_val, ref_idx = exact(queries)
    assert torch.equal(idx, ref_idx)
    assert torch.equal(val, ref_val)
    assert stats.queries == 40
    assert stats.fallbacks < 40  # most queries are proven


@pytest.mark.parametrize('k', [1, 3])
def test_duplicated_rows_fall_back_and_keep_fp32_ties(k):
    """Exact ties (duplicates, here across blocks) are left to fp32."""
    gen = torch.Generator().manual_seed(3)
    dim = 32
    keys = torch.randn(2000, dim, generator=gen)
    keys[1500:1520] = keys[100:120]  # same rows in another block
    queries = F.normalize(keys[100:120] + 0.01 * torch.randn(
        20, dim, generator=gen), dim=1)
    exact = fp32_topk(keys, True, 512, k)
    stats = es.SearchStats()
    val, idx = es.certified_topk(queries, keys, k, exact, True, 512,
                                 torch.bfloat16, stats=stats)
    ref_val, ref_idx = exact(queries)
    assert torch.equal(idx, ref_idx) and torch.equal(val, ref_val)
    assert stats.fallbacks == 20
    if k == 1:  # the earlier block wins the tie, as in the fp32 path
        assert bool((idx[:, 0] < 1500).all())


def test_near_ties_within_the_bound_fall_back():
    """Keys closer than the bound to the best one cannot be proven."""
    gen = torch.Generator().manual_seed(4)
    dim = 64
    base = F.normalize(torch.randn(1, dim, generator=gen), dim=1)
    # 60 keys whose cosine to the query differs by ~1e-4 (< bound ~ 1e-2)
    near = F.normalize(base + 1e-3 * torch.randn(60, dim, generator=gen),
                       dim=1)
    keys = torch.cat([torch.randn(1000, dim, generator=gen), near])
    queries = base.repeat(20, 1)
    queries[10:] = F.normalize(torch.randn(10, dim, generator=gen), dim=1)
    exact = fp32_topk(keys, True, 256, 1)
    stats = es.SearchStats()
    val, idx = es.certified_topk(queries, keys, 1, exact, True, 256,
                                 torch.bfloat16, stats=stats)
    ref_val, ref_idx = exact(queries)
    assert torch.equal(idx, ref_idx) and torch.equal(val, ref_val)
    assert stats.fallbacks >= 10  # every near-tie query fell back


def test_few_queries_or_keys_use_the_fp32_path():
    gen = torch.Generator().manual_seed(5)
    keys = torch.randn(500, 16, generator=gen)
    calls = []

    def exact(queries, blocks=None):
        calls.append(queries.shape[0])
        return fp32_topk(keys, True, None, 1)(queries, blocks)

    stats = es.SearchStats()
    few = F.normalize(torch.randn(es.MIN_ROWS - 1, 16, generator=gen), dim=1)
    es.certified_topk(few, keys, 1, exact, True, None, torch.bfloat16,
                      stats=stats)
    many = F.normalize(torch.randn(30, 16, generator=gen), dim=1)
    es.certified_topk(many, keys[:20], 1, exact, True, None,
                      torch.bfloat16, stats=stats)
    assert calls == [es.MIN_ROWS - 1, 30] and stats.queries == 0


def test_zero_and_nan_queries_fall_back():
    gen = torch.Generator().manual_seed(6)
    keys = torch.randn(1000, 16, generator=gen)
    queries = F.normalize(torch.randn(20, 16, generator=gen), dim=1)
    queries[0] = 0
    queries[1, 3] = float('nan')
    exact = fp32_topk(keys, True, 300, 1)
    stats = es.SearchStats()
    val, idx = es.certified_topk(queries, keys, 1, exact, True, 300,
                                 torch.bfloat16, stats=stats)
    ref_val, ref_idx = exact(queries)
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(val, ref_val, rtol=0, atol=0, equal_nan=True)
    assert stats.fallbacks >= 2


def test_fp32_matmul_values_do_not_depend_on_the_shape():
    """The assumption the re-score relies on (>= MIN_ROWS rows)."""
    gen = torch.Generator().manual_seed(7)
    queries = F.normalize(torch.randn(300, 384, generator=gen), dim=1)
    keys = F.normalize(torch.randn(5000, 384, generator=gen), dim=1)
    full = queries @ keys.t()
    pick = torch.randperm(5000, generator=gen)[:es.MIN_ROWS]
    assert torch.equal(full[:es.MIN_ROWS, pick],
                       queries[:es.MIN_ROWS] @ keys[pick].t())
    assert torch.equal(full[:, pick[:2]], queries @ keys[pick[:2]].t())


def test_stats():
    stats = es.SearchStats()
    assert stats.fallback_rate == 0
    stats.add(10, 2)
    stats.add(30, 0)
    assert stats.as_dict() == dict(
        queries=40, fallbacks=2, fallback_rate=0.05)
