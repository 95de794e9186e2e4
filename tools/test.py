# Copyright (c) cribo-mm contributors. All rights reserved.
"""Evaluate a checkpoint with the test loop of a config (mmengine Runner).

Example::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a checkpoint')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where to save the logs')
    parser.add_argument(
        '--out', help='dump the metrics (json/yaml/pkl) to this file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings in xxx=yyy form')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='unpickle checkpoints (the checkpoint, init_cfg) without '
        'restrictions, as CRIBO_UNSAFE_LOAD=1 does; a crafted file can then '
        'run any code: only for files you trust')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.unsafe_load:
        from cribo_mm.utils.checkpoint_io import request_unsafe_load
        request_unsafe_load()
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if cfg.get('test_dataloader') is None:
        raise KeyError(f'{args.config} defines no test_dataloader/test_cfg; '
                       'self-supervised pretraining configs have no test '
                       'loop: evaluate with tools/analysis/'
                       'dense_nn_retrieval.py or an MMSegmentation config')
    cfg.load_from = args.checkpoint
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg \
        else Runner.from_cfg(cfg)
    metrics = runner.test()
    if args.out:
        from mmengine.fileio import dump
        dump(metrics, args.out)


if __name__ == '__main__':
    main()
