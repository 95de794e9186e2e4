# Copyright (c) cribo-mm contributors. All rights reserved.
"""Plot a CrIBo run's training curves into one PNG.

Reads mmengine's scalar log(s) (``<work_dir>/<timestamp>/vis_data/
scalars.json``) and draws four panels: the three loss terms (global,
object cross-view, object cross-image; iterations with the cross-image term
disabled shaded), the teacher entropies of both heads next to log(out_dim)
(the collapse diagnostics: on the log(out_dim) line = uniform plateau), the
share of cycle-consistent pairs (with the bank fill) and the number of
objects per image. Dotted lines mark epoch starts.

Examples::

    python tools/analysis/plot_training_curves.py work_dirs/demo/seed0/cribo
    python tools/analysis/plot_training_curves.py work_dirs/run \\
        --all-runs --smooth 20 --out curves.png
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
    parser = argparse.ArgumentParser(
        description='Plot the loss terms, the teacher entropies, the share '
        'of cycle-consistent pairs and the objects per image of a CrIBo or '
        'DINO run.')
    parser.add_argument(
        'work_dir',
        help='work dir of the run (or a timestamp folder, or a '
        'scalars.json file)')
    parser.add_argument(
        '--out',
        help='output PNG (default: <work_dir>/training_curves.png)')
    parser.add_argument(
        '--all-runs',
        action='store_true',
        help='merge every run of the work dir (resumed trainings); '
        'default: the latest run that logged a loss')
    parser.add_argument(
        '--x',
        choices=['step', 'iter', 'epoch'],
        default='step',
        help='x axis key (default: step, the global iteration)')
    parser.add_argument(
        '--smooth',
        type=int,
        default=1,
        help='moving-average window in logged points (default: 1)')
    parser.add_argument(
        '--size',
        type=int,
        nargs=2,
        default=(1200, 720),
        metavar=('WIDTH', 'HEIGHT'),
        help='picture size in pixels (default: 1200 720)')
    parser.add_argument(
        '--dpi', type=int, default=100, help='resolution (default: 100)')
    parser.add_argument('--title', help='figure title (default: the path)')
    parser.add_argument(
        '--total', action='store_true', help='also plot the total loss')
    parser.add_argument(
        '--colors',
        type=int,
        help='write the PNG with an adaptive palette of this many colours')
    parser.add_argument(
        '--show',
        action='store_true',
        help='also show the picture in a window (needs a display)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> str:
    """Run the tool.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv``).

    Returns:
        str: The written PNG.
    """
    args = parse_args(argv)
    from cribo_mm.visualization import (load_training_records,
                                        render_training_curves, save_png,
                                        show_image, training_series)
    from cribo_mm.visualization.curves import ENTROPY_KEYS, LOSS_KEYS
    records = load_training_records(args.work_dir, args.all_runs)
    series = training_series(records, x_key=args.x)
    known = LOSS_KEYS + ENTROPY_KEYS + ('cycle_consistent_ratio',
                                        'objects_per_image')
    if not any(k in series for k in known):
        raise ValueError(
            f'{args.work_dir!r} logged none of {known}: not a CrIBo run?')
    out = args.out
    if out is None:
        folder = (args.work_dir if osp.isdir(args.work_dir) else
                  osp.dirname(osp.abspath(args.work_dir)))
        out = osp.join(folder, 'training_curves.png')
    title = args.title
    if title is None:
        last = records[-1]
        title = (f'{osp.basename(osp.normpath(args.work_dir))}: '
                 f'{len(records)} logged iterations, last at iteration '
                 f'{last.get("step", last.get("iter", "?"))}, epoch '
                 f'{last.get("epoch", "?")}')
    picture = render_training_curves(
        series,
        size=tuple(args.size),
        dpi=args.dpi,
        smooth=args.smooth,
        title=title,
        x_label={'step': 'iteration', 'iter': 'iteration',
                 'epoch': 'epoch'}[args.x],
        show_total=args.total)
    out = save_png(picture, out, args.colors)
    print(f'wrote {out}')
    if args.show:
        show_image(picture, osp.basename(out))
    return out


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f'error: {err}')
