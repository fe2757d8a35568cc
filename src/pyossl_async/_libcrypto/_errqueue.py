"""libcrypto's per-thread error queue, drained into Python data.

``ERR_GET_LIB``/``ERR_GET_REASON`` are macros in OpenSSL 3.x, so they are
re-implemented here (and tested against ``ERR_lib_error_string``).
"""

from __future__ import annotations

import ctypes
from typing import Any

from .._errors import ErrorEntry

__all__ = ["ERR_LIB_ASYNC", "ERR_LIB_SYS", "drain_errors", "err_get_lib", "err_get_reason"]

ERR_SYSTEM_FLAG = 0x80000000
ERR_SYSTEM_MASK = 0x7FFFFFFF
ERR_LIB_OFFSET = 23
ERR_LIB_MASK = 0xFF
ERR_REASON_MASK = 0x7FFFFF
ERR_LIB_SYS = 2
ERR_LIB_ASYNC = 51


def err_get_lib(code: int) -> int:
    """``ERR_GET_LIB`` of OpenSSL 3.x."""
    if code & ERR_SYSTEM_FLAG:
        return ERR_LIB_SYS
    return (code >> ERR_LIB_OFFSET) & ERR_LIB_MASK


def err_get_reason(code: int) -> int:
    """``ERR_GET_REASON`` of OpenSSL 3.x."""
    if code & ERR_SYSTEM_FLAG:
        return code & ERR_SYSTEM_MASK
    return code & ERR_REASON_MASK


def error_text(lib: Any, code: int) -> str:
    """The text of error ``code``; ``lib`` is a loaded libcrypto (anything with its
    ``ERR_*`` functions bound: this module is below the loader, which uses it)."""
    buf = ctypes.create_string_buffer(256)
    lib.ERR_error_string_n(code, buf, len(buf))
    return buf.value.decode("utf-8", "replace")


def drain_errors(lib: Any) -> tuple[ErrorEntry, ...]:
    """Empty this thread's error queue, oldest entry first (``lib``: as for :func:`error_text`)."""
    out: list[ErrorEntry] = []
    while True:
        code = lib.ERR_get_error()
        if not code:
            return tuple(out)
        out.append(ErrorEntry(err_get_lib(code), err_get_reason(code), error_text(lib, code)))
