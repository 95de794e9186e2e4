# Copyright (c) cribo-mm contributors. All rights reserved.
"""The whole ORL pipeline in one command (by default: the demo scenes, CPU).

1. stage 1: BYOL (``--stage1``, default: tiny ResNet-18 on the demo scenes,
   ``configs/orl/byol_resnet18-tiny_demo.py``);
2. stage 2a: image kNN with its projector (``knn_images.py``);
   stage 2b: selective search (``selective_search.py``);
   stage 2c: RoI pairs with its backbone (``roi_pairs.py``);
3. stage 3: ORL from scratch on the pairs (``--stage3``, default
   ``configs/orl/orl_resnet18-tiny_demo.py``).

Any stage-1 / stage-3 config pair whose data pipelines are laid out like
the demo configs' works, e.g. the CamVid pair
``configs/orl/{byol,orl}_resnet18-tiny-camvid_1xb32-40e_camvid.py``.

Outputs go to ``<work-dir>/{stage1,stage2,stage3}``. Running the command
again resumes: the training stages from their last checkpoint, the stage-2
tools from their stored chunks. On CPU the demo runs
with 128 px image views and 64 px RoIs (``--view-size 224 --roi-size 96``
gives ORL's geometry); ``--quick`` shrinks everything (24 images, 64 px
views, 32 px RoIs, one epoch per stage) for tests.

Examples::

    python tools/orl/run_pipeline.py --work-dir work_dirs/orl_demo
    python tools/orl/run_pipeline.py --view-size 224 --roi-size 96 \\
        --stage1 configs/orl/byol_resnet18-tiny-camvid_1xb32-40e_camvid.py \\
        --stage3 configs/orl/orl_resnet18-tiny-camvid_1xb32-40e_camvid.py \\
        --work-dir work_dirs/camvid/orl
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
    p = argparse.ArgumentParser(description='ORL stages 1-3 in one command')
    p.add_argument('--work-dir', default='work_dirs/orl_demo')
    p.add_argument('--stage1', default=STAGE1, help='stage-1 (BYOL) config')
    p.add_argument('--stage3', default=STAGE3, help='stage-3 (ORL) config')
    p.add_argument(
        '--quick',
        action='store_true',
        help='tiny sizes and one epoch per stage (tests)')
    p.add_argument(
        '--epochs',
        type=int,
        default=None,
        help='epochs per training stage (default: the configs)')
    p.add_argument(
        '--view-size',
        type=int,
        default=128,
        help='image view side (ORL: 224); also the stage-2 centre crop and '
        'RoI embedding size')
    p.add_argument(
        '--roi-size', type=int, default=64, help='stage-3 RoI side (ORL: 96)')
    return p.parse_args(argv)


def _train(config: str, work_dir: str, options: List[str]) -> str:
    """Run tools/train.py; return the last checkpoint's path.

    A work dir with a checkpoint is resumed, so running the pipeline again
    after an interruption continues where it stopped (a finished stage
    returns at once).
    """
    cmd = [
        sys.executable,
        osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir', work_dir
    ]
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        cmd.append('--resume')
    if options:
        cmd += ['--cfg-options', *options]
    print('+', ' '.join(cmd), flush=True)
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [ROOT] + [p for p in [env.get('PYTHONPATH')] if p])
    subprocess.run(cmd, check=True, env=env)
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def demo_plan(args: argparse.Namespace) -> dict:
    """The ``--cfg-options`` and stage-2 arguments of a demo run.

    Args:
        args (argparse.Namespace): Parsed arguments.

    Returns:
        dict: ``stage1`` and ``stage3`` (config overrides, without the
        stage-2 file paths), ``data`` (data set overrides shared with the
        kNN tool), ``knn`` and ``roi_pairs`` (extra tool arguments).
    """
    view_size, roi_size = args.view_size, args.roi_size
    data, common = [], ['default_hooks.logger.interval=1']
    if args.quick:
        view_size, roi_size = 64, 32
        data = [
            'train_dataloader.dataset.num_train=24',
            'train_dataloader.dataset.num_val=2',
        ]
        common += [
            'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'train_cfg.max_epochs=1', 'randomness.seed=0'
        ]
    if args.epochs is not None:
        common.append(f'train_cfg.max_epochs={args.epochs}')
    # view and RoI sizes: list entries of the configs' pipelines
    p1 = 'train_dataloader.dataset.pipeline.1.transforms'
    p3 = 'train_dataloader.dataset.pipeline.3'
    view = [f'{p1}.{v}.0.scale={view_size}' for v in (0, 1)]
    roi = [f'{p3}.img_pipelines.{v}.0.scale={view_size}' for v in (0, 1)]
    roi.append(f'{p3}.roi_size={roi_size}')
    resize = round(view_size * 256 / 224)
    knn = ['--resize', str(resize), '--crop', str(view_size)]
    if data:
        knn += ['--cfg-options', *data]
    return dict(
        stage1=common + data + view,
        stage3=common + roi,
        data=data,
        knn=knn,
        proposals=['--workers', '0' if args.quick else '2'],
        roi_pairs=['--roi-size', str(view_size)])


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the pipeline.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv``).

    Returns:
        dict: Paths of the stage outputs (``stage1_checkpoint``, ``knn``,
        ``proposals``, ``correspondence``, ``stage3_checkpoint``).
    """
    import knn_images
    import roi_pairs
    import selective_search

    args = parse_args(argv)
    plan = demo_plan(args)
    work = osp.abspath(args.work_dir)
    s2 = osp.join(work, 'stage2')
    ckpt1 = _train(args.stage1, osp.join(work, 'stage1'), plan['stage1'])
    knn = osp.join(s2, 'knn.json')
    knn_images.main([args.stage1, ckpt1, '--out', knn, '--img-root', ''] +
                    plan['knn'])
    props = osp.join(s2, 'proposals.json')
    selective_search.main(['--images', knn, '--out', props] +
                          plan['proposals'])
    corr = osp.join(s2, 'correspondence.json')
    roi_pairs.main(
        [args.stage1, ckpt1, '--knn', knn, '--proposals', props, '--out', corr] +
        plan['roi_pairs'])
    ckpt3 = _train(
        args.stage3, osp.join(work, 'stage3'), plan['stage3'] + [
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
