"""Beam's check of a DoFn for state and timers done once per DoFn object, not on every look.

Why: Beam 2.72 asks ``userstate.get_dofn_specs(dofn)`` whenever it needs to know whether a DoFn is stateful: when
a ``ParDo`` is made, each time the pipeline is turned into its runner proto, and again for each bundle processor
that runs it. Each call walks ``dir(dofn)`` and builds a ``MethodWrapper`` (``inspect.signature``) for every
method. In one Evaluator (TFMA's pipeline, 150,000 trips) that was 1,538 calls on 223 DoFn objects, 1.4-2.0 s of
a 12-16 s step (10-13%), the same at any data size; every Beam step of a run pays it.

How: the answer for a DoFn object is kept, keyed by the object's identity (checked through a weak reference, so a
new object at a recycled address is looked at afresh) and handed out as copies. The specs come from the methods'
default arguments, which a DoFn does not change once made.

Relies on (asserted in ``tests/unit/test_tfx_compat.py``): Beam's callers looking the function up on the
``apache_beam.transforms.userstate`` module at call time (``userstate.get_dofn_specs(...)``), and
``is_stateful_dofn``/``validate_stateful_dofn`` calling it through the module's globals. The one module that
imports it by name, the legacy DirectRunner's ``transform_evaluator``, keeps Beam's own (our runs use the
FnApiRunner: the profiles' ``--runner=FnApiRunner``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from apache_beam.transforms import userstate

Specs = tuple[set[Any], set[Any]]

_ORIGINAL: Callable[[Any], Specs] | None = None
_KNOWN: dict[int, tuple[weakref.ref, frozenset, frozenset]] = {}


def install() -> None:
    """Makes ``userstate.get_dofn_specs`` remember its answer per DoFn object (once per process; idempotent)."""
    global _ORIGINAL
    if _ORIGINAL is None:
        _ORIGINAL = userstate.get_dofn_specs
        userstate.get_dofn_specs = get_dofn_specs


def get_dofn_specs(dofn: Any) -> Specs:
    """Beam's ``get_dofn_specs``: the state and timer specs of ``dofn``'s methods, computed once per object."""
    known = _KNOWN.get(id(dofn))
    if known is not None and known[0]() is dofn:
        return set(known[1]), set(known[2])
    states, timers = _ORIGINAL(dofn)
    key = id(dofn)
    try:
        reference = weakref.ref(dofn, lambda _, known=_KNOWN: known.pop(key, None))  # forgotten when the DoFn is
    except TypeError:  # an object that takes no weak reference is looked at every time, as by Beam
        return states, timers
    _KNOWN[key] = (reference, frozenset(states), frozenset(timers))
    return states, timers
