# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL stage 2c: RoI pairs with each image's RoIs embedded once (ours) vs
the authors' design (an image's RoIs embedded again for every neighbour).

Both runs use the same images, proposals, kNN lists and network and must
write the same correspondence (asserted). The baseline, written here,
follows the authors' loop: for every image it embeds its own filtered
boxes and then the boxes of each of its neighbours. Printed: RoI forwards,
seconds and peak extra memory of each, and their ratios.

    python benchmarks/orl_roi_pairs.py                # 48 demo images, k=10
    python benchmarks/orl_roi_pairs.py --depth 50 --images 24
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import measure  # noqa: E402

from cribo_mm.datasets.orl import (DEFAULT_INFO,  # noqa: E402
                                   make_images_part)
from cribo_mm.orl_mining import (RoIEmbedder,  # noqa: E402
                                 assemble_correspondence,
                                 build_correspondence, filter_all_proposals,
                                 image_pairs, knn_from_embeddings,
                                 selective_search)


def authors_design(images, proposals, knn, embedder, info):
    """The authors' loop: neighbours' RoIs embedded again every time."""
    kept = filter_all_proposals(proposals, info)
    pairs = []
    for i in range(len(kept)):
        mine = embedder(i, kept[i])
        fresh = {i: mine}
        for j in knn[i]:
            fresh[int(j)] = embedder(int(j), kept[int(j)])
        pairs.append(
            image_pairs(i, knn[i], kept, fresh.__getitem__,
                        info['knn_bbox_pair_ratio']))
    return assemble_correspondence(images, kept, knn, pairs, info)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--images', type=int, default=48)
    p.add_argument('--k', type=int, default=10)
    p.add_argument('--depth', type=int, default=18, choices=[18, 50])
    p.add_argument('--roi-size', type=int, default=112)
    p.add_argument('--threads', type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    import cv2
    from mmengine.registry import init_default_scope

    from cribo_mm.datasets.demo_scenes import ensure_demo_scenes
    from cribo_mm.registry import MODELS
    init_default_scope('mmpretrain')
    root = ensure_demo_scenes(
        num_train=args.images, num_val=1, image_size=(256, 256))
    paths = sorted(str(p) for p in Path(root, 'train', 'images').glob('*'))
    paths = paths[:args.images]
    proposals = [selective_search(cv2.imread(p)) for p in paths]
    rng = np.random.default_rng(0)
    knn = knn_from_embeddings(rng.normal(size=(len(paths), 8)), args.k)
    images = make_images_part([Path(p).name for p in paths])
    info = dict(DEFAULT_INFO, knn_image_num=args.k)
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='BYOL',
            backbone=dict(type='ResNet', depth=args.depth),
            neck=dict(
                type='NonLinearNeck',
                in_channels=512 if args.depth == 18 else 2048,
                hid_channels=64,
                out_channels=32),
            head=dict(
                type='LatentPredictHead',
                predictor=dict(
                    type='NonLinearNeck',
                    in_channels=32,
                    hid_channels=64,
                    out_channels=32),
                loss=dict(type='CosineSimilarityLoss')),
            data_preprocessor=dict(
                mean=(123.675, 116.28, 103.53),
                std=(58.395, 57.12, 57.375),
                to_rgb=True))).eval()
    device = torch.device('cpu')

    runs = {}
    for name, fn in (('ours', build_correspondence), ('authors',
                                                      authors_design)):
        embedder = RoIEmbedder(model, paths, args.roi_size)
        out, secs, peak = measure(
            lambda: fn(images, proposals, knn, embedder, info), device, 1)
        runs[name] = (out, embedder.num_forwards, secs, peak)
    assert runs['ours'][0] == runs['authors'][0], 'different outputs'
    boxes = sum(len(b) for b in runs['ours'][0]['pseudo_annotations']['bbox'])
    print(f'{len(paths)} images, {boxes} kept boxes, k={args.k}, '
          f'ResNet-{args.depth}, {args.roi_size} px RoIs, '
          f'{args.threads} thread(s); same correspondence file: yes')
    print(f'{"":10s}{"RoI forwards":>14s}{"seconds":>10s}{"peak MiB":>10s}')
    for name, (_, fwd, secs, peak) in runs.items():
        print(f'{name:10s}{fwd:14d}{secs:10.2f}{peak:10.1f}')
    (_, f_o, s_o, _), (_, f_a, s_a, _) = runs['ours'], runs['authors']
    print(f'ours vs authors: {f_a / f_o:.1f}x fewer forwards, '
          f'{s_a / s_o:.1f}x faster')


if __name__ == '__main__':
    main()
