# Copyright (c) cribo-mm contributors. All rights reserved.
"""Benchmark: memory-efficient positional cost vs the dense reference design.

The reference CrIBo clustering builds a (B, 2N, 2N, K) tensor of
``distance * assignment`` products to find, for every token and cluster, the
nearest other member of the cluster. ``cribo_mm`` computes the same values
with a scatter minimum over the (B, 2N, 2N) distance matrix. This script
measures, in one run, the peak memory and the time of

1. the positional cost alone (one clustering iteration's worth), and
2. the full clustering (``num_iters`` iterations),

for our implementation and for a naive dense implementation written below,
checks that both give the same numbers, and prints them side by side.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` above the memory in
use before the call; on CPU, the peak resident set size above the RSS before
the call (Linux: the peak is reset through ``/proc/self/clear_refs``).

Example::

    python benchmarks/clustering.py                      # B=32 N=196 K=64
    python benchmarks/clustering.py -b 4 -n 49 -k 16 -d 64
"""
import argparse
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import measure  # noqa: E402

from cribo_mm.models.utils.clustering import (  # noqa: E402
    cluster_two_views, draw_init_index, pairwise_distances, positional_cost,
    sinkhorn_knopp)


# --------------------------------------------------------------------------
# Naive dense implementation (the reference design), for comparison only.
# --------------------------------------------------------------------------
def dense_positional_cost(positions, assignment):
    """Positional cost through the (B, T, T, K) product tensor."""
    diff = positions[:, None, :, :] - positions[:, :, None, :]
    dist = torch.sqrt(torch.sum(diff**2, dim=-1))  # (B, T, T)
    del diff
    prod = dist[..., None] * assignment[:, None, :, :]  # (B, T, T, K)
    nonzero = (prod != 0).sum(dim=2, keepdim=True)
    prod[(prod == 0) & (nonzero != 0)] = 1e5
    out = prod.amin(dim=2)  # (B, T, K)
    del prod, nonzero
    mean = out.mean(dim=(1, 2), keepdim=True)
    out = torch.where(out == 0, mean.expand_as(out), out)
    return out / out.amax(dim=(1, 2), keepdim=True)


