"""``digits``: the UCI optical handwritten digits bundled with scikit-learn (the default dataset).

1,797 gray 8x8 images of the digits 0-9 with pixel values 0..16, rescaled to uint8 0..255 with
``round(v * 255 / 16)``. The data ship inside scikit-learn, so nothing is downloaded. There is
no official test split: a seeded, class-stratified split is made (default test fraction 0.3)
and recorded in ``Source.info["split"]``.
"""
from __future__ import annotations

import numpy as np

from ._common import SOURCES, SourceSpec, build_source

DEFAULT_TEST_FRACTION = 0.3


def load_digits_source(*, data_root=None, data_path=None, download=False, split_seed=0, test_fraction=None):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # v * 255 / 16 for integer v in 0..16 hits .5 only at v = 8 (127.5); rint and round agree there.
    images = np.rint(bunch.images.astype(np.float64) * 255.0 / 16.0).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    return build_source(
        "digits",
        class_names=[str(c) for c in range(10)],
        files=["sklearn.datasets.load_digits"],
        train=(images, labels),
        test=None,
        split_seed=split_seed,
        test_fraction=test_fraction,
        default_fraction=DEFAULT_TEST_FRACTION,
        split_from="all",
    )


SOURCES.register("digits", SourceSpec(
    name="digits",
    loader=load_digits_source,
    summary="UCI optical handwritten digits (8x8 gray, 10 classes, 1,797 images) bundled with scikit-learn",
    reference="Alpaydin & Kaynak, UCI Optical Recognition of Handwritten Digits (1998); sklearn.datasets.load_digits",
    needs="nothing",
))
