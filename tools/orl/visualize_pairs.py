# Copyright (c) cribo-mm contributors. All rights reserved.
"""Draw ORL's RoI pairs from a stage-2 correspondence file.

One row per (image, neighbour): the image with its filtered boxes (grey)
and the selected pairs (one colour and number per pair), next to the
neighbour image with the matching boxes. The rows are stacked into one
PNG per image, or into one grid with ``--grid``.

Example::

    python tools/orl/visualize_pairs.py work_dirs/orl_demo/stage2/correspondence.json \\
        --img-root '' --num-images 4 --neighbours 2 --out-dir work_dirs/orl_pairs
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
    p = argparse.ArgumentParser(description='Draw ORL RoI pairs')
    p.add_argument('correspondence', help='stage-2c correspondence JSON')
    p.add_argument('--img-root', default='', help='image folder')
    p.add_argument(
        '--images',
        type=int,
        nargs='+',
        default=None,
        help='image rows to draw (default: the first --num-images)')
    p.add_argument('--num-images', type=int, default=4)
    p.add_argument(
        '--neighbours', type=int, default=2, help='neighbours per image')
    p.add_argument('--height', type=int, default=240, help='panel height')
    p.add_argument('--out-dir', default='work_dirs/orl_pairs')
    p.add_argument(
        '--grid', default=None, help='also write all rows into this PNG')
    p.add_argument(
        '--colors',
        type=int,
        default=None,
        help='palette size of the written PNGs (smaller files)')
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> List[str]:
    """Run the tool.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv``).

    Returns:
        list[str]: The written files.
    """
    args = parse_args(argv)
    import mmcv

    from cribo_mm.datasets.orl import load_orl_json, resolve_image_paths
    from cribo_mm.utils.progress import make_progress
    from cribo_mm.visualization import save_png
    from cribo_mm.visualization.figures import (add_header,
                                                compose_roi_pairs, render,
                                                tile)
    data = load_orl_json(args.correspondence, 'correspondence')
    names = data['images']['file_name']
    paths = resolve_image_paths(names, args.img_root, args.correspondence)
    ann = data['pseudo_annotations']
    rows = args.images if args.images is not None else list(
        range(min(args.num_images, len(names))))
    for r in rows:
        if not 0 <= r < len(names):
            raise IndexError(f'--images: row {r} is not in [0, {len(names)})'
                             f' of {args.correspondence!r}')

    def read(row):
        return mmcv.imread(paths[row], channel_order='rgb')

    written, figures = [], []
    bar = make_progress(len(rows))
    for i in rows:
        image = read(i)
        panels = []
        for rank, (j, pairs) in enumerate(
                zip(ann['knn_image_id'][i],
                    ann['knn_bbox_pair'][i][:args.neighbours])):
            panels.append(
                compose_roi_pairs(
                    image,
                    read(j),
                    pairs,
                    ann['bbox'][i],
                    height=args.height,
                    caption=f'neighbour {rank + 1}: '
                    f'{osp.basename(names[j])} (row {j}), '
                    f'{len(pairs)} pair(s)'))
        figure = add_header(
            tile(panels, cols=1), [
                f'RoI pairs of {osp.basename(names[i])} (row {i}, '
                f'{len(ann["bbox"][i])} kept boxes)'
            ])
        figures.append(figure)
        out = osp.join(args.out_dir, f'pairs_{i:06d}.png')
        written.append(save_png(render(figure), out, colors=args.colors))
        bar.update()
    bar.close()
    if args.grid:
        written.append(
            save_png(render(tile(figures, cols=1)), args.grid, args.colors))
    for f in written:
        print(f)
    return written


if __name__ == '__main__':
    main()
