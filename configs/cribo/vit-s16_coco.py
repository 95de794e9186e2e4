# Short name of cribo_vit-small-p16_8xb32-amp-coslr-300e_coco.py.
_base_ = ['./cribo_vit-small-p16_8xb32-amp-coslr-300e_coco.py']
