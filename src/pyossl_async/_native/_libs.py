"""Bindings to libc, libffi and the CPython C API, from one small table each."""

from __future__ import annotations

import ctypes
import ctypes.util
from ctypes import c_int, c_long, c_size_t, c_uint, c_void_p
from typing import Any, Sequence, Tuple

from ._abi import NativeUnsupported

__all__ = ["Libc", "Libffi", "PyApi", "address_of"]

_Row = Tuple[str, Any, Sequence[Any]]


def address_of(fn: Any) -> int:
    """The C address of a ctypes function or callback object."""
    return ctypes.cast(fn, c_void_p).value or 0


class _Bound:
    _rows: Sequence[_Row] = ()

    def _bind(self, dll: Any, rows: Sequence[_Row] = ()) -> None:
        for name, restype, argtypes in rows or self._rows:
            try:
                fn = getattr(dll, name)
            except AttributeError:
                raise NativeUnsupported(f"{name} is missing from {dll._name}") from None
            fn.restype = restype
            fn.argtypes = list(argtypes)
            setattr(self, name, fn)


class Libc(_Bound):
    """The libc functions the stack machinery calls."""

    mmap: Any
    munmap: Any
    mprotect: Any
    getcontext: Any
    pthread_getspecific: Any
    pthread_setspecific: Any

    _rows = (
        ("munmap", c_int, (c_void_p, c_size_t)),
        ("pthread_getspecific", c_void_p, (c_uint,)),
        ("pthread_setspecific", c_int, (c_uint, c_void_p)),
    )
    #: the calls whose failures we explain with errno (``ctypes.get_errno()``)
    _errno_rows = (
        ("mmap", c_void_p, (c_void_p, c_size_t, c_int, c_int, c_int, c_long)),
        ("mprotect", c_int, (c_void_p, c_size_t, c_int)),
        ("getcontext", c_int, (c_void_p,)),
    )

    def __init__(self) -> None:
        # Two handles on the same libc. ``use_errno`` keeps ctypes' errno cell in the
        # thread state's dict: a call of that kind from a thread's exit finaliser (a
        # stack's munmap) re-created the dict CPython had just cleared, leaking 4
        # blocks per thread on 3.9-3.12, and costs a dict lookup per call on the
        # hot path (swapcontext). Only setting up a stack wants errno.
        self.dll = ctypes.CDLL("libc.so.6")
        self._bind(self.dll)
        self._bind(ctypes.CDLL("libc.so.6", use_errno=True), self._errno_rows)
        # variadic: makecontext(ucp, fn, argc, ...); arguments are passed as uint64
        self.makecontext = self.dll.makecontext
        self.makecontext.restype = None
        # swapcontext without argtypes: called with ctypes buffers, which pass as
        # pointers, on the hottest paths (no from_param conversion)
        self.swapcontext = self.dll.swapcontext
        self.swapcontext.restype = c_int
        self.swapcontext_address = address_of(self.swapcontext)
        self.pthread_setspecific_address = address_of(self.dll.pthread_setspecific)
        # calls its comparison function once when nmemb is 1 and never when it is 0:
        # the one conditional call a call chain can make (see _gilguard)
        self.bsearch_address = address_of(self.dll.bsearch)
        # a side-effect free function, for C callbacks that must do nothing
        self.noop_address = address_of(self.dll.getpagesize)


_FFI_NAMES = ("libffi.so.8", "libffi.so.7", "libffi.so.6")


def _loaded_libffi() -> str | None:
    """The libffi ctypes itself uses, if /proc says which."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rsplit(" ", 1)[-1].strip()
                if "/libffi.so" in path:
                    return path
    except OSError:
        pass
    return None


class Libffi(_Bound):
    """``ffi_prep_cif``/``ffi_call``: a C-level call whose result lands in memory."""

    ffi_prep_cif: Any

    FFI_DEFAULT_ABI = 2  # FFI_UNIX64 on x86_64
    _rows = (("ffi_prep_cif", c_int, (c_void_p, c_int, c_uint, c_void_p, c_void_p)),)

    def __init__(self) -> None:
        names = [n for n in (_loaded_libffi(), *_FFI_NAMES, ctypes.util.find_library("ffi")) if n]
        errors = []
        for name in names:
            try:
                self.dll = ctypes.CDLL(name)
                break
            except OSError as exc:
                errors.append(f"{name}: {exc}")
        else:
            raise NativeUnsupported("libffi not found: " + "; ".join(errors))
        self._bind(self.dll)
        self.ffi_call_address = address_of(self.dll.ffi_call)
        self.type_pointer = self._type("ffi_type_pointer")
        self.type_sint32 = self._type("ffi_type_sint32")
        self.type_uint64 = self._type("ffi_type_uint64")

    def _type(self, name: str) -> int:
        return ctypes.addressof(ctypes.c_char.in_dll(self.dll, name))


class PyApi(_Bound):
    """The CPython C API calls, through ``pythonapi`` (which holds the GIL)."""

    PyInterpreterState_Get: Any
    PyThreadState_Get: Any
    PyThreadState_New: Any
    PyThreadState_Clear: Any
    PyThreadState_Delete: Any
    PyGILState_GetThisThreadState: Any
    PyGILState_Check: Any
    PyThreadState_GetDict: Any

    _rows = (
        ("PyInterpreterState_Get", c_void_p, ()),
        ("PyThreadState_Get", c_void_p, ()),
        ("PyThreadState_New", c_void_p, (c_void_p,)),
        ("PyThreadState_Clear", None, (c_void_p,)),
        ("PyThreadState_Delete", None, (c_void_p,)),
        ("PyGILState_GetThisThreadState", c_void_p, ()),
        ("PyGILState_Check", c_int, ()),
        # borrowed reference: a py_object restype would be decref'd as if new
        ("PyThreadState_GetDict", c_void_p, ()),
    )

    def __init__(self) -> None:
        self._bind(ctypes.pythonapi)
        self.restore_thread_address = address_of(ctypes.pythonapi.PyEval_RestoreThread)
        self.save_thread_address = address_of(ctypes.pythonapi.PyEval_SaveThread)
        self.gilstate_check_address = address_of(ctypes.pythonapi.PyGILState_Check)

    def thread_state_dict(self) -> Any:
        """The current thread state's dict (``PyThreadState_GetDict``), as a new reference."""
        ptr = self.PyThreadState_GetDict()
        return ctypes.cast(ptr, ctypes.py_object).value if ptr else None
