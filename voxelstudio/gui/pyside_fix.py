"""Work around a reference-counting bug in some PySide6 builds (seen with 6.12.0 on Python 3.11).

Every time Qt calls into Python (a signal delivered to a Python callable, a Python override such as paintEvent),
those builds drop one reference to ``None`` that they never took. On Python 3.12+ ``None`` is immortal and nothing
happens; on 3.11 ``None``'s count (a few thousand to a few hundred thousand) runs out after that many callbacks and
the interpreter aborts with "Fatal Python error: none_dealloc". A GUI makes such callbacks all the time.

:func:`protect_none_refcount` measures whether the running binding has the bug and, if so, gives ``None`` enough
spare references to outlast any session (2**40 callbacks: weeks at a million callbacks a second).
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject

SPARE_REFERENCES = 1 << 40
_PROBE_CALLS = 64
_protected = False


def binding_drops_none_references() -> bool:
    """True when a Qt-to-Python callback costs ``None`` a reference (the bug above)."""
    probe = QObject()
    probe.objectNameChanged.connect(lambda _name: None)
    before = sys.getrefcount(None)
    for index in range(_PROBE_CALLS):
        probe.setObjectName(f"probe{index}")
    return before - sys.getrefcount(None) >= _PROBE_CALLS // 2


def protect_none_refcount() -> bool:
    """Give ``None`` spare references (once per process) when this PySide6 build drops them; True if it did."""
    global _protected
    if _protected or sys.version_info >= (3, 12) or not binding_drops_none_references():
        return False
    refcount = ctypes.c_ssize_t.from_address(id(None))  # ob_refcnt is the first field of every PyObject
    refcount.value += SPARE_REFERENCES
    _protected = True
    return True
