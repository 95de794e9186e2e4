# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL stage 2a: image kNN with the stage-1 ONLINE projector embedding.

Every image of the config's training set is embedded on Resize(256, short
side) + CenterCrop(224) with the projector output (L2-normalised); its
k = 10 cosine neighbours (itself excluded) are written as row indices into
the data set's order, in the kNN file layout of
:mod:`cribo_mm.datasets.orl.correspondence`.

Example::

    python tools/orl/knn_images.py \\
        configs/orl/byol_resnet50_8xb64-coslr-800e_coco.py \\
        work_dirs/orl_stage1/epoch_800.pth \\
        --out data/coco/orl/train2017_knn10.json
"""
import argparse
import os.path as osp
from typing import List, Optional

from _common import dump_json, load_config, setup


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='ORL stage 2a: image kNN')
    p.add_argument(
        'config',
        help='stage-1 config (its train data set is '
        'the image list)')
    p.add_argument(
        'checkpoint',
        help="stage-1 checkpoint, or 'none' for "
        'random weights (tests)')
    p.add_argument('--out', required=True, help='kNN JSON to write')
    p.add_argument('--k', type=int, default=10, help='neighbours per image')
    p.add_argument('--resize', type=int, default=256)
    p.add_argument('--crop', type=int, default=224)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument(
        '--img-root',
        default=None,
        help='folder the written file names are relative to '
        "(default: the data set's image folder)")
    p.add_argument('--device', default='cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the tool.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv``).

    Returns:
        dict: The written kNN file's content.
    """
    args = parse_args(argv)
    setup()
    from mmengine.registry import build_from_cfg

    from cribo_mm.datasets.orl import (build_stage1_network, embed_images,
                                       image_list, knn_from_embeddings,
                                       make_images_part, relative_names)
    from cribo_mm.registry import DATASETS

    cfg = load_config(args.config, args.cfg_options)
    ds_cfg = cfg.train_dataloader.dataset.copy()
    ds_cfg['pipeline'] = []
    dataset = build_from_cfg(ds_cfg, DATASETS)
    paths = image_list(dataset)
    root = args.img_root
    if root is None:
        root = dataset.data_prefix.get('img_path', '')
    ids = [
        dataset.get_data_info(i).get('img_id', i) for i in range(len(dataset))
    ]
    ckpt = None if args.checkpoint == 'none' else args.checkpoint
    model = build_stage1_network(cfg, ckpt, args.device)
    emb = embed_images(model, paths, args.resize, args.crop, args.batch_size)
    knn = knn_from_embeddings(emb, args.k)
    images = make_images_part(relative_names(paths, root), ids)
    out = dict(
        images=images,
        pseudo_annotations=dict(
            image_id=images['id'], knn_image_id=knn.tolist()))
    dump_json(out, args.out)
    where = (f'relative to {osp.abspath(root)}' if root else 'as listed')
    print(f'{len(paths)} images, {args.k} neighbours each -> {args.out} '
          f'(file names {where})')
    return out


if __name__ == '__main__':
    main()
