"""A prepared libffi call: arguments in memory cells, the result written to memory.

The call chain runs C functions with no Python in between, so nothing could
pick up a C return value; ``ffi_call`` stores it where Python can read it after.
"""

from __future__ import annotations

import ctypes
from ctypes import c_int64, c_uint64, c_void_p
from typing import Sequence

from ._abi import NativeUnsupported
from ._libs import Libffi

__all__ = ["FfiCall"]

_CIF_BYTES = 128  # sizeof(ffi_cif) is 32 on x86_64; room to spare


class FfiCall:
    """``ffi_call(cif, fn, &result, argv)`` with ``argv[i] -> cells[i]``."""

    def __init__(self, ffi: Libffi, fn: int, result_type: int, arg_types: Sequence[int]) -> None:
        n = len(arg_types)
        self._types = (c_void_p * n)(*arg_types)
        self.cif = ctypes.create_string_buffer(_CIF_BYTES)
        status = ffi.ffi_prep_cif(self.cif, ffi.FFI_DEFAULT_ABI, n, result_type, self._types)
        if status != 0:
            raise NativeUnsupported(f"ffi_prep_cif failed with status {status}")
        self.fn = fn
        self.cells = (c_uint64 * n)()
        base = ctypes.addressof(self.cells)
        self.argv = (c_void_p * n)(*[base + 8 * i for i in range(n)])
        # libffi widens integer results to a full register (ffi_arg)
        self.result = c_int64(0)
        self.ffi_call_address = ffi.ffi_call_address

    @property
    def step_args(self) -> tuple[int, int, int, int]:
        """The four arguments of the ``ffi_call`` step in a call chain."""
        return (
            ctypes.addressof(self.cif),
            self.fn,
            ctypes.addressof(self.result),
            ctypes.addressof(self.argv),
        )
