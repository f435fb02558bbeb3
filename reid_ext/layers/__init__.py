"""Pieces several model families share (heads, pooling, RoI crops, backbones).

Everything here depends only on torch/torchvision and ``reid_ext.checkpoint``: models and
losses import layers, never the other way round.
"""
from reid_ext.layers.backbone import BACKBONES, ResNetTrunk, build_resnet, set_last_stride_one
from reid_ext.layers.heads import BNNeck, CosineSoftmaxHead, inverse_softplus
from reid_ext.layers.pooling import masked_pool, resize_maps
from reid_ext.layers.roi import boxes_to_rois, roi_crop

__all__ = [
    "BACKBONES", "BNNeck", "CosineSoftmaxHead", "ResNetTrunk", "boxes_to_rois", "build_resnet",
    "inverse_softplus", "masked_pool", "resize_maps", "roi_crop", "set_last_stride_one",
]
