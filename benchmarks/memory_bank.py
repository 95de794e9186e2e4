# Copyright (c) cribo-mm contributors. All rights reserved.
"""Memory-bank step: ours (chunked, in place) vs the reference design.

One step = cycle-consistent top-1 retrieval of a batch's objects against the
bank, then the FIFO insertion of the batch. The baseline, written here,
follows the reference: it normalises a full copy of the bank for matching,
builds the whole (objects x bank slots) similarity matrix, and rebuilds the
bank by concatenation. Both run on the same inputs; their neighbours,
masks and final banks are asserted identical.

    python benchmarks/memory_bank.py               # B=8, K=64, d=384, S=5000
    python benchmarks/memory_bank.py --paper          # S=25000, B=32 (paper)
    python benchmarks/memory_bank.py --dtype float16  # half-precision storage
"""
import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import measure  # noqa: E402

from cribo_mm.models.utils.memory_bank import CrIBoMemoryBank  # noqa: E402


def reference_step(objects, counts, v1, v2, new_counts):
    """Reference-style retrieval + FIFO update; returns the new state."""
    num_valid = int(counts.sum())
    keys = objects[:, :num_valid]
    keys_n = F.normalize(keys, dim=-1)  # full normalised copy of the bank
    q1, q2 = F.normalize(v1, dim=-1), F.normalize(v2, dim=-1)
    idx1 = (q1 @ keys_n[0].T).topk(1, dim=1).indices[:, 0]
    idx2 = (q2 @ keys_n[1].T).topk(1, dim=1).indices[:, 0]
    arange = torch.arange(len(v1))
    mask1 = (keys_n[1][idx1] @ q2.T).argmax(dim=1) == arange
    mask2 = (keys_n[0][idx2] @ q1.T).argmax(dim=1) == arange
    nn1, nn2 = keys[:, idx1], keys[:, idx2]
    # FIFO: newest first, then the oldest images that still fit
    num_images = counts.numel()
    keep = num_images - new_counts.numel()
    kept = int(counts[:keep].sum())
    new_objects = objects.clone()
    merged = torch.cat([torch.stack([v1, v2]), objects[:, :kept]], dim=1)
    new_objects[:, :merged.shape[1]] = merged
    new_counts_all = torch.cat([new_counts, counts[:keep]])
    return (nn1, mask1, nn2, mask2), new_objects, new_counts_all


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('-b', '--batch', type=int, default=8)
    parser.add_argument('-k', '--objects', type=int, default=64)
    parser.add_argument('-d', '--dim', type=int, default=384)
    parser.add_argument('-s', '--images', type=int, default=5000)
    parser.add_argument('--paper', action='store_true',
                        help='paper size: B=32, S=25000 (about 5 GB)')
    parser.add_argument('--dtype', default='float32')
    parser.add_argument('--chunk-size', type=int, default=65536)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=None)
    args = parser.parse_args()
    if args.paper:
        args.batch, args.images = 32, 25000
    if args.threads:
        torch.set_num_threads(args.threads)
    b, k, d, s = args.batch, args.objects, args.dim, args.images
    g = torch.Generator().manual_seed(0)
    counts = torch.randint(k // 2, k + 1, (b, ), generator=g)
    c = int(counts.sum())
    v1 = torch.randn(c, d, generator=g)
    v2 = v1 + 0.3 * torch.randn(c, d, generator=g)

    bank = CrIBoMemoryBank(s, k, d, dtype=args.dtype, store_cls=False,
                           chunk_size=args.chunk_size)
    # a bank of real-looking entries: some planted near the queries
    with torch.no_grad():
        bank.objects.copy_(torch.randn(2, k * s, d, generator=g))
        bank.objects[:, :c:3] = torch.stack([v1, v2])[:, ::3].to(
            bank.objects.dtype)
    base_objects = bank.objects.clone()
    base_counts = bank.objects_per_image.clone()
    print(f'B={b} K={k} d={d} S={s} objects/step={c} bank='
          f'{bank.objects.numel() * bank.objects.element_size() / 2**20:.0f}'
          f' MiB ({args.dtype}) threads={torch.get_num_threads()}')

    def ours():
        result = bank.retrieve(v1, v2)
        bank.update(v1, v2, counts)
        return result

    def measure_ours():
        # the bank is reset between repeats, outside the timed call
        best_t, peak = float('inf'), 0.
        for _ in range(args.repeats):
            bank.objects.copy_(base_objects)
            bank.objects_per_image.copy_(base_counts)
            result, t, m = measure(ours, torch.device('cpu'), 1)
            best_t, peak = min(best_t, t), max(peak, m)
        return result, best_t, peak

    def reference():
        return reference_step(base_objects.float(), base_counts, v1, v2,
                              counts)

    res_o, t_o, m_o = measure_ours()
    (res_r, obj_r, cnt_r), t_r, m_r = measure(reference, torch.device('cpu'),
                                              args.repeats)
    if args.dtype == 'float32':
        assert torch.equal(res_o.mask_v1, res_r[1])
        assert torch.equal(res_o.mask_v2, res_r[3])
        assert torch.equal(res_o.neighbours_v1, res_r[0])
        assert torch.equal(res_o.neighbours_v2, res_r[2])
        assert torch.equal(bank.objects, obj_r)
        assert torch.equal(bank.objects_per_image, cnt_r)
        print('outputs identical: neighbours, masks, bank after update')
    print(f'{"":12s}{"s/step":>10s}{"extra MiB":>12s}')
    print(f'{"reference":12s}{t_r:10.3f}{m_r:12.0f}')
    print(f'{"ours":12s}{t_o:10.3f}{m_o:12.0f}')
    print(f'ratio: {t_r / t_o:.1f}x faster, '
          f'{m_r / max(m_o, 1):.1f}x less extra memory')


if __name__ == '__main__':
    main()
