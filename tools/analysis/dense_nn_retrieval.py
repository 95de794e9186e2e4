# Copyright (c) cribo-mm contributors. All rights reserved.
"""Dense nearest-neighbour retrieval (in-context segmentation) benchmark.

Builds a memory of training-patch features with per-patch label
distributions, labels every validation patch from its k nearest memory
entries (cosine similarity, ``softmax(sim / T)`` weights), upsamples
bilinearly, takes the argmax and reports mIoU (MMSegmentation's IoU code).

Examples::

    # a cribo-mm checkpoint (teacher backbone) on the embedded demo set
    python tools/analysis/dense_nn_retrieval.py \\
        configs/cribo/vit-t16_demo.py work_dirs/demo/seed0/cribo/epoch_8.pth \\
        --dataset configs/_base_/datasets/demo_seg.py --img-size 256

    # a plain mmpretrain ViT-S/16, random weights, VOC12-aug, 3 seeds at 1/128
    python tools/analysis/dense_nn_retrieval.py vit:deit-small none \\
        --dataset $MMSEG/.mim/configs/_base_/datasets/pascal_voc12_aug.py \\
        --data-root data/VOCdevkit/VOC2012 --fraction 1/128 --seed 0 1 2 \\
        --memory-size 10240000 --device cuda
"""
import argparse
import datetime
import json
import math
import os
import os.path as osp
import platform
import sys
from typing import Dict, List, Optional

import torch

# Running from a checkout without installing: make ``cribo_mm`` importable.
_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Dense nearest-neighbour retrieval evaluation '
        '(in-context semantic segmentation)',
        epilog=__doc__[__doc__.index('Examples::'):],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'config',
        help='config with model.backbone (cribo-mm, mmpretrain or mmseg), '
        'or "vit:<arch>" for a plain mmpretrain VisionTransformer '
        '(e.g. vit:deit-small)')
    parser.add_argument(
        'checkpoint',
        help='checkpoint file (cribo-mm Runner checkpoint, backbone-only or '
        'converted official weights), a work dir (its last_checkpoint), or '
        '"none" for random weights')
    parser.add_argument(
        '--dataset',
        help='MMSegmentation dataset config holding the training and '
        'validation dataset dicts (default: CONFIG itself)')
    parser.add_argument(
        '--train-key',
        default='train_dataloader',
        help='key of the memory-side dataset in the dataset config (a '
        'dataloader dict or a dataset dict; dotted paths allowed)')
    parser.add_argument(
        '--val-key',
        default='val_dataloader',
        help='key of the query-side dataset in the dataset config')
    parser.add_argument(
        '--data-root',
        help='set data_root of every dataset (leaves of ConcatDataset too)')
    parser.add_argument(
        '--data-options',
        nargs='+',
        action=DictAction,
        help='overrides of the dataset config, key=value')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='overrides of the model config, key=value')
    parser.add_argument(
        '--work-dir',
        help='folder for the JSON result (default: '
        'work_dirs/dense_nn/<config>_<dataset>)')
    parser.add_argument(
        '--out', help='JSON result file (default: <work-dir>/<time>.json)')
    parser.add_argument(
        '--fraction',
        nargs='+',
        default=['1'],
        help='training fractions, e.g. 1/128 1/64 1/8 1 (default: 1)')
    parser.add_argument(
        '--seed',
        type=int,
        nargs='+',
        default=[0],
        help='seeds of the training subset, augmentation and memory '
        'sampling; one run per (fraction, seed) (default: 0)')
    parser.add_argument(
        '--memory-size',
        type=int,
        help='memory cap in patches; the same number of patches is sampled '
        'from every image and epoch, rare classes first (default: keep '
        'every labelled patch; the published protocol uses 10240000)')
    parser.add_argument(
        '--aug-epochs',
        type=int,
        default=2,
        help='augmented passes over the training set (default: 2)')
    parser.add_argument(
        '--no-aug',
        action='store_true',
        help='no flip/colour-jitter on memory images')
    parser.add_argument(
        '--pos-embed-interp',
        choices=['auto', 'size', 'reference'],
        default='auto',
        help='position-embedding resize of a ViT at inputs other than its '
        'training size: size (mmpretrain: to the grid size) or reference '
        '(the authors\' scale factor with +0.1; their tokens exactly); auto '
        '= reference for checkpoints converted by official2cribo_mm.py, '
        'size otherwise (default: auto)')
    parser.add_argument(
        '--memory-aug',
        choices=['default', 'hbird'],
        default='default',
        help='memory augmentation recipe: default (resize, flip, strong '
        'colour jitter) or hbird (open-hummingbird-eval: joint random '
        'resized crop 0.5-2 of image and label, four weak colour jitters, '
        'no flip) (default: default)')
    parser.add_argument(
        '--k', type=int, default=30, help='neighbours (default: 30)')
    parser.add_argument(
        '--temperature',
        type=float,
        default=0.02,
        help='softmax temperature (default: 0.02)')
    parser.add_argument(
        '--img-size',
        type=int,
        default=512,
        help='square network input size (default: 512)')
    parser.add_argument(
        '--patch-size',
        type=int,
        help='token stride (default: from the backbone)')
    parser.add_argument(
        '--ignore-mode',
        choices=['exclude', 'class0'],
        default='exclude',
        help='ignored pixels in memory labels: left out, or counted as '
        'class 0 as open-hummingbird-eval does (default: exclude)')
    parser.add_argument(
        '--resize-labels',
        action='store_true',
        help='resize (nearest) label maps whose size differs from their '
        'image instead of stopping with an error')
    parser.add_argument(
        '--chunk-size',
        type=int,
        default=1024,
        help='query patches per search chunk (default: 1024)')
    parser.add_argument(
        '--memory-chunk-size',
        type=int,
        default=32768,
        help='memory rows per block of exact search (default: 32768)')
    parser.add_argument(
        '--backend',
        choices=['exact', 'faiss'],
        default='exact',
        help='search backend (faiss is optional) (default: exact)')
    parser.add_argument(
        '--search-dtype',
        choices=['auto', 'bfloat16', 'float16', 'float32'],
        default='auto',
        help='matmul format of the exact search; bfloat16/float16 prove '
        'the float32 neighbours or fall back to float32, so results are '
        'the same (default: auto = bf16 on a CPU with native bf16 or a '
        'bf16 GPU, fp16 on older GPUs, else float32)')
    parser.add_argument(
        '--batch-size', type=int, default=8, help='images per forward pass')
    parser.add_argument(
        '--num-workers', type=int, default=0, help='data-loader workers')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='device (default: cuda if available)')
    parser.add_argument(
        '--prefix',
        default='auto',
        help='key prefix of the backbone in the checkpoint; auto tries '
        'teacher.module.0. (teacher), backbone. (student), then raw keys')
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='unpickle the checkpoint without restrictions (runs any code a '
        'crafted file holds; only for files you trust)')
    parser.add_argument(
        '--init-seed',
        type=int,
        default=0,
        help='torch seed before building the backbone (random weights)')
    parser.add_argument(
        '--random-init',
        choices=['training', 'backbone'],
        default='training',
        help='random weights (checkpoint "none"): "training" initialises '
        'the backbone as the config\'s pretraining starts (a CrIBo config: '
        'the reference ViT init), "backbone" by the backbone\'s own '
        'init_weights (mmpretrain\'s)')
    parser.add_argument(
        '--max-val-images',
        type=int,
        help='evaluate on the first N validation images only')
    parser.add_argument(
        '--show-dir',
        help='write image | ground truth | prediction pictures here')
    parser.add_argument(
        '--show-num',
        type=int,
        default=4,
        help='validation images drawn into --show-dir (default: 4)')
    parser.add_argument(
        '--no-progress', action='store_true', help='hide progress bars')
    return parser.parse_args(argv)


