"""2D segmentation architectures (4 input sequences -> 4 classes), slice-wise.

- ``unet``: the classic U-Net (two 3x3 conv + BN + ReLU per level, max-pool down, nearest
  upsample + conv up, concatenated skips), base 16 channels, 4 downsamplings: the dense baseline.
- ``dsc-unet``: the seed's compressed U-Net: every 3x3 conv is a depthwise-separable conv, each
  level a residual block; normalization ``bn`` (folds into the convs at export) or ``gn`` (as in
  the seed; does not fold).
- ``mnv3-lraspp``: MobileNetV3-Small-style encoder + LR-ASPP head (Howard et al. 2019) with the
  stride-8 skip, for 4-channel input.
- ``mnv3-lraspp-fast``: the same net on 2x2-averaged slices, logits upsampled back in the graph (the fast tier).
Nearest upsampling (not ConvTranspose) everywhere: ONNX Runtime has no INT8 ConvTranspose kernel.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

IN_CHANNELS = 4
NUM_CLASSES = 4


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Pick batch or group normalization, so one architecture can be built for either."""
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        return nn.GroupNorm(min(8, channels // 4) or 1, channels)
    raise ValueError(f"unknown normalization {kind!r} (bn or gn)")


class ConvBNReLU(nn.Sequential):
    """Conv, normalization and ReLU: the basic unit the networks are built from."""
    def __init__(self, cin: int, cout: int, norm: str = "bn", k: int = 3):
        super().__init__(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), norm_layer(norm, cout), nn.ReLU(inplace=True))


class UpConcat(nn.Module):
    """Nearest x2 upsample + conv to halve channels, then concatenate the skip and fuse."""

    def __init__(self, cin: int, cout: int, fuse: nn.Module, norm: str):
        super().__init__()
        self.up = ConvBNReLU(cin, cout, norm, k=1)
        self.fuse = fuse

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.fuse(torch.cat([x, skip], dim=1))


class UNetFamily(nn.Module):
    """Encoder/decoder with skips; ``block(cin, cout)`` builds each level."""

    def __init__(self, block, base: int = 16, depth: int = 4, norm: str = "bn",
                 in_channels: int = IN_CHANNELS, out_channels: int = NUM_CLASSES):
        super().__init__()
        widths = [base * 2**i for i in range(depth + 1)]
        self.stem = block(in_channels, widths[0])
        self.down = nn.ModuleList(block(widths[i], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(
            UpConcat(widths[i + 1], widths[i], block(2 * widths[i], widths[i]), norm) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for up in self.up:
            x = up(x, skips.pop())
        return self.head(x)


class DoubleConv(nn.Sequential):
    """Two conv units in a row: the classic U-Net encoder/decoder block."""
    def __init__(self, cin: int, cout: int, norm: str = "bn"):
        super().__init__(ConvBNReLU(cin, cout, norm), ConvBNReLU(cout, cout, norm))


class DSConv(nn.Sequential):
    """Depthwise 3x3 + pointwise 1x1, normalized, ReLU."""

    def __init__(self, cin: int, cout: int, norm: str):
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
            norm_layer(norm, cout),
            nn.ReLU(inplace=True),
        )


class ResidualDSBlock(nn.Module):
    """Two depthwise-separable convs with a residual (1x1 projection when widths differ)."""

    def __init__(self, cin: int, cout: int, norm: str = "bn"):
        super().__init__()
        self.body = nn.Sequential(DSConv(cin, cout, norm), DSConv(cout, cout, norm))
        self.skip = nn.Identity() if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), norm_layer(norm, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


def unet(base: int = 16, norm: str = "bn", in_channels: int = IN_CHANNELS, out_channels: int = NUM_CLASSES) -> nn.Module:
    """Build the plain U-Net (double-conv blocks) at the given width and normalization."""
    return UNetFamily(lambda i, o: DoubleConv(i, o, norm), base=base, norm=norm,
                      in_channels=in_channels, out_channels=out_channels)


def dsc_unet(base: int = 16, norm: str = "bn", in_channels: int = IN_CHANNELS, out_channels: int = NUM_CLASSES) -> nn.Module:
    """Build the lighter U-Net variant whose blocks use depthwise-separable convolutions."""
    return UNetFamily(lambda i, o: ResidualDSBlock(i, o, norm), base=base, norm=norm,
                      in_channels=in_channels, out_channels=out_channels)


# ---------------------------------------------------------------- MobileNetV3 + LR-ASPP


class SqueezeExcite(nn.Module):
    """Channel attention that reweights feature maps from their global average (MobileNetV3 style)."""
    def __init__(self, channels: int):
        super().__init__()
        hidden = max(8, channels // 4)
        self.fc1, self.fc2 = nn.Conv2d(channels, hidden, 1), nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class InvertedResidual(nn.Module):
    """MobileNetV3 bottleneck: expand, depthwise conv, optional squeeze-excite, project back."""
    def __init__(self, cin: int, k: int, expand: int, cout: int, se: bool, act: str, stride: int):
        super().__init__()
        Act = nn.Hardswish if act == "hs" else nn.ReLU
        layers: list[nn.Module] = []
        if expand != cin:
            layers += [nn.Conv2d(cin, expand, 1, bias=False), nn.BatchNorm2d(expand), Act()]
        layers += [nn.Conv2d(expand, expand, k, stride, k // 2, groups=expand, bias=False), nn.BatchNorm2d(expand), Act()]
        if se:
            layers.append(SqueezeExcite(expand))
        layers += [nn.Conv2d(expand, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


# MobileNetV3-Small (Howard et al. 2019, Table 2), last stage at stride 16 (dilation dropped:
# brain crops are ~200 px, so stride 16 already gives a 12x12 context map)
# (kernel, expansion, out, SE, activation, stride)
MNV3_SMALL = [
    (3, 16, 16, True, "re", 2),   # stride 4
    (3, 72, 24, False, "re", 2),  # stride 8
    (3, 88, 24, False, "re", 1),
    (5, 96, 40, True, "hs", 2),   # stride 16
    (5, 240, 40, True, "hs", 1),
    (5, 240, 40, True, "hs", 1),
    (5, 120, 48, True, "hs", 1),
    (5, 144, 48, True, "hs", 1),
    (5, 288, 96, True, "hs", 1),
    (5, 576, 96, True, "hs", 1),
    (5, 576, 96, True, "hs", 1),
]


class MobileNetV3LRASPP(nn.Module):
    """LR-ASPP: 1x1 conv branch gated by a global-pool sigmoid branch on stride-16 features,
    upsampled to stride 8, classified and added to a classifier on the stride-8 features.
    A final x2 refinement with the stride-2 stem features sharpens thin enhancing rims."""

    def __init__(self, inter: int = 96, in_channels: int = IN_CHANNELS, out_channels: int = NUM_CLASSES):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        blocks, cin = [], 16
        for k, e, o, se, act, s in MNV3_SMALL:
            blocks.append(InvertedResidual(cin, k, e, o, se, act, s))
            cin = o
        self.stage8 = nn.Sequential(*blocks[:3])
        self.stage16 = nn.Sequential(*blocks[3:])
        self.cbr = nn.Sequential(nn.Conv2d(cin, inter, 1, bias=False), nn.BatchNorm2d(inter), nn.ReLU(inplace=True))
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, inter, 1, bias=False), nn.Sigmoid())
        self.low_classifier = nn.Conv2d(24, out_channels, 1)
        self.high_classifier = nn.Conv2d(inter, out_channels, 1)
        self.refine = nn.Sequential(
            nn.Conv2d(16 + out_channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.Conv2d(16, out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits(x, x.shape[-2:])

    def _logits(self, x: torch.Tensor, size: Any) -> torch.Tensor:
        """Logits of ``x`` upsampled to ``size``. Every upsampling takes its size from the feature map it
        meets, so any input that is a multiple of 8 works; on multiples of 16 (the engine's crop) these are the
        x2 / x4 / x2 steps, with the same arithmetic as ``scale_factor`` (the shipped graphs use it)."""
        s2 = self.stem(x)
        s8 = self.stage8(s2)
        s16 = self.stage16(s8)
        high = self.cbr(s16) * self.scale(s16)
        high = F.interpolate(high, size=s8.shape[-2:], mode="bilinear", align_corners=False)
        logits8 = self.low_classifier(s8) + self.high_classifier(high)
        logits2 = F.interpolate(logits8, size=s2.shape[-2:], mode="bilinear", align_corners=False)
        logits2 = logits2 + self.refine(torch.cat([s2, logits2], dim=1))
        return F.interpolate(logits2, size=size, mode="bilinear", align_corners=False)


class MobileNetV3LRASPPHalf(MobileNetV3LRASPP):
    """The same net on 2x2-averaged slices (2 mm in-plane for BraTS' 1 mm grid), its logits upsampled back
    to the input grid inside the graph: a quarter of the pixels and the engine's pre- and post-processing
    unchanged. The half-size slice of a crop (a multiple of 16) is a multiple of 8, which ``_logits`` takes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits(F.avg_pool2d(x, 2), x.shape[-2:])


ARCHITECTURES = {
    "unet": lambda norm, cin, cout: unet(16, norm, cin, cout),
    "dsc-unet": lambda norm, cin, cout: dsc_unet(16, norm, cin, cout),
    "mnv3-lraspp": lambda norm, cin, cout: MobileNetV3LRASPP(in_channels=cin, out_channels=cout),
    "mnv3-lraspp-fast": lambda norm, cin, cout: MobileNetV3LRASPPHalf(in_channels=cin, out_channels=cout),
}


def build(name: str, norm: str = "bn", in_channels: int = IN_CHANNELS, out_channels: int = NUM_CLASSES) -> nn.Module:
    """An architecture by name; ``in_channels`` = sequences x slices of context, ``out_channels`` = classes
    (softmax head) or regions (sigmoid head)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name](norm, in_channels, out_channels)


def count_params(model: nn.Module) -> int:
    """Number of weights in a model, for the model card and size comparisons."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, size: int = 240) -> int:
    """Multiply-accumulates x2 of Conv2d layers for one size x size slice (hooks; other ops ignored)."""
    total = 0

    def hook(module: nn.Conv2d, _inp, out):
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total += 2 * k * out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, first_conv.in_channels, size, size))
    for h in handles:
        h.remove()
    return total


def torch_model_from_onnx(path: str | Path, architecture: str, in_channels: int = IN_CHANNELS,
                          out_channels: int = NUM_CLASSES) -> nn.Module:
    """Rebuild the PyTorch model from an FP32 ONNX file exported by ``src_models.export`` (the torch
    backend's FP32 reference: the ONNX initializers carry the state dict's names)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    weights = {init.name: torch.from_numpy(numpy_helper.to_array(init).copy()) for init in graph.initializer}
    norm = "gn" if any(n.op_type == "GroupNormalization" or n.op_type == "InstanceNormalization" for n in graph.node) else "bn"
    model = build(architecture, norm, in_channels, out_channels)
    state = model.state_dict()
    missing = [k for k in state if k not in weights and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"{path}: ONNX initializers lack {len(missing)} weights of {architecture} (e.g. {missing[0]})")
    model.load_state_dict({k: weights.get(k, v) for k, v in state.items()})
    return model.eval()


if __name__ == "__main__":
    for name in ARCHITECTURES:
        for norm in (("bn", "gn") if name == "dsc-unet" else ("bn",)):
            m = build(name, norm)
            print(f"{name:16s} {norm}  params {count_params(m):>9,d}  GFLOPs/240x240 slice {count_flops(m) / 1e9:6.2f}")