def dense_cluster_two_views(tokens, positions, num_clusters, pos_alpha,
                            init_index, num_iters=5, sinkhorn_reg=20.0,
                            sinkhorn_iters=5, update_marginals=True):
    """Same algorithm as ``cluster_two_views`` with the dense cost."""
    tokens = F.normalize(tokens.float(), dim=-1)
    b, t, _ = tokens.shape
    k = num_clusters
    rows = torch.ones(b, t, 1, device=tokens.device) / t
    cols = torch.ones(b, 1, k, device=tokens.device) / k
    one_hot = F.one_hot(init_index, t).float()
    centroids = torch.einsum('bnd,bkn->bkd', tokens, one_hot)
    assignment = one_hot.transpose(1, 2)
    for _ in range(num_iters):
        sim = torch.einsum('bnd,bkd->bnk', tokens, centroids)
        m = -sim + pos_alpha * dense_positional_cost(positions, assignment)
        m = (m - m.min()) / (m.max() - m.min())
        plan, cost = sinkhorn_knopp(m, rows, cols, sinkhorn_reg,
                                    sinkhorn_iters)
        assignment = (plan == plan.amax(dim=-1, keepdim=True)).float()
        if update_marginals:
            cols = assignment.sum(dim=1, keepdim=True) + 1e-2
            cols = cols / cols.sum(dim=-1, keepdim=True)
        centroids = F.normalize(
            torch.einsum('bnd,bnk->bkd', tokens, assignment), dim=-1)
    per_view = assignment.view(b, 2, t // 2, k)
    counts = per_view.sum(dim=2, keepdim=True)
    counts = counts.masked_fill(counts == 0, 1.0)
    return (per_view / counts).view(b, t, k), cost


def make_inputs(b, n, d, k, device, seed):
    """Random tokens, realistic two-crop patch positions, init indices."""
    g = torch.Generator().manual_seed(seed)
    grid = int(round(n**0.5))
    if grid * grid != n:
        raise ValueError('tokens per view must be a square number')
    tokens = torch.randn(b, 2 * n, d, generator=g)
    # Two random crops (scale 0.25-1) per 500x400 image; patch centres with
    # the closed form x = x1 + (c + 0.5) * w / G - 0.5.
    img = torch.tensor([500.0, 400.0])  # (W, H)
    side = img * (0.5 + 0.5 * torch.rand(b, 2, 1, generator=g))  # (b, m, 1)
    side = side.expand(b, 2, 2)
    corner = (img - side) * torch.rand(b, 2, 2, generator=g)
    cells = (torch.arange(grid) + 0.5) / grid
    cx, cy = cells.repeat(grid), cells.repeat_interleave(grid)  # row-major
    unit = torch.stack([cx, cy], dim=-1)  # (n, 2)
    pos = corner[:, :, None, :] + unit * side[:, :, None, :] - 0.5
    positions = pos.reshape(b, 2 * n, 2)
    init_index = draw_init_index(b, 2 * n, k, g)
    labels = torch.randint(0, k, (b, 2 * n), generator=g)
    hard = F.one_hot(labels, k).float()
    return (tokens.to(device), positions.to(device), init_index.to(device),
            hard.to(device))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('-b', '--batch', type=int, default=32)
    parser.add_argument(
        '-n', '--tokens-per-view', type=int, default=196,
        help='patches per view N (square number)')
    parser.add_argument('-k', '--clusters', type=int, default=64)
    parser.add_argument('-d', '--dim', type=int, default=384)
    parser.add_argument('--iters', type=int, default=5,
                        help='clustering iterations')
    parser.add_argument('--pos-alpha', type=float, default=1.0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--repeats', type=int, default=1)
    parser.add_argument(
        '--skip-dense-clustering', action='store_true',
        help='only run the positional cost for the dense version')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    b, n, k, d = args.batch, args.tokens_per_view, args.clusters, args.dim
    t = 2 * n
    tokens, positions, init_index, hard = make_inputs(b, n, d, k, device,
                                                      args.seed)

    # Warm-up on a tiny problem (kernel selection, lazy init).
    w_tok, w_pos, w_idx, w_hard = make_inputs(2, 4, 8, 3, device, 1)
    positional_cost(pairwise_distances(w_pos), w_hard)
    dense_positional_cost(w_pos, w_hard)
    cluster_two_views(w_tok, w_pos, 3, 1.0, num_iters=1, init_index=w_idx)

    print(f'device={device} threads={torch.get_num_threads()} B={b} '
          f'2N={t} K={k} d={d} iters={args.iters} repeats={args.repeats}')
    dense_bytes = b * t * t * k * 4
    print(f'dense (B,2N,2N,K) float32 tensor: {dense_bytes / 2**20:.1f} MiB;'
          f' (B,2N,2N) distance matrix: {b * t * t * 4 / 2**20:.1f} MiB')

    rows = []

    def ours_pos():
        return positional_cost(pairwise_distances(positions), hard)

    def dense_pos():
        return dense_positional_cost(positions, hard)

    out_o, t_o, m_o = measure(ours_pos, device, args.repeats)
    out_d, t_d, m_d = measure(dense_pos, device, args.repeats)
    diff = (out_o - out_d).abs().max().item()
    rows.append(('positional cost', t_o, m_o, t_d, m_d, f'{diff:.1e}'))
    del out_o, out_d

    def ours_cluster():
        return cluster_two_views(
            tokens, positions, k, args.pos_alpha, num_iters=args.iters,
            init_index=init_index)

    def dense_cluster():
        return dense_cluster_two_views(
            tokens, positions, k, args.pos_alpha, init_index,
            num_iters=args.iters)

    (a_o, c_o), t_o, m_o = measure(ours_cluster, device, args.repeats)
    if args.skip_dense_clustering:
        rows.append(('full clustering', t_o, m_o, float('nan'),
                     float('nan'), 'n/a'))
    else:
        (a_d, c_d), t_d, m_d = measure(dense_cluster, device, args.repeats)
        same = torch.equal(a_o > 0, a_d > 0)
        diff = (c_o - c_d).abs().max().item()
        rows.append(('full clustering', t_o, m_o, t_d, m_d,
                     f'same assignment={same}, cost diff {diff:.1e}'))

    head = (f'{"":16} | {"ours s":>8} {"ours MiB":>9} | {"dense s":>8} '
            f'{"dense MiB":>9} | {"time x":>7} {"mem x":>7} | check')
    print(head)
    print('-' * len(head))
    for name, to, mo, td, md, check in rows:
        tx = td / to if to > 0 else float('nan')
        mx = md / mo if mo > 0 else float('nan')
        print(f'{name:16} | {to:8.3f} {mo:9.1f} | {td:8.3f} {md:9.1f} | '
              f'{tx:7.2f} {mx:7.1f} | {check}')
    print('time x / mem x: dense divided by ours (higher = ours better). '
          'Memory: peak increase during the call'
          + (' (CUDA allocator)' if device.type == 'cuda' else
             ' (process RSS high-water mark)'))
    if os.cpu_count() and device.type == 'cpu':
        print(f'note: {os.cpu_count()} CPU cores visible; timings on a '
              'shared machine are indicative only')


if __name__ == '__main__':
    main()
