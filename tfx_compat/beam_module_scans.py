"""Beam's two scans of every loaded module, done once per set of loaded modules instead of on every call.

Why: with TensorFlow, TFX, Beam and TFMA loaded a process holds about 10,000 modules, and Beam walks them all
- when it pickles a function (its vendored cloudpickle's ``_find_imported_submodules``: for each package the
  function refers to, every name in ``sys.modules`` is compared with the package's prefix, to find submodules
  the function reaches as attributes): 1.1 s of a bundled run (2.6% of its samples, py-spy), and
- when the SDK worker's state cache (side inputs and other state kept between bundles) weighs a value
  (``statecache.get_deep_size``: objsize first collects the globals dict of every module, so that references to
  modules are not counted as the value's size): 4.2 ms a weighing, about 300 weighings and 1.2 s of a bundled run.
Both are fixed costs of every Beam step, whatever the data size.

How: the list of loaded names under a package prefix, and the ids of the modules' globals dicts, are kept until
the set of loaded modules changes, told by the number of entries of ``sys.modules`` and its newest name (a
module's dict lives as long as the module). The answers are the ones Beam computes: the same submodules in the
same order, and the same weight (Beam's size, referents and filter functions, the same exclusions).

Relies on (asserted in ``tests/unit/test_tfx_compat.py``): cloudpickle's ``_function_getstate`` and Beam's
``StateCache`` calling ``_find_imported_submodules`` and ``get_deep_size`` through their modules' globals; the
submodule test being "every dotted part of the name after the prefix is a name the code uses"; objsize's
exclusions being ``id(None)`` and, with ``exclude_modules_globals``, the ids of the modules' ``vars()``.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

import objsize
from apache_beam.internal.cloudpickle import cloudpickle
from apache_beam.runners.worker import statecache

_ORIGINALS: dict[str, Callable[..., Any]] = {}
_WEIGHING = objsize.ObjSizeSettings(
    get_size_func=statecache._size_func,
    get_referents_func=statecache._get_referents_func,
    filter_func=statecache._filter_func,
    exclude_modules_globals=False,
)
_seen: tuple[int, str | None] = (-1, None)
_names_under: dict[str, list[str]] = {}
_globals_ids: set[int] | None = None


def install() -> None:
    """Puts the two functions below in place of Beam's (once per process; idempotent)."""
    if not _ORIGINALS:
        _ORIGINALS["find_imported_submodules"] = cloudpickle._find_imported_submodules
        _ORIGINALS["get_deep_size"] = statecache.get_deep_size
        cloudpickle._find_imported_submodules = find_imported_submodules
        statecache.get_deep_size = get_deep_size


def _current() -> None:
    """Forgets what was computed when the set of loaded modules has changed since."""
    global _seen, _globals_ids
    modules = sys.modules
    state = (len(modules), next(reversed(modules), None))
    if state != _seen:
        _seen = state
        _names_under.clear()
        _globals_ids = None


def _loaded_under(prefix: str) -> list[str]:
    _current()
    names = _names_under.get(prefix)
    if names is None:
        # A concurrent import could change sys.modules while it is read: iterate over a copy, as cloudpickle does.
        names = _names_under[prefix] = [name for name in list(sys.modules) if name and name.startswith(prefix)]
    return names


def find_imported_submodules(code: types.CodeType, top_level_dependencies: Any) -> list[types.ModuleType]:
    """cloudpickle's ``_find_imported_submodules``: the loaded submodules of the packages a function refers to
    that its code reaches as attributes (``concurrent.futures`` used as ``concurrent.futures.X``)."""
    subimports = []
    used = set(code.co_names)
    for dependency in top_level_dependencies:
        if isinstance(dependency, types.ModuleType) and getattr(dependency, "__package__", None):
            prefix = dependency.__name__ + "."
            for name in _loaded_under(prefix):
                module = sys.modules.get(name)
                if module is not None and not set(name[len(prefix) :].split(".")) - used:
                    subimports.append(module)
    return subimports


def _module_globals_ids() -> set[int]:
    global _globals_ids
    _current()
    if _globals_ids is None:
        modules = list(sys.modules.values())
        _globals_ids = {id(None)} | {id(vars(module)) for module in modules if hasattr(module, "__dict__")}
    return _globals_ids


def get_deep_size(*objs: Any) -> int:
    """Beam's ``statecache.get_deep_size``: the deep size of ``objs`` in bytes, module globals excluded."""
    context = objsize.TraversalContext(_WEIGHING)
    context.exclude_set.update(_module_globals_ids())
    return context.get_deep_size(*objs)
