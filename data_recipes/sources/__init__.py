"""Dataset sources of the classification track.

Every source is a ``SourceSpec`` in the ``SOURCES`` registry (kind ``"dataset"``); one module per
file format registers its sources on import:

========================  ===========  ========================================================
name                      module       needs
========================  ===========  ========================================================
``digits`` (default)      ``digits``   nothing: scikit-learn's bundled 8x8 digits
``mnist``                 ``idx``      ``data_root``: ``<root>/MNIST/raw/*-idx?-ubyte[.gz]``
``fashion-mnist``         ``idx``      ``data_root``: ``<root>/FashionMNIST/raw/...``
``kmnist``                ``idx``      ``data_root``: ``<root>/KMNIST/raw/...``
``cifar10``               ``cifar``    ``data_root``: ``<root>/cifar-10-batches-py/``
``svhn``                  ``svhn``     ``data_root``: ``<root>/{train,test}_32x32.mat``
``medmnist``              ``medmnist`` ``data_path``: one 2-D MedMNIST ``.npz``
========================  ===========  ========================================================

``load_source`` returns a ``Source`` whose ``info`` records the files used (paths as given), the
split (``"official"`` or ``{"kind": "stratified", "seed", "test_fraction"}``), the image shape,
per-split class counts and a content fingerprint. Loads are cached in-process: the same
arguments return the same ``Source`` object, which callers must treat as read-only, until one of
the files it was read from (or their folder) changes on disk.
"""
from __future__ import annotations

from ..imageset import ImageSet, Source
from ..source_cache import cached_load, clear_cache
from ._common import SOURCES, SourceSpec
from . import digits, idx, cifar, svhn, medmnist  # noqa: F401  (register the built-in sources)

__all__ = ["SOURCES", "SourceSpec", "DEFAULT_DATASET", "load_source", "clear_cache", "ImageSet", "Source"]

DEFAULT_DATASET = "digits"

def load_source(name: str, *, data_root=None, data_path=None, download: bool = False,
                split_seed: int = 0, test_fraction: float | None = None) -> Source:
    """Load dataset ``name`` (see ``SOURCES``) as a train/test ``Source``.

    ``data_root`` is a folder in torchvision's layout (``mnist``, ``fashion-mnist``, ``kmnist``,
    ``cifar10``, ``svhn``); ``data_path`` one file (``medmnist``); arguments a source does not
    need are ignored. ``download=True`` lets torchvision fetch a missing dataset into
    ``data_root``. ``split_seed`` and ``test_fraction`` (``None`` = the source's default: 0.3 for
    ``digits``, 0.2 otherwise) shape the seeded stratified split made where no official test
    split exists; with an official split they are ignored. Bad names, missing or corrupt files
    raise ``UsageError`` with a one-line message.
    """
    return cached_load(SOURCES, name, data_root=data_root, data_path=data_path, download=bool(download),
                       split_seed=int(split_seed), test_fraction=None if test_fraction is None else float(test_fraction))
