"""Which file a loaded shared object came from (``dladdr``).

The one implementation: the loader uses it to report the file it really loaded,
and ``testing._cbuild`` to link C code against that same file.
"""

from __future__ import annotations

import ctypes
import os
from typing import Optional

__all__ = ["loaded_library_file"]


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def loaded_library_file(address: int) -> Optional[str]:
    """The real path of the shared object that contains ``address`` (``dladdr``), or None."""
    try:
        libc = ctypes.CDLL(None)
        dladdr = libc.dladdr
    except (OSError, AttributeError):
        return None
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    dladdr.restype = ctypes.c_int
    info = _DlInfo()
    if not dladdr(ctypes.c_void_p(address), ctypes.byref(info)) or not info.dli_fname:
        return None
    path = os.fsdecode(info.dli_fname)
    return os.path.realpath(path) if os.path.isabs(path) else None
