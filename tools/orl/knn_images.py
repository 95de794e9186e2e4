# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL stage 2a: image kNN with the stage-1 ONLINE projector embedding.

Every image of the config's training set is embedded on Resize(256, short
side) + CenterCrop(224) with the projector output (L2-normalised); its
k = 10 cosine neighbours (itself excluded) are written as row indices into
the data set's order, in the kNN file layout of
:mod:`cribo_mm.datasets.orl.annotations`.

The embedding is sharded over the ranks of a torchrun / Slurm job
(``--launcher``) or over hand-started shards (``--shard i/n``); finished
chunks are kept under ``--work-dir`` so an interrupted run resumes, and
rank 0 merges them and computes the neighbours.

Example::

    python -m torch.distributed.run --nproc_per_node 8 \\
        tools/orl/knn_images.py \\
        configs/orl/byol_resnet50_8xb64-coslr-800e_coco.py \\
        work_dirs/orl_stage1/epoch_800.pth \\
        --out data/coco/orl/train2017_knn10.json \\
        --launcher pytorch --device cuda
"""
import argparse
import os.path as osp
from typing import List, Optional

from _common import (ShardProgress, add_shard_args, dump_json, file_signature,
                     finish_shard, init_shards, load_config, names_digest,
                     resolve_device, setup)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='ORL stage 2a: image kNN')
    p.add_argument(
        'config',
        help='stage-1 config (its train data set is '
        'the image list)')
    p.add_argument(
        'checkpoint',
        help="stage-1 checkpoint, or 'none' for "
        'random weights (tests)')
    p.add_argument('--out', required=True, help='kNN JSON to write')
    p.add_argument('--k', type=int, default=10, help='neighbours per image')
    p.add_argument('--resize', type=int, default=256)
    p.add_argument('--crop', type=int, default=224)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument(
        '--img-root',
        default=None,
        help='folder the written file names are relative to '
        "(default: the data set's image folder)")
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
        dict | None: The written kNN file's content (None on the ranks /
        shards that do not merge).
    """
    args = parse_args(argv)
    setup()
    shard = init_shards(args)
    import numpy as np
    from mmengine.registry import build_from_cfg

    from cribo_mm.datasets.orl import make_images_part
    from cribo_mm.orl_mining import (build_stage1_network, embed_images,
                                     image_list, knn_from_embeddings,
                                     relative_names)
    from cribo_mm.registry import DATASETS
    from cribo_mm.utils.sharded_job import ShardedJob

    cfg = load_config(args.config, args.cfg_options)
    ds_cfg = cfg.train_dataloader.dataset.copy()
    ds_cfg['pipeline'] = []
    dataset = build_from_cfg(ds_cfg, DATASETS)
    paths = image_list(dataset)
    ckpt = None if args.checkpoint == 'none' else args.checkpoint
    job = ShardedJob(
        osp.join(args.work_dir, 'image_embeddings'),
        len(paths),
        args.chunk_size,
        settings=dict(
            images=names_digest(paths),
            checkpoint=file_signature(ckpt),
            resize=args.resize,
            crop=args.crop),
        shard=shard)
    pending = job.pending()
    if pending:
        model = build_stage1_network(cfg, ckpt, resolve_device(args.device),
                                     unsafe_load=args.unsafe_load)
        bar = ShardProgress.for_chunks(job, pending)
        for c in pending:
            rows = job.chunk_range(c)
            emb = embed_images(model, paths[rows.start:rows.stop], args.resize,
                               args.crop, args.batch_size)
            job.save(c, dict(embeddings=emb))
            bar.update(len(rows))
        bar.close()
    if not finish_shard(job, 'image embeddings'):
        return None
    emb = np.concatenate(
        [p['embeddings'] for p in job.merged(['embeddings'])])
    print('nearest neighbours:')
    bar = ShardProgress(len(emb))
    knn = knn_from_embeddings(
        emb, args.k, progress=lambda done: bar.update(done - bar.done))
    bar.close()
    root = args.img_root
    if root is None:
        root = dataset.data_prefix.get('img_path', '')
    ids = [
        dataset.get_data_info(i).get('img_id', i) for i in range(len(dataset))
    ]
    images = make_images_part(relative_names(paths, root), ids)
    out = dict(
        images=images,
        pseudo_annotations=dict(
            image_id=images['id'], knn_image_id=knn.tolist()))
    dump_json(out, args.out)
    where = (f'relative to {osp.abspath(root)}' if root else 'as listed')
    print(f'{len(paths)} images, {args.k} neighbours each -> {args.out} '
          f'(file names {where})')
    return out


if __name__ == '__main__':
    main()
