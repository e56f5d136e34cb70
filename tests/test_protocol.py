"""One protocol for every method of a cell: equal steps, subset seeds, protocol augmentation, paper schedule."""
from __future__ import annotations

import math

import pytest
import torch

from imbench.benchmarks.contract.records import read_records
from imbench.tasks.schedule import epoch_orders, learning_rate

SMOKE = ["--profile", "smoke", "--quiet", "--ir", "10"]


def _by_method(out):
    return {r["method"]: r for r in read_records(out)}


def _steps(n: int, batch: int) -> int:
    """Batches of one epoch of n items (a trailing batch of one item folds into the previous)."""
    full, rest = divmod(n, batch)
    return full + (1 if rest >= 2 else 0) if full else 1


def test_every_method_makes_erms_steps_by_default(cli, tmp_path):
    assert cli("run", "classification", "--methods", "erm,ros,smote,rus", "--seeds", "0", "--out", tmp_path / "o", *SMOKE)[0] == 0
    r = _by_method(tmp_path / "o")
    n = sum(r["erm"]["class_counts"]["recipe"])
    steps = 2 * _steps(n, 64)
    for m in ("erm", "ros", "smote", "rus"):
        t = r[m]["training"]
        assert t["budget_unit"] == "steps" and t["train_steps"] == steps and t["images_seen"] == 2 * n, m
        assert t["reference_size"] == n and t["train_set_size"] == sum(r[m]["class_counts"]["trained_on"])
    assert r["ros"]["training"]["train_set_size"] > n > r["rus"]["training"]["train_set_size"]


def test_budget_unit_epochs_gives_each_method_epochs_over_its_own_set(cli, tmp_path):
    args = ["run", "classification", "--methods", "erm,ros", "--seeds", "0", *SMOKE]
    assert cli(*args, "--out", tmp_path / "e", "--budget-unit", "epochs")[0] == 0
    assert cli(*args, "--out", tmp_path / "s")[0] == 0
    e, s = _by_method(tmp_path / "e"), _by_method(tmp_path / "s")
    n_ros = sum(e["ros"]["class_counts"]["trained_on"])
    assert e["ros"]["training"]["train_steps"] == 2 * _steps(n_ros, 64)
    assert e["ros"]["training"]["images_seen"] == 2 * n_ros
    # erm trains on the recipe's set either way: the same batches, the same numbers
    assert e["erm"]["metrics"] == s["erm"]["metrics"]
    assert e["erm"]["config_hash"] != s["erm"]["config_hash"]  # but they are different cells


def test_bad_budget_unit_is_a_usage_error(cli, tmp_path):
    code, _, err = cli("run", "classification", "--methods", "erm", "--budget-unit", "minutes", "--out", tmp_path / "o", *SMOKE)
    assert code == 2 and "budget-unit" in err and not (tmp_path / "o").exists()


def test_epoch_orders_walk_a_larger_set_across_epochs_without_repeats():
    gen, ref = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    orders = epoch_orders(10, 4, None, gen)
    got = torch.cat([next(orders) for _ in range(5)])  # 20 items = two whole permutations
    want = torch.cat([torch.randperm(10, generator=ref), torch.randperm(10, generator=ref)])
    assert torch.equal(got, want)
    # per_epoch == n: one permutation per epoch, as a plain epoch loop draws them
    gen, ref = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    orders = epoch_orders(7, 7, None, gen)
    for _ in range(3):
        assert torch.equal(next(orders), torch.randperm(7, generator=ref))
    w = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    drawn = next(epoch_orders(4, 50, w, torch.Generator().manual_seed(0)))
    assert len(drawn) == 50 and set(drawn.tolist()) <= {1, 3}


def test_subset_seed_fixes_the_images_and_seeds_vary_the_training(cli, tmp_path):
    assert cli("run", "classification", "--methods", "erm", "--seeds", "0,1", "--out", tmp_path / "a", *SMOKE)[0] == 0
    assert cli("run", "classification", "--methods", "erm", "--seeds", "0", "--subset-seed", "1", "--out", tmp_path / "b", *SMOKE)[0] == 0
    a = sorted(read_records(tmp_path / "a"), key=lambda r: r["seed"])
    (b,) = read_records(tmp_path / "b")
    assert [r["subset_seed"] for r in a] == [0, 0] and b["subset_seed"] == 1
    subset = {r["data"]["recipe"]["subset_fingerprint"] for r in a}
    assert len(subset) == 1  # two training seeds, one training set
    assert b["data"]["recipe"]["subset_fingerprint"] not in subset
    assert a[0]["metrics"] != a[1]["metrics"]
    assert a[0]["class_counts"]["recipe"] == b["class_counts"]["recipe"]  # same counts, other images


def test_protocol_augmentation_applies_to_every_method(cli, tmp_path):
    import yaml

    from imbench.benchmarks.profiles import budget

    profile = tmp_path / "smoke-aug.yaml"
    block = budget("smoke", "classification")
    profile.write_text(yaml.safe_dump({"classification": {**block, "augment": "auto"}}))
    args = ["run", "classification", "--methods", "erm,focal", "--seeds", "0", "--quiet", "--ir", "10", "--profile", profile]
    assert cli(*args, "--out", tmp_path / "aug")[0] == 0
    assert cli("run", "classification", "--methods", "erm", "--seeds", "0", "--out", tmp_path / "plain", *SMOKE)[0] == 0
    aug, plain = _by_method(tmp_path / "aug"), _by_method(tmp_path / "plain")
    assert aug["erm"]["training"]["augment"] == "digits" and aug["focal"]["training"]["augment"] == "digits"
    assert plain["erm"]["training"]["augment"] == "none"
    assert aug["erm"]["metrics"] != plain["erm"]["metrics"]


def _cao_adjust_learning_rate(epoch: int, lr: float = 0.1) -> float:
    """kaidic/LDAM-DRW cifar_train.py, adjust_learning_rate (epoch is 0-based there too)."""
    epoch = epoch + 1
    if epoch <= 5:
        return lr * epoch / 5
    if epoch > 180:
        return lr * 0.0001
    if epoch > 160:
        return lr * 0.01
    return lr


def test_paper_profile_follows_cao_et_al_exactly():
    from imbench.benchmarks.profiles import budget

    b = budget("paper", "classification")
    assert (b["epochs"], b["batch_size"], b["lr"], b["momentum"], b["weight_decay"]) == (200, 128, 0.1, 0.9, 2e-4)
    assert b["augment"] == "auto" and b["budget_unit"] == "steps"
    for epoch in range(200):
        assert math.isclose(learning_rate(epoch, b), _cao_adjust_learning_rate(epoch), rel_tol=1e-12), epoch


def test_paper_augmentation_is_cifars_pad4_crop_flip_on_natural_images():
    from imbench.tasks.classification.augmentation import apply_policy, protocol_policy

    assert protocol_policy("auto", 3, "cifar10") == "natural" and protocol_policy("auto", 1, "mnist") == "digits"
    x = torch.rand(64, 3, 32, 32)
    y = apply_policy("natural", x, torch.Generator().manual_seed(0), "cifar10")
    assert y.shape == x.shape
    # every output is a shifted (by at most 4 px), possibly mirrored window of the zero-padded input
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(8):
        found = any(torch.equal(y[i], w) or torch.equal(y[i], w.flip(-1))
                    for r in range(9) for c in range(9) for w in [padded[i, :, r:r + 32, c:c + 32]])
        assert found, i
    with pytest.raises(ValueError):
        protocol_policy("sometimes", 3, "cifar10")
