# Copyright (c) cribo-mm contributors. All rights reserved.
"""Cross-image nearest neighbours of CrIBo objects, with the cycle test.

The checkpoint's memory bank stores object vectors only, not where they came
from. So, by default, this tool fills a bank itself: the teacher clusters
``--bank-size`` images (two seeded views each, as in training) and the bank
keeps both views' object vectors together with their source image, view and
cluster. The objects of ``--num-query-images`` other images (one "batch")
then retrieve their nearest bank object with the training's retrieval,
:func:`cribo_mm.models.utils.memory_bank.retrieve_cycle_consistent`: a
view-1 object's nearest bank object (view-1 entries, cosine) passes the
cycle test when that entry's view-2 vector has the query's own view-2
object as its nearest neighbour among all view-2 objects of the query
batch.

Each drawn pair shows the query object (highlighted in its image, with the
crop box of its view dashed) next to its neighbour (highlighted in the
neighbour's source image), framed green when the pair is cycle-consistent
and red when it is not. A JSON file lists every query object.

With ``--checkpoint-bank`` the queries are matched against the bank saved
in the checkpoint instead; the neighbours are then shown by slot, image
position in the FIFO and similarity only.

Examples::

    python tools/analysis/visualize_neighbours.py \\
        configs/cribo/vit-t16_demo.py work_dirs/demo/seed0/cribo/epoch_8.pth \\
        --num-query-images 8 --bank-size 64 --out work_dirs/vis_nn/nn.png

    # queries from a folder, bank from another one
    python tools/analysis/visualize_neighbours.py CONFIG CKPT \\
        --images queries/ --bank-images gallery/ --num-pairs 12
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

# Running from a checkout without installing: make ``cribo_mm`` importable.
_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
_HERE = osp.dirname(osp.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import visualize_objects as _common  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Show CrIBo query objects next to their nearest '
        'neighbour object in a memory bank, marking cycle-consistent pairs.')
    _common.add_common_args(parser)
    parser.add_argument(
        '--start',
        type=int,
        default=0,
        help='first query image (default: 0)')
    parser.add_argument(
        '--num-query-images',
        type=int,
        default=8,
        help='query images, matched as one batch (default: 8)')
    parser.add_argument(
        '--bank-images',
        nargs='+',
        help='image files/folders filling the bank (default: the images '
        'after the query images in the same source)')
    parser.add_argument(
        '--bank-size',
        type=int,
        default=64,
        help='images in the bank (default: 64)')
    parser.add_argument(
        '--checkpoint-bank',
        action='store_true',
        help="match against the checkpoint's own bank (no source images: "
        'slot and similarity only)')
    parser.add_argument(
        '--num-pairs',
        type=int,
        default=8,
        help='pairs drawn (default: 8)')
    parser.add_argument(
        '--select',
        choices=['balanced', 'largest', 'all'],
        default='balanced',
        help='which query objects are drawn: the largest ones, spread over '
        'the images, alternating passing and failing pairs (balanced), '
        'the largest ones regardless of the test (largest), or every '
        'object (all) (default: balanced)')
    parser.add_argument(
        '--cols', type=int, default=2, help='pairs per row (default: 2)')
    parser.add_argument(
        '--out',
        default='work_dirs/vis_neighbours/neighbours.png',
        help='output PNG (default: work_dirs/vis_neighbours/'
        'neighbours.png)')
    parser.add_argument(
        '--json',
        help='pair list of every query object (default: next to --out, '
        'with .json; "none" to skip)')
    args = parser.parse_args(argv)
    if args.panel_size is None:
        args.panel_size = 150
    if args.num_query_images < 1 or args.bank_size < 1:
        parser.error('--num-query-images and --bank-size must be >= 1')
    return args


def _concat(results, attr):
    import torch
    tensors = [getattr(r, attr) for r in results]
    return torch.cat(tensors) if tensors else torch.zeros(0)


def _object_meta(results) -> List[Dict]:
    """(result index, cluster id, view-1 patch count) per object."""
    meta = []
    for i, res in enumerate(results):
        for k in res.object_ids:
            meta.append(
                dict(item=i, cluster=int(k),
                     size=int((res.labels[0] == k).sum())))
    return meta


def choose_pairs(pairs: List[Dict], mode: str, num: int) -> List[Dict]:
    """Pick the pairs to draw.

    Objects are ranked by their size within their image first (every
    image's largest object, then every image's second largest, ...), then
    by size.

    Args:
        pairs (list[dict]): Every query object with ``item``, ``size`` and
            ``cycle_consistent``.
        mode (str): 'balanced', 'largest' or 'all'.
        num (int): Pairs wanted (ignored by 'all').

    Returns:
        list[dict]: The chosen pairs, in drawing order.
    """
    if mode == 'all':
        return list(pairs)
    rank_in_image: Dict[int, int] = {}
    order = sorted(range(len(pairs)),
                   key=lambda i: (pairs[i]['item'], -pairs[i]['size'], i))
    ranks = {}
    for i in order:
        item = pairs[i]['item']
        ranks[i] = rank_in_image.get(item, 0)
        rank_in_image[item] = ranks[i] + 1
    ranked = sorted(range(len(pairs)),
                    key=lambda i: (ranks[i], -pairs[i]['size'], i))
    if mode == 'largest':
        return [pairs[i] for i in ranked[:num]]
    passed = [i for i in ranked if pairs[i]['cycle_consistent']]
    failed = [i for i in ranked if not pairs[i]['cycle_consistent']]
    chosen = []
    while len(chosen) < num and (passed or failed):
        for pool in (passed, failed):
            if pool and len(chosen) < num:
                chosen.append(pool.pop(0))
    return [pairs[i] for i in chosen]


def main(argv: Optional[List[str]] = None) -> Dict:
    """Run the tool.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv``).

    Returns:
        dict: ``png`` and ``json`` paths (``json`` None when skipped) and
        the ``pairs`` (every query object).
    """
    args = parse_args(argv)
    import numpy as np
    import torch
    import torch.nn.functional as F

    from cribo_mm.models.utils.memory_bank import retrieve_cycle_consistent
    from cribo_mm.visualization import (add_header, collect_image_infos,
                                        compose_neighbour_pair, load_config,
                                        object_mask_in_original, render,
                                        save_png, show_image, tile)

    model, infos, transforms = _common.setup(args)
    end = args.start + args.num_query_images
    query_infos = _common.select(infos, None, args.start,
                                 args.num_query_images)
    if args.checkpoint_bank:
        bank_infos = []
    elif args.bank_images:
        bank_infos, _ = collect_image_infos(
            load_config(args.dataset_config or args.config,
                        args.cfg_options),
            args.bank_images, args.dataset_key)
        bank_infos = bank_infos[:args.bank_size]
    else:
        bank_infos = infos[end:end + args.bank_size]
        if not bank_infos:
            raise ValueError(
                f'no image left for the bank after the {len(query_infos)} '
                f'query images (of {len(infos)}); pass --bank-images or '
                'fewer --num-query-images.')
    progress = not args.no_progress
    queries = _common.cluster(
        model,
        _common.prepare(transforms, query_infos, args.seed, progress,
                        f'views of {len(query_infos)} query image(s)'),
        args, 'query clusters')
    bank_items = []
    if bank_infos:
        bank_items = _common.cluster(
            model,
            _common.prepare(transforms, bank_infos, args.seed, progress,
                            f'views of {len(bank_infos)} bank image(s)'),
            args, 'bank clusters')

    q_meta = _object_meta(queries)
    q1, q2 = _concat(queries, 'objects_v1'), _concat(queries, 'objects_v2')
    if not q_meta:
        raise ValueError('the query images have no object (no cluster in '
                         'both views); try other images or --seed.')
    normalized = bool(model.memory_bank.normalized_matching)
    if args.checkpoint_bank:
        bank = model.memory_bank.objects.detach().float().cpu()
        num_valid = model.memory_bank.num_valid
        counts = model.memory_bank.objects_per_image.cpu().numpy()
        real_images = model.memory_bank.fill_stats['real_images']
        b_meta = None
    else:
        b_meta = _object_meta(bank_items)
        if not b_meta:
            raise ValueError('the bank images have no object.')
        bank = torch.stack([
            _concat(bank_items, 'objects_v1'),
            _concat(bank_items, 'objects_v2')
        ])
        num_valid = bank.shape[1]
    result = retrieve_cycle_consistent(
        q1, q2, bank, num_valid, normalized_matching=normalized)
    nn_v1 = bank[0, result.index_v1].float()
    sims = (F.normalize(q1.float(), dim=1) *
            F.normalize(nn_v1, dim=1)).sum(1)

    pairs = []
    for c, meta in enumerate(q_meta):
        res = queries[meta['item']]
        slot = int(result.index_v1[c])
        pair = dict(
            item=meta['item'],
            size=meta['size'],
            query_image=res.sample.img_path,
            query_index=res.sample.index,
            query_cluster=meta['cluster'],
            bank_slot=slot,
            cosine=float(sims[c]),
            cycle_consistent=bool(result.mask_v1[c]),
            cycle_consistent_v2=bool(result.mask_v2[c]))
        if b_meta is not None:
            nb = bank_items[b_meta[slot]['item']]
            pair.update(
                neighbour_item=b_meta[slot]['item'],
                neighbour_image=nb.sample.img_path,
                neighbour_index=nb.sample.index,
                neighbour_cluster=b_meta[slot]['cluster'])
        else:
            image_rank = int(np.searchsorted(np.cumsum(counts), slot,
                                             side='right'))
            pair.update(
                neighbour_fifo_image=image_rank,
                neighbour_is_noise=image_rank >= real_images)
        pairs.append(pair)

    chosen = choose_pairs(pairs, args.select, args.num_pairs)
    figures = []
    for pair in chosen:
        q = queries[pair['item']].sample
        q_mask = object_mask_in_original(
            queries[pair['item']].labels[0], pair['query_cluster'],
            q.crop_bbox[0], q.crop_flip[0], q.image.shape[:2])
        q_caption = (f'query #{q.index} object {pair["query_cluster"]}')
        if b_meta is not None:
            nb = bank_items[pair['neighbour_item']]
            s = nb.sample
            n_mask = object_mask_in_original(
                nb.labels[0], pair['neighbour_cluster'], s.crop_bbox[0],
                s.crop_flip[0], s.image.shape[:2])
            figures.append(
                compose_neighbour_pair(
                    q.image, q_mask, q.crop_bbox[0], s.image, n_mask,
                    s.crop_bbox[0], pair['cycle_consistent'],
                    pair['cosine'], q_caption,
                    f'bank #{s.index} object {pair["neighbour_cluster"]}',
                    panel_size=args.panel_size))
        else:
            noise = ' (initial noise)' if pair['neighbour_is_noise'] else ''
            figures.append(
                compose_neighbour_pair(
                    q.image, q_mask, q.crop_bbox[0], None, None, None,
                    pair['cycle_consistent'], pair['cosine'], q_caption,
                    f'bank slot {pair["bank_slot"]}',
                    panel_size=args.panel_size,
                    placeholder_lines=[
                        'checkpoint bank', f'slot {pair["bank_slot"]}',
                        f'FIFO image {pair["neighbour_fifo_image"]}{noise}',
                        'source image not stored'
                    ]))

    share = float(np.mean([p['cycle_consistent'] for p in pairs]))
    if b_meta is not None:
        bank_desc = (f'a bank of {bank.shape[1]} objects from '
                     f'{len(bank_items)} other images')
    else:
        bank_desc = (f"the checkpoint's bank ({num_valid} objects, "
                     f'{real_images} real images)')
    header = [
        f'Nearest bank object of {len(pairs)} view-1 query objects from '
        f'{len(queries)} images, against {bank_desc}',
        f'{100 * share:.0f}% of all query objects are cycle-consistent '
        f'(green frame: passes, red: fails); highlighted: the object, '
        f'dashed: its view; seed {args.seed}; showing {len(chosen)} '
        f'({args.select})'
    ]
    fig = add_header(tile(figures, args.cols, gap=8), header, size=8.5)
    picture = render(fig)
    png = save_png(picture, args.out, args.colors)
    json_path = args.json or osp.splitext(png)[0] + '.json'
    if json_path.lower() == 'none':
        json_path = None
    else:
        _write_json(json_path, args, int(num_valid), share, pairs)
    print(f'wrote {png}' + (f'\nwrote {json_path}' if json_path else ''))
    if args.show:
        show_image(picture, osp.basename(png), args.wait_time)
    return dict(png=png, json=json_path, pairs=pairs)


def _write_json(json_path: str, args, num_valid: int, share: float,
                pairs: List[Dict]) -> None:
    """Write the pair list."""
    os.makedirs(osp.dirname(osp.abspath(json_path)), exist_ok=True)
    with open(json_path, 'w') as f:
        json.dump(
            dict(
                config=args.config,
                checkpoint=args.checkpoint,
                seed=args.seed,
                checkpoint_bank=bool(args.checkpoint_bank),
                bank_objects=num_valid,
                cycle_consistent_share=share,
                pairs=[{k: v for k, v in p.items() if k != 'item'}
                       for p in pairs]),
            f,
            indent=1)


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, IndexError, KeyError, ValueError) as err:
        sys.exit(f'error: {err}')
