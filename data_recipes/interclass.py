"""Inter-class recipes: ``longtail``, ``step``, ``binary``, ``drop-one`` and ``counts``.

The formulas and minority rules are documented in :mod:`imbench.data_recipes.recipes`.
"""
from __future__ import annotations

import numpy as np

from ..benchmarks.contract.errors import UsageError
from .recipes import (POOL_STREAM, RecipeContext, Selection, check_range, floor,
                      midpoint_minority, register_recipe)


def longtail_counts(n_max: int, num_classes: int, ir: float) -> list[int]:
    """Exponential profile by position, exactly as kaidic/LDAM-DRW ``get_img_num_per_cls``:
    ``int(n_max * (1/ir) ** (p / (C - 1)))`` (n_max 5000, C 10, ir 100 -> 5000, 2997, ..., 50)."""
    imb_factor = 1.0 / ir
    return [int(n_max * (imb_factor ** (p / (num_classes - 1.0)))) for p in range(num_classes)]


def step_counts(n_max: int, num_classes: int, ir: float, mu: float) -> list[int]:
    """Step profile by position (Buda et al. 2018): the last ``floor(mu * C)`` positions get
    ``floor(n_max / ir)``, the others ``n_max``."""
    m = floor(mu * num_classes)
    return [n_max] * (num_classes - m) + [floor(n_max / ir)] * m


def parse_counts(text: str, recipe: str = "counts") -> list[int]:
    """``"4000,2000,1000"`` (or ``"4000/2000/1000"``, the form that fits in a comma-separated
    ``--recipe`` list) -> ``[4000, 2000, 1000]``; each count a positive integer."""
    out = []
    for i, part in enumerate(p.strip() for p in str(text).replace("/", ",").split(",")):
        try:
            n = int(float(part))
            if n != float(part):
                raise ValueError
        except ValueError:
            raise UsageError(f"recipe {recipe}: counts must be integers separated by , or /, "
                             f"got {part!r} at position {i}") from None
        if n < 1:
            raise UsageError(f"recipe {recipe}: position {i} would keep {n} images; "
                             f"every count must be at least 1")
        out.append(n)
    return out


def _by_position(ctx: RecipeContext, per_position: list[int]) -> dict[int, int]:
    return {ctx.order[p]: n for p, n in enumerate(per_position)}


# ---------------------------------------------------------------- longtail

def _check_longtail(p: dict, given: dict) -> None:
    check_range("longtail", p, "ir", 1)


@register_recipe("longtail", defaults={"ir": 100.0}, check=_check_longtail,
                 summary="exponential long tail n_p = n_max * ir^(-p/(C-1)) (CIFAR-10-LT)",
                 reference="Cao et al. 2019, LDAM-DRW (NeurIPS); kaidic/LDAM-DRW")
def longtail(ctx: RecipeContext) -> Selection:
    n_max = ctx.n_max()
    per_pos = longtail_counts(n_max, ctx.num_classes, ctx.params["ir"])
    by_class = _by_position(ctx, per_pos)
    counts = [by_class[c] for c in range(ctx.num_classes)]
    return Selection(ctx.take_counts(by_class), midpoint_minority(counts), {"profile": per_pos}, n_max)


# ---------------------------------------------------------------- step

def _check_step(p: dict, given: dict) -> None:
    check_range("step", p, "ir", 1)
    check_range("step", p, "mu", 0, 1)


@register_recipe("step", defaults={"ir": 10.0, "mu": 0.5}, check=_check_step,
                 summary="step imbalance: the last floor(mu*C) classes get n_max/ir",
                 reference="Buda, Maki, Mazurowski 2018, Neural Networks 106")
def step(ctx: RecipeContext) -> Selection:
    n_max = ctx.n_max()
    per_pos = step_counts(n_max, ctx.num_classes, ctx.params["ir"], ctx.params["mu"])
    by_class = _by_position(ctx, per_pos)
    minority = sorted(c for c, n in by_class.items() if n < n_max)
    return Selection(ctx.take_counts(by_class), minority, {"profile": per_pos}, n_max)


# ---------------------------------------------------------------- binary

def _check_binary(p: dict, given: dict) -> None:
    """Also sets ``ir`` to the one implied by a non-zero ``fraction`` (idempotent)."""
    check_range("binary", p, "ir", 1)
    if p["positive"] < -1:
        raise UsageError(f"recipe binary: positive must be a class index or -1 (the last class "
                         f"in class_order), got {p['positive']}")
    if p["fraction"] != 0:
        check_range("binary", p, "fraction", 0, 0.5, lo_open=True, note=" (or 0 to use ir)")
        implied = (1.0 - p["fraction"]) / p["fraction"]
        if "ir" in given and abs(p["ir"] - implied) > 1e-9 * implied:
            raise UsageError(f"recipe binary: give ir or fraction, not both (fraction "
                             f"{p['fraction']:g} means ir {implied:g}, ir {p['ir']:g} was given)")
        p["ir"] = implied


