# Copyright (c) cribo-mm contributors. All rights reserved.
"""Throughput and peak memory of dense NN label transfer.

Compares, on a random memory of one million L2-normalised entries (CPU by
default), :func:`cribo_mm.evaluation.dense_nn.knn_label_transfer` with

* ``chunked``: the float32 exact search (running top-k over memory blocks,
  ``search_dtype='float32'``),
* ``bf16``: the certified search (``search_dtype='bfloat16'``; bf16 matmul
  against a bf16 copy of the memory, float32 re-score, proof or float32
  fallback; its fallback count is printed),
* ``naive``: a baseline that materialises the full (queries x memory)
  similarity matrix.

Each method runs in its own subprocess so that its peak resident memory is
measured alone; the peak is reported above the resident size after the
memory, the queries and (``bf16``) the bf16 copy of the memory (half the
memory's size, printed) were created (``extra peak``). The predictions of
``chunked`` and ``bf16`` are asserted bit-identical (same neighbours and
similarities). Usage::

    python benchmarks/dense_nn.py                # 1M x 384, 1024 queries
    python benchmarks/dense_nn.py --queries 4096 --json out.json
    python benchmarks/dense_nn.py --device cuda  # peak from torch.cuda
"""
import argparse
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import threading
import time

_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

METHODS = ('chunked', 'bf16', 'naive')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--memory', type=int, default=1_000_000,
                        help='memory entries (default: 1,000,000)')
    parser.add_argument('--dim', type=int, default=384,
                        help='feature dimension (default: 384, ViT-S)')
    parser.add_argument('--classes', type=int, default=21,
                        help='classes of the label distributions (VOC: 21)')
    parser.add_argument('--queries', type=int, default=1024,
                        help='query patches (default: 1024, one 512x512 '
                        'image at stride 16)')
    parser.add_argument('--k', type=int, default=30)
    parser.add_argument('--temperature', type=float, default=0.02)
    parser.add_argument('--chunk-size', type=int, default=1024,
                        help='queries per chunk (chunked method)')
    parser.add_argument('--memory-chunk-size', type=int, default=32768,
                        help='memory rows per block (chunked method)')
    parser.add_argument('--methods', nargs='+', default=list(METHODS),
                        choices=METHODS)
    parser.add_argument('--repeats', type=int, default=2,
                        help='timed repetitions; the best is reported')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--json', help='write the results here')
    parser.add_argument('--worker', choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument('--out', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _rss_bytes(field='VmRSS'):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    return None


def _reset_peak():
    """Reset VmHWM (Linux >= 4.0); returns whether it worked."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


class _PeakSampler:
    """Samples the resident size every few milliseconds."""

    def __init__(self, interval=0.002):
        self.interval = interval
        self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def naive_label_transfer(query, memory, labels, k, temperature):
    """Baseline: one full (Q, M) similarity matrix, then top-k."""
    import torch
    import torch.nn.functional as F
    sim = F.normalize(query, dim=1) @ memory.T
    top, idx = sim.topk(k, dim=1)
    del sim
    weight = torch.softmax(top / temperature, dim=1)
    return torch.einsum('qk,qkc->qc', weight, labels[idx])


def worker(args):
    import torch

    from cribo_mm.evaluation.dense_nn import (build_knn_index,
                                              knn_label_transfer)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    memory = torch.randn(args.memory, args.dim, generator=gen)
    memory.div_(memory.norm(dim=1, keepdim=True))  # in place: no copy
    labels = torch.rand(args.memory, args.classes, generator=gen)
    labels.div_(labels.sum(1, keepdim=True))
    query = torch.randn(args.queries, args.dim, generator=gen)
    memory, labels, query = (t.to(device) for t in (memory, labels, query))
    fast = 'float16' if device.type == 'cuda' and \
        not torch.cuda.is_bf16_supported() else 'bfloat16'
    index = build_knn_index(
        memory,
        memory_chunk_size=args.memory_chunk_size,
        normalize=False,
        search_dtype=fast if args.worker == 'bf16' else 'float32')

    def run(q):
        if args.worker == 'naive':
            out = naive_label_transfer(q, memory, labels, args.k,
                                       args.temperature)
        else:
            out = knn_label_transfer(
                q, index, labels, k=args.k,
                temperature=args.temperature, chunk_size=args.chunk_size)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        return out

    # warm-up (kernels, allocator; builds the bf16 copy of the memory)
    run(query[:max(16, min(64, args.queries))])
    index.stats = type(index.stats)()  # count the timed calls only
    times = []
    base = _rss_bytes()
    reset_ok = _reset_peak()
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        cuda_base = torch.cuda.memory_allocated(device)
    with _PeakSampler() as sampler:
        for _ in range(args.repeats):
            tic = time.perf_counter()
            out = run(query)
            times.append(time.perf_counter() - tic)
    peak = max(sampler.peak, _rss_bytes('VmHWM') if reset_ok else 0)
    if args.out:
        torch.save(out, args.out)
    result = dict(
        method=args.worker,
        fallbacks=index.stats.fallbacks,
        searched=index.stats.queries,
        seconds=min(times),
        query_patches_per_s=args.queries / min(times),
        rss_before_mib=base / 2**20,
        extra_peak_rss_mib=(peak - base) / 2**20,
        threads=torch.get_num_threads())
    if device.type == 'cuda':
        result['extra_peak_cuda_mib'] = (
            torch.cuda.max_memory_allocated(device) - cuda_base) / 2**20
    print(json.dumps(result))


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return None
    argv = list(sys.argv[1:] if argv is None else argv)
    results = []
    tmp = tempfile.mkdtemp()
    outputs = {}
    for method in args.methods:
        outputs[method] = osp.join(tmp, f'{method}.pt')
        proc = subprocess.run(
            [sys.executable, osp.abspath(__file__), *argv, '--worker',
             method, '--out', outputs[method]],
            capture_output=True, text=True, env=dict(os.environ))
        if proc.returncode != 0:
            print(f'{method}: failed\n{proc.stderr[-2000:]}')
            results.append(dict(method=method, error=proc.stderr[-2000:]))
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    import torch
    done = [m for m in ('chunked', 'bf16') if osp.exists(outputs.get(m, ''))]
    if len(done) == 2:
        same = torch.equal(*(torch.load(outputs[m], weights_only=True)
                             for m in done))
        print('chunked (fp32) and bf16 predictions identical:', same)
        assert same, 'bf16-exact search differs from float32'
    shutil.rmtree(tmp)
    settings = {k: v for k, v in vars(args).items()
                if k not in ('worker', 'json')}
    sim_mib = args.queries * args.memory * 4 / 2**20
    block_mib = min(args.chunk_size, args.queries) * min(
        args.memory_chunk_size, args.memory) * 4 / 2**20
    print(f'memory {args.memory:,} x {args.dim}, {args.queries:,} queries, '
          f'k={args.k}, device {args.device}; full similarity matrix '
          f'{sim_mib:,.0f} MiB, chunked block {block_mib:,.0f} MiB, bf16 '
          f'copy of the memory {args.memory * args.dim * 2 / 2**20:,.0f} '
          'MiB')
    print(f"{'method':<10}{'seconds':>10}{'query patches/s':>18}"
          f"{'extra peak MiB':>16}")
    for r in results:
        if 'error' in r:
            print(f"{r['method']:<10}{'failed':>10}")
            continue
        peak = r.get('extra_peak_cuda_mib', r['extra_peak_rss_mib'])
        fallback = (f"  {r['fallbacks']}/{r['searched']} fp32 fallbacks"
                    if r['method'] == 'bf16' else '')
        print(f"{r['method']:<10}{r['seconds']:>10.2f}"
              f"{r['query_patches_per_s']:>18,.0f}{peak:>16,.0f}{fallback}")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(settings=settings, results=results), f, indent=2)
    return results


if __name__ == '__main__':
    main()
