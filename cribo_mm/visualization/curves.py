# Copyright (c) cribo-mm contributors. All rights reserved.
"""Training curves from mmengine's scalar logs (``vis_data/scalars.json``).

mmengine's ``LocalVisBackend`` writes one JSON object per logged iteration
(and one per validation) into ``<work_dir>/<timestamp>/vis_data/
scalars.json``. A resumed run starts a new timestamp folder whose records
continue the step count.
"""
import glob
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .colors import rgb_to_float

__all__ = [
    'LOSS_KEYS', 'CURVE_KEYS', 'find_scalar_logs', 'read_scalar_log',
    'load_training_records', 'training_series', 'moving_average',
    'ENTROPY_KEYS', 'epoch_starts', 'off_spans', 'training_figure',
    'render_training_curves'
]

#: The three CrIBo loss terms.
LOSS_KEYS = ('loss_global', 'loss_object_crossview', 'loss_object_crossimage')
#: Collapse diagnostics (see ``cribo_mm.models.losses.collapse_stats``):
#: mean teacher entropy, entropy of the batch-mean teacher distribution and
#: log(out_dim), per head.
ENTROPY_KEYS = ('teacher_entropy_global', 'teacher_entropy_object',
                'teacher_batch_entropy_global',
                'teacher_batch_entropy_object', 'log_out_dim_global',
                'log_out_dim_object')
#: Every key the curves read (besides the x axis).
CURVE_KEYS = LOSS_KEYS + ENTROPY_KEYS + (
    'loss', 'cycle_consistent_ratio', 'objects_per_image', 'bank_fill',
    'crossimage_enabled', 'epoch')
_LABELS = {
    'loss_global': 'global (CLS)',
    'loss_object_crossview': 'object, cross-view',
    'loss_object_crossimage': 'object, cross-image',
    'loss': 'total',
    'teacher_entropy_global': 'global: mean H(teacher)',
    'teacher_entropy_object': 'object: mean H(teacher)',
    'teacher_batch_entropy_global': 'global: H(batch mean)',
    'teacher_batch_entropy_object': 'object: H(batch mean)',
}
_COLORS = {
    'loss_global': (31, 119, 180),
    'loss_object_crossview': (255, 127, 14),
    'loss_object_crossimage': (44, 160, 44),
    'loss': (120, 120, 120),
    'cycle_consistent_ratio': (148, 103, 189),
    'bank_fill': (140, 86, 75),
    'objects_per_image': (214, 39, 40),
    'teacher_entropy_global': (31, 119, 180),
    'teacher_batch_entropy_global': (31, 119, 180),
    'teacher_entropy_object': (255, 127, 14),
    'teacher_batch_entropy_object': (255, 127, 14),
}


def find_scalar_logs(path: str) -> List[str]:
    """The ``scalars.json`` files of a work dir, oldest run first.

    Args:
        path (str): A work dir (``<work_dir>/<timestamp>/vis_data/
            scalars.json`` below it), one run's timestamp folder, its
            ``vis_data`` folder, or a ``scalars.json`` file.

    Returns:
        list[str]: Existing files, sorted by run (timestamp folder name).

    Raises:
        FileNotFoundError: If ``path`` does not exist or holds no log.
    """
    if not osp.exists(path):
        raise FileNotFoundError(f'{path!r} does not exist (expected a work '
                                'dir or a scalars.json file).')
    if osp.isfile(path):
        return [path]
    patterns = ('scalars.json', osp.join('vis_data', 'scalars.json'),
                osp.join('*', 'vis_data', 'scalars.json'))
    for pattern in patterns:
        found = sorted(glob.glob(osp.join(path, pattern)))
        if found:
            return found
    raise FileNotFoundError(
        f'no scalar log under {path!r}: expected '
        f'{osp.join(path, "<timestamp>", "vis_data", "scalars.json")} '
        "(written by mmengine's LocalVisBackend during training).")


