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
from importlib import import_module

# Attributes load on first use (PEP 562), so that ``from .contract.errors import UsageError``
# (the CLI's argument parsing, ``imbench ls``) imports no torch; ``from imbench.benchmarks.contract
# import Method`` works as before.
_WHERE = {
    "Context": "context", "FREQUENCY_GROUPS": "context", "frequency_groups": "context",
    "UsageError": "errors", "unknown": "errors",
    "HOOKS": "method", "METHODS": "method", "Method": "method", "RepeatFactors": "method",
    "DeferredSampling": "method",
    "register_method": "method",
    "Registry": "registry",
    "TRACKS": "track", "CellOutcome": "track", "DivergenceError": "track", "Track": "track", "get_track": "track",
}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
