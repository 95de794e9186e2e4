# Copyright (c) cribo-mm contributors. All rights reserved.
"""Parity and unit tests of the CrIBo two-view object clustering."""
import functools

import pytest
import torch
import torch.nn.functional as F

from cribo_mm.models.utils.clustering import (cluster_two_views,
                                              draw_init_index,
                                              nearest_member_distance,
                                              pairwise_distances,
                                              pool_objects, pos_alpha_schedule,
                                              positional_cost, sinkhorn_knopp,
                                              teacher_objects)
from tests.fixtures import FIXTURES


@functools.lru_cache(maxsize=None)
def _load(name):
    return torch.load(FIXTURES / name, weights_only=True)


def _cases(name):
    """Case indices of a fixture file, or one skipped param if it is absent."""
    if not (FIXTURES / name).is_file():
        return [
            pytest.param(
                None,
                marks=pytest.mark.skip(
                    reason=f'fixture {FIXTURES / name} not found'))
        ]
    return list(range(len(_load(name)['cases'])))


def _case(name, idx):
    return _load(name)['cases'][idx]


# ---------------------------------------------------------------------------
# Naive dense reference of the positional cost, written from the documented
# behaviour: the (B, T, T, K) tensor of distance * assignment products.
# ---------------------------------------------------------------------------
def _dense_positional_cost(positions, assignment):
    diff = positions[:, None, :, :] - positions[:, :, None, :]
    dist = torch.sqrt(torch.sum(diff**2, dim=-1))  # (B, T, T)
    prod = dist[..., None] * assignment[:, None, :, :]  # (B, T, T, K)
    nonzero = (prod != 0).sum(dim=2, keepdim=True)
    prod = torch.where((prod == 0) & (nonzero != 0),
                       torch.full_like(prod, 1e5), prod)
    out = prod.amin(dim=2)  # (B, T, K)
    mean = out.mean(dim=(1, 2), keepdim=True)
    out = torch.where(out == 0, mean.expand_as(out), out)
    return out / out.amax(dim=(1, 2), keepdim=True)


