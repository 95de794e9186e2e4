# Copyright (c) cribo-mm contributors. All rights reserved.
"""A tiny generated segmentation data set for the dense NN tests.

Images are vertical stripes whose colour gives the class (pure red, green,
blue); every stripe covers whole 16-pixel patches after resizing to 64x64,
so patch features that encode the colour recover the labels exactly.
"""
import os
import os.path as osp

import numpy as np
import pytest

CLASSES = ('red', 'green', 'blue')
COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)


def _write_split(root, split, num, height, width, rng, ignore_corner=False):
    from PIL import Image
    img_dir = osp.join(root, 'img', split)
    ann_dir = osp.join(root, 'ann', split)
    for folder in (img_dir, ann_dir):
        os.makedirs(folder, exist_ok=True)
    stripe = width // 4
    for i in range(num):
        classes = rng.permutation(3)[[0, 1, 2, rng.integers(3)]]
        label = np.repeat(np.repeat(classes, stripe)[None], height, axis=0)
        label = label.astype(np.uint8)
        image = COLOURS[label]
        if ignore_corner and i == 0:
            label[:4, :4] = 255
        Image.fromarray(image).save(osp.join(img_dir, f'{i:03d}.png'))
        Image.fromarray(label).save(osp.join(ann_dir, f'{i:03d}.png'))


def _dataset(split):
    return dict(
        type='BaseSegDataset',
        data_root='{root}',
        data_prefix=dict(img_path=f'img/{split}', seg_map_path=f'ann/{split}'),
        img_suffix='.png',
        seg_map_suffix='.png',
        metainfo=dict(
            classes=CLASSES, palette=[list(map(int, c)) for c in COLOURS]),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackSegInputs')
        ])


@pytest.fixture
def stripes_data(tmp_path):
    """Write the data set and a dataset config; return their paths."""
    root = str(tmp_path / 'stripes')
    rng = np.random.default_rng(0)
    _write_split(root, 'train', 6, 64, 64, rng)
    _write_split(root, 'val', 3, 48, 80, rng, ignore_corner=True)
    train = repr(_dataset('train')).replace('{root}', root)
    val = repr(_dataset('val')).replace('{root}', root)
    cfg = tmp_path / 'stripes_seg.py'
    cfg.write_text(f'train_dataloader = dict(batch_size=2, dataset={train})\n'
                   f'val_dataloader = dict(batch_size=1, dataset={val})\n')
    return dict(root=root, config=str(cfg), classes=CLASSES)
