"""Contract checks for methods, for the built-ins and for plugin authors.

In a plugin's own tests::

    from imbench.testing import check_method, run_smoke_cell
    from my_plugin import MyMethod

    def test_contract():
        check_method(MyMethod)

    def test_runs_in_a_suite(tmp_path):
        record = run_smoke_cell(MyMethod, tmp_path)
        assert record["status"] == "ok"

``check_method`` raises ``AssertionError`` naming the broken rule; on every track the method
declares (or the one ``track`` names) it runs every hook the method implements on a tiny
synthetic imbalanced set of that track, twice, to check types, shapes, value ranges and
determinism for a seed (``classification``: :mod:`.classification`; ``detection``:
:mod:`.detection`; ``segmentation``: :mod:`.segmentation`). Hybrids are checked the same way: ``check_method(method_class("smote+ldam-drw"))``
(``imbench.benchmarks.plugins.method_class``). ``run_smoke_cell`` runs one real cell of a track.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..benchmarks.contract import HOOKS, Method
from .classification import run_hooks as _classification_hooks
from .classification import tiny_context, tiny_imageset
from .detection import run_hooks as _detection_hooks
from .detection import tiny_scene_context, tiny_sceneset
from .segmentation import run_hooks as _segmentation_hooks
from .segmentation import tiny_seg_context, tiny_segset

__all__ = ["check_method", "run_smoke_cell", "tiny_imageset", "tiny_context", "tiny_sceneset",
           "tiny_scene_context", "tiny_segset", "tiny_seg_context", "CHECKS"]

# the per-track hook runners: fn(cls, seed) -> {name: tensor or tuple of tensors} to compare
CHECKS = {"classification": _classification_hooks, "detection": _detection_hooks,
          "segmentation": _segmentation_hooks}
# what one smoke cell of each track runs on
SMOKE = {"classification": {"datasets": ["digits"], "models": ["small-cnn"], "recipe": "longtail"},
         "detection": {"datasets": ["digit-scenes"], "models": ["fcos"], "recipe": "rare-class"},
         "segmentation": {"datasets": ["digit-scenes"], "models": ["unet"], "recipe": "rare-pixels",
                          "image_size": 32}}


def check_method(cls: type[Method], track: str | None = None) -> None:
    """Assert that ``cls`` follows the method contract on ``track`` (None: on every track it
    declares that has checks here)."""
    assert isinstance(cls, type) and issubclass(cls, Method), f"{cls!r} is not an imbench Method subclass"
    for attr in ("name", "summary", "reference"):
        assert isinstance(getattr(cls, attr), str) and getattr(cls, attr), f"{cls.__name__}: {attr} must be set"
    assert cls.family in ("baseline", "gan", "hybrid"), f"{cls.name}: family must be 'baseline', 'gan' or 'hybrid'"
    assert cls.tracks and all(isinstance(t, str) for t in cls.tracks), f"{cls.name}: tracks must be declared"
    json.dumps(cls.defaults)
    assert set(cls.hooks()) <= set(HOOKS)
    for name in [t for t in cls.tracks if t in CHECKS] if track is None else [track] if track in cls.tracks else []:
        run = CHECKS[name]
        first, second = run(cls, seed=0), run(cls, seed=0)
        assert first.keys() == second.keys()
        for key in first:
            a, b = first[key], second[key]
            same = all(torch.equal(u, v) for u, v in zip(a, b)) if isinstance(a, tuple) else torch.equal(a, b)
            assert same, f"{cls.name} ({name}): {key} differs between two runs with the same seed"


def run_smoke_cell(method: type[Method] | str, out: Path, *, recipe: str | None = None, ir: float = 10.0,
                   plugins: tuple[str, ...] = (), seed: int = 0, track: str = "classification",
                   recipe_params: dict | None = None, grid: dict | None = None) -> dict:
    """Run one real cell of ``track`` (classification: digits, long-tail, small-cnn; detection:
    digit-scenes, rare-class, fcos -- or the first model the method runs with; segmentation:
    digit-scenes at 32 px, rare-pixels, unet; smoke profile, CPU) and return its record. ``grid``:
    further grid keys (e.g. ``{"validation": 0.2}``)."""
    from ..benchmarks.composite import Composite
    from ..benchmarks.plugins import METHODS, load_methods, method_class, register_method
    from ..benchmarks.contract.records import read_record
    from ..benchmarks.runner import execute_cell, validate
    from ..benchmarks.suite import Overrides, expand

    load_methods(plugins)
    if isinstance(method, type):
        if method.name not in METHODS and not issubclass(method, Composite):
            register_method(method, origin=f"test {method.__module__}")
        method = method.name
    smoke = SMOKE[track]
    from ..benchmarks.suite import _method_spec

    cls = method_class(_method_spec(method)[0])  # "name:key=value" specs are run as the suite runs them
    models = smoke["models"] if cls.supports(track, smoke["models"][0]) else list(cls.models[track][:1])
    from ..tasks import get_track

    recipe_name = recipe or smoke["recipe"]
    has_ir = "ir" in get_track(track).recipes().get(recipe_name).defaults
    recipe_entry = {"name": recipe_name, **({"ir": ir} if has_ir else {}), **(recipe_params or {})}
    suite = {"name": "contract", "grids": [{"track": track, "datasets": smoke["datasets"],
             "recipes": [recipe_entry], "methods": [method], "models": models,
             "seeds": [seed], "profile": "smoke",
             **({"image_size": smoke["image_size"]} if "image_size" in smoke else {}), **(grid or {})}]}
    runtime = {"out": str(out), "device": "cpu", "plugins": list(plugins)}
    (cell,) = validate(expand(suite, Overrides()), runtime)
    summary = execute_cell(cell, runtime)
    return read_record(Path(summary["path"]))
