# Copyright (c) cribo-mm contributors. All rights reserved.
from .pos_embed import resize_pos_embed_by_scale
from .reference_init import reference_vit_init
from .vision_transformer import (POS_EMBED_INTERPOLATIONS,
                                 CrIBoVisionTransformer,
                                 default_pos_embed_interp,
                                 with_pos_embed_interp)

__all__ = [
    'CrIBoVisionTransformer', 'POS_EMBED_INTERPOLATIONS',
    'resize_pos_embed_by_scale', 'with_pos_embed_interp',
    'default_pos_embed_interp', 'reference_vit_init'
]
