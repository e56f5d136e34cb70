"""Classification models for the image-level track, built by name from ``MODELS``.

Every model takes float images (B, C, H, W) in [0, 1], normalises them with its registered
buffers ``mean`` / ``std``, and is split into ``features`` (up to the pooled feature vector)
and ``classifier`` (an ``nn.Linear`` giving logits).  ``forward`` looks ``self.classifier`` up
on every call, so a method may swap in another head (LDAM's cosine classifier) with the same
in/out features; ``embed`` returns the pooled features (the FID/KID feature extractor).
No pretrained weights are ever loaded.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ...benchmarks.contract.errors import UsageError
from ...benchmarks.contract.registry import Registry

# builder(in_channels, num_classes, image_size (H, W)) -> (features, classifier)
Builder = Callable[[int, int, tuple[int, int]], tuple[nn.Module, nn.Linear]]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its builder, a one-line summary, where it comes from, and the
    largest image side it is meant for (None: any)."""

    name: str
    builder: Builder
    summary: str
    reference: str
    max_image_size: int | None = None


MODELS: Registry[ModelSpec] = Registry("model")


def register_model(name: str, summary: str, reference: str, max_image_size: int | None = None):
    """Decorator: register ``builder`` under ``name`` in ``MODELS``."""
    def add(builder: Builder) -> Builder:
        MODELS.register(name, ModelSpec(name, builder, summary, reference, max_image_size))
        return builder
    return add


class ImageClassifier(nn.Module):
    """``forward(x) = classifier(features(normalise(x)))`` for images in [0, 1]."""

    def __init__(self, features: nn.Module, classifier: nn.Linear,
                 mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))
        self.features = features
        self.classifier = classifier

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled feature vector (B, feat_dim) of images in [0, 1]."""
        return self.features(self.normalise(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def _hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    h, w = (int(s) for s in image_size)
    return h, w


def build_model(name: str, *, in_channels: int, num_classes: int,
                image_size: int | Sequence[int], mean: Sequence[float],
                std: Sequence[float]) -> ImageClassifier:
    """Build the registered model ``name`` (randomly initialised; seed torch beforehand)."""
    spec = MODELS.get(name)
    h, w = _hw(image_size)
    if spec.max_image_size is not None and max(h, w) > spec.max_image_size:
        raise UsageError(
            f"model {name!r} is for images up to {spec.max_image_size} px, not {h}x{w}; "
            "use resnet18 (or resnet32) for larger images")
    if in_channels < 1 or num_classes < 2:
        raise UsageError(f"model {name!r} needs in_channels >= 1 and num_classes >= 2, "
                         f"got {in_channels} and {num_classes}")
    if len(mean) != in_channels or len(std) != in_channels:
        raise UsageError(f"mean and std need one value per channel ({in_channels}), "
                         f"got {len(mean)} and {len(std)}")
    if any(s <= 0 for s in std):
        raise UsageError(f"std must be positive, got {list(std)}")
    features, classifier = spec.builder(in_channels, num_classes, (h, w))
    return ImageClassifier(features, classifier, mean, std)


# ---------------------------------------------------------------- small-cnn

def _conv_block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@register_model("small-cnn", "3 conv blocks (32-64-128, 3x3, BN, ReLU; max-pool after block 2, and block 1 from 16 px), GAP, linear; ~95k params, "
                "for <= 32 px images on CPU", "imbench (a fast CPU baseline)", max_image_size=64)
def small_cnn(in_channels: int, num_classes: int, image_size: tuple[int, int]):
    # A 2x max-pool after block 2 always, and after block 1 too from 16 px on (8 px: 8 -> 8 -> 4;
    # 28 px: 28 -> 14 -> 7): the widest block runs at 1/4 or 1/16 of the input resolution,
    # which keeps a quick-profile cell at a few seconds on a 2-core CPU.
    early = [nn.MaxPool2d(2)] if min(image_size) >= 16 else []
    features = nn.Sequential(*_conv_block(in_channels, 32), *early, *_conv_block(32, 64), nn.MaxPool2d(2),
                             *_conv_block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return features, nn.Linear(128, num_classes)


# ---------------------------------------------------------------- resnet32 (LDAM-DRW)

class _PadShortcut(nn.Module):
    """Option-A shortcut: subsample by 2 and zero-pad the channels (planes // 4 each side)."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0.0)


class BasicBlock(nn.Module):
    """kaidic/LDAM-DRW ``models/resnet_cifar.py`` BasicBlock with option-A shortcuts."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = _PadShortcut(planes // 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def _ldam_init(m: nn.Module) -> None:
    # LDAM-DRW ``_weights_init``: kaiming-normal weights of every Linear and Conv2d
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        nn.init.kaiming_normal_(m.weight)


@register_model("resnet32", "CIFAR ResNet-32 (3x5 BasicBlocks, 16/32/64 ch, option-A shortcuts); "
                "~0.46M params", "Cao et al. 2019, kaidic/LDAM-DRW models/resnet_cifar.py")
def resnet32(in_channels: int, num_classes: int, image_size: tuple[int, int]):
    layers: list[nn.Module] = [nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False),
                               nn.BatchNorm2d(16), nn.ReLU(inplace=True)]
    in_planes = 16
    for planes, stride in ((16, 1), (32, 2), (64, 2)):
        for s in [stride] + [1] * 4:
            layers.append(BasicBlock(in_planes, planes, s))
            in_planes = planes
    features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    classifier = nn.Linear(64, num_classes)
    features.apply(_ldam_init)
    classifier.apply(_ldam_init)
    return features, classifier


# ---------------------------------------------------------------- resnet18 (torchvision)

@register_model("resnet18", "torchvision ResNet-18, random init, stem for small images "
                "(3x3 stride-1 conv1, no max-pool); ~11.2M params",
                "He et al. 2016; torchvision.models.resnet18(weights=None), as in DeepSMOTE/BAGAN")
def resnet18(in_channels: int, num_classes: int, image_size: tuple[int, int]):
    net = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision
    features = nn.Sequential(net.conv1, net.bn1, net.relu, nn.Identity(), net.layer1, net.layer2,
                             net.layer3, net.layer4, net.avgpool, nn.Flatten())
    return features, net.fc
