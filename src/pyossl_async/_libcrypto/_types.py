"""Opaque C types of the ASYNC API.

Handles are ``c_void_p`` subclasses so that ctypes never truncates a pointer to a
C ``int`` and so that a return value keeps its C type name in reprs.
"""

from __future__ import annotations

import ctypes
from ctypes import CFUNCTYPE, POINTER, c_int, c_size_t, c_void_p

__all__ = [
    "OSSL_ASYNC_FD",
    "ASYNC_JOB_p",
    "ASYNC_JOB_pp",
    "ASYNC_WAIT_CTX_p",
    "ASYNC_callback_fn",
    "ASYNC_cleanup_fn",
    "ASYNC_job_fn",
    "ASYNC_stack_alloc_fn",
    "ASYNC_stack_free_fn",
]


class ASYNC_JOB_p(c_void_p):  # noqa: N801 - C name
    """``ASYNC_JOB *``"""


class ASYNC_WAIT_CTX_p(c_void_p):  # noqa: N801 - C name
    """``ASYNC_WAIT_CTX *``"""


ASYNC_JOB_pp = POINTER(ASYNC_JOB_p)
OSSL_ASYNC_FD = c_int  # int on every platform but Windows, where it is a HANDLE

# int (*)(void *)
ASYNC_job_fn = CFUNCTYPE(c_int, c_void_p)
# int (*ASYNC_callback_fn)(void *arg)
ASYNC_callback_fn = CFUNCTYPE(c_int, c_void_p)
# void (*cleanup)(ASYNC_WAIT_CTX *, const void *, OSSL_ASYNC_FD, void *)
ASYNC_cleanup_fn = CFUNCTYPE(None, c_void_p, c_void_p, OSSL_ASYNC_FD, c_void_p)
# void *(*ASYNC_stack_alloc_fn)(size_t *num); void (*ASYNC_stack_free_fn)(void *addr)
ASYNC_stack_alloc_fn = CFUNCTYPE(c_void_p, POINTER(c_size_t))
ASYNC_stack_free_fn = CFUNCTYPE(None, c_void_p)

assert ctypes.sizeof(ASYNC_JOB_p) == ctypes.sizeof(c_void_p)
