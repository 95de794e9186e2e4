# Copyright (c) cribo-mm contributors. All rights reserved.
"""Browse the two-view pipeline of a CrIBo config: boxes, flips, tokens.

For a few images of the config's data set (or of ``--images``): the
original image with the crop box of each view (view 1 solid, view 2
dashed), the token centres the model places in the original image
(``cribo_mm.datasets.transforms.geometry.patch_centres``, computed from the
boxes and flips) and, on the right, both augmented views with their token
grid. The first token of each view is ringed: in a flipped view it sits at
the right edge of the box. No checkpoint is needed; the views are seeded
(image i uses ``--seed`` + i), so the pictures are reproducible.

Examples::

    python tools/analysis/browse_dataset.py configs/cribo/vit-t16_demo.py
    python tools/analysis/browse_dataset.py configs/cribo/vit-s16_folder.py \\
        --images photos/ --num-images 8 --grid work_dirs/browse_dataset/all.png
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

# Running from a checkout without installing: make ``cribo_mm`` importable.
_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    from mmengine.config import DictAction

    from cribo_mm.visualization import (add_image_selection_args,
                                        add_show_args)
    parser = argparse.ArgumentParser(
        description='Draw the two views of some images of a CrIBo config: '
        'crop boxes, flips and token centres on the original image.')
    parser.add_argument('config', help='pretraining config (data set and '
                        'two-view pipeline)')
    parser.add_argument(
        '--images',
        nargs='+',
        help='image files and/or folders (scanned recursively); default: '
        'the images of the data set in the config')
    parser.add_argument(
        '--dataset-key',
        default='train_dataloader',
        help='dataloader key of the data set (default: train_dataloader)')
    add_image_selection_args(parser)
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the views; image i uses seed + i (default: 0)')
    parser.add_argument(
        '--patch-size',
        type=int,
        help='token size in view pixels (default: the config\'s '
        'model.patch_size or model.backbone.patch_size, else 16)')
    parser.add_argument(
        '--height',
        type=int,
        default=240,
        help='height in pixels of every panel (default: 240)')
    parser.add_argument(
        '--out-dir',
        default='work_dirs/browse_dataset',
        help='folder of the PNGs, one per image (default: '
        'work_dirs/browse_dataset)')
    parser.add_argument(
        '--grid', help='also write all images stacked into this one PNG')
    parser.add_argument(
        '--colors',
        type=int,
        help='write PNGs with an adaptive palette of this many colours')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='config overrides key=value (e.g. the data root)')
    add_show_args(parser)
    return parser.parse_args(argv)


def config_patch_size(cfg, default: int = 16) -> int:
    """Patch size of the config's model (``model.patch_size``, else
    ``model.backbone.patch_size``), or ``default``."""
    model = cfg.get('model') or {}
    for value in (model.get('patch_size'),
                  (model.get('backbone') or {}).get('patch_size')):
        if isinstance(value, int) and value > 0:
            return value
    return default


def main(argv: Optional[List[str]] = None) -> List[str]:
    """Run the tool.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv``).

    Returns:
        list[str]: Written PNG files.
    """
    args = parse_args(argv)
    from mmengine.registry import init_default_scope

    import cribo_mm  # noqa: F401  (registers the transforms and data sets)
    from cribo_mm.visualization import (build_view_pipeline,
                                        collect_image_infos,
                                        compose_view_geometry, load_config,
                                        prepare_sample, sample_png_name,
                                        save_figures, select_indices)
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    patch_size = args.patch_size or config_patch_size(cfg)
    infos, pipeline = collect_image_infos(cfg, args.images,
                                          args.dataset_key)
    transforms = build_view_pipeline(pipeline)
    indices = select_indices(len(infos), args.indices, args.start,
                             args.num_images)

    def figures():
        for index in indices:
            sample = prepare_sample(transforms, infos[index], args.seed)
            figure = compose_view_geometry(
                sample.image,
                list(sample.views),
                sample.crop_bbox,
                sample.crop_flip,
                patch_size=patch_size,
                height=args.height,
                title=f'#{sample.index} {osp.basename(sample.img_path)} '
                f'({sample.image.shape[1]}x{sample.image.shape[0]}, seed '
                f'{args.seed})')
            yield figure, sample_png_name(sample.img_path, sample.index,
                                          'views')

    return save_figures(figures(), args.out_dir, args.grid, args.colors,
                        args.show, args.wait_time)


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, IndexError, KeyError, ValueError) as err:
        sys.exit(f'error: {err}')
