"""The one table of libcrypto prototypes this package binds.

Each row says what C declares: name, result type, argument types, whether the
call may release the GIL, which errcheck applies, and the OpenSSL version that
introduced it. ``_loader.bind`` turns the table into callables; nothing else in
the package declares a libcrypto prototype.
"""

from __future__ import annotations

from ctypes import POINTER, c_char_p, c_int, c_size_t, c_uint64, c_ulong, c_void_p
from typing import Any, NamedTuple, Optional, Tuple

from ._types import (
    OSSL_ASYNC_FD,
    ASYNC_JOB_p,
    ASYNC_JOB_pp,
    ASYNC_WAIT_CTX_p,
)

__all__ = ["CHECK_NONNULL", "CHECK_TRUE", "PROTOTYPES", "V3_0", "V3_2", "Prototype"]

V3_0 = 0x30000000
V3_2 = 0x30200000

#: errcheck kinds (see ``_loader``): raise AsyncError with the drained queue when
#: the result is NULL / 0. ``None`` means the result is data, never an error.
CHECK_NONNULL = "nonnull"
CHECK_TRUE = "true"


class Prototype(NamedTuple):
    name: str
    restype: Any
    argtypes: Tuple[Any, ...]
    #: True: bound through a GIL-releasing CDLL. Job switches *must* release the
    #: GIL (hazards.md); everything else is short and keeps it, which also
    #: serialises Python threads sharing a wait context.
    releases_gil: bool = False
    check: Optional[str] = None
    since: int = V3_0
    #: optional symbols become capability flags instead of load failures
    optional: bool = False


_CTX = ASYNC_WAIT_CTX_p
_FD_p = POINTER(OSSL_ASYNC_FD)
_SIZE_p = POINTER(c_size_t)

PROTOTYPES: Tuple[Prototype, ...] = (
    # library identity and initialisation
    Prototype("OpenSSL_version_num", c_ulong, ()),
    Prototype("OpenSSL_version", c_char_p, (c_int,)),
    Prototype("OPENSSL_init_crypto", c_int, (c_uint64, c_void_p)),
    # error queue
    Prototype("ERR_get_error", c_ulong, ()),
    Prototype("ERR_peek_error", c_ulong, ()),
    Prototype("ERR_clear_error", None, ()),
    Prototype("ERR_error_string_n", None, (c_ulong, c_char_p, c_size_t)),
    Prototype("ERR_lib_error_string", c_char_p, (c_ulong,)),
    Prototype("ERR_reason_error_string", c_char_p, (c_ulong,)),
    # ASYNC: threads and jobs
    Prototype("ASYNC_init_thread", c_int, (c_size_t, c_size_t)),
    Prototype("ASYNC_cleanup_thread", None, ()),
    Prototype(
        "ASYNC_start_job",
        c_int,
        (ASYNC_JOB_pp, _CTX, POINTER(c_int), c_void_p, c_void_p, c_size_t),
        releases_gil=True,
    ),
    Prototype("ASYNC_pause_job", c_int, (), releases_gil=True),
    Prototype("ASYNC_get_current_job", ASYNC_JOB_p, ()),
    Prototype("ASYNC_get_wait_ctx", _CTX, (ASYNC_JOB_p,)),
    Prototype("ASYNC_block_pause", None, ()),
    Prototype("ASYNC_unblock_pause", None, ()),
    Prototype("ASYNC_is_capable", c_int, ()),
    # ASYNC_WAIT_CTX
    Prototype("ASYNC_WAIT_CTX_new", _CTX, (), check=CHECK_NONNULL),
    Prototype("ASYNC_WAIT_CTX_free", None, (_CTX,)),
    Prototype(
        "ASYNC_WAIT_CTX_set_wait_fd",
        c_int,
        (_CTX, c_void_p, OSSL_ASYNC_FD, c_void_p, c_void_p),
        check=CHECK_TRUE,
    ),
    Prototype("ASYNC_WAIT_CTX_get_fd", c_int, (_CTX, c_void_p, _FD_p, POINTER(c_void_p))),
    Prototype("ASYNC_WAIT_CTX_get_all_fds", c_int, (_CTX, _FD_p, _SIZE_p)),
    Prototype("ASYNC_WAIT_CTX_get_changed_fds", c_int, (_CTX, _FD_p, _SIZE_p, _FD_p, _SIZE_p)),
    Prototype("ASYNC_WAIT_CTX_clear_fd", c_int, (_CTX, c_void_p)),
    Prototype("ASYNC_WAIT_CTX_set_callback", c_int, (_CTX, c_void_p, c_void_p)),
    Prototype("ASYNC_WAIT_CTX_get_callback", c_int, (_CTX, POINTER(c_void_p), POINTER(c_void_p))),
    Prototype("ASYNC_WAIT_CTX_set_status", c_int, (_CTX, c_int)),
    Prototype("ASYNC_WAIT_CTX_get_status", c_int, (_CTX,)),
    # 3.2+: custom fibre stacks
    Prototype(
        "ASYNC_set_mem_functions", c_int, (c_void_p, c_void_p), since=V3_2, optional=True
    ),
    Prototype(
        "ASYNC_get_mem_functions",
        None,
        (POINTER(c_void_p), POINTER(c_void_p)),
        since=V3_2,
        optional=True,
    ),
)