def read_scalar_log(filename: str) -> List[Dict]:
    """Parse one ``scalars.json`` (one JSON object per line).

    Lines that are not JSON objects (e.g. a line cut by a crash) are
    skipped.

    Args:
        filename (str): The log file.

    Returns:
        list[dict]: The records in file order.
    """
    records = []
    with open(filename, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                records.append(rec)
    return records


def _is_training(rec: Dict) -> bool:
    return any(k in rec for k in LOSS_KEYS + ('loss', ))


def load_training_records(path: str, all_runs: bool = False) -> List[Dict]:
    """Training records of the latest run (or of all runs) of a work dir.

    Args:
        path (str): See :func:`find_scalar_logs`.
        all_runs (bool): Merge every run (resumed trainings), a later run
            replacing the records of the steps it repeats. Otherwise use
            the latest run that logged a loss. Defaults to False.

    Returns:
        list[dict]: Records with a loss, sorted by ``step`` (``iter`` when
        a record has no ``step``).

    Raises:
        ValueError: If no run logged a loss.
    """
    files = find_scalar_logs(path)
    runs = [[r for r in read_scalar_log(f) if _is_training(r)] for f in files]
    runs = [r for r in runs if r]
    if not runs:
        raise ValueError(f'no training record (no loss key) in {files}')
    if not all_runs:
        runs = runs[-1:]
    merged: Dict = {}
    for run in runs:
        for i, rec in enumerate(run):
            merged[rec.get('step', rec.get('iter', i))] = rec
    return [merged[k] for k in sorted(merged)]


def training_series(records: Sequence[Dict],
                    keys: Sequence[str] = CURVE_KEYS,
                    x_key: str = 'step') -> Dict[str, Tuple[np.ndarray,
                                                            np.ndarray]]:
    """One (x, y) series per key present in the records.

    Args:
        records (Sequence[dict]): Training records.
        keys (Sequence[str]): Keys to extract. Defaults to
            :data:`CURVE_KEYS`.
        x_key (str): Key of the x values ('step', 'iter' or 'epoch'); a
            record without it gets its position. With 'epoch' the records
            of epoch e are spread evenly over (e - 1, e]. Defaults to
            'step'.

    Returns:
        dict[str, tuple[np.ndarray, np.ndarray]]: float64 (x, y) for every
        key present in at least one record.
    """
    if x_key == 'epoch':
        positions = _fractional_epochs(records)
    else:
        positions = [
            float(rec.get(x_key, rec.get('iter', i + 1)))
            for i, rec in enumerate(records)
        ]
    series = {}
    for key in keys:
        xs, ys = [], []
        for i, rec in enumerate(records):
            value = rec.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                xs.append(positions[i])
                ys.append(float(value))
        if xs:
            series[key] = (np.asarray(xs), np.asarray(ys))
    return series


def _fractional_epochs(records: Sequence[Dict]) -> List[float]:
    """Epoch e's records at e - 1 + (j + 1) / n_e, j = 0..n_e - 1."""
    epochs = [int(rec.get('epoch', 1)) for rec in records]
    counts: Dict[int, int] = {}
    for e in epochs:
        counts[e] = counts.get(e, 0) + 1
    seen: Dict[int, int] = {}
    out = []
    for e in epochs:
        seen[e] = seen.get(e, 0) + 1
        out.append(e - 1 + seen[e] / counts[e])
    return out


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average with a shorter window at the start.

    Args:
        values (np.ndarray): (N,) values.
        window (int): Window length; <= 1 returns a copy.

    Returns:
        np.ndarray: (N,) float64 smoothed values.
    """
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or values.size == 0:
        return values.copy()
    csum = np.cumsum(np.concatenate([[0.], values]))
    idx = np.arange(1, values.size + 1)
    start = np.maximum(idx - int(window), 0)
    return (csum[idx] - csum[start]) / (idx - start)


def epoch_starts(series: Dict[str, Tuple[np.ndarray, np.ndarray]]
                 ) -> List[Tuple[float, int]]:
    """Epoch boundaries (from the ``epoch`` series).

    The boundary is put at the last logged x of the previous epoch, which
    is exact when the logging interval divides the epoch length.

    Args:
        series (dict): Output of :func:`training_series` with 'epoch'.

    Returns:
        list[tuple[float, int]]: (boundary x, new epoch) for every epoch
        after the first one logged.
    """
    if 'epoch' not in series:
        return []
    xs, epochs = series['epoch']
    return [(float(xs[i - 1]), int(epochs[i])) for i in range(1, len(xs))
            if epochs[i] != epochs[i - 1]]


def off_spans(xs: np.ndarray, on: np.ndarray) -> List[Tuple[float, float]]:
    """Contiguous x ranges where a flag is 0.

    A range runs from its first to its last logged x (to the next logged x
    when it holds a single point).

    Args:
        xs (np.ndarray): (N,) sorted x values.
        on (np.ndarray): (N,) flag values.

    Returns:
        list[tuple[float, float]]: (start, end) per range.
    """
    spans, start = [], None
    for i, (x, flag) in enumerate(zip(xs, on)):
        if flag == 0 and start is None:
            start = i
        if start is not None and (flag != 0 or i == len(xs) - 1):
            last = i - 1 if flag != 0 else i
            end = xs[last] if last > start else xs[min(last + 1,
                                                       len(xs) - 1)]
            spans.append((float(xs[start]), float(end)))
            start = None
    return spans


def training_figure(series: Dict[str, Tuple[np.ndarray, np.ndarray]],
                    size: Tuple[int, int] = (1200, 720),
                    dpi: int = 100,
                    smooth: int = 1,
                    title: Optional[str] = None,
                    x_label: str = 'iteration',
                    show_total: bool = False):
    """The training-curve figure: four panels on a 2 x 2 grid.

    * ``loss terms``: the three loss terms (optionally the total); the
      iterations where the cross-image term is disabled
      (``crossimage_enabled`` = 0, e.g. the first epoch) are shaded.
    * ``teacher entropy``: the collapse diagnostics, per head (global
      blue, object orange): the mean entropy of the teacher distribution
      (solid) and the entropy of its batch mean (dashed), with
      ``log(out_dim)`` as a black dotted line. Solid curves on that line
      are the uniform plateau (nothing learned); a solid curve falling
      while the dashed one stays high is healthy; both falling is
      collapse onto few prototypes.
    * ``cycle-consistent pairs``: share of cycle-consistent retrievals in
      percent (and the bank fill, dotted).
    * ``objects per image``: clusters present in both views.

    Dotted vertical lines mark epoch starts. Missing keys leave their curve
    out (a panel without data says so).

    Args:
        series (dict): Output of :func:`training_series`.
        size (tuple[int, int]): Picture (width, height) in pixels.
            Defaults to (1200, 720).
        dpi (int): Resolution (fonts scale with it). Defaults to 100.
        smooth (int): Moving-average window over logged points (the raw
            values are drawn faintly behind). Defaults to 1 (no smoothing).
        title (str, optional): Figure title.
        x_label (str): Label of the x axis. Defaults to 'iteration'.
        show_total (bool): Also plot the total loss. Defaults to False.

    Returns:
        matplotlib.figure.Figure: The figure (Agg canvas attached); its
        axes are titled ``loss terms``, ``teacher entropy``,
        ``cycle-consistent pairs`` and ``objects per image``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = (int(s) for s in size)
    fig = Figure(
        figsize=(width / dpi, height / dpi), dpi=dpi, layout='constrained')
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2).ravel()
    epochs = epoch_starts(series)

    def plot(ax, key, scale=1., style='-', width_=1.6, label=None):
        if key not in series:
            return False
        xs, ys = series[key]
        color = rgb_to_float(_COLORS[key])
        label = label or _LABELS.get(key, key)
        if smooth > 1:
            ax.plot(xs, ys * scale, style, color=color, alpha=0.25, lw=0.8)
            ax.plot(xs, moving_average(ys, smooth) * scale, style,
                    color=color, lw=width_, label=label)
        else:
            ax.plot(xs, ys * scale, style, color=color, lw=width_,
                    label=label)
        return True

    def finish(ax, name, ylabel, drawn):
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(x_label, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(True, alpha=0.3, lw=0.5)
        for x, epoch in epochs:
            ax.axvline(x, color='0.6', ls=':', lw=0.8)
        if not drawn:
            ax.text(0.5, 0.5, 'not logged', transform=ax.transAxes,
                    ha='center', va='center', color='0.4')
        elif len(ax.get_legend_handles_labels()[0]) > 1:
            ax.legend(fontsize=7, loc='best', framealpha=0.8)

    ax = axes[0]
    drawn = [plot(ax, k) for k in LOSS_KEYS]
    if show_total:
        plot(ax, 'loss', width_=0.9, label='total')
    if 'crossimage_enabled' in series:
        xs, on = series['crossimage_enabled']
        for i, (lo, hi) in enumerate(off_spans(xs, on)):
            ax.axvspan(lo, hi, color='0.85', alpha=0.6, lw=0,
                       label='cross-image off' if i == 0 else None)
    finish(ax, 'loss terms', 'loss', any(drawn))

    ax = axes[1]
    drawn = [
        plot(ax, key, style=style)
        for key, style in (('teacher_entropy_global', '-'),
                           ('teacher_batch_entropy_global', '--'),
                           ('teacher_entropy_object', '-'),
                           ('teacher_batch_entropy_object', '--'))
    ]
    levels = sorted({
        round(float(series[key][1][-1]), 6)
        for key in ('log_out_dim_global', 'log_out_dim_object')
        if key in series
    })
    for i, level in enumerate(levels):
        ax.axhline(level, color='k', ls=':', lw=1.2,
                   label='log(out_dim)' if i == 0 else None)
    if any(drawn):
        ax.set_ylim(bottom=0)
    finish(ax, 'teacher entropy', 'nats', any(drawn))

    ax = axes[2]
    drawn = plot(ax, 'cycle_consistent_ratio', scale=100.,
                 label='cycle-consistent pairs')
    plot(ax, 'bank_fill', scale=100., style=':', width_=1.2,
         label='bank fill')
    ax.set_ylim(-2, 102)
    finish(ax, 'cycle-consistent pairs', '% of queried objects', drawn)

    ax = axes[3]
    drawn = plot(ax, 'objects_per_image', label='objects / image')
    finish(ax, 'objects per image', 'clusters in both views', drawn)
    if drawn:
        ax.set_ylim(bottom=0)

    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def render_training_curves(series: Dict[str, Tuple[np.ndarray, np.ndarray]],
                           size: Tuple[int, int] = (1200, 720),
                           dpi: int = 100,
                           smooth: int = 1,
                           title: Optional[str] = None,
                           x_label: str = 'iteration',
                           show_total: bool = False) -> np.ndarray:
    """Rasterise :func:`training_figure` (same arguments).

    Returns:
        np.ndarray: uint8 RGB (height, width, 3).
    """
    fig = training_figure(series, size, dpi, smooth, title, x_label,
                          show_total)
    fig.canvas.draw()
    buf = np.asarray(fig.canvas.buffer_rgba())
    return np.ascontiguousarray(buf[..., :3])
