# Short name of cribo_vit-base-p16_8xb64-coslr-400e_in1k.py.
_base_ = ['./cribo_vit-base-p16_8xb64-coslr-400e_in1k.py']
