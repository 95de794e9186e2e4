# Copyright (c) cribo-mm contributors. All rights reserved.
"""Overlay the loss curves of several runs and say how far apart they are.

For runs of the same config that differ in one setting (bf16 vs fp32, say):
one panel per loss term (and the total), one line per run (smoothed, raw
values faint behind), and, against the first run, the largest absolute
difference of the smoothed curves over the common iterations, printed and
written to a JSON next to the picture.

Example::

    python tools/analysis/compare_training_curves.py \\
        fp32=work_dirs/bf16_vs_fp32/fp32 bf16=work_dirs/bf16_vs_fp32/bf16 \\
        --smooth 10 --out docs/images/bf16_vs_fp32.png
"""
import argparse
import json
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np

# Running from a checkout without installing: make ``cribo_mm`` importable.
_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

KEYS = ('loss', 'loss_global', 'loss_object_crossview',
        'loss_object_crossimage')
TITLES = {
    'loss': 'total loss',
    'loss_global': 'global (CLS)',
    'loss_object_crossview': 'object, cross-view',
    'loss_object_crossimage': 'object, cross-image',
}
COLORS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Overlay the loss curves of runs; print the largest '
        'difference of the smoothed curves to the first run.')
    parser.add_argument(
        'runs',
        nargs='+',
        metavar='LABEL=WORK_DIR',
        help='runs to compare (work dir, timestamp folder or scalars.json); '
        'the first one is the reference')
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument(
        '--smooth',
        type=int,
        default=10,
        help='moving-average window in logged points (default: 10)')
    parser.add_argument(
        '--size',
        type=int,
        nargs=2,
        default=(1200, 720),
        metavar=('WIDTH', 'HEIGHT'),
        help='picture size in pixels (default: 1200 720)')
    parser.add_argument('--title', help='figure title')
    parser.add_argument(
        '--colors',
        type=int,
        help='write the PNG with an adaptive palette of this many colours')
    return parser.parse_args(argv)


def _label_and_path(spec: str) -> Tuple[str, str]:
    if '=' not in spec:
        return osp.basename(osp.normpath(spec)), spec
    label, path = spec.split('=', 1)
    return label, path


def smoothed_difference(reference: Tuple[np.ndarray, np.ndarray],
                        other: Tuple[np.ndarray, np.ndarray],
                        window: int) -> Dict[str, float]:
    """Largest and mean absolute difference of two smoothed curves.

    Both curves are smoothed with the same trailing moving average, then
    compared at the iterations logged by both.

    Args:
        reference (tuple[np.ndarray, np.ndarray]): (x, y) of the first run.
        other (tuple[np.ndarray, np.ndarray]): (x, y) of the other run.
        window (int): Moving-average window in logged points.

    Returns:
        dict[str, float]: ``max_abs``, ``mean_abs``, ``max_rel`` (max_abs
        over the reference's mean level), ``final_abs`` (at the last common
        iteration) and ``points`` (common iterations).
    """
    from cribo_mm.visualization.curves import moving_average
    xr, yr = reference
    xo, yo = other
    common, ir, io = np.intersect1d(xr, xo, return_indices=True)
    if common.size == 0:
        raise ValueError('the runs share no logged iteration')
    sr = moving_average(yr, window)[ir]
    so = moving_average(yo, window)[io]
    diff = np.abs(sr - so)
    return dict(
        max_abs=float(diff.max()),
        mean_abs=float(diff.mean()),
        max_rel=float(diff.max() / max(np.abs(sr).mean(), 1e-12)),
        final_abs=float(diff[-1]),
        points=int(common.size))


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the tool.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv``).

    Returns:
        dict: Per run (after the first) and loss key, the output of
        :func:`smoothed_difference`.
    """
    args = parse_args(argv)
    if len(args.runs) > len(COLORS):
        raise ValueError(f'at most {len(COLORS)} runs, got {len(args.runs)}')
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from cribo_mm.visualization import (load_training_records, save_png,
                                        training_series)
    from cribo_mm.visualization.curves import moving_average
    runs = []
    for spec in args.runs:
        label, path = _label_and_path(spec)
        series = training_series(load_training_records(path), keys=KEYS)
        if 'loss' not in series:
            raise ValueError(f'{path!r} logged no "loss"')
        runs.append((label, series))

    width, height = args.size
    fig = Figure(figsize=(width / 100, height / 100), dpi=100,
                 layout='constrained')
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2).ravel()
    report: Dict[str, Dict[str, dict]] = {}
    ref_label, ref_series = runs[0]
    for ax, key in zip(axes, KEYS):
        for (label, series), color in zip(runs, COLORS):
            if key not in series:
                continue
            xs, ys = series[key]
            rgb = tuple(c / 255 for c in color)
            ax.plot(xs, ys, color=rgb, alpha=0.25, lw=0.8)
            ax.plot(xs, moving_average(ys, args.smooth), color=rgb, lw=1.6,
                    label=label)
        notes = []
        for label, series in runs[1:]:
            if key in series and key in ref_series:
                d = smoothed_difference(ref_series[key], series[key],
                                        args.smooth)
                report.setdefault(label, {})[key] = d
                notes.append(f'{label}: max |diff| {d["max_abs"]:.3f}')
        title = TITLES[key] + (f' ({"; ".join(notes)})' if notes else '')
        ax.set_title(title, fontsize=9)
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if args.title:
        fig.suptitle(args.title, fontsize=11)
    canvas.draw()
    picture = np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])
    out = save_png(picture, args.out, args.colors)
    summary = osp.splitext(out)[0] + '.json'
    with open(summary, 'w') as f:
        json.dump(dict(reference=ref_label, smooth=args.smooth,
                       difference=report), f, indent=1)
    for label, keys in report.items():
        for key, d in keys.items():
            print(f'{label} vs {ref_label}, {key}: smoothed ({args.smooth}) '
                  f'max |diff| {d["max_abs"]:.4f} ({100 * d["max_rel"]:.2f} '
                  f'% of the mean), mean {d["mean_abs"]:.4f}, at the end '
                  f'{d["final_abs"]:.4f} over {d["points"]} iterations')
    print(f'wrote {out} and {summary}')
    return report


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f'error: {err}')
