# Copyright (c) cribo-mm contributors. All rights reserved.
"""Side-by-side summary of dense-NN retrieval results (JSON files or dirs).

Each row is ``NAME=PATH``; PATH is a result JSON of
``tools/analysis/dense_nn_retrieval.py`` or a folder holding some (the
newest is read). Several comma-separated paths form one row with the mean
and the spread (sample std) over them, e.g. one training seed per path.
``--describe NAME=TEXT`` adds what the row is; ``--baseline NAME`` adds the
difference of every row to that one. Examples::

    python tools/analysis/summarize_dense_nn.py \\
        random=work_dirs/demo/dense_nn_random \\
        cribo=work_dirs/demo/dense_nn_cribo --baseline random
    # three training seeds per row
    python tools/analysis/summarize_dense_nn.py \\
        random=s0/random,s1/random,s2/random cribo=s0/cribo,s1/cribo,...
"""
import argparse
import glob
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

READING = (
    'How to read it: mIoU (%) of labelling every validation patch from its '
    '30 nearest training patches (cosine similarity of frozen backbone '
    'features, no training on the labels); higher means the features '
    'group patches of the same class. The random-init row is the floor '
    'that the architecture alone gives; a pretrained row helps only by its '
    'difference to it. "+-" is the spread (std) over the listed runs.')


def latest_json(path: str) -> str:
    """``path`` itself, or the newest ``dense_nn_*.json`` inside it.

    Args:
        path (str): A result file or a folder.

    Returns:
        str: The result file.

    Raises:
        FileNotFoundError: If ``path`` holds no result.
    """
    if osp.isfile(path):
        return path
    files = sorted(glob.glob(osp.join(path, 'dense_nn_*.json')),
                   key=osp.getmtime)
    if not files:
        raise FileNotFoundError(f'no dense_nn_*.json in {path!r}')
    return files[-1]


def summarize(rows: Sequence[tuple], fraction: Optional[str] = None
              ) -> List[Dict]:
    """One summary per (row, fraction).

    Args:
        rows (Sequence[tuple]): ``(name, [paths])``.
        fraction (str, optional): Keep only this training fraction (as
            written in the results, e.g. '1' or '1/8').

    Returns:
        list[dict]: ``name, fraction, mIoU, std, runs, val_images``. With
        one path, ``std`` is the spread over the seeds inside that result;
        with several, over the paths (each path's seed mean).
    """
    out = []
    for name, paths in rows:
        per_fraction: Dict[str, list] = {}
        for path in paths:
            file = latest_json(path)
            with open(file) as f:
                try:
                    result = json.load(f)
                except json.JSONDecodeError as e:
                    raise ValueError(f'{file}: not valid JSON ({e})') from None
            if not isinstance(result, dict) or 'summary' not in result:
                raise ValueError(f'{file} is not a dense_nn_retrieval.py '
                                 'result (no "summary")')
            for frac, summary in result['summary'].items():
                if fraction is not None and frac != fraction:
                    continue
                per_fraction.setdefault(frac, []).append(
                    (summary, result.get('num_val_images')))
        if not per_fraction:
            raise ValueError(f'{name}: no result for fraction {fraction!r} '
                             f'in {paths}')
        for frac, items in per_fraction.items():
            if len(items) == 1:
                summary = items[0][0]
                miou = summary['mIoU']
                std = summary.get('mIoU_std', 0.)
                runs = len(summary['seeds'])
            else:
                from cribo_mm.evaluation.dense_nn import mean_std
                miou, std = mean_std([s['mIoU'] for s, _ in items])
                runs = len(items)
            out.append(
                dict(name=name, fraction=frac, mIoU=miou, std=std,
                     runs=runs, val_images=items[0][1]))
    return out


def format_table(entries: Sequence[Dict],
                 descriptions: Optional[Dict[str, str]] = None,
                 baseline: Optional[str] = None) -> str:
    """The printed table.

    Args:
        entries (Sequence[dict]): Output of :func:`summarize`.
        descriptions (dict, optional): Row name -> what the row is.
        baseline (str, optional): Row name the others are compared with.

    Returns:
        str: Table lines.
    """
    descriptions = descriptions or {}
    base = {}
    if baseline is not None:
        base = {e['fraction']: e['mIoU'] for e in entries
                if e['name'] == baseline}
        if not base:
            raise ValueError(f'--baseline {baseline!r} is not a row name')
    width = max([len('row')] + [len(e['name']) for e in entries]) + 2
    head = f'{"row":{width}s}{"fraction":>9s}{"mIoU":>8s}{"+-":>7s}' \
        f'{"runs":>6s}'
    if base:
        head += f'{"vs " + baseline:>16s}'
    if descriptions:
        head += '   what the row is'
    lines = [head]
    for e in entries:
        line = (f'{e["name"]:{width}s}{e["fraction"]:>9s}{e["mIoU"]:8.2f}'
                f'{e["std"]:7.2f}{e["runs"]:6d}')
        if base:
            diff = e['mIoU'] - base.get(e['fraction'], float('nan'))
            line += f'{diff:+16.2f}'
        if descriptions:
            line += '   ' + descriptions.get(e['name'], '')
        lines.append(line)
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    """Run the tool.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv``).

    Returns:
        list[dict]: The table rows (see :func:`summarize`).
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'runs', nargs='+', metavar='NAME=PATH[,PATH...]',
        help='a row: a result JSON or folder; several paths are averaged')
    parser.add_argument(
        '--describe', nargs='+', default=[], metavar='NAME=TEXT',
        help='what a row is, printed next to it')
    parser.add_argument('--baseline', help='row the others are compared to')
    parser.add_argument(
        '--fraction', help='only this training fraction (e.g. 1)')
    parser.add_argument(
        '--no-reading', action='store_true',
        help='leave out the how-to-read paragraph')
    args = parser.parse_args(argv)
    rows = []
    for item in args.runs:
        name, _, path = item.partition('=')
        if not name or not path:
            parser.error(f'expected NAME=PATH, got {item!r}')
        rows.append((name, [p for p in path.split(',') if p]))
    descriptions = {}
    for item in args.describe:
        name, _, text = item.partition('=')
        if not text:
            parser.error(f'expected NAME=TEXT for --describe, got {item!r}')
        descriptions[name] = text
    unknown = set(descriptions) - {name for name, _ in rows}
    if unknown:
        parser.error(f'--describe names no row: {sorted(unknown)}')
    try:
        entries = summarize(rows, args.fraction)
        table = format_table(entries, descriptions, args.baseline)
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    print(table)
    if not args.no_reading:
        print()
        print(READING)
    return entries


if __name__ == '__main__':
    main()
