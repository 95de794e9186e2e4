# Copyright (c) cribo-mm contributors. All rights reserved.
"""Side-by-side summary of dense-NN retrieval results (JSON files or dirs).

    python tools/analysis/summarize_dense_nn.py random=DIR_OR_JSON cribo=...
"""
import argparse
import glob
import json
import os.path as osp


def latest_json(path: str) -> str:
    """``path`` itself, or the newest ``dense_nn_*.json`` inside it."""
    if osp.isfile(path):
        return path
    files = sorted(glob.glob(osp.join(path, 'dense_nn_*.json')),
                   key=osp.getmtime)
    if not files:
        raise FileNotFoundError(f'no dense_nn_*.json in {path}')
    return files[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('runs', nargs='+', metavar='NAME=PATH')
    args = parser.parse_args(argv)
    rows = []
    for item in args.runs:
        name, _, path = item.partition('=')
        if not path:
            parser.error(f'expected NAME=PATH, got {item!r}')
        with open(latest_json(path)) as f:
            result = json.load(f)
        for fraction, summary in result['summary'].items():
            rows.append((name, fraction, summary['mIoU'],
                         summary.get('mIoU_std', 0.), len(summary['seeds'])))
    print(f'{"model":16s}{"fraction":>10s}{"mIoU":>8s}{"std":>7s}'
          f'{"seeds":>7s}')
    for name, fraction, miou, std, seeds in rows:
        print(f'{name:16s}{fraction:>10s}{miou:8.2f}{std:7.2f}{seeds:7d}')


if __name__ == '__main__':
    main()
