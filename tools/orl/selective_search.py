# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL stage 2b: selective-search region proposals of every image.

OpenCV contrib selective search (fast mode, default parameters) on each
full-resolution image, every box kept in OpenCV's order, written in the
proposals layout of :mod:`cribo_mm.datasets.orl.annotations` with the
same ``images`` part as the kNN file. Images are spread over ``--workers``
CPU processes; the job is sharded over ranks (``--launcher``) or hand-started
shards (``--shard i/n``, e.g. a Slurm job array), keeps finished chunks under
``--work-dir`` and resumes; the process that finds every chunk done merges.

OpenCV shuffles its ranking with ``rand()``; ``--seed`` (default 0) reseeds
it before every image, so the file does not depend on sharding or
resumption (``--seed -1``: unseeded, as the authors' code).

Example (one node, 32 cores)::

    python tools/orl/selective_search.py \\
        --images data/coco/orl/train2017_knn10.json \\
        --img-root data/coco/train2017 --workers 32 \\
        --out data/coco/orl/train2017_selective_search.json
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

from _common import (ShardProgress, add_shard_args, dump_json, finish_shard,
                     init_shards, names_digest, setup)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description='ORL stage 2b: selective search')
    p.add_argument(
        '--images',
        required=True,
        help='a stage-2 JSON whose images part lists the images (the kNN '
        'file)')
    p.add_argument('--img-root', default='', help='image folder')
    p.add_argument('--out', required=True, help='proposals JSON to write')
    p.add_argument('--mode', choices=['fast', 'quality'], default='fast')
    p.add_argument(
        '--seed',
        type=int,
        default=0,
        help="seed of OpenCV's ranking shuffle, set per image (-1: unseeded)")
    p.add_argument(
        '--workers',
        type=int,
        default=None,
        help='CPU processes (default: the cores divided by the processes of '
        'this node under torchrun; 0: in this process)')
    add_shard_args(p)
    return p.parse_args(argv)


def _propose(task):
    """Worker: proposals of one image file (OpenCV single-threaded)."""
    import cv2

    from cribo_mm.orl_mining.proposals import selective_search
    path, mode, seed = task
    cv2.setNumThreads(1)
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f'cannot read image {path!r}')
    return selective_search(img, mode, seed)


def main(argv: Optional[List[str]] = None) -> Optional[dict]:
    """Run the tool.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv``).

    Returns:
        dict | None: The written proposals file's content (None on the
        ranks / shards that do not merge).
    """
    args = parse_args(argv)
    setup()
    shard = init_shards(args)
    import multiprocessing

    from cribo_mm.datasets.orl import (read_json, resolve_image_paths,
                                       validate_images_part)
    from cribo_mm.orl_mining.proposals import require_selective_search
    from cribo_mm.utils.sharded_job import ShardedJob

    require_selective_search()
    images = validate_images_part(read_json(args.images), args.images)
    names = images['file_name']
    paths = resolve_image_paths(names, args.img_root, args.images)
    seed = None if args.seed < 0 else args.seed
    job = ShardedJob(
        osp.join(args.work_dir, 'proposals'),
        len(paths),
        args.chunk_size,
        settings=dict(images=names_digest(paths), mode=args.mode, seed=seed),
        shard=shard)
    if args.workers is None:
        per_node = int(os.environ.get('LOCAL_WORLD_SIZE', 1))
        args.workers = max(1, (os.cpu_count() or 1) // per_node)
    pending = job.pending()
    if pending:
        bar = ShardProgress.for_chunks(job, pending)
        pool = None
        if args.workers > 0:
            pool = multiprocessing.get_context('spawn').Pool(args.workers)
        try:
            for c in pending:
                tasks = [(paths[i], args.mode, seed)
                         for i in job.chunk_range(c)]
                boxes = []
                for b in (pool.imap(_propose, tasks)
                          if pool else map(_propose, tasks)):
                    boxes.append(b)
                    bar.update()
                job.save(c, boxes)
        finally:
            if pool is not None:
                pool.close()
                pool.join()
        bar.close()
    if not finish_shard(job, 'selective search'):
        return None
    boxes = [b for chunk in job.merged() for b in chunk]
    out = dict(
        images=images,
        pseudo_annotations=dict(image_id=images['id'], bbox=boxes))
    dump_json(out, args.out)
    print(f'{len(boxes)} images, {sum(map(len, boxes))} proposals -> '
          f'{args.out}')
    return out


if __name__ == '__main__':
    main()
