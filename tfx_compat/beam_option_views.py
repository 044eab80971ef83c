"""Beam's pipeline-option views made once per options object and class, not on every look.

Why: ``PipelineOptions.view_as(cls)`` builds ``cls(flags)`` every time it is called, and that constructor builds an
``argparse`` parser with every option of ``cls`` and parses the flags again. Beam calls it for each transform it
applies (``Pipeline.apply`` asks for ``TypeOptions``, the type checks for more), so constructing TFMA's or TFDV's
pipeline parses the same flags hundreds of times: 1.5 s of a 36 s bundled run (4%), and about 4% of an Evaluator
at any data size.

How: a view depends on nothing but the flags it is parsed from and the options dict it shares with its source
(Beam's ``view_as`` hands every view the source's ``_all_options``, so a value set through one view is seen by
all). The view made for a source object and class is kept (the source checked through a weak reference, so a new
object at a recycled address is looked at afresh) and handed out again while the source has the same flags and
the same dict; the keys a new view would add to that dict are still added on each call, as Beam does. Options
parsed from ``sys.argv`` (no flags given) are never kept: the command line is not ours to assume fixed.

Relies on (asserted in ``tests/unit/test_tfx_compat.py``): Beam's ``view_as`` being ``cls(self._flags)`` plus
that dict sharing, with values read through ``_all_options`` (``__getattr__``), so a kept view and a new one answer
alike.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from apache_beam.options import pipeline_options

_ORIGINAL: Callable[[Any, type], Any] | None = None
_KNOWN: dict[tuple[int, type], tuple[weakref.ref, tuple[str, ...], dict, Any]] = {}


def install() -> None:
    """Makes ``PipelineOptions.view_as`` keep its views (once per process; idempotent)."""
    global _ORIGINAL
    if _ORIGINAL is None:
        _ORIGINAL = pipeline_options.PipelineOptions.view_as
        pipeline_options.PipelineOptions.view_as = view_as


def view_as(self: Any, cls: type) -> Any:
    """Beam's ``view_as``: ``self`` seen as ``cls``, sharing its option values; made once per object and class."""
    flags = self._flags
    if flags is None:  # parsed from sys.argv
        return _ORIGINAL(self, cls)
    key = (id(self), cls)
    known = _KNOWN.get(key)
    if known is not None and known[0]() is self and known[2] is self._all_options and known[1] == tuple(flags):
        view = known[3]
        for option_name in view._visible_option_list():  # as Beam's view_as: keys only, existing values kept
            if option_name not in self._all_options:
                self._all_options[option_name] = getattr(view._visible_options, option_name)
        return view
    view = _ORIGINAL(self, cls)
    try:
        reference = weakref.ref(self, lambda _, known=_KNOWN: known.pop(key, None))  # forgotten with its source
    except TypeError:
        return view
    _KNOWN[key] = (reference, tuple(flags), self._all_options, view)
    return view
