"""Intra-class imbalance: a rare sub-mode inside one class (``intra``).

KMeans (``k`` clusters, ``n_init=10``, ``random_state`` derived from the seed) runs on the
flattened float images (scaled to [0, 1]) of *all* training images of class ``target``; the
smallest cluster (lowest cluster id on ties) is the rare sub-mode. The target class keeps every
image of the other clusters (a seeded random ``n_max`` of them if there are more) plus
``max(1, floor(fraction * |rare|))`` images of the rare cluster; every other class keeps
``n_max``. ``minority`` is ``[target]``.

``info`` records ``cluster_sizes_before`` / ``cluster_sizes_after`` (per cluster id),
``rare_cluster``, ``rare_kept``, ``train_rare_index`` (positions of the kept rare images in the
returned train split) and ``test_rare_index`` (positions in the test split of target-class
images the fitted KMeans assigns to the rare cluster), so an evaluator can report sub-mode recall.
"""
from __future__ import annotations

import numpy as np

from ..benchmarks.contract.errors import UsageError
from .recipes import (CLASS_STREAM, CLUSTER_STREAM, RecipeContext, Selection, check_range, floor,
                      register_recipe)


def _check_intra(p: dict, given: dict) -> None:
    check_range("intra", p, "target", 0)
    check_range("intra", p, "k", 2)
    check_range("intra", p, "fraction", 0, 1, lo_open=True)


def _flat(images) -> np.ndarray:
    return images.reshape(len(images), -1).numpy().astype(np.float32) / 255.0


@register_recipe("intra", defaults={"target": 0, "k": 2, "fraction": 0.1}, check=_check_intra,
                 summary="a rare sub-mode (smallest KMeans cluster) inside one class keeps a fraction",
                 reference="Sampath et al. 2021 survey, intra-class imbalance")
def intra(ctx: RecipeContext) -> Selection:
    from sklearn.cluster import KMeans

    p = ctx.params
    n_max = ctx.n_max()
    t = ctx.check_class("target", p["target"])
    k = p["k"]
    members = ctx.class_index[t]
    if k > len(members):
        raise UsageError(f"recipe intra: k {k} is more than the {len(members)} images of class "
                         f"{ctx.class_label(t)}; use a smaller k")
    state = int(np.random.SeedSequence([ctx.seed, CLUSTER_STREAM]).generate_state(1)[0])
    km = KMeans(n_clusters=k, random_state=state, n_init=10).fit(_flat(ctx.train.images[members]))
    assign = km.labels_
    sizes = np.bincount(assign, minlength=k)
    rare = int(np.argmin(sizes))

    rng = ctx.rng(CLASS_STREAM, t)
    common = members[assign != rare]
    if len(common) > n_max:
        common = rng.permutation(common)[:n_max]
    rare_all = members[assign == rare]
    n_rare = max(1, floor(p["fraction"] * len(rare_all)))
    rare_kept = np.sort(rng.permutation(rare_all)[:n_rare])
    kept_target = np.concatenate([common, rare_kept])

    others = {c: n_max for c in range(ctx.num_classes) if c != t}
    index = np.sort(np.concatenate([ctx.take_counts(others), kept_target]))
    after = np.bincount(assign[np.isin(members, kept_target)], minlength=k)

    test_labels = ctx.test.labels.numpy()
    test_members = np.flatnonzero(test_labels == t)
    test_rare = []
    if len(test_members):
        pred = km.predict(_flat(ctx.test.images[test_members]))
        test_rare = test_members[pred == rare].tolist()
    info = {
        "target": t, "k": k, "rare_cluster": rare,
        "cluster_sizes_before": sizes.tolist(), "cluster_sizes_after": after.tolist(),
        "rare_kept": int(n_rare),
        "train_rare_index": np.searchsorted(index, rare_kept).tolist(),
        "test_rare_index": test_rare,
    }
    return Selection(index, [t], info, n_max)
