# Short name of cribo_vit-small-p16_8xb128-amp-coslr-800e_in1k.py.
_base_ = ['./cribo_vit-small-p16_8xb128-amp-coslr-800e_in1k.py']
