"""Training losses: Dice + cross-entropy on softmax classes, or Dice + BCE on sigmoid BraTS regions."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from napari_lightseg.inference import ET, NCR  # the class codes the regions are built from


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    ce = F.cross_entropy(logits, target)
    probs = logits.softmax(1)[:, 1:]
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].float()
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    dice = (2 * inter + 1.0) / (denom + 1.0)
    return ce + (1 - dice).mean()


def region_targets(target: torch.Tensor) -> torch.Tensor:
    """(N, H, W) class codes -> (N, 3, H, W) float WT / TC / ET masks (nested, overlapping)."""
    wt = target > 0
    tc = (target == NCR) | (target == ET)
    et = target == ET
    return torch.stack([wt, tc, et], 1).float()


def region_dice_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sigmoid per region (WT, TC, ET): BCE + batch soft Dice, the nnU-Net BraTS recipe's loss."""
    regions = region_targets(target)
    bce = F.binary_cross_entropy_with_logits(logits, regions)
    probs = logits.sigmoid()
    inter = (probs * regions).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + regions.sum((0, 2, 3))
    dice = (2 * inter + 1.0) / (denom + 1.0)
    return bce + (1 - dice).mean()


LOSSES = {"classes": dice_ce_loss, "regions": region_dice_bce_loss}
