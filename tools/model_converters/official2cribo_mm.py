# Copyright (c) cribo-mm contributors. All rights reserved.
"""Convert a checkpoint of the authors' CrIBo code (e.g. the released
``vits16-coco.pth``) to cribo_mm.

Default output: a tensors-only cribo_mm checkpoint ``{'meta', 'state_dict'}``
with the student (``backbone.*``, ``neck.*``), the EMA teacher
(``teacher.module.0.*``, ``teacher.module.1.*``, ``teacher.steps``), the loss
centres (``head.center*``) and the memory bank (``memory_bank.*``). It loads
strictly into a ``CrIBo`` model built as in ``meta['cribo_mm_model']``
(architecture read from the tensor shapes, not from ``args.arch``), e.g.
with ``load_from`` to continue training or with the dense evaluation tools.

``--backbone-only`` writes the backbone file for MMSegmentation instead
(same format as ``cribo2mmseg.py``; teacher unless ``--student``).

The input is loaded under the project's policy
(``cribo_mm.utils.checkpoint_io``): ``torch.load(weights_only=True)`` with an
exact allow-list (it covers the ``argparse.Namespace`` of ``args``); other
Python objects are refused by name, and a truncated or malformed file is
reported as corrupt. ``--unsafe-load`` unpickles without restrictions, for a
file you trust.

Examples::

    python tools/model_converters/official2cribo_mm.py \\
        vits16-coco.pth checkpoints/cribo_vit-s16_coco_cribo-mm.pth \\
        --iters-per-epoch 462
    python tools/model_converters/official2cribo_mm.py \\
        vits16-coco.pth checkpoints/cribo_vit-s16_coco_backbone.pth \\
        --backbone-only
"""
import argparse
import os.path as osp
import sys

from cribo_mm.models.utils.checkpoint_formats import (extract_backbone,
                                                      make_backbone_checkpoint,
                                                      official_to_cribo_mm)
from cribo_mm.utils.checkpoint_io import (CheckpointError,
                                          load_checkpoint_file,
                                          save_checkpoint)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='official CrIBo checkpoint -> cribo_mm checkpoint or '
        'MMSegmentation backbone file')
    parser.add_argument('src', help='checkpoint written by main_cribo.py')
    parser.add_argument('dst', help='output file (.pth)')
    parser.add_argument(
        '--backbone-only',
        action='store_true',
        help='write only the backbone (mmpretrain ViT keys, prefix '
        '"backbone.") for MMSegmentation')
    parser.add_argument(
        '--student',
        action='store_true',
        help='with --backbone-only: take the student, not the teacher')
    parser.add_argument(
        '--iters-per-epoch',
        type=int,
        help='iterations per epoch of the original run; teacher.steps = '
        'epoch * this, which continues the teacher momentum schedule')
    parser.add_argument(
        '--teacher-steps',
        type=int,
        help='set teacher.steps (EMA update counter, > 0) explicitly')
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='unpickle SRC without restrictions (runs any code a crafted '
        'file holds; only for files you trust)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    checkpoint = load_checkpoint_file(args.src, unsafe=args.unsafe_load)
    if args.backbone_only:
        which = 'student' if args.student else 'teacher'
        backbone = extract_backbone(checkpoint, which=which)
        out = make_backbone_checkpoint(
            backbone,
            dict(
                source=osp.basename(args.src),
                network=which,
                epoch=int(checkpoint.get('epoch', 0)),
                converted_from='official CrIBo checkpoint'))
        save_checkpoint(out, args.dst)
        print(f'saved the {which} backbone ({len(backbone)} tensors, arch '
              f'{out["meta"]["arch"]}) to {args.dst}')
        return 0
    if args.student:
        print('--student only applies with --backbone-only', file=sys.stderr)
        return 2
    out = official_to_cribo_mm(
        checkpoint,
        teacher_steps=args.teacher_steps,
        iters_per_epoch=args.iters_per_epoch)
    save_checkpoint(out, args.dst)
    model = out['meta']['cribo_mm_model']
    print(f'saved {len(out["state_dict"])} tensors (epoch '
          f'{out["meta"]["epoch"]}, teacher.steps {out["meta"]["iter"]}) to '
          f'{args.dst}\nbuild the model with: {model}')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (CheckpointError, FileNotFoundError) as error:
        sys.exit(f'error: {error}')
