# Copyright (c) cribo-mm contributors. All rights reserved.
"""One training step: CrIBo vs the same code's DINO, fp32 vs bf16, by part.

Builds the ViT-S/16 model of the paper configs
(``configs/_base_/models/cribo_vit-s16.py``: 65 536-d heads, K clusters, a
bank of S images) once as CrIBo and once as its DINO baseline
(``object_terms=False``: no clustering, pooling, bank, object heads or
object losses), and times complete steps (EMA update, forward, backward,
AdamW step) in float32 (``OptimWrapper``) and in bfloat16 / float16
(``CrIBoAmpOptimWrapper``). The parts are the ``profile_part`` ranges of
the model (:mod:`cribo_mm.utils.profiling`); ``other`` is the step time not
inside a part. Every value is the median over ``--repeats`` steps after
``--warmup`` steps; the peak is the largest memory increase during a step
(CPU: resident set; CUDA: allocated). Each setting runs in a fresh process,
so that memory freed by the previous one does not hide its peak. The bank
is matched in full (all S x K slots valid), the cross-image term is on
(steady state). One more step is run under ``torch.utils.flop_counter``:
its matrix-product GFLOP give CrIBo's arithmetic over DINO's, the overhead
a step would have if every product ran at the same speed.

    python benchmarks/train_step.py            # ViT-S/16, 224, B=32, K=64
    python benchmarks/train_step.py --quick    # tiny ViT, seconds
    python benchmarks/train_step.py --device cuda   # fp32, fp16, bf16
    python benchmarks/train_step.py --methods cribo --precisions bf16
"""
import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import _reset_cpu_peak, _status_kib  # noqa: E402

import cribo_mm  # noqa: E402,F401
from cribo_mm.registry import MODELS, OPTIM_WRAPPERS  # noqa: E402
from cribo_mm.utils.profiling import StepProfiler  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PARTS = ('ema_update', 'teacher_forward', 'student_forward', 'clustering',
         'pooling', 'bank', 'head_projections', 'loss',
         'backward', 'optimizer_step', 'other')


def build_model(args, object_terms: bool, device: torch.device):
    from mmengine.config import Config
    cfg = Config.fromfile(
        str(ROOT / 'configs' / '_base_' / 'models' / 'cribo_vit-s16.py'))
    model_cfg = cfg.model
    model_cfg.object_terms = object_terms
    model_cfg.backbone.arch = args.arch
    model_cfg.backbone.img_size = args.img_size
    model_cfg.object_pooling.num_clusters = args.clusters
    model_cfg.memory_bank.update(
        num_images=args.bank_images, num_objects=args.clusters)
    model_cfg.neck.update(out_channels=args.out_dim,
                          out_channels_objects=args.out_dim)
    model_cfg.head.update(out_dim=args.out_dim, out_dim_c=args.out_dim)
    if args.quick:
        dims = 96
        model_cfg.backbone.arch = dict(
            embed_dims=dims, num_layers=4, num_heads=3,
            feedforward_channels=4 * dims)
        model_cfg.neck.update(in_channels=dims, hidden_channels=512,
                              bottleneck_channels=128)
        model_cfg.memory_bank.embed_dim = dims
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    model.head.crossimage_enabled = True  # steady state (epoch >= 1)
    return model.to(device).train()


def build_wrapper(model, precision: str):
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    cfg = dict(
        type='OptimWrapper',
        constructor='CrIBoOptimWrapperConstructor',
        optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999),
                       weight_decay=0.04),
        paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
    if precision != 'fp32':
        cfg.update(type='CrIBoAmpOptimWrapper',
                   dtype={'bf16': 'bfloat16', 'fp16': 'float16'}[precision])
    assert OPTIM_WRAPPERS.get(cfg['type']) is not None
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return build_optim_wrapper(model, cfg)


