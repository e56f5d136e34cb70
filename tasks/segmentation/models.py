"""Segmentation models, built without downloads.

``unet`` (the default): a small U-Net (Ronneberger et al. 2015) for a CPU: a stride-2 stem, two
levels of widths 32 / 64 (two 3x3 conv + BatchNorm + ReLU each, a 2x max-pool between), transposed-
conv up-sampling with skip concatenation, a 1x1 classifier at half resolution, logits up-sampled
bilinearly (~0.11 M parameters for 1 channel and 11 classes). Chosen by measurement on 32 px digit scenes (erm, rare-pixels, 200
Adam steps, one core): mIoU 0.18-0.20 in 5 s, where the full-resolution 16-128 U-Net reached 0.16
in 17 s (300 steps) and 16-64 with the stem 0.12 in 5 s (300 steps) -- width pays, resolution not.
``lraspp-mobilenet``, ``deeplabv3-mobilenet`` (MobileNetV3-Large backbones) and ``fcn-resnet50`` are
torchvision's (``weights=None, weights_backbone=None``, no auxiliary head).

Every model is wrapped in :class:`Segmenter`: it normalises [0, 1] images with the training set's
per-channel mean / std, repeats a grey channel three times for the torchvision models (built for
RGB), pads each batch to a multiple of the model's stride (replicate padding) and crops the logits
back, so ``segmenter(x)`` maps (B, C, H, W) in [0, 1] to logits (B, K, H, W) for any H, W.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import segmentation as tvseg

from ...benchmarks.contract.registry import Registry


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """A small U-Net: a stride-2 stem (3x3 conv, BatchNorm, ReLU), then encoder levels ``widths`` with a
    2x max-pool between them and a mirrored decoder (transposed-conv up-sampling, skip
    concatenation), a 1x1 classifier at half resolution and bilinear up-sampling of the logits to
    the input size. ``stem=False`` keeps full resolution throughout (Ronneberger et al.'s form)."""

    def __init__(self, in_channels: int, num_classes: int, widths=(32, 64), stem: bool = True):
        super().__init__()
        self.stem = (nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 2, 1, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)) if stem else nn.Identity())
        self.down = nn.ModuleList()
        cin = widths[0] if stem else in_channels
        for w in widths:
            self.down.append(_block(cin, w))
            cin = w
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                for i in reversed(range(len(widths) - 1)))
        self.merge = nn.ModuleList(_block(2 * widths[i], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], num_classes, 1)
        self.scale = 2 if stem else 1
        self.stride = self.scale * 2 ** (len(widths) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = self.stem(x)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1])):
            x = merge(torch.cat([up(x), skip], 1))
        x = self.head(x)
        return x if self.scale == 1 else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class TorchvisionHead(nn.Module):
    """A torchvision segmentation model returning its ``"out"`` logits (input size)."""

    def __init__(self, net: nn.Module, stride: int):
        super().__init__()
        self.net, self.stride = net, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["out"]


class Segmenter(nn.Module):
    """Normalise, adapt channels, pad to the stride, run ``net``, crop: logits (B, K, H, W)."""

    def __init__(self, name: str, net: nn.Module, in_channels: int, rgb_only: bool, mean, std):
        super().__init__()
        self.name, self.net, self.in_channels, self.rgb_only = name, net, in_channels, rgb_only
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        x = (x - self.mean) / self.std
        if self.rgb_only and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        s = self.net.stride
        ph, pw = (-H) % s, (-W) % s
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return self.net(x)[..., :H, :W]

    def info(self) -> dict:
        return {"name": self.name, "stride": int(self.net.stride),
                "parameters": sum(p.numel() for p in self.parameters())}


@dataclass(frozen=True)
class SegModelSpec:
    name: str
    build: Callable[[int, int], nn.Module]  # (in_channels, num_classes) -> net with .stride
    summary: str
    reference: str
    rgb_only: bool = False
    tracks: tuple[str, ...] = ("segmentation",)


MODELS: Registry[SegModelSpec] = Registry("model")


def _torchvision(fn, stride: int):
    def build(in_channels: int, num_classes: int) -> nn.Module:
        kw = {"weights": None, "weights_backbone": None, "num_classes": num_classes}
        if fn is not tvseg.lraspp_mobilenet_v3_large:
            kw["aux_loss"] = False
        return TorchvisionHead(fn(**kw), stride)
    return build


MODELS.register("unet", SegModelSpec(
    "unet", lambda cin, k: UNet(cin, k), "a small U-Net (stride-2 stem, widths 32-64; ~0.11 M parameters)",
    "Ronneberger, Fischer & Brox, U-Net, MICCAI 2015"))
MODELS.register("unet-full", SegModelSpec(
    "unet-full", lambda cin, k: UNet(cin, k, stem=False),
    "a U-Net at full resolution (no stem, widths 32-64, Ronneberger et al.'s form; ~0.10 M parameters, ~4x unet's compute)",
    "Ronneberger, Fischer & Brox, U-Net, MICCAI 2015"))
MODELS.register("unet-deep", SegModelSpec(
    "unet-deep", lambda cin, k: UNet(cin, k, widths=(32, 64, 128)),
    "a three-level U-Net (stride-2 stem, widths 32-64-128; ~0.48 M parameters)",
    "Ronneberger, Fischer & Brox, U-Net, MICCAI 2015"))
MODELS.register("lraspp-mobilenet", SegModelSpec(
    "lraspp-mobilenet", _torchvision(tvseg.lraspp_mobilenet_v3_large, 32),
    "torchvision LR-ASPP on MobileNetV3-Large, no pretrained weights",
    "Howard et al., Searching for MobileNetV3, ICCV 2019", rgb_only=True))
MODELS.register("deeplabv3-mobilenet", SegModelSpec(
    "deeplabv3-mobilenet", _torchvision(tvseg.deeplabv3_mobilenet_v3_large, 32),
    "torchvision DeepLabV3 on MobileNetV3-Large, no pretrained weights",
    "Chen et al., Rethinking Atrous Convolution (DeepLabV3), 2017", rgb_only=True))
MODELS.register("fcn-resnet50", SegModelSpec(
    "fcn-resnet50", _torchvision(tvseg.fcn_resnet50, 8),
    "torchvision FCN on ResNet-50, no pretrained weights (GPU-sized)",
    "Long, Shelhamer & Darrell, Fully Convolutional Networks, CVPR 2015", rgb_only=True))


def build_segmenter(name: str, *, num_classes: int, in_channels: int, mean, std) -> Segmenter:
    spec = MODELS.get(name)
    net = spec.build(3 if spec.rgb_only else in_channels, num_classes)
    return Segmenter(name, net, in_channels, spec.rgb_only, mean, std)
