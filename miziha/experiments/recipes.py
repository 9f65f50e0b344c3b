"""Named training protocols for the comparison (``--recipe``); every flag given explicitly
overrides the recipe's value.

* ``reference``: the seed experiment's protocol, unchanged: Momentum (lr 0.01, momentum
  0.9), L2 decay 1e-4, constant learning rate, no warm-up, no label smoothing, no
  stochastic depth, no augmentation (the defaults of
  :class:`~miziha.experiments.trainer.TrainConfig`, with its 40 epochs at batch 80).
* ``modern``: the recipe vision transformers are trained with from scratch, after the Swin
  paper's ImageNet-1K setting (Liu et al., 2021, appendix A1.1: AdamW, peak lr 1e-3,
  weight decay 0.05, cosine decay after a linear warm-up of 20 of 300 epochs, label
  smoothing 0.1, stochastic depth 0.2 for Swin-T) and DeiT's (Touvron et al., 2021):
  AdamW lr 1e-3 (Swin's peak, not scaled down to small batches, as CIFAR-from-scratch
  transformer recipes keep it), weight decay 0.05, cosine decay, warm-up over 1/15 of the
  epochs (Swin's 20/300; ``warmup_share``), label smoothing 0.1, stochastic depth 0.1
  (Swin-T's 0.2 is for
  300 ImageNet epochs; a smaller rate suits short runs), random crop (zero padding 4) and
  horizontal flip. Swin's RandAugment, Mixup, CutMix and random erasing are not included.
"""

from __future__ import annotations

from typing import Dict

__all__ = ["RECIPES", "SEGMENTATION_RECIPES"]

#: Recipe name -> TrainConfig fields (epochs and batch size stay the example's), and
#: ``warmup_share``: the warm-up as a share of the epochs, unless ``--warmup-epochs`` is given.
RECIPES: Dict[str, dict] = {
    "reference": dict(optimizer="momentum", lr=0.01, momentum=0.9, weight_decay=1e-4,
                      schedule="constant", warmup_share=0.0, label_smoothing=0.0,
                      droppath=0.0, augment=False),
    "modern": dict(optimizer="adamw", lr=1e-3, momentum=0.9, weight_decay=0.05,
                   schedule="cosine", warmup_share=1 / 15, label_smoothing=0.1,
                   droppath=0.1, augment=True),
}


#: Segmentation protocols (``examples/swin_unet_segmentation.py --recipe``):
#: ``reference``, the example's SGD protocol; ``transformer``, after Swin-Unet (Cao et al.,
#: 2021: 0.4 CE + 0.6 Dice) and the segmentation codes' poly decay (power 0.9): AdamW,
#: warm-up over a tenth of the epochs. No augmentation: in 16 epochs on 160 generated
#: shapes, flip and random resized crop (``--augment``) lowered both UNet's and SwinUNet's
#: mIoU (docs/comparison.md).
SEGMENTATION_RECIPES: Dict[str, dict] = {
    "reference": dict(optimizer="momentum", lr=0.05, momentum=0.9, weight_decay=1e-4,
                      schedule="constant", warmup_share=0.0, label_smoothing=0.0,
                      droppath=0.0, augment=False, loss="ce"),
    "transformer": dict(optimizer="adamw", lr=2e-3, momentum=0.9, weight_decay=0.01,
                        schedule="poly", warmup_share=0.1, label_smoothing=0.0,
                        droppath=0.0, augment=False, loss="ce+dice"),
}