def _get_key(cfg, key: str):
    node = cfg
    for part in key.split('.'):
        if node is None or part not in node:
            return None
        node = node[part]
    return node


def _dataset_cfg(cfg, key: str) -> dict:
    node = _get_key(cfg, key)
    if node is None:
        raise KeyError(f'{key} not found in the dataset config')
    node = node.to_dict() if hasattr(node, 'to_dict') else dict(node)
    if 'dataset' in node and 'type' not in node:  # a dataloader dict
        node = node['dataset']
    elif key.endswith('dataloader') and 'dataset' in node:
        node = node['dataset']
    return node


def _set_data_root(cfg: dict, root: str) -> dict:
    if 'datasets' in cfg:
        cfg['datasets'] = [_set_data_root(d, root) for d in cfg['datasets']]
    elif isinstance(cfg.get('dataset'), dict):
        cfg['dataset'] = _set_data_root(cfg['dataset'], root)
    else:
        cfg['data_root'] = root
    return cfg


def _clean(value):
    """JSON-safe copy (NaN -> None, tuples -> lists, numbers to float)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if hasattr(value, 'item') and not isinstance(value, (str, bytes)):
        return _clean(value.item())
    return value


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return f'{value:.{digits}f}'


def _table(header: List[str], rows: List[List[str]]) -> str:
    widths = [
        max(len(str(r[i])) for r in [header] + rows)
        for i in range(len(header))
    ]
    line = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'

    def fmt_row(row):
        return '| ' + ' | '.join(
            str(c).rjust(w) if i else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths))) + ' |'

    return '\n'.join([line, fmt_row(header), line] +
                     [fmt_row(r) for r in rows] + [line])


def format_fraction(value: float) -> str:
    """``'1/128'`` for 0.0078125 (see cribo_mm's ``format_fraction``)."""
    from cribo_mm.evaluation.dense_nn import format_fraction as fmt
    return fmt(value)


def summarise(result: Dict) -> Dict:
    """Mean and std of mIoU/mAcc/aAcc and per-class IoU over seeds, per
    fraction."""
    from cribo_mm.evaluation.dense_nn import mean_std
    summary = {}
    for run in result['runs']:
        summary.setdefault(run['fraction'], []).append(run)
    out = {}
    for fraction, runs in summary.items():
        entry = dict(seeds=[r['seed'] for r in runs])
        for key in ('mIoU', 'mAcc', 'aAcc'):
            mean, std = mean_std([r['metrics'][key] for r in runs])
            entry[key] = mean
            entry[key + '_std'] = std
        classes = list(runs[0]['metrics']['IoU'])
        entry['IoU'] = {
            c: mean_std([r['metrics']['IoU'][c] for r in runs])[0]
            for c in classes
        }
        out[format_fraction(fraction)] = entry
    return out


def format_tables(result: Dict) -> str:
    """The on-screen tables: one row per run, then per-class IoU."""
    rows = []
    for run in result['runs']:
        m = run['metrics']
        rows.append([
            format_fraction(run['fraction']),
            str(run['seed']),
            str(run['num_train_images']),
            str(run['memory_entries']),
            _fmt(m['mIoU']),
            _fmt(m['mAcc']),
            _fmt(m['aAcc']),
            _fmt(m['query_patches_per_s'], 0),
        ])
    text = [
        _table([
            'fraction', 'seed', 'train imgs', 'memory', 'mIoU', 'mAcc',
            'aAcc', 'query patches/s'
        ], rows)
    ]
    summary = result['summary']
    if any(len(s['seeds']) > 1 for s in summary.values()):
        text.append(
            _table(['fraction', 'seeds', 'mIoU', 'mAcc', 'aAcc'], [[
                frac,
                str(len(s['seeds'])), f"{_fmt(s['mIoU'])} ± "
                f"{_fmt(s['mIoU_std'])}", f"{_fmt(s['mAcc'])} ± "
                f"{_fmt(s['mAcc_std'])}", f"{_fmt(s['aAcc'])} ± "
                f"{_fmt(s['aAcc_std'])}"
            ] for frac, s in summary.items()]))
    fractions = list(summary)
    classes = list(next(iter(summary.values()))['IoU'])
    text.append(
        _table(['class'] + [f'IoU @ {f}' for f in fractions],
               [[c] + [_fmt(summary[f]['IoU'][c]) for f in fractions]
                for c in classes]))
    return '\n'.join(text)


def _versions() -> Dict[str, str]:
    out = dict(python=platform.python_version(), torch=torch.__version__)
    for name in ('mmengine', 'mmcv', 'mmpretrain', 'mmseg', 'cribo_mm'):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001
            out[name] = None
    return out


def main(argv: Optional[List[str]] = None) -> Dict:
    """Run the benchmark; returns the JSON-ready result."""
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.utils import mkdir_or_exist

    from cribo_mm.evaluation.dense_nn import (DenseNNSettings,
                                              build_backbone,
                                              build_seg_dataset,
                                              dataset_meta,
                                              load_backbone_weights,
                                              parse_fraction,
                                              run_dense_nn_retrieval,
                                              side_by_side, training_init)
    from cribo_mm.models.backbones import default_pos_embed_interp
    from cribo_mm.utils.checkpoint_io import load_checkpoint_file

    fractions = [parse_fraction(f) for f in args.fraction]
    settings = DenseNNSettings(
        img_size=args.img_size,
        patch_size=args.patch_size,
        k=args.k,
        temperature=args.temperature,
        memory_size=args.memory_size,
        aug_epochs=args.aug_epochs,
        augment=not args.no_aug,
        memory_aug=args.memory_aug,
        ignore_mode=args.ignore_mode,
        chunk_size=args.chunk_size,
        memory_chunk_size=args.memory_chunk_size,
        backend=args.backend,
        search_dtype=args.search_dtype,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=args.device,
        resize_labels=args.resize_labels)

    # backbone
    checkpoint = args.checkpoint
    if osp.isdir(checkpoint):  # a work dir: its last checkpoint
        with open(osp.join(checkpoint, 'last_checkpoint')) as f:
            checkpoint = f.read().strip()
        print(f'[dense-nn] checkpoint: {checkpoint}')
    random_init = checkpoint.lower() in ('none', 'random', '')
    loaded = None if random_init else load_checkpoint_file(
        checkpoint, unsafe=True if args.unsafe_load else None)
    interp = args.pos_embed_interp
    if interp == 'auto':  # the authors' interpolation for their weights
        interp = 'size' if loaded is None else default_pos_embed_interp(
            loaded)
    torch.manual_seed(args.init_seed)
    backbone = build_backbone(
        args.config, args.cfg_options,
        pos_embed_interp=None if interp == 'size' else interp)
    if random_init:
        init_name = 'backbone init_weights'
        init_fn = training_init(args.config, args.cfg_options) \
            if args.random_init == 'training' else None
        if init_fn is not None:
            torch.manual_seed(args.init_seed)
            init_fn(backbone)
            init_name = f'as training starts ({init_fn.__name__})'
        ckpt_info = dict(prefix=None, loaded=0, random_init=True,
                         init=init_name)
    else:
        ckpt_info = load_backbone_weights(backbone, loaded, args.prefix)
        ckpt_info['file'] = checkpoint
        ckpt_info['missing_keys'] = ckpt_info['missing_keys'][:50]
        ckpt_info['unexpected_keys'] = ckpt_info['unexpected_keys'][:50]
    ckpt_info['pos_embed_interp'] = interp
    print(f'[dense-nn] backbone {type(backbone).__name__}, weights: '
          + (f"random, {ckpt_info['init']}" if ckpt_info.get('random_init')
             else
             f"{ckpt_info['loaded']} tensors under prefix "
             f"{ckpt_info['prefix']!r}")
          + f', position-embedding interpolation: {interp}')

    # datasets
    data_file = args.dataset or args.config
    data_cfg = Config.fromfile(data_file)
    if args.data_options:
        data_cfg.merge_from_dict(args.data_options)
    if data_cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**data_cfg.custom_imports)
    train_cfg = _dataset_cfg(data_cfg, args.train_key)
    val_cfg = _dataset_cfg(data_cfg, args.val_key)
    if args.data_root:
        train_cfg = _set_data_root(train_cfg, args.data_root)
        val_cfg = _set_data_root(val_cfg, args.data_root)
    train_set = build_seg_dataset(train_cfg)
    val_set = build_seg_dataset(val_cfg)
    val_meta = dataset_meta(val_set)
    val_indices = list(range(len(val_set)))
    if args.max_val_images:
        val_indices = val_indices[:args.max_val_images]

    # outputs
    config_name = args.config.split(':', 1)[-1] if args.config.startswith(
        'vit:') else osp.splitext(osp.basename(args.config))[0]
    data_name = osp.splitext(osp.basename(data_file))[0]
    work_dir = args.work_dir or osp.join('work_dirs', 'dense_nn',
                                         f'{config_name}_{data_name}')
    stamp = datetime.datetime.now().strftime('%Y%m%d_%H%M%S')
    out_file = args.out or osp.join(work_dir, f'dense_nn_{stamp}.json')
    mkdir_or_exist(osp.dirname(osp.abspath(out_file)))

    on_prediction = None
    num_runs = len(fractions) * len(args.seed)
    if args.show_dir:
        mkdir_or_exist(args.show_dir)
        from PIL import Image

        def on_prediction(run, item):
            num_classes = len(val_meta['classes'])
            picture = side_by_side(item['image'], item['gt'], item['pred'],
                                   val_meta['palette'], num_classes)
            stem = osp.splitext(osp.basename(item['img_path'] or str(
                item['index'])))[0]
            folder = args.show_dir
            if num_runs > 1:
                folder = osp.join(
                    folder, 'frac{}_seed{}'.format(
                        format_fraction(run['fraction']).replace('/', '-'),
                        run['seed']))
                mkdir_or_exist(folder)
            Image.fromarray(picture).save(osp.join(folder, f'{stem}.png'))

    result = run_dense_nn_retrieval(
        backbone,
        train_set,
        val_set,
        settings,
        fractions=fractions,
        seeds=args.seed,
        val_indices=val_indices,
        show_num=args.show_num if args.show_dir else 0,
        on_prediction=on_prediction,
        progress=not args.no_progress)
    result['summary'] = summarise(result)
    result.update(
        config=args.config,
        checkpoint=args.checkpoint,
        checkpoint_info=ckpt_info,
        dataset_config=data_file,
        train_dataset_cfg=train_cfg,
        val_dataset_cfg=val_cfg,
        backbone=type(backbone).__name__,
        num_params=sum(p.numel() for p in backbone.parameters()),
        args=vars(args),
        versions=_versions(),
        command=' '.join([osp.basename(sys.argv[0])] +
                         (argv if argv is not None else sys.argv[1:])),
        timestamp=stamp)
    result = _clean(result)
    print(format_tables(result))
    with open(out_file, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'[dense-nn] results written to {out_file}')
    if args.show_dir:
        print(f'[dense-nn] pictures written to {args.show_dir}')
    return result


if __name__ == '__main__':
    os.environ.setdefault('PYTHONUNBUFFERED', '1')
    main()
