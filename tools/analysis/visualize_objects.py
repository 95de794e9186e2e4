# Copyright (c) cribo-mm contributors. All rights reserved.
"""Draw the teacher's objects of a CrIBo checkpoint on both views.

For every image: the original image with the crop boxes of the two views
(view 1 solid, view 2 dashed), and both augmented views with the teacher's
clusters as coloured overlays. A cluster has the same colour (and id) in
both views; clusters present in one view only (not objects, dropped by
training) are greyed and hatched. Views and clustering are seeded, so the
same ``--seed`` gives the same pictures.

Examples::

    # first 4 images of the config's data set (the demo scenes)
    python tools/analysis/visualize_objects.py \\
        configs/cribo/vit-t16_demo.py work_dirs/demo/seed0/cribo/epoch_8.pth \\
        --num-images 4 --out-dir work_dirs/vis_objects

    # your own images (files or folders), one stacked picture as well
    python tools/analysis/visualize_objects.py CONFIG CKPT \\
        --images photos/ --grid work_dirs/vis_objects/all.png --show
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

# Running from a checkout without installing: make ``cribo_mm`` importable.
_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Arguments shared with ``visualize_neighbours.py``."""
    from mmengine.config import DictAction

    from cribo_mm.visualization import add_show_args
    parser.add_argument('config', help='training config of the checkpoint')
    parser.add_argument(
        'checkpoint',
        help='checkpoint (mmengine Runner checkpoint or a dict with '
        'state_dict); "none" for the initial random weights')
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='unpickle the checkpoint without restrictions (runs any code a '
        'crafted file holds; only for files you trust)')
    parser.add_argument(
        '--images',
        nargs='+',
        help='image files and/or folders (scanned recursively); default: '
        'the images of the data set in the config (or --dataset-config)')
    parser.add_argument(
        '--dataset-config',
        help='config file holding the data set and its two-view pipeline '
        '(default: CONFIG)')
    parser.add_argument(
        '--dataset-key',
        default='train_dataloader',
        help='dataloader key of the data set (default: train_dataloader)')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the views and of the clustering initialisation; '
        'image i uses seed + i (default: 0)')
    parser.add_argument(
        '--pos-alpha',
        type=float,
        help='lambda_pos of the clustering (default: final value of the '
        "config's CrIBoHook)")
    parser.add_argument(
        '--panel-size',
        type=int,
        help='height in pixels of every image panel')
    parser.add_argument(
        '--colors',
        type=int,
        help='write PNGs with an adaptive palette of this many colours '
        '(2-256, smaller files, e.g. for docs)')
    parser.add_argument(
        '--batch-size', type=int, default=8, help='images per forward pass')
    parser.add_argument(
        '--device',
        default=None,
        help='device (default: cuda if available, else cpu)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='config overrides key=value (model and data set)')
    add_show_args(parser)
    parser.add_argument(
        '--no-progress', action='store_true', help='hide progress bars')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    from cribo_mm.visualization import add_image_selection_args
    parser = argparse.ArgumentParser(
        description='Draw the teacher clusters (objects) of a CrIBo '
        'checkpoint on both augmented views of some images.')
    add_common_args(parser)
    add_image_selection_args(parser)
    parser.add_argument(
        '--out-dir',
        default='work_dirs/vis_objects',
        help='folder of the PNGs, one per image (default: '
        'work_dirs/vis_objects)')
    parser.add_argument(
        '--grid',
        help='also write all images stacked into this one PNG')
    parser.add_argument(
        '--plain-views',
        action='store_true',
        help='draw the crops without colour jitter/blur/solarisation (the '
        'model still sees the augmented views)')
    parser.add_argument(
        '--invalid-style',
        choices=['hatch', 'grey'],
        default='hatch',
        help='one-view clusters: greyed and hatched, or only greyed')
    parser.add_argument(
        '--alpha',
        type=float,
        default=0.5,
        help='opacity of the cluster colours (default: 0.5)')
    parser.add_argument(
        '--no-ids', action='store_true', help='do not write object ids')
    args = parser.parse_args(argv)
    if args.panel_size is None:
        args.panel_size = 224
    return args


def select(infos: list, indices: Optional[List[int]], start: int,
           num: int) -> list:
    """Pick data infos by index (see
    :func:`cribo_mm.visualization.select_indices`)."""
    from cribo_mm.visualization import select_indices
    return [infos[i] for i in select_indices(len(infos), indices, start, num)]


def setup(args):
    """Load the model and the data infos shared by the tools."""
    import torch

    from cribo_mm.visualization import (build_view_pipeline,
                                        collect_image_infos, load_config,
                                        load_cribo_model)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model, cfg = load_cribo_model(
        args.config, args.checkpoint, device=device,
        cfg_options=args.cfg_options, pos_alpha=args.pos_alpha,
        unsafe_load=args.unsafe_load)
    data_cfg = cfg
    if args.dataset_config:
        data_cfg = load_config(args.dataset_config, args.cfg_options,
                               'dataset config')
    infos, pipeline = collect_image_infos(data_cfg, args.images,
                                          args.dataset_key)
    return model, infos, build_view_pipeline(pipeline)


def prepare(transforms, infos, seed: int, progress: bool, title: str):
    """Seeded two-view samples of the chosen images."""
    from cribo_mm.evaluation.dense_nn.progress import make_progress
    from cribo_mm.visualization import prepare_sample
    bar = make_progress(len(infos), progress, title)
    samples = []
    for info in infos:
        samples.append(prepare_sample(transforms, info, seed))
        bar.update()
    bar.close()
    return samples


def cluster(model, samples, args, title: str):
    """Teacher clusters of the samples, with a progress bar."""
    from cribo_mm.evaluation.dense_nn.progress import make_progress
    from cribo_mm.visualization import cluster_images
    bar = make_progress(len(samples), not args.no_progress, title)
    out = cluster_images(model, samples, args.seed, args.batch_size, bar)
    bar.close()
    return out


def main(argv: Optional[List[str]] = None) -> List[str]:
    """Run the tool.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv``).

    Returns:
        list[str]: Written PNG files.
    """
    args = parse_args(argv)
    from cribo_mm.visualization import (compose_object_clusters,
                                        sample_png_name, save_figures)
    model, infos, transforms = setup(args)
    infos = select(infos, args.indices, args.start, args.num_images)
    samples = prepare(transforms, infos, args.seed, not args.no_progress,
                      f'views of {len(infos)} image(s)')
    results = cluster(model, samples, args, 'teacher clusters')

    figures = []
    for res in results:
        s = res.sample
        fig = compose_object_clusters(
            s.image,
            s.plain_views if args.plain_views else s.views,
            res.labels,
            res.valid,
            s.crop_bbox,
            s.crop_flip,
            panel_size=args.panel_size,
            alpha=args.alpha,
            invalid_style=args.invalid_style,
            show_ids=not args.no_ids,
            title=f'#{s.index} {osp.basename(s.img_path)}  (seed '
            f'{args.seed})')
        figures.append((fig, sample_png_name(s.img_path, s.index,
                                             'objects')))
    return save_figures(
        figures,
        args.out_dir,
        args.grid,
        args.colors,
        args.show,
        args.wait_time,
        show_grid=True)


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, IndexError, KeyError, ValueError) as err:
        sys.exit(f'error: {err}')
