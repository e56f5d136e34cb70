"""Tests of tasks/classification/models.py: shapes, normalisation, swappable head, init."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from imbench.benchmarks.contract.errors import UsageError
from imbench.tasks.classification.models import MODELS, ModelSpec, build_model

SHAPES = [(1, 8), (1, 28), (3, 32)]  # (channels, side)


def make(name, c=3, side=32, num_classes=10, mean=None, std=None):
    return build_model(name, in_channels=c, num_classes=num_classes, image_size=side,
                       mean=mean or [0.5] * c, std=std or [0.25] * c)


def test_registry_lists_models_with_specs():
    assert {"small-cnn", "resnet32", "resnet18"} <= set(MODELS.names())
    for name in MODELS:
        spec = MODELS.get(name)
        assert isinstance(spec, ModelSpec) and spec.name == name
        assert spec.summary and spec.reference
    assert MODELS.get("small-cnn").max_image_size == 64


@pytest.mark.parametrize("name", ["small-cnn", "resnet32", "resnet18"])
@pytest.mark.parametrize("c,side", SHAPES)
def test_output_and_embedding_shapes(name, c, side):
    torch.manual_seed(0)
    model = make(name, c, side, num_classes=7).eval()
    x = torch.rand(2, c, side, side)
    with torch.no_grad():
        out, emb = model(x), model.embed(x)
    assert out.shape == (2, 7)
    assert isinstance(model.classifier, nn.Linear)
    assert emb.shape == (2, model.classifier.in_features)
    assert torch.isfinite(out).all()


def test_small_cnn_is_small_and_pools_early_only_from_16px():
    assert sum(p.numel() for p in make("small-cnn", 3, 32).parameters()) <= 100_000
    pools = lambda m: sum(isinstance(l, nn.MaxPool2d) for l in m.features.modules())
    assert pools(make("small-cnn", 1, 8)) == 1
    assert pools(make("small-cnn", 1, 28)) == 2


@pytest.mark.parametrize("name", ["small-cnn", "resnet32", "resnet18"])
def test_normalisation_buffers_are_used(name):
    torch.manual_seed(0)
    model = make(name, 3, 16).eval()
    assert {"mean", "std"} <= {n for n, _ in model.named_buffers()}
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        before = model(x)
        model.mean.fill_(0.1)
        after = model(x)
        assert not torch.allclose(before, after)
        # forward = classifier(features((x - mean) / std))
        manual = model.classifier(model.features((x - model.mean) / model.std))
        assert torch.allclose(model(x), manual)


def test_mean_std_set_the_buffers():
    model = make("small-cnn", 3, 32, mean=[0.1, 0.2, 0.3], std=[0.4, 0.5, 0.6])
    assert torch.allclose(model.mean.flatten(), torch.tensor([0.1, 0.2, 0.3]))
    assert torch.allclose(model.std.flatten(), torch.tensor([0.4, 0.5, 0.6]))


@pytest.mark.parametrize("name", ["small-cnn", "resnet32", "resnet18"])
def test_classifier_is_replaceable(name):
    model = make(name, 1, 8, num_classes=5).eval()
    old = model.classifier
    model.classifier = nn.Linear(old.in_features, old.out_features)
    nn.init.zeros_(model.classifier.weight)
    nn.init.constant_(model.classifier.bias, 3.0)
    with torch.no_grad():
        out = model(torch.rand(2, 1, 8, 8))
    assert torch.equal(out, torch.full((2, 5), 3.0))


def test_resnet32_matches_ldam_param_count():
    n = sum(p.numel() for p in make("resnet32", 3, 32, num_classes=10).parameters())
    assert 450_000 <= n <= 480_000
    blocks = [m for m in make("resnet32").modules() if type(m).__name__ == "BasicBlock"]
    assert len(blocks) == 15


def test_resnet18_stem_is_small_image_and_random(monkeypatch):
    import torchvision
    calls = []
    real = torchvision.models.resnet18
    monkeypatch.setattr(torchvision.models, "resnet18",
                        lambda **kw: calls.append(kw) or real(**kw))
    model = make("resnet18", 1, 28, num_classes=10)
    assert calls and calls[0]["weights"] is None
    conv1 = model.features[0]
    assert conv1.in_channels == 1 and conv1.kernel_size == (3, 3) and conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert model.classifier.in_features == 512
    assert 11.0e6 < sum(p.numel() for p in model.parameters()) < 11.3e6


@pytest.mark.parametrize("name", ["small-cnn", "resnet32", "resnet18"])
def test_init_is_deterministic_under_manual_seed(name):
    torch.manual_seed(3)
    a = make(name).state_dict()
    torch.manual_seed(3)
    b = make(name).state_dict()
    torch.manual_seed(4)
    c = make(name).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["classifier.weight"], c["classifier.weight"])


def test_unknown_model_is_a_usage_error_with_suggestion():
    with pytest.raises(UsageError, match="resnet32"):
        make("resnet-32")


def test_small_cnn_refuses_large_images():
    with pytest.raises(UsageError, match="resnet18"):
        make("small-cnn", 3, 96)
    make("resnet18", 3, 96)  # fine


def test_bad_mean_std_are_usage_errors():
    with pytest.raises(UsageError, match="one value per channel"):
        make("small-cnn", 3, 32, mean=[0.5], std=[0.5])
    with pytest.raises(UsageError, match="positive"):
        make("small-cnn", 1, 8, mean=[0.5], std=[0.0])
