"""Loading methods into the registry (``contract.METHODS``): built-ins, entry-point plugins and
``--plugin module:attr``."""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from importlib.metadata import entry_points

from .catalog import ENTRY_POINT_GROUP
from .contract.errors import UsageError
from .contract.method import METHODS, Method, register_method
from .contract.registry import Registry

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
    """Import a plugin and register the methods it holds: ``module:attr`` (or a whole ``module``),
    found on ``sys.path`` with the current folder first, as ``python -m`` would; or
    ``path/to/file.py:attr`` (or ``file.py``), loaded from that file as module ``file``."""
    target, colon, attr = spec.rpartition(":") if ":" in spec else (spec, "", "")
    try:
        if is_file_spec(target):
            obj = _load_file(target)
        else:
            _current_folder_first()
            obj = importlib.import_module(target)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise UsageError(f"cannot import plugin {spec!r}: {type(exc).__name__}: {exc}") from None
    return _register_all(obj, f"--plugin {spec}")


def is_file_spec(target: str) -> bool:
    """Whether a ``--plugin`` target names a file (``x.py``, or a path) rather than a module."""
    return target.endswith(".py") or "/" in target or os.sep in target


def resolve_plugin_spec(spec: str) -> str:
    """``spec`` with a file made absolute, so that workers started elsewhere load the same file;
    a missing file is a usage error."""
    target, colon, attr = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if not is_file_spec(target):
        return spec
    path = Path(target).expanduser()
    if not path.is_file():
        raise UsageError(f"--plugin {spec}: no file {path}")
    return f"{path.resolve()}{colon}{attr}"


def _current_folder_first() -> None:
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)


def _load_file(target: str):
    path = Path(target).expanduser().resolve()
    if not path.is_file():
        raise UsageError(f"--plugin {target}: no file {path}")
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None:
        if Path(getattr(loaded, "__file__", "") or "").resolve() == path:
            return loaded
        raise UsageError(f"--plugin {target}: a module named {name!r} is already imported from "
                         f"{getattr(loaded, '__file__', None) or 'elsewhere'}; rename the file")
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # so that inspect finds the source and dataclasses their module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


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
