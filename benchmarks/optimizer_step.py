# Copyright (c) cribo-mm contributors. All rights reserved.
"""AdamW step of the CrIBo ViT-S/16: one group per tensor vs merged groups.

The paper configs' ``paramwise_cfg`` (no weight decay on norms and biases)
gives every parameter tensor its own group with mmengine's
``DefaultOptimWrapperConstructor`` (the baseline); our
``CrIBoOptimWrapperConstructor`` puts the parameters with equal settings in
one group (2 groups). Both optimizers get the same parameters and the same
random gradients; the parameters after the timed steps are asserted
identical. Times: median over ``--repeats`` steps after one warm-up step;
with ``--foreach`` both use the multi-tensor implementation (the default on
CUDA).

    python benchmarks/optimizer_step.py            # ViT-S/16, 65536-d heads
    python benchmarks/optimizer_step.py --foreach  # multi-tensor AdamW
    python benchmarks/optimizer_step.py --device cuda
"""
import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cribo_mm  # noqa: E402,F401
from cribo_mm.registry import MODELS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def build_model(out_dim: int) -> torch.nn.Module:
    from mmengine.config import Config
    cfg = Config.fromfile(
        str(ROOT / 'configs' / '_base_' / 'models' / 'cribo_vit-s16.py'))
    cfg.model.neck.update(out_channels=out_dim, out_channels_objects=out_dim)
    cfg.model.head.update(out_dim=out_dim, out_dim_c=out_dim)
    cfg.model.memory_bank.num_images = 64
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def time_steps(wrapper, params, grads, repeats, device):
    times = []
    for step in range(repeats + 1):
        for p, g in zip(params, grads):
            p.grad = g
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        wrapper.step()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        if step:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dim', type=int, default=65536)
    parser.add_argument('--foreach', action='store_true',
                        help='multi-tensor AdamW (default: torch chooses)')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: CUDA is not available')
    if args.threads:
        torch.set_num_threads(args.threads)
    from mmengine.optim import DefaultOptimWrapperConstructor

    from cribo_mm.engine.optimizers import CrIBoOptimWrapperConstructor
    optimizer = dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999),
                     weight_decay=0.04)
    if args.foreach:
        optimizer['foreach'] = True
    cfg = dict(type='OptimWrapper', optimizer=optimizer)
    paramwise = dict(norm_decay_mult=0., bias_decay_mult=0.)
    model_old = build_model(args.out_dim).to(device)
    model_new = copy.deepcopy(model_old)
    old = DefaultOptimWrapperConstructor(copy.deepcopy(cfg),
                                         paramwise)(model_old)
    new = CrIBoOptimWrapperConstructor(copy.deepcopy(cfg),
                                       paramwise)(model_new)
    p_old = [p for p in model_old.parameters() if p.requires_grad]
    p_new = [p for p in model_new.parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(p.shape, generator=g).to(device) for p in p_old]
    numel = sum(p.numel() for p in p_old)
    print(f'ViT-S/16 + heads ({args.out_dim}-d): {len(p_old)} trainable '
          f'tensors, {numel / 1e6:.1f} M parameters, {device}, threads='
          f'{torch.get_num_threads()}, foreach='
          f'{"True" if args.foreach else "default"}, median of '
          f'{args.repeats} steps')
    t_old = time_steps(old, p_old, grads, args.repeats, device)
    t_new = time_steps(new, p_new, grads, args.repeats, device)
    for a, b in zip(p_old, p_new):
        assert torch.equal(a, b), 'parameters differ after the steps'
    print('parameters identical after the steps')
    print(f'{"":34s}{"groups":>8s}{"s/step":>10s}')
    print(f'{"one group per tensor (mmengine)":34s}'
          f'{len(old.optimizer.param_groups):8d}{t_old:10.4f}')
    print(f'{"merged (CrIBoOptimWrapperConstructor)":34s}'
          f'{len(new.optimizer.param_groups):8d}{t_new:10.4f}')
    print(f'ratio: {t_old / t_new:.2f}x')


if __name__ == '__main__':
    main()
