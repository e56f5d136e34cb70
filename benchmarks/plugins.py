"""Loading methods into the registry (``contract.METHODS``): built-ins, entry-point plugins and
``--plugin module:attr``."""
from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points

from .contract.errors import UsageError
from .contract.method import METHODS, Method, register_method
from .contract.registry import Registry

ENTRY_POINT_GROUP = "imbench.methods"
_BUILTIN_PACKAGES = ("imbench.baselines", "imbench.gans")
_state = {"builtins": False, "entry_points": False}


def _register_all(obj, origin: str) -> list[str]:
    """Register a Method subclass, or every Method subclass a module or list holds."""
    if inspect.ismodule(obj):
        found = [v for v in vars(obj).values()
                 if inspect.isclass(v) and issubclass(v, Method) and v is not Method and v.name
                 and v.__module__ == obj.__name__]
    elif isinstance(obj, (list, tuple)):
        found = list(obj)
    else:
        found = [obj]
    names = []
    for cls in found:
        if getattr(cls, "name", None) in METHODS and METHODS.get(cls.name) is cls:
            names.append(cls.name)
            continue
        names.append(register_method(cls, origin=origin).name)
    return names


def load_builtins() -> None:
    if not _state["builtins"]:
        for pkg in _BUILTIN_PACKAGES:
            importlib.import_module(pkg)
        _state["builtins"] = True


def load_entry_points() -> list[str]:
    """Register the methods of every installed ``imbench.methods`` entry point."""
    names: list[str] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {ep.name} = {ep.value}"
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import failure is the user's plugin
            raise UsageError(f"cannot load plugin {origin}: {type(exc).__name__}: {exc}") from None
        names += _register_all(obj, origin)
    _state["entry_points"] = True
    return names


def load_plugin(spec: str) -> list[str]:
    """Import ``module:attr`` (or a whole ``module``) and register the methods it holds."""
    module_name, _, attr = spec.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
    except Exception as exc:  # noqa: BLE001
        raise UsageError(f"cannot import plugin {spec!r}: {type(exc).__name__}: {exc}") from None
    return _register_all(obj, f"--plugin {spec}")


def load_methods(plugins: tuple[str, ...] | list[str] = ()) -> Registry[type[Method]]:
    """Built-ins, then entry points, then ``--plugin`` specs; returns the registry."""
    load_builtins()
    if not _state["entry_points"]:
        load_entry_points()
    for spec in plugins:
        load_plugin(spec)
    return METHODS


def method_class(name: str) -> type[Method]:
    """The class of method ``name``; ``"a+b"`` gives the hybrid of ``a`` then ``b``
    (see :mod:`.composite`)."""
    from .composite import composite_class, is_composite

    if is_composite(name):
        return composite_class(name, METHODS.get)
    return METHODS.get(name)


def create_method(name: str, **params) -> Method:
    return method_class(name)(**params)
