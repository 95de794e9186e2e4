# Copyright (c) cribo-mm contributors. All rights reserved.
"""Stand-in for ORL stage 2b: sliding-window region proposals.

ORL's proposals come from OpenCV contrib selective search
(``cv2.ximgproc.segmentation``), which is not installed with cribo_mm (the
contrib wheel conflicts with mmcv's ``opencv-python``). This tool writes
deterministic multi-scale sliding windows in the same proposals layout
(see :mod:`cribo_mm.datasets.orl.correspondence`), enough for the demo;
for COCO, produce the file with selective search elsewhere.

Example::

    python tools/orl/grid_proposals.py --images knn.json \\
        --img-root data/images --out proposals.json
"""
import argparse
import os.path as osp
from typing import List, Optional

from _common import dump_json, setup


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description='Sliding-window proposals')
    p.add_argument(
        '--images',
        required=True,
        help='any stage-2 JSON whose images part lists the images '
        '(e.g. the kNN file)')
    p.add_argument('--img-root', default='', help='image folder')
    p.add_argument('--out', required=True, help='proposals JSON to write')
    p.add_argument('--sizes', type=int, nargs='+', default=[96, 128, 160])
    p.add_argument('--ratios', type=float, nargs='+', default=[1., .5, 2.])
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the tool.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv``).

    Returns:
        dict: The written proposals file's content.
    """
    args = parse_args(argv)
    setup()
    import json

    from PIL import Image

    from cribo_mm.datasets.orl import grid_proposals, validate_orl_json
    with open(args.images) as f:
        src = json.load(f)
    images = src.get('images')
    validate_orl_json(
        dict(
            images=images,
            pseudo_annotations=dict(
                image_id=(images or {}).get('id'),
                bbox=[[[0, 0, 1, 1]]] * len((images or {}).get('id') or []))),
        'proposals', args.images)
    boxes = []
    for name in images['file_name']:
        with Image.open(osp.join(args.img_root, name)) as im:
            w, h = im.size
        boxes.append(grid_proposals(w, h, args.sizes, args.ratios))
    out = dict(
        images=images,
        pseudo_annotations=dict(image_id=images['id'], bbox=boxes))
    dump_json(out, args.out)
    print(f'{len(boxes)} images, {sum(map(len, boxes))} boxes -> {args.out}')
    return out


if __name__ == '__main__':
    main()
