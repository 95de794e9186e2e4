# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL stage 2c: RoI pairs between every image and its kNN images.

Per image: filter its proposals (min side 96, max aspect 3, greedy IoU
<= 0.5, at most 100), embed every kept box crop (224 px, bilinear) with the
stage-1 ONLINE backbone (res5, global average pool, L2-normalised); per
neighbour keep the top ``max(1, floor(0.1 n))`` box pairs by cosine
similarity. Each image's RoI embeddings are computed once and cached (in
memory, or as ``.npy`` files under ``--cache-dir``), instead of once per
appearance as a neighbour in the authors' code. Writes the correspondence
file that :class:`ORLPairDataset` reads.

Example::

    python tools/orl/roi_pairs.py \\
        configs/orl/byol_resnet50_8xb64-coslr-800e_coco.py \\
        work_dirs/orl_stage1/epoch_800.pth \\
        --knn data/coco/orl/train2017_knn10.json \\
        --proposals data/coco/orl/train2017_selective_search.json \\
        --img-root data/coco/train2017 \\
        --out data/coco/orl/train2017_knn10_correspondence.json \\
        --cache-dir work_dirs/orl_roi_cache
"""
import argparse
import os
import os.path as osp
from collections.abc import MutableMapping
from typing import List, Optional

from _common import dump_json, load_config, setup


class NpyCache(MutableMapping):
    """Row -> array mapping stored as ``<folder>/<row>.npy``.

    Args:
        folder (str): Cache folder (created).
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        os.makedirs(folder, exist_ok=True)

    def _path(self, key):
        return osp.join(self.folder, f'{int(key)}.npy')

    def __getitem__(self, key):
        import numpy as np
        if not osp.isfile(self._path(key)):
            raise KeyError(key)
        return np.load(self._path(key))

    def __setitem__(self, key, value):
        import numpy as np
        tmp = self._path(key) + '.tmp.npy'
        np.save(tmp, value)
        os.replace(tmp, self._path(key))

    def __delitem__(self, key):
        os.remove(self._path(key))

    def __contains__(self, key):
        return osp.isfile(self._path(key))

    def __iter__(self):
        for f in os.listdir(self.folder):
            if f.endswith('.npy') and f[:-4].isdigit():
                yield int(f[:-4])

    def __len__(self):
        return sum(1 for _ in self)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='ORL stage 2c: RoI pairs')
    p.add_argument('config', help='stage-1 config')
    p.add_argument('checkpoint', help="stage-1 checkpoint, or 'none'")
    p.add_argument('--knn', required=True, help='kNN JSON (stage 2a)')
    p.add_argument(
        '--proposals',
        required=True,
        help='proposals JSON (stage 2b), same images part')
    p.add_argument('--img-root', default='', help='image folder')
    p.add_argument('--out', required=True, help='correspondence JSON')
    p.add_argument('--roi-size', type=int, default=224)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--min-size', type=float, default=96)
    p.add_argument('--max-aspect-ratio', type=float, default=3)
    p.add_argument('--max-iou', type=float, default=0.5)
    p.add_argument('--max-num', type=int, default=100)
    p.add_argument('--pair-ratio', type=float, default=0.1)
    p.add_argument(
        '--cache-dir',
        default=None,
        help='keep RoI embeddings as .npy files here (COCO '
        'scale: ~80 GB) instead of in memory')
    p.add_argument('--device', default='cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the tool.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv``).

    Returns:
        dict: The written correspondence file's content.
    """
    args = parse_args(argv)
    setup()
    from cribo_mm.datasets.orl import (ORLAnnotationError, RoIEmbedder,
                                       build_correspondence,
                                       build_stage1_network, load_orl_json)
    knn = load_orl_json(args.knn, 'knn')
    props = load_orl_json(args.proposals, 'proposals')
    if props['images'] != knn['images']:
        raise ORLAnnotationError(args.proposals, 'images',
                                 f'differs from the images of {args.knn!r}')
    images = knn['images']
    paths = [osp.join(args.img_root, n) for n in images['file_name']]
    cfg = load_config(args.config, args.cfg_options)
    ckpt = None if args.checkpoint == 'none' else args.checkpoint
    model = build_stage1_network(cfg, ckpt, args.device)
    embedder = RoIEmbedder(model, paths, args.roi_size, args.batch_size)
    rows = knn['pseudo_annotations']['knn_image_id']
    info = dict(
        bbox_min_size=args.min_size,
        bbox_max_aspect_ratio=args.max_aspect_ratio,
        bbox_max_iou=args.max_iou,
        intra_bbox_num=args.max_num,
        knn_image_num=max(len(r) for r in rows),
        knn_bbox_pair_ratio=args.pair_ratio)
    cache = NpyCache(args.cache_dir) if args.cache_dir else None
    out = build_correspondence(
        images,
        props['pseudo_annotations']['bbox'],
        rows,
        embedder,
        info=info,
        cache=cache)
    dump_json(out, args.out)
    num_pairs = sum(
        len(p) for per in out['pseudo_annotations']['knn_bbox_pair']
        for p in per)
    print(f'{len(paths)} images, {num_pairs} RoI pairs, '
          f'{embedder.num_forwards} RoI forwards -> {args.out}')
    return out


if __name__ == '__main__':
    main()