def make_batch(args, device):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(0)
    size, b = args.img_size, args.batch
    samples = []
    for _ in range(b):
        ds = DataSample()
        xy = torch.randint(0, size // 2, (2, 2), generator=g).float()
        wh = torch.randint(size // 2, size, (2, 1), generator=g).float()
        ds.set_field(torch.cat([xy, xy + wh], 1), 'crop_bbox')
        ds.set_field(torch.rand(2, generator=g) < 0.5, 'crop_flip')
        samples.append(ds)
    views = [torch.randint(0, 255, (b, 3, size, size), generator=g,
                           dtype=torch.uint8) for _ in range(2)]
    return dict(inputs=views, data_samples=samples)


def peak_start(device):
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    return _status_kib('VmRSS') * 1024 if _reset_cpu_peak() else None


def peak_end(device, before):
    if device.type == 'cuda':
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    if before is None:
        return float('nan')
    return (_status_kib('VmHWM') * 1024 - before) / 2**20


def count_gflop(model, wrapper, data) -> float:
    """Matrix-product GFLOP of one training step (forward and backward).

    Counted by ``torch.utils.flop_counter`` (matmuls, linear layers,
    attention, convolutions; elementwise work such as softmax is not
    counted): the arithmetic a step cannot avoid, whatever the kernels.

    Returns:
        float: GFLOP (1e9 floating-point operations), NaN where this torch
        has no flop counter.
    """
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:  # torch < 2.1
        return float('nan')
    counter = FlopCounterMode(display=False)
    with counter:
        with wrapper.optim_context(model):
            losses = model(**data, mode='loss')
        loss, _ = model.parse_losses(losses)
        wrapper.backward(loss)
    wrapper.zero_grad()
    return counter.get_total_flops() / 1e9


def run(args, method: str, precision: str, device: torch.device):
    """Median per-part times (s), step time, peak MiB and statistics."""
    from mmengine.logging import MessageHub
    MessageHub.get_current_instance().update_info('max_iters', 1000)
    model = build_model(args, method == 'cribo', device)
    wrapper = build_wrapper(model, precision)
    data = model.data_preprocessor(make_batch(args, device), True)
    records, stats = [], {}
    for step in range(args.warmup + args.repeats):
        before = peak_start(device)
        with StepProfiler(device) as prof:
            with prof.part('step'):
                with wrapper.optim_context(model):
                    losses = model(**data, mode='loss')
                loss, log_vars = model.parse_losses(losses)
                with prof.part('backward'):
                    wrapper.backward(loss)
                with prof.part('optimizer_step'):
                    wrapper.step()
                    wrapper.zero_grad()
        peak = peak_end(device, before)
        if step >= args.warmup:
            times = dict(prof.cpu_times if args.cpu_time else prof.times)
            total = times.pop('step')
            times['other'] = total - sum(times.values())
            records.append((times, total, peak))
            stats = {k: float(v) for k, v in log_vars.items()
                     if k in ('objects_per_image', 'cycle_consistent_ratio')}
    stats['gflop'] = count_gflop(model, wrapper, data)
    parts = {p: statistics.median(r[0].get(p, 0.) for r in records)
             for p in PARTS}
    total = statistics.median(r[1] for r in records)
    peak = max(r[2] for r in records)
    del model, wrapper, data
    gc.collect()
    return parts, total, peak, stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='deit-small')
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('-b', '--batch', type=int, default=32)
    parser.add_argument('-k', '--clusters', type=int, default=64)
    parser.add_argument('-s', '--bank-images', type=int, default=1000,
                        help='bank size S in images (paper: 25000); the '
                        'bank part grows linearly with it')
    parser.add_argument('--out-dim', type=int, default=65536)
    parser.add_argument('--methods', nargs='+', default=['dino', 'cribo'],
                        choices=['dino', 'cribo'])
    parser.add_argument('--precisions', nargs='+', default=None,
                        choices=['fp32', 'bf16', 'fp16'],
                        help='default: fp32 bf16 (CUDA: fp32 fp16 bf16)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--cpu-time', action='store_true',
                        help='report CPU seconds of the process instead of '
                        'wall-clock seconds (steadier on a shared machine)')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    parser.add_argument('--quick', action='store_true',
                        help='tiny ViT (96 d, 4 blocks), 128 px, B=8, K=16, '
                        'S=256, 1024-d heads')
    args = parser.parse_args()
    if args.quick:
        args.img_size, args.batch, args.clusters = 128, 8, 16
        args.bank_images, args.out_dim = 256, 1024
    from mmengine.logging import MMLogger
    MMLogger.get_instance('train_step_benchmark', log_level='WARNING')
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: CUDA is not available')
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.precisions is None:
        args.precisions = ['fp32', 'fp16', 'bf16'] if device.type == 'cuda' \
            else ['fp32', 'bf16']
    if args.worker:  # one setting, in this process
        method, precision, out = args.worker.split(':', 2)
        with open(out, 'w') as f:
            json.dump(run(args, method, precision, device), f)
        return

    def run_in_subprocess(method, precision):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, 'result.json')
            subprocess.run(
                [sys.executable, __file__, *sys.argv[1:], '--worker',
                 f'{method}:{precision}:{out}'], check=True)
            with open(out) as f:
                return json.load(f)

    name = 'tiny ViT (96 d, 4 blocks)' if args.quick else args.arch
    print(f'{name}, {args.img_size} px, B={args.batch}, K={args.clusters}, '
          f'bank S={args.bank_images} images, heads {args.out_dim}-d, '
          f'{device}, threads={torch.get_num_threads()}, '
          f'{"CPU" if args.cpu_time else "wall-clock"} seconds, median of '
          f'{args.repeats} steps after {args.warmup}', flush=True)

    results = {}
    for precision in args.precisions:
        for method in args.methods:
            results[method, precision] = run_in_subprocess(
                method, precision)
            parts, total, peak, stats = results[method, precision]
            extra = ''.join(f', {k}={v:.4g}' for k, v in stats.items())
            print(f'  {method} {precision}: {total:.3f} s/step, peak '
                  f'{peak:.0f} MiB{extra}', flush=True)

    cols = list(results)
    header = ''.join(f'{m + " " + p:>14s}' for m, p in cols)
    print(f'\n{"part (s)":18s}{header}')
    for part in PARTS:
        row = [results[c][0][part] for c in cols]
        if any(v > 5e-4 for v in row):
            print(f'{part:18s}' + ''.join(f'{v:14.3f}' for v in row))
    print(f'{"step":18s}' + ''.join(f'{results[c][1]:14.3f}' for c in cols))
    print(f'{"peak MiB":18s}' + ''.join(f'{results[c][2]:14.0f}'
                                          for c in cols))
    print()
    for precision in args.precisions:
        if ('dino', precision) in results and ('cribo', precision) in results:
            dino = results['dino', precision][1]
            cribo = results['cribo', precision][1]
            flop = (results['cribo', precision][3]['gflop'] /
                    results['dino', precision][3]['gflop'])
            print(f'CrIBo overhead over DINO ({precision}): '
                  f'{100 * (cribo / dino - 1):+.1f} % time, '
                  f'{100 * (flop - 1):+.1f} % matrix-product arithmetic')
    for method in args.methods:
        if (method, 'fp32') not in results:
            continue
        for precision in args.precisions:
            if precision != 'fp32' and (method, precision) in results:
                speedup = (results[method, 'fp32'][1] /
                           results[method, precision][1])
                print(f'{method} {precision} vs fp32: {speedup:.2f}x faster')


if __name__ == '__main__':
    main()