@register_recipe("binary", defaults={"positive": -1, "ir": 10.0, "fraction": 0.0}, check=_check_binary,
                 summary="one positive (minority) class against the pooled rest, at ratio ir or fraction",
                 reference="Sampath et al. 2021 survey, binary image-level imbalance")
def binary(ctx: RecipeContext) -> Selection:
    p, C = ctx.params, ctx.num_classes
    pos = ctx.order[-1] if p["positive"] == -1 else ctx.check_class("positive", p["positive"])
    ir = p["ir"]
    pool = np.sort(np.concatenate([ctx.class_index[c] for c in range(C) if c != pos]))
    n_neg = min(len(pool), floor(ctx.available[pos] * ir))
    if p["n_max"]:
        if p["n_max"] > len(pool):
            raise UsageError(f"recipe binary: n_max {p['n_max']} is larger than the {len(pool)} "
                             f"negatives available; use n_max <= {len(pool)} or 0 (no cap)")
        n_neg = min(n_neg, p["n_max"])
    n_pos = floor(n_neg / ir)
    if n_pos < 1:
        raise UsageError(f"recipe binary: positive class {ctx.class_label(pos)} would keep 0 images "
                         f"({n_neg} negatives at ir {ir:g}); use a smaller ir or a larger n_max")
    neg = ctx.rng(POOL_STREAM).permutation(pool)[:n_neg]
    index = np.concatenate([neg, ctx.take(pos, n_pos)])
    label_map = np.zeros(C, dtype=np.int64)
    label_map[pos] = 1
    name = ctx.train.class_names[pos]
    test_labels = ctx.test.labels.numpy()
    test_counts = [int((test_labels != pos).sum()), int((test_labels == pos).sum())]
    info = {
        "positive": pos, "positive_name": name, "n_pos": n_pos, "n_neg": n_neg,
        "fraction_actual": n_pos / (n_pos + n_neg),
        "negatives_per_class": np.bincount(ctx.train.labels.numpy()[neg], minlength=C).tolist(),
        "test_counts": test_counts,
        "test_ir": test_counts[0] / test_counts[1] if test_counts[1] else None,
    }
    return Selection(index, [1], info, n_neg, label_map, [f"not-{name}", name])


# ---------------------------------------------------------------- drop-one

def _check_drop_one(p: dict, given: dict) -> None:
    check_range("drop-one", p, "fraction", 0, 1, lo_open=True)
    check_range("drop-one", p, "target", 0)


@register_recipe("drop-one", defaults={"target": 0, "fraction": 0.1}, check=_check_drop_one,
                 summary="one class keeps floor(fraction*n_max) images, the others n_max (BAGAN protocol)",
                 reference="Mariani et al. 2018, BAGAN (arXiv:1803.09655); IBM/BAGAN")
def drop_one(ctx: RecipeContext) -> Selection:
    n_max = ctx.n_max()
    t = ctx.check_class("target", ctx.params["target"])
    by_class = {c: n_max for c in range(ctx.num_classes)}
    by_class[t] = floor(ctx.params["fraction"] * n_max)
    minority = [t] if by_class[t] < n_max else []
    return Selection(ctx.take_counts(by_class), minority, {"target": t}, n_max)


# ---------------------------------------------------------------- counts

def _check_counts(p: dict, given: dict) -> None:
    if not p["counts"]:
        raise UsageError("recipe counts: needs counts=N0,N1,... (one count per class position, "
                         "e.g. 4000,2000,1000,750,500,350,200,100,60,40)")
    p["counts"] = ",".join(str(n) for n in parse_counts(p["counts"]))


@register_recipe("counts", defaults={"counts": ""}, check=_check_counts, common=("class_order",),
                 summary="explicit per-position counts, e.g. DeepSMOTE's 4000,2000,...,60,40",
                 reference="Dablain, Krawczyk, Chawla 2022, DeepSMOTE (TNNLS); dd1github/DeepSMOTE")
def counts(ctx: RecipeContext) -> Selection:
    per_pos = parse_counts(ctx.params["counts"])
    if len(per_pos) != ctx.num_classes:
        raise UsageError(f"recipe counts: {len(per_pos)} counts given, source "
                         f"{ctx.source.name!r} has {ctx.num_classes} classes")
    by_class = _by_position(ctx, per_pos)
    counts_ = [by_class[c] for c in range(ctx.num_classes)]
    return Selection(ctx.take_counts(by_class), midpoint_minority(counts_), {"profile": per_pos})
