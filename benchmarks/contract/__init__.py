"""The contract: the low layer every other folder builds on.

It holds what a method, a track and a record *are* -- :class:`Method` and its hooks, the
:class:`Context` a hook receives, the method registry (``METHODS``, ``register_method``), the
:class:`Track` interface and its registry (``TRACKS``), the generic :class:`Registry`, the
:class:`UsageError` the CLI turns into exit 2, cell identity (hashes) and the record format -- and
it imports no track, method, data source, runner or CLI (``tests/test_layering.py`` checks it).

The layers, low to high::

    benchmarks/contract   what methods, tracks and records are
    data_recipes          sources and recipes                  (imports contract)
    tasks                 one subpackage per track             (imports contract, data_recipes)
    baselines, gans       the methods                          (imports contract, data_recipes, tasks)
    results               the aggregator; reads records only   (imports contract)
    benchmarks            suites, runner, executors, CLI, imbench.testing (imports everything)

A plugin author needs only this layer: ``from imbench.benchmarks.contract import Method, Context,
register_method``.
"""
from .context import FREQUENCY_GROUPS, Context, frequency_groups
from .errors import UsageError, unknown
from .method import HOOKS, METHODS, Method, RepeatFactors, register_method
from .registry import Registry
from .track import TRACKS, CellOutcome, DivergenceError, Track, get_track

__all__ = ["Context", "FREQUENCY_GROUPS", "frequency_groups", "UsageError", "unknown", "HOOKS", "METHODS",
           "Method", "RepeatFactors", "register_method", "Registry", "TRACKS", "CellOutcome", "DivergenceError", "Track",
           "get_track"]