def _random_positions(b, t, grid=6, seed=0):
    """Integer pixel positions on a small grid, so duplicates (zero
    distances between different tokens) occur."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, grid, (b, t, 2), generator=g).float()


# ------------------------------- Sinkhorn ---------------------------------
@pytest.mark.parametrize('idx', _cases('sinkhorn.pt'))
def test_sinkhorn_parity(idx):
    case = _case('sinkhorn.pt', idx)
    inp, out = case['inputs'], case['outputs']
    plan, cost = sinkhorn_knopp(inp['M'], inp['r'], inp['c'], inp['lambda_'],
                                inp['iterations'])
    assert plan.dtype == torch.float32 and plan.shape == out['P'].shape
    torch.testing.assert_close(plan, out['P'], rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(cost, out['cost'], rtol=1e-5, atol=1e-12)
    if 'underflow' in case.get('note', ''):
        # NaN spreads over element 0 and becomes 1e-8; element 1 is finite.
        expected = out['P'] == 1e-8
        assert torch.equal(plan == 1e-8, expected)
        assert expected[0].all() and not expected[1].any()


def test_sinkhorn_marginals():
    g = torch.Generator().manual_seed(0)
    cost = torch.rand(3, 40, 6, generator=g)
    rows = torch.rand(3, 40, 1, generator=g) + 0.5
    rows = rows / rows.sum(dim=1, keepdim=True)
    cols = torch.rand(3, 1, 6, generator=g) + 0.5
    cols = cols / cols.sum(dim=2, keepdim=True)
    plan, cost_out = sinkhorn_knopp(cost, rows, cols, reg=5.0, num_iters=50)
    # Columns are scaled last: exact up to rounding; rows after convergence.
    torch.testing.assert_close(plan.sum(dim=1, keepdim=True), cols)
    torch.testing.assert_close(
        plan.sum(dim=2, keepdim=True), rows, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(cost_out, (plan * cost).sum(dim=(1, 2)))
    # Zero iterations: only the global normalisation.
    plan0, _ = sinkhorn_knopp(cost, rows, cols, reg=5.0, num_iters=0)
    torch.testing.assert_close(plan0.sum(dim=(1, 2)), torch.ones(3))
    expected = torch.exp(-5.0 * cost)
    torch.testing.assert_close(plan0,
                               expected / expected.sum((1, 2), keepdim=True))


# --------------------------- positional cost ------------------------------
def _check_positional(positions, assignment):
    dense = _dense_positional_cost(positions, assignment)
    ours = positional_cost(pairwise_distances(positions), assignment)
    assert ours.shape == dense.shape and ours.dtype == torch.float32
    # Same values (min is exact, mean/max on the same contiguous layout).
    torch.testing.assert_close(ours, dense, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_positional_cost_single_hot(seed):
    b, t, k = 3, 24, 5
    positions = _random_positions(b, t, seed=seed)
    g = torch.Generator().manual_seed(100 + seed)
    labels = torch.randint(0, k, (b, t), generator=g)
    labels[0, :] = labels[0, 0]  # image 0: one cluster, the rest empty
    _check_positional(positions, F.one_hot(labels, k).float())
    # Iteration 0: one-hot on distinct init tokens (singleton clusters).
    index = draw_init_index(b, t, k, torch.Generator().manual_seed(seed))
    _check_positional(positions,
                      F.one_hot(index, t).float().transpose(1, 2))


def test_positional_cost_multi_hot():
    b, t, k = 2, 20, 4
    positions = _random_positions(b, t, grid=4, seed=3)
    g = torch.Generator().manual_seed(7)
    assignment = (torch.rand(b, t, k, generator=g) < 0.4).float()
    assignment[0, 0] = 1.0  # a token in every cluster (all tied)
    assignment[1, 1] = 0.0  # a token in no cluster
    assignment[1, :, 3] = 0.0  # an empty cluster
    assert (assignment.sum(-1) > 1).any()
    _check_positional(positions, assignment)
    # Duplicate initial indices: a token in several clusters at iteration 0.
    index = torch.tensor([[0, 0, 5, 5], [1, 2, 3, 1]])
    _check_positional(positions, F.one_hot(index, t).float().transpose(1, 2))


def test_nearest_member_distance_semantics():
    # 1-D positions 0, 1, 3, 3 on the x axis.
    positions = torch.tensor([[[0., 0.], [1., 0.], [3., 0.], [3., 0.]]])
    assignment = torch.tensor([[[1., 0., 0.], [1., 0., 0.], [0., 1., 0.],
                                [0., 1., 0.]]])
    out = nearest_member_distance(pairwise_distances(positions), assignment)
    expected = torch.tensor([[[1., 3., 0.], [1., 2., 0.], [2., 0., 0.],
                              [2., 0., 0.]]])
    # Zero distances (self, duplicate position) are ignored; nothing left
    # or an empty cluster gives 0.
    assert torch.equal(out, expected)
    with pytest.raises(ValueError):
        nearest_member_distance(
            pairwise_distances(positions), assignment * 0.5)


# ------------------------------ clustering --------------------------------
@pytest.mark.parametrize('idx', _cases('assignments.pt'))
def test_cluster_two_views_parity(idx):
    case = _case('assignments.pt', idx)
    inp, out = case['inputs'], case['outputs']
    assignment, cost = cluster_two_views(
        inp['tokens'],
        inp['positions'],
        inp['k'],
        inp['pos_alpha'],
        sinkhorn_reg=inp['sinkhorn_lambda'],
        sinkhorn_iters=inp['sinkhorn_iterations'],
        num_iters=inp['n_iter'],
        update_marginals=inp['update_c'],
        init_index=inp['init_index'])
    ref = out['assignment']
    assert assignment.dtype == torch.float32 and assignment.shape == ref.shape
    assert torch.equal(assignment > 0, ref > 0)  # hard pattern: exact
    torch.testing.assert_close(assignment, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(cost, out['cost'], rtol=1e-5, atol=0)
    # The reference's random draw, reproduced from the recorded seed.
    b, t = inp['tokens'].shape[:2]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(inp['torch_seed'])
        index = draw_init_index(b, t, inp['k'])
    assert torch.equal(index, inp['init_index'])


@pytest.mark.parametrize('idx', _cases('assignments.pt'))
def test_cluster_iterations_parity(idx):
    """Per-iteration cost matrix, plan and hard assignment (small cases)."""
    case = _case('assignments.pt', idx)
    trace = case['trace']
    if 'M' not in trace[0]:
        pytest.skip('this case stores no per-iteration M / P')
    inp = case['inputs']
    tokens = F.normalize(inp['tokens'], dim=-1)
    b, t, _ = tokens.shape
    k = inp['k']
    distances = pairwise_distances(inp['positions'])
    rows = torch.ones(b, t, 1) / t
    members = F.one_hot(inp['init_index'], t).float().transpose(1, 2)
    for step in trace:
        centroids = F.normalize(
            torch.einsum('bnd,bnk->bkd', tokens, members), dim=-1)
        m = (-torch.einsum('bnd,bkd->bnk', tokens, centroids) +
             inp['pos_alpha'] * positional_cost(distances, members))
        m = (m - m.min()) / (m.max() - m.min())
        torch.testing.assert_close(m, step['M'], rtol=0, atol=1e-6)
        plan, cost = sinkhorn_knopp(step['M'], rows, step['c'],
                                    inp['sinkhorn_lambda'],
                                    inp['sinkhorn_iterations'])
        torch.testing.assert_close(plan, step['P'], rtol=1e-5, atol=1e-12)
        torch.testing.assert_close(cost, step['cost'], rtol=1e-5, atol=0)
        assert torch.equal(plan.argmax(-1), step['hard_argmax'])
        members = F.one_hot(step['hard_argmax'], k).float()


def test_cluster_batch_size_one_and_generator():
    g = torch.Generator().manual_seed(0)
    b, n, d, k = 1, 16, 8, 5
    tokens = torch.randn(b, 2 * n, d, generator=g)
    positions = torch.rand(b, 2 * n, 2, generator=g) * 100
    a1, c1 = cluster_two_views(
        tokens, positions, k, 1.0, generator=torch.Generator().manual_seed(3))
    a2, c2 = cluster_two_views(
        tokens, positions, k, 1.0, generator=torch.Generator().manual_seed(3))
    assert a1.shape == (1, 2 * n, k) and c1.shape == (1, )
    assert torch.equal(a1, a2) and torch.equal(c1, c2)
    # Every token in one cluster; per view, each column sums to 1 or 0.
    assert torch.equal((a1 > 0).sum(-1), torch.ones(1, 2 * n,
                                                    dtype=torch.long))
    col = a1.view(1, 2, n, k).sum(2)
    assert torch.all((col - 1).abs().lt(1e-6) | col.eq(0))
    # The same draw as an explicit init_index.
    index = draw_init_index(b, 2 * n, k, torch.Generator().manual_seed(3))
    assert index.unique().numel() == k
    a3, _ = cluster_two_views(tokens, positions, k, 1.0, init_index=index)
    assert torch.equal(a1, a3)


# ---------------------------- teacher objects -----------------------------
@pytest.mark.parametrize('idx', _cases('teacher_centroids.pt'))
def test_teacher_objects_parity(idx):
    case = _case('teacher_centroids.pt', idx)
    inp, hp, out = case['inputs'], case['hparams'], case['outputs']
    alpha = pos_alpha_schedule(hp['pos_alpha'], inp['epoch'], hp['epochs'])
    assert alpha == hp['pos_alpha_used']
    res = teacher_objects(
        inp['tokens'],
        inp['positions'],
        hp['n_tokens'],
        alpha,
        sinkhorn_reg=hp['sinkhorn_lambda'],
        sinkhorn_iters=hp['sinkhorn_iterations'],
        num_iters=hp['n_iter'],
        update_marginals=hp['update_c'],
        init_index=inp['init_index'],
        pool_tokens=inp['last_tokens'])
    assert torch.equal(res.valid, out['valid_centroids'])
    assert res.objects_per_image.dtype == torch.int64
    assert torch.equal(res.objects_per_image, out['centroids_per_view'])
    assert res.region_count.item() == out['region_count']
    ref_assign = out['assignments'][:, :, 0]  # drop the head axis
    assert torch.equal(res.assignments > 0, ref_assign > 0)
    torch.testing.assert_close(res.assignments, ref_assign, rtol=0, atol=1e-6)
    for ours, key in ((res.centroids_v1, 'centroids_v1'),
                      (res.centroids_v2, 'centroids_v2')):
        torch.testing.assert_close(ours, out[key], rtol=0, atol=1e-5)
    s1, s2 = pool_objects(inp['student_tokens'], res.assignments, res.valid)
    torch.testing.assert_close(
        s1, out['student_centroids_v1'], rtol=0, atol=1e-5)
    torch.testing.assert_close(
        s2, out['student_centroids_v2'], rtol=0, atol=1e-5)


def test_teacher_objects_unit():
    g = torch.Generator().manual_seed(1)
    b, n, d, k = 1, 16, 8, 6
    tokens = torch.randn(2 * b, 1 + n, d, generator=g)
    positions = torch.rand(2, b, 2, n, generator=g) * 64
    index = draw_init_index(b, 2 * n, k, torch.Generator().manual_seed(0))
    res = teacher_objects(tokens, positions, k, 1.0, init_index=index)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        res_ac = teacher_objects(tokens, positions, k, 1.0, init_index=index)
    assert res_ac.centroids_v1.dtype == torch.float32
    assert torch.equal(res.centroids_v1, res_ac.centroids_v1)
    num = int(res.valid.sum())
    assert res.valid.shape == (b * k, ) and res.valid.dtype == torch.bool
    assert res.centroids_v1.shape == res.centroids_v2.shape == (num, d)
    assert res.assignments.shape == (2, b, n, k)
    assert res.objects_per_image.tolist() == [num]
    # Object = mean of its member patch tokens in that view.
    a = res.assignments[0, 0]
    first = int(res.valid.nonzero()[0])
    members = a[:, first] > 0
    torch.testing.assert_close(res.centroids_v1[0],
                               tokens[0, 1:][members].mean(0))
    # Student pooling carries gradients.
    student = tokens.clone().requires_grad_(True)
    s1, s2 = pool_objects(student, res.assignments, res.valid)
    (s1.sum() + s2.sum()).backward()
    assert student.grad is not None and student.grad[:, 0].abs().sum() == 0


def test_pos_alpha_schedule():
    np = pytest.importorskip('numpy')
    for pos_alpha, epochs in (((1.0, 3.0), 10), ((2.0, 1.0), 5),
                              ((1.0, 1.0), 7), ((0.3, 0.7), 1)):
        ref = np.linspace(pos_alpha[1], pos_alpha[0], epochs)
        for epoch in range(epochs):
            assert pos_alpha_schedule(pos_alpha, epoch, epochs) == ref[epoch]
    # The FIRST tuple element is the FINAL value (reference quirk).
    assert pos_alpha_schedule((1.0, 3.0), 0, 10) == 3.0
    assert pos_alpha_schedule((1.0, 3.0), 9, 10) == 1.0
    with pytest.raises(ValueError):
        pos_alpha_schedule((1.0, 3.0), 10, 10)
