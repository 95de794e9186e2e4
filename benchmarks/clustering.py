# Copyright (c) cribo-mm contributors. All rights reserved.
"""Benchmark: CrIBo clustering + pooling, ours vs the reference design.

The reference CrIBo clustering (the authors' ``Clustering``) builds, every
iteration, a (B, 2N, 2N, K) tensor of ``distance * assignment`` products,
plus a float tensor of the same shape to count the non-zero products, to
find for every token and cluster the nearest other member of the cluster.
``cribo_mm`` computes the same values with a scatter minimum over the
(B, 2N, 2N) distance matrix. The baseline below is written after the
authors' ``compute_assignments``, ``compute_teacher_centroids`` and
``compute_student_centroids`` (one head, hard assignments), operation by
operation, so that its time and memory are those of their code. This script
measures, in one run, the peak memory and the time of

1. the positional cost alone (one clustering iteration's worth), and
2. the teacher objects (clustering, ``num_iters`` iterations, plus the
   per-view pooling and validity) and the student pooling: ours
   ``teacher_objects`` + ``pool_objects``, reference
   ``compute_teacher_centroids`` + ``compute_student_centroids``,

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
    draw_init_index, pairwise_distances, pool_objects, positional_cost,
    teacher_objects)


# --------------------------------------------------------------------------
# The reference design (the authors' operations), for comparison only.
# --------------------------------------------------------------------------
def reference_positional_cost(positions, assignment):
    """Positional cost as the reference computes it in one iteration.

    Args:
        positions (Tensor): (B, T, 2) joint patch positions.
        assignment (Tensor): (B, T, K) current (hard) assignment.

    Returns:
        Tensor: (B, T, K) normalised positional cost.
    """
    b, t, k = assignment.shape
    dist = torch.sqrt(torch.sum(
        (positions[:, None, :, :] - positions[:, :, None, :])**2, dim=-1))
    prod = torch.einsum('bsn,bnk->bsnk', dist, assignment)  # (B, T, T, K)
    counts = torch.ones_like(prod)
    counts[prod == 0.0] = 0.0
    counts = counts.sum(dim=2, keepdim=True)
    prod[torch.logical_and(prod == 0.0, counts != 0.0)] = 1e5
    cost = prod.amin(dim=2)
    del prod, counts
    mean = cost.mean(dim=[1, 2], keepdim=True).expand(b, t, k).contiguous()
    cost[cost == 0.0] = mean[cost == 0.0]
    cost /= cost.amax(dim=(-1, -2))[:, None, None]
    return cost


def reference_sinkhorn(m, r, c, reg, iters):
    """Sinkhorn-Knopp as the reference writes it (in place scalings)."""
    plan = torch.exp(-reg * m).float()
    plan /= plan.sum(dim=(1, 2), keepdim=True)
    for _ in range(iters):
        plan *= r / plan.sum(dim=2, keepdim=True)
        plan *= c / plan.sum(dim=1, keepdim=True)
    plan = torch.nan_to_num(plan, nan=1e-8)
    return plan, torch.sum(plan * m, dim=[1, 2])


def reference_assignments(tokens, positions, k, pos_alpha, init_index,
                          num_iters, sinkhorn_reg=20.0, sinkhorn_iters=5,
                          update_c=True):
    """The reference ``compute_assignments`` (hard assignments).

    Returns:
        Tensor: (B, T, K) assignment, divided per view by the member count.
    """
    tokens = F.normalize(tokens, dim=-1)
    b, t, _ = tokens.shape
    r = torch.ones(b, t, 1, device=tokens.device) / t
    c = torch.ones(b, 1, k, device=tokens.device) / k
    one_hot = torch.eye(t, device=tokens.device)[init_index.reshape(-1)]
    one_hot = one_hot.reshape(b, k, t)
    centroids = torch.einsum('bnd,bkn->bkd', tokens, one_hot)
    assignment = one_hot.permute(0, 2, 1)
    for _ in range(num_iters):
        sim = torch.einsum('bnd,bkd->bnk', tokens, centroids)
        m = -sim + pos_alpha * reference_positional_cost(positions,
                                                         assignment)
        m = (m - m.min()) / (m.max() - m.min())
        plan, _ = reference_sinkhorn(m, r, c, sinkhorn_reg, sinkhorn_iters)
        best = plan.max(dim=-1, keepdim=True).values.expand(b, t, k)
        assignment = (plan == best).float()
        if update_c:
            c = assignment.sum(dim=1, keepdim=True) + 1e-2
            c /= c.sum(dim=-1, keepdim=True)
        centroids = F.normalize(
            torch.einsum('bnd,bnk->bkd', tokens, assignment), dim=-1)
    views = assignment.reshape(b, 2, t // 2, k)
    count = views.sum(dim=-2, keepdim=True)
    count[count == 0.0] = 1.0
    return (views / count).reshape(b, t, k)


def reference_objects(tokens, student_tokens, positions, k, pos_alpha,
                      init_index, num_iters):
    """The reference ``compute_teacher_centroids`` (``last_tokens`` =
    ``tokens``, one head) and ``compute_student_centroids``.

    Args:
        tokens, student_tokens (Tensor): View-major (2B, 1 + N, d).
        positions (Tensor): (2, B, 2, N).

    Returns:
        tuple: teacher centroids (v1, v2), valid mask (B*K,), objects per
        image (B,), student centroids (v1, v2).
    """
    patches = tokens[:, 1:]
    two_b, n, d = patches.shape
    b = two_b // 2
    last = patches.reshape(2, b, n, d)
    joint = last.transpose(0, 1).reshape(b, 2 * n, d)
    corners = positions[:, :, :, [0, -1]]  # the reference's (unused) area
    torch.prod(torch.abs(corners[..., 0] - corners[..., 1]), dim=-1)
    joint_pos = positions.permute(1, 0, 3, 2).reshape(b, 2 * n, 2)
    assignment = reference_assignments(joint, joint_pos, k, pos_alpha,
                                       init_index, num_iters)
    best = assignment.max(dim=-1, keepdim=True).values
    hard = (assignment == best.expand_as(assignment)).float()
    hard = hard.reshape(b, 2, n, k).transpose(0, 1)  # (m, b, n, k)
    per_view = assignment.reshape(b, 2, n, k).transpose(0, 1)[:, :, None]
    centroids = torch.einsum('mbnd,mbhnk->mbhkd', last, per_view)
    centroids = centroids.reshape(2, b * k, d)
    hard_v = hard.permute(0, 1, 3, 2).reshape(2, b * k, n)
    valid = torch.logical_and(hard_v[0].sum(-1) > 0, hard_v[1].sum(-1) > 0)
    per_image = torch.stack(
        [v.sum() for v in torch.tensor_split(valid, b)])
    student = student_tokens[:, 1:].reshape(2, b, n, d)
    s_centroids = torch.einsum('mbnd,mbhnk->mbhkd', student, per_view)
    s_centroids = s_centroids.reshape(2, b * k, d)
    return (centroids[0][valid], centroids[1][valid], valid, per_image,
            s_centroids[0][valid], s_centroids[1][valid])


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
    # view-major backbone outputs (2B, 1 + N, d) with a CLS token, the
    # student's own tokens, and positions as (2, B, 2, N)
    cls = torch.randn(2 * b, 1, d, generator=g)
    patches = tokens.reshape(b, 2, n, d).transpose(0, 1).reshape(2 * b, n, d)
    teacher = torch.cat([cls, patches], dim=1)
    student = torch.randn(2 * b, 1 + n, d, generator=g)
    view_pos = positions.reshape(b, 2, n, 2).permute(1, 0, 3, 2).contiguous()
    return (positions.to(device), init_index.to(device), hard.to(device),
            teacher.to(device), student.to(device), view_pos.to(device))


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
        help='only run the positional cost for the reference design')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    b, n, k, d = args.batch, args.tokens_per_view, args.clusters, args.dim
    t = 2 * n
    (positions, init_index, hard, teacher, student,
     view_pos) = make_inputs(b, n, d, k, device, args.seed)

    # Warm-up on a tiny problem (kernel selection, lazy init).
    w_pos, w_idx, w_hard, w_t, w_s, w_vpos = make_inputs(2, 4, 8, 3, device,
                                                         1)
    positional_cost(pairwise_distances(w_pos), w_hard)
    reference_positional_cost(w_pos, w_hard)
    pool_objects(w_s, teacher_objects(w_t, w_vpos, 3, 1.0, num_iters=1,
                                      init_index=w_idx).assignments,
                 torch.ones(6, dtype=torch.bool))
    reference_objects(w_t, w_s, w_vpos, 3, 1.0, w_idx, 1)

    print(f'device={device} threads={torch.get_num_threads()} B={b} '
          f'2N={t} K={k} d={d} iters={args.iters} repeats={args.repeats}')
    dense_bytes = b * t * t * k * 4
    print(f'dense (B,2N,2N,K) float32 tensor: {dense_bytes / 2**20:.1f} MiB;'
          f' (B,2N,2N) distance matrix: {b * t * t * 4 / 2**20:.1f} MiB')

    rows = []

    def ours_pos():
        return positional_cost(pairwise_distances(positions), hard)

    def dense_pos():
        return reference_positional_cost(positions, hard)

    out_o, t_o, m_o, c_o = measure(ours_pos, device, args.repeats, True)
    out_d, t_d, m_d, c_d = measure(dense_pos, device, args.repeats, True)
    diff = (out_o - out_d).abs().max().item()
    rows.append(('positional cost', t_o, m_o, t_d, m_d, c_o, c_d,
                 f'{diff:.1e}'))
    del out_o, out_d

    def ours_objects():
        objects = teacher_objects(
            teacher, view_pos, k, args.pos_alpha, num_iters=args.iters,
            init_index=init_index)
        return objects, pool_objects(student, objects.assignments,
                                     objects.valid)

    def reference():
        return reference_objects(teacher, student, view_pos, k,
                                 args.pos_alpha, init_index, args.iters)

    (obj, pooled), t_o, m_o, c_o = measure(ours_objects, device,
                                           args.repeats, True)
    name = 'objects+pooling'
    if args.skip_dense_clustering:
        nan = float('nan')
        rows.append((name, t_o, m_o, nan, nan, c_o, nan, 'n/a'))
    else:
        ref, t_d, m_d, c_d = measure(reference, device, args.repeats, True)
        same = (torch.equal(obj.valid, ref[2])
                and torch.equal(obj.objects_per_image, ref[3]))
        diff = max((a - b).abs().max().item() for a, b in zip(
            (obj.centroids_v1, obj.centroids_v2, *pooled),
            (ref[0], ref[1], ref[4], ref[5])))
        rows.append((name, t_o, m_o, t_d, m_d, c_o, c_d,
                     f'same objects={same}, max diff {diff:.1e}'))

    head = (f'{"":16} | {"ours s":>8} {"ours MiB":>9} | {"ref s":>8} '
            f'{"ref MiB":>9} | {"time x":>7} {"mem x":>7} | '
            f'{"ours CPU s":>10} {"ref CPU s":>9} {"CPU x":>6} | check')
    print(head)
    print('-' * len(head))
    for name, to, mo, td, md, co, cd, check in rows:
        tx = td / to if to > 0 else float('nan')
        mx = md / mo if mo > 0 else float('nan')
        cx = cd / co if co > 0 else float('nan')
        print(f'{name:16} | {to:8.3f} {mo:9.1f} | {td:8.3f} {md:9.1f} | '
              f'{tx:7.2f} {mx:7.1f} | {co:10.3f} {cd:9.3f} {cx:6.1f} | '
              f'{check}')
    print('time x / mem x / CPU x: reference divided by ours (higher = ours '
          'better); CPU s: process CPU time, less disturbed by other '
          'processes. '
          'Memory: peak increase during the call'
          + (' (CUDA allocator)' if device.type == 'cuda' else
             ' (process RSS high-water mark)'))
    if os.cpu_count() and device.type == 'cpu':
        print(f'note: {os.cpu_count()} CPU cores visible; timings on a '
              'shared machine are indicative only')


if __name__ == '__main__':
    main()
