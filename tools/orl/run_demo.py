# Copyright (c) cribo-mm contributors. All rights reserved.
"""The whole ORL pipeline on the embedded demo scenes, on CPU.

1. stage 1: BYOL with a tiny ResNet-18
   (``configs/orl/byol_resnet18-tiny_demo.py``);
2. stage 2a: image kNN with its projector (``knn_images.py``);
   stage 2b: sliding-window proposals (``grid_proposals.py``; the stand-in
   for selective search, which needs OpenCV contrib);
   stage 2c: RoI pairs with its backbone (``roi_pairs.py``);
3. stage 3: ORL from scratch on the pairs
   (``configs/orl/orl_resnet18-tiny_demo.py``).

Outputs go to ``<work-dir>/{stage1,stage2,stage3}``. ``--quick`` shrinks
everything (24 images, 64 px views, one epoch per stage) for tests.

Example::

    python tools/orl/run_demo.py --work-dir work_dirs/orl_demo
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
from typing import List, Optional

from _common import ROOT

STAGE1 = osp.join(ROOT, 'configs', 'orl', 'byol_resnet18-tiny_demo.py')
STAGE3 = osp.join(ROOT, 'configs', 'orl', 'orl_resnet18-tiny_demo.py')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description='ORL demo pipeline (CPU)')
    p.add_argument('--work-dir', default='work_dirs/orl_demo')
    p.add_argument(
        '--quick',
        action='store_true',
        help='tiny sizes and one epoch per stage (tests)')
    p.add_argument(
        '--epochs',
        type=int,
        default=None,
        help='epochs per training stage (default: the configs)')
    return p.parse_args(argv)


def _train(config: str, work_dir: str, options: List[str]) -> str:
    """Run tools/train.py; return the last checkpoint's path."""
    cmd = [
        sys.executable,
        osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir', work_dir
    ]
    if options:
        cmd += ['--cfg-options', *options]
    print('+', ' '.join(cmd), flush=True)
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [ROOT] + [p for p in [env.get('PYTHONPATH')] if p])
    subprocess.run(cmd, check=True, env=env)
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the pipeline.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv``).

    Returns:
        dict: Paths of the stage outputs (``stage1_checkpoint``, ``knn``,
        ``proposals``, ``correspondence``, ``stage3_checkpoint``).
    """
    import grid_proposals
    import knn_images
    import roi_pairs

    args = parse_args(argv)
    work = osp.abspath(args.work_dir)
    s2 = osp.join(work, 'stage2')
    data, view, roi, stage2 = [], [], [], []
    common = ['default_hooks.logger.interval=1']
    if args.quick:
        data = [
            'train_dataloader.dataset.num_train=24',
            'train_dataloader.dataset.num_val=2',
        ]
        common += [
            'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'train_cfg.max_epochs=1', 'randomness.seed=0'
        ]
        view = [
            'train_dataloader.dataset.pipeline.1.transforms.0.0.scale=64',
            'train_dataloader.dataset.pipeline.1.transforms.1.0.scale=64',
        ]
        roi = [
            'train_dataloader.dataset.pipeline.3.img_pipelines.0.0.scale=64',
            'train_dataloader.dataset.pipeline.3.img_pipelines.1.0.scale=64',
            'train_dataloader.dataset.pipeline.3.roi_size=32',
        ]
        stage2 = ['--resize', '72', '--crop', '64']
    if args.epochs is not None:
        common.append(f'train_cfg.max_epochs={args.epochs}')

    ckpt1 = _train(STAGE1, osp.join(work, 'stage1'), common + data + view)
    knn = osp.join(s2, 'knn.json')
    knn_images.main([
        STAGE1, ckpt1, '--out', knn, '--img-root', '', *stage2,
        '--cfg-options', *data
    ])
    props = osp.join(s2, 'proposals.json')
    grid_proposals.main(['--images', knn, '--out', props])
    corr = osp.join(s2, 'correspondence.json')
    roi_pairs.main(
        [STAGE1, ckpt1, '--knn', knn, '--proposals', props, '--out', corr] +
        (['--roi-size', '64'] if args.quick else []))
    ckpt3 = _train(
        STAGE3, osp.join(work, 'stage3'), common + roi + [
            f'train_dataloader.dataset.ann_file={corr}',
            'train_dataloader.dataset.data_prefix.img_path=',
        ])
    out = dict(
        stage1_checkpoint=ckpt1,
        knn=knn,
        proposals=props,
        correspondence=corr,
        stage3_checkpoint=ckpt3)
    for k, v in out.items():
        print(f'{k}: {v}')
    return out


if __name__ == '__main__':
    main()
