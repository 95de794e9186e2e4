# Copyright (c) cribo-mm contributors. All rights reserved.
"""Extract the ResNet backbone of an ORL / BYOL checkpoint for MMSegmentation.

The output is a tensors-only file ``{'state_dict': {'backbone.<key>': ...},
'meta': {...}}`` with ResNet key names, loaded by the ``r50_*`` configs in
``configs/benchmarks/mmsegmentation/`` (and any mmpretrain / mmseg ResNet
config) through ``init_cfg=dict(type='Pretrained', checkpoint=DST,
prefix='backbone.')``, and usable as is by
``tools/analysis/dense_nn_retrieval.py``.

Accepted inputs: a cribo_mm Runner checkpoint of ORL (stage 3) or BYOL
(stage 1), a checkpoint of the authors' ORL code (OpenSelfSup,
``backbone.*`` keys) or a file written by this tool. The ONLINE backbone
is taken by default, as in the authors' evaluations; ``--network target``
takes the EMA target. Loading is as in ``cribo2mmseg.py`` (the project's
allow-list; ``--unsafe-load`` only for a file you trust).

Examples::

    python tools/model_converters/orl2mmseg.py \\
        work_dirs/orl_resnet50_8xb64-coslr-800e_coco/epoch_800.pth \\
        checkpoints/orl_r50_backbone.pth
    # any ResNet depth / width: also write an MMSegmentation config that
    # inherits r50_linear_1xb8-10k_camvid-352x352.py with this backbone
    python tools/model_converters/orl2mmseg.py SRC DST \\
        --config-out --head linear --dataset camvid
"""
import argparse
import sys

from cribo_mm.models.utils.checkpoint_formats import source_meta
from cribo_mm.utils.checkpoint_io import (CheckpointError,
                                          load_checkpoint_file,
                                          save_checkpoint)
from cribo_mm.utils.mmseg_config_writer import (add_config_arguments,
                                                write_config_from_args)
from cribo_mm.utils.resnet_weights import (extract_resnet_backbone,
                                           make_resnet_backbone_checkpoint)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='ORL / BYOL checkpoint -> ResNet backbone weights for '
        'MMSegmentation (prefix "backbone.")')
    parser.add_argument('src', help='ORL or BYOL checkpoint')
    parser.add_argument('dst', help='output backbone file (.pth)')
    parser.add_argument(
        '--network',
        choices=['online', 'target'],
        default='online',
        help='which network (default: online, as ORL evaluates)')
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='unpickle SRC without restrictions (runs any code a crafted '
        'file holds; only for files you trust)')
    add_config_arguments(parser, vit=False)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    checkpoint = load_checkpoint_file(args.src, unsafe=args.unsafe_load)
    backbone = extract_resnet_backbone(checkpoint, args.network)
    meta = source_meta(checkpoint, args.src, network=args.network)
    out = make_resnet_backbone_checkpoint(backbone, meta)
    save_checkpoint(out, args.dst)
    m = out['meta']
    print(f'saved the {args.network} backbone ({len(backbone)} tensors, '
          f'{m["arch"]}, {m["out_channels"]} output channels) to {args.dst}')
    config = write_config_from_args(args, 'resnet', m, 'orl2mmseg.py')
    if config:
        print(f'wrote the MMSegmentation config {config}')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        sys.exit(f'error: {error}')
