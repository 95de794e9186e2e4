# Copyright (c) cribo-mm contributors. All rights reserved.
"""Extract the ViT backbone of a CrIBo checkpoint for MMSegmentation.

The output is a tensors-only file ``{'state_dict': {'backbone.<key>': ...},
'meta': {...}}`` with mmpretrain ``VisionTransformer`` key names, loaded by
the configs in ``configs/benchmarks/mmsegmentation/`` through
``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``
(also by any mmpretrain config with the same ``init_cfg``).

Accepted inputs: a cribo_mm Runner checkpoint (``work_dirs/.../epoch_N.pth``),
a checkpoint of the authors' code (see ``official2cribo_mm.py``) or a file
written by this tool. The EMA teacher is taken by default, as in the
authors' evaluations; ``--student`` takes the student.

Loading: the project's policy (``cribo_mm.utils.checkpoint_io``):
``torch.load(weights_only=True)`` with an exact allow-list that covers
mmengine Runner checkpoints (numpy values, ``HistoryBuffer``) and the
authors' files; any other Python object is refused with its name.
``--unsafe-load`` unpickles without restrictions, for a file you trust.

Examples::

    python tools/model_converters/cribo2mmseg.py \\
        work_dirs/vit-s16_coco/epoch_300.pth checkpoints/cribo_vit-s16.pth
    python tools/model_converters/cribo2mmseg.py SRC DST --student
    # any ViT size: also write DST-stem_<base>.py, an MMSegmentation config
    # inheriting vit-s16_upernet_1xb8-10k_camvid-352x352.py with this
    # backbone's architecture (read from the weights; the number of heads
    # from the training config the checkpoint stores, or --num-heads)
    python tools/model_converters/cribo2mmseg.py SRC DST \\
        --config-out --head upernet --dataset camvid
"""
import argparse
import sys

from cribo_mm.models.utils.checkpoint_formats import (extract_backbone,
                                                      make_backbone_checkpoint,
                                                      source_meta,
                                                      validate_vit_state_dict)
from cribo_mm.utils.checkpoint_io import (CheckpointError,
                                          load_checkpoint_file,
                                          save_checkpoint)
from cribo_mm.utils.mmseg_config_writer import (add_config_arguments,
                                                resolve_num_heads,
                                                write_config_from_args)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='CrIBo checkpoint -> backbone weights for '
        'MMSegmentation (mmpretrain ViT keys, prefix "backbone.")')
    parser.add_argument('src', help='cribo_mm or official CrIBo checkpoint')
    parser.add_argument('dst', help='output backbone file (.pth)')
    parser.add_argument(
        '--student',
        action='store_true',
        help='take the student backbone instead of the EMA teacher')
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='unpickle SRC without restrictions (runs any code a crafted '
        'file holds; only for files you trust)')
    add_config_arguments(parser, vit=True)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    which = 'student' if args.student else 'teacher'
    checkpoint = load_checkpoint_file(args.src, unsafe=args.unsafe_load)
    backbone = extract_backbone(checkpoint, which=which)
    meta = source_meta(checkpoint, args.src, network=which)
    out = make_backbone_checkpoint(backbone, meta)
    info = validate_vit_state_dict(backbone)
    info['arch']['num_heads'] = out['meta']['arch']['num_heads'] = \
        resolve_num_heads(info['arch'], checkpoint, args.num_heads,
                          required=args.config_out is not None)
    save_checkpoint(out, args.dst)
    print(f'saved the {which} backbone ({len(backbone)} tensors, arch '
          f'{info["arch"]}, patch {info["patch_size"]}, pretrained at '
          f'{info["img_size"]} px) to {args.dst}')
    config = write_config_from_args(args, 'vit', info, 'cribo2mmseg.py')
    if config:
        print(f'wrote the MMSegmentation config {config}')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        sys.exit(f'error: {error}')
