# Copyright (c) cribo-mm contributors. All rights reserved.
"""Evaluate a checkpoint with the test loop of a config (mmengine Runner).

The options of MMSegmentation's ``tools/test.py`` work the same way:
``--show-dir DIR`` draws predictions next to their ground truth into
``DIR/vis_data/vis_image/`` (``--show`` in a window; every 50th image as in
MMSegmentation, every one with ``--show-interval 1``), ``--out DIR`` writes the
predicted label maps as PNGs, ``--tta`` evaluates with the config's
``tta_pipeline`` / ``tta_model`` (multi-scale + flip).

Examples::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
    python tools/test.py CONFIG CHECKPOINT --show-dir work_dirs/show \
        --out work_dirs/preds --tta
"""
import argparse
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a checkpoint')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where to save the logs')
    parser.add_argument(
        '--out',
        help='folder for the predicted label maps (PNG per image, as '
        "mmseg's --out: IoUMetric output_dir with keep_results)")
    parser.add_argument(
        '--dump-metrics',
        help='also write the final metrics to this file (json/yaml/pkl)')
    parser.add_argument(
        '--show', action='store_true', help='show the predictions')
    parser.add_argument(
        '--show-dir',
        help='folder for pictures of the predictions (image with '
        'prediction and ground truth), under <show-dir>/vis_data/vis_image')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='--show interval (s)')
    parser.add_argument(
        '--show-interval',
        type=int,
        help='draw every N-th test image (default: the interval of the '
        "config's visualization hook, 50 in MMSegmentation's runtime)")
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation: the config\'s tta_pipeline and '
        'tta_model (MMSegmentation configs)')
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


def enable_visualization(cfg,
                         show: bool,
                         show_dir: Optional[str],
                         wait_time: float,
                         config_name: str,
                         interval: Optional[int] = None) -> None:
    """Turn on the config's visualization hook (mmseg or mmpretrain).

    Args:
        cfg (Config): The config, changed in place.
        show (bool): Show every picture in a window.
        show_dir (str, optional): Folder of the pictures.
        wait_time (float): Seconds a shown picture stays.
        config_name (str): Config path for error messages.
        interval (int, optional): Draw every ``interval``-th image; None
            keeps the hook's. Defaults to None.

    Raises:
        KeyError: The config has no ``default_hooks.visualization``.
        ValueError: ``interval`` < 1.
    """
    hook = (cfg.get('default_hooks') or {}).get('visualization')
    if hook is None:
        raise KeyError(f'{config_name} has no default_hooks.visualization '
                       "(add e.g. dict(type='SegVisualizationHook')); "
                       '--show/--show-dir need it')
    hook_type = str(hook.get('type', ''))
    if hook_type.endswith('SegVisualizationHook'):
        hook['draw'] = True
        if show_dir:
            cfg.visualizer['save_dir'] = show_dir
    else:  # mmpretrain's VisualizationHook
        hook['enable'] = True
        if show_dir:
            hook['out_dir'] = show_dir
    if show:
        hook['show'] = True
        hook['wait_time'] = wait_time
    if interval is not None:
        if interval < 1:
            raise ValueError(f'--show-interval must be >= 1, got {interval}')
        hook['interval'] = interval


def apply_test_options(cfg, args, config_name: str) -> None:
    """Apply --show/--show-dir, --tta and --out to a config, as
    MMSegmentation's ``tools/test.py`` does.

    Args:
        cfg (Config): The config, changed in place.
        args (argparse.Namespace): Parsed arguments.
        config_name (str): Config path for error messages.

    Raises:
        KeyError: A key the option needs is missing from the config.
        ValueError: ``--show`` and ``--show-dir`` together.
    """
    if args.show and args.show_dir:
        raise ValueError('--show and --show-dir cannot be used together '
                         '(as in MMSegmentation)')
    if args.show or args.show_dir:
        enable_visualization(cfg, args.show, args.show_dir, args.wait_time,
                             config_name,
                             getattr(args, 'show_interval', None))
    if args.tta:
        missing = [k for k in ('tta_pipeline', 'tta_model') if k not in cfg]
        if missing:
            raise KeyError(f'--tta: {config_name} defines no '
                           f'{" / ".join(missing)} (MMSegmentation data set '
                           'configs define tta_pipeline, its default_runtime '
                           'tta_model)')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        evaluator = cfg.test_evaluator
        for metric in (evaluator if isinstance(evaluator, (list, tuple))
                       else [evaluator]):
            metric['output_dir'] = args.out
            metric['keep_results'] = True


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
    apply_test_options(cfg, args, args.config)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg \
        else Runner.from_cfg(cfg)
    metrics = runner.test()
    if args.dump_metrics:
        from mmengine.fileio import dump
        dump(metrics, args.dump_metrics)
    return metrics


if __name__ == '__main__':
    main()
