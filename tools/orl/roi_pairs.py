# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL stage 2c: RoI pairs between every image and its kNN images.

Per image: filter its proposals (min side 96, max aspect 3, greedy IoU
<= 0.5, at most 100), embed every kept box crop (224 px, bilinear) with the
stage-1 ONLINE backbone (res5, global average pool, L2-normalised); per
neighbour keep the top ``max(1, floor(0.1 n))`` box pairs by cosine
similarity. Writes the correspondence file that :class:`ORLPairDataset`
reads.

Two sharded, resumable phases (``--launcher`` for torchrun / Slurm, or
``--shard i/n``), their chunks kept under ``--work-dir``:

1. every image's boxes are filtered and embedded ONCE and stored (the
   authors' code embeds an image again each time it is a neighbour: up to
   11x the forwards for the same output);
2. the pairs of every image are selected from the stored embeddings
   (memory-mapped, so COCO's ~90 GB of RoI embeddings stay on disk);

rank 0 (or the run that finds every chunk done) merges.

Example::

    python -m torch.distributed.run --nproc_per_node 8 tools/orl/roi_pairs.py \\
        configs/orl/byol_resnet50_8xb64-coslr-800e_coco.py \\
        work_dirs/orl_stage1/epoch_800.pth \\
        --knn data/coco/orl/train2017_knn10.json \\
        --proposals data/coco/orl/train2017_selective_search.json \\
        --img-root data/coco/train2017 \\
        --out data/coco/orl/train2017_knn10_correspondence.json \\
        --launcher pytorch --device cuda
"""
import argparse
import os.path as osp
from typing import List, Optional

from _common import (ShardProgress, add_shard_args, dump_json, file_signature,
                     all_done, finish_shard, init_shards, load_config, names_digest,
                     resolve_device, setup)


class StoredRoIs:
    """Boxes and RoI embeddings of every image, read from phase-1 chunks.

    Args:
        job (ShardedJob): The finished phase-1 job.
    """

    def __init__(self, job) -> None:
        self.job = job
        self._chunks = {}

    def _get(self, row: int):
        c = row // self.job.chunk_size
        if c not in self._chunks:
            self._chunks[c] = self.job.load(
                c, ['boxes', 'embeddings', 'offsets'], mmap=True)
        part = self._chunks[c]
        local = row - c * self.job.chunk_size
        return part, slice(int(part['offsets'][local]),
                           int(part['offsets'][local + 1]))

    def boxes(self, row: int) -> list:
        """Kept boxes of image ``row``, ``[[x, y, w, h], ...]``."""
        part, sl = self._get(row)
        return part['boxes'][sl].tolist()

    def embeddings(self, row: int):
        """RoI embeddings of image ``row``, shape (num_boxes, D)."""
        part, sl = self._get(row)
        return part['embeddings'][sl]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='ORL stage 2c: RoI pairs')
    p.add_argument('config', help='stage-1 config')
    p.add_argument('checkpoint', help="stage-1 checkpoint, or 'none'")
    p.add_argument('--knn', required=True, help='kNN JSON (stage 2a)')
    p.add_argument(
        '--proposals',
        required=True,
        help='proposals JSON (stage 2b), same images part')
    p.add_argument('--img-root', default='', help='image folder')
    p.add_argument('--out', required=True, help='correspondence JSON')
    p.add_argument('--roi-size', type=int, default=224)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--min-size', type=float, default=96)
    p.add_argument('--max-aspect-ratio', type=float, default=3)
    p.add_argument('--max-iou', type=float, default=0.5)
    p.add_argument('--max-num', type=int, default=100)
    p.add_argument('--pair-ratio', type=float, default=0.1)
    p.add_argument('--device', default='cpu')
    p.add_argument(
        '--unsafe-load',
        action='store_true',
        help='unpickle the checkpoint without restrictions (only for a '
        'file you trust)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    add_shard_args(p)
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Optional[dict]:
    """Run the tool.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv``).

    Returns:
        dict | None: The written correspondence file's content (None on the
        ranks / shards that do not merge).
    """
    args = parse_args(argv)
    setup()
    shard = init_shards(args)
    import numpy as np

    from cribo_mm.datasets.orl import (ORLAnnotationError, load_orl_json,
                                       resolve_image_paths)
    from cribo_mm.orl_mining import (RoIEmbedder, assemble_correspondence,
                                     build_stage1_network,
                                     filter_all_proposals, image_pairs)
    from cribo_mm.utils.sharded_job import ShardedJob
    knn = load_orl_json(args.knn, 'knn')
    props = load_orl_json(args.proposals, 'proposals')
    if props['images'] != knn['images']:
        raise ORLAnnotationError(args.proposals, 'images',
                                 f'differs from the images of {args.knn!r}')
    images = knn['images']
    paths = resolve_image_paths(images['file_name'], args.img_root, args.knn)
    rows = knn['pseudo_annotations']['knn_image_id']
    info = dict(
        bbox_min_size=args.min_size,
        bbox_max_aspect_ratio=args.max_aspect_ratio,
        bbox_max_iou=args.max_iou,
        intra_bbox_num=args.max_num,
        knn_image_num=max(len(r) for r in rows),
        knn_bbox_pair_ratio=args.pair_ratio)
    ckpt = None if args.checkpoint == 'none' else args.checkpoint
    settings = dict(
        images=names_digest(paths),
        proposals=file_signature(args.proposals),
        checkpoint=file_signature(ckpt),
        roi_size=args.roi_size,
        info=info)
    # Phase 1: filtered boxes and their embeddings, once per image.
    rois = ShardedJob(
        osp.join(args.work_dir, 'roi_embeddings'),
        len(paths),
        args.chunk_size,
        settings,
        shard=shard)
    pending = rois.pending()
    num_forwards = 0
    if pending:
        model = build_stage1_network(cfg=load_config(args.config,
                                                     args.cfg_options),
                                     checkpoint=ckpt,
                                     device=resolve_device(args.device),
                                     unsafe_load=args.unsafe_load)
        embedder = RoIEmbedder(model, paths, args.roi_size, args.batch_size)
        bar = ShardProgress.for_chunks(rois, pending)
        for c in pending:
            rng = rois.chunk_range(c)
            kept = filter_all_proposals(
                props['pseudo_annotations']['bbox'][rng.start:rng.stop], info)
            embs = []
            for row, boxes in zip(rng, kept):
                embs.append(embedder(row, boxes))
                bar.update()
            rois.save(
                c,
                dict(
                    boxes=np.asarray([b for bs in kept for b in bs],
                                     np.float64).reshape(-1, 4),
                    embeddings=np.concatenate(embs).astype(np.float32),
                    offsets=np.cumsum([0] + [len(bs) for bs in kept])))
        bar.close()
        num_forwards = embedder.num_forwards
    if not all_done(rois, 'RoI embeddings'):
        return None
    # Phase 2: pairs per image from the stored embeddings.
    stored = StoredRoIs(rois)
    kept = [stored.boxes(i) for i in range(len(paths))]
    pairs_job = ShardedJob(
        osp.join(args.work_dir, 'roi_pairs'),
        len(paths),
        args.chunk_size,
        settings,
        shard=shard)
    pending = pairs_job.pending()
    bar = ShardProgress.for_chunks(pairs_job, pending)
    for c in pending:
        part = []
        for i in pairs_job.chunk_range(c):
            part.append(
                image_pairs(i, rows[i], kept, stored.embeddings,
                            info['knn_bbox_pair_ratio']))
            bar.update()
        pairs_job.save(c, part)
    bar.close()
    if not finish_shard(pairs_job, 'RoI pairs'):
        return None
    pairs = [p for chunk in pairs_job.merged() for p in chunk]
    out = assemble_correspondence(images, kept, rows, pairs, info)
    dump_json(out, args.out)
    num_pairs = sum(len(p) for per in pairs for p in per)
    print(f'{len(paths)} images, {num_pairs} RoI pairs, {num_forwards} RoI '
          f'forwards in this run -> {args.out}')
    return out


if __name__ == '__main__':
    main()
