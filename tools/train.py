# Copyright (c) cribo-mm contributors. All rights reserved.
"""Train a model from an mmengine config (CrIBo or any mmpretrain algorithm).

Examples::

    python tools/train.py configs/cribo/vit-t16_demo.py
    python tools/train.py configs/cribo/vit-s16_coco.py --amp \
        --cfg-options train_dataloader.dataset.data_root=/data/coco
    python tools/train.py CONFIG --resume            # latest in work dir
    python tools/train.py CONFIG --resume PATH.pth   # a given checkpoint
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--work-dir',
        help='where logs and checkpoints go '
        '(default: ./work_dirs/<config name>)')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        metavar='PATH',
        help='resume from PATH, or from the latest checkpoint of the work '
        'dir when no PATH is given')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision (CrIBoAmpOptimWrapper): fp16 with '
        'dynamic loss scaling on a GPU, bf16 on a machine without CUDA')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the actual global batch size / '
        'auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='skip the validation loop if the config has one')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'train_dataloader.batch_size=8 "model.backbone.arch=deit-base"')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='unpickle checkpoints (--resume, load_from, init_cfg) without '
        'restrictions, as CRIBO_UNSAFE_LOAD=1 does; a crafted file can then '
        'run any code: only for files you trust')
    # torchrun sets LOCAL_RANK; torch.distributed.launch passes --local-rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def merge_args(cfg: Config, args) -> Config:
    """Fold the command-line options into the config."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        # fp16 + dynamic loss scaling on a GPU, bf16 without CUDA
        from cribo_mm.engine.optimizers import enable_amp
        print(enable_amp(cfg.optim_wrapper), flush=True)
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg:
            raise KeyError('--auto-scale-lr: the config has no '
                           '"auto_scale_lr" (base_batch_size) entry')
        cfg.auto_scale_lr.enable = True
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.resume is not None:
        # after --cfg-options, which may move the work dir
        from cribo_mm.utils.resume import (check_resume_file,
                                           resolve_auto_resume)
        if args.resume == 'auto':
            target = resolve_auto_resume(cfg.work_dir)
        else:
            check_resume_file(args.resume, cfg.work_dir)
            target = args.resume
        cfg.resume = target is not None
        cfg.load_from = target
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if args.launcher == 'pytorch':
        # a rank must not outlive torchrun (e.g. after kill -9 of it)
        from cribo_mm.utils.dist_faults import die_with_parent
        die_with_parent()
    if args.unsafe_load:
        from cribo_mm.utils.checkpoint_io import request_unsafe_load
        request_unsafe_load()
    cfg = merge_args(Config.fromfile(args.config), args)
    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main()
