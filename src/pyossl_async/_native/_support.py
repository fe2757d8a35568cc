"""What the openssl backend's job machinery needs once per process.

``NativeSupport`` holds the libraries (libc, libffi, the CPython C API), the ABI,
the GIL-state binding, the job switch (native or call chain) and where job
stacks come from, each chosen once, at load, with the reason (``info``).
"""

from __future__ import annotations

import ctypes
import sys
from ctypes import c_int, c_void_p
from typing import TYPE_CHECKING, Any, Optional

from .. import _settings
from ._abi import NativeUnsupported, check_interpreter, detect_abi
from ._chain_runner import ChainRunner
from ._libs import Libc, Libffi, PyApi, address_of
from ._openssl_stacks import OpenSSLStacks
from ._runner import C_STACK_PER_CALL, JobRunner, NativeRunner
from ._switch import NativeSwitch, load_switch
from ._tstate import AsyncExceptions, GilStateBinding

if TYPE_CHECKING:
    from .._libcrypto import LibCrypto

__all__ = ["DEFAULT_STACK_SIZE", "ENV_STACK_MODE", "ENV_STACK_SIZE", "ENV_SWITCH", "NativeSupport"]

#: Enough for the default recursion limit of Python calls on 3.9 (about 1 KiB of
#: C stack per call there) and for 3.13's C recursion limit (deep repr/json),
#: with margin. Untouched pages cost no memory (MAP_NORESERVE).
DEFAULT_STACK_SIZE = 4 << 20
ENV_STACK_SIZE = _settings.ENV_STACK_SIZE
ENV_STACK_MODE = _settings.ENV_STACK_MODE
ENV_SWITCH = _settings.ENV_SWITCH


class NativeSupport:
    """Process-wide machinery for the openssl backend (created once, on load)."""

    def __init__(self, crypto: LibCrypto) -> None:
        check_interpreter()
        self.abi = detect_abi()
        self.libc = Libc()
        self.ffi = Libffi()
        self.api = PyApi()
        self.binding = GilStateBinding(self.api, self.libc)
        #: raising JobCancelled in a job paused inside C code (see _tstate)
        self.async_exc = AsyncExceptions(self.api)
        self.crypto = crypto
        self.stack_size = _settings.stack_size() or DEFAULT_STACK_SIZE
        #: ``$PYOSSL_ASYNC_DEBUG``: verify the thread-state binding at every switch (slow)
        self.debug = _settings.debug()
        self.start_job_address = crypto.address("ASYNC_start_job")
        # untyped fast bindings for the two hottest calls (typed ones are in the table)
        fast = ctypes.CDLL(crypto.path)
        self.fast_start_job = fast.ASYNC_start_job
        self.fast_start_job.restype = c_int
        self.fast_pause_job = fast.ASYNC_pause_job
        self.fast_pause_job.restype = c_int
        # keeps the GIL (a ctypes.PyDLL function); returns an int or None
        self.fast_current_job = ctypes.PyDLL(crypto.path).ASYNC_get_current_job
        self.fast_current_job.restype = c_void_p
        # PyGILState_Check through a GIL-releasing binding: must answer 0 (see _gilguard)
        self.unlocked_gil_check = ctypes.CDLL(None).PyGILState_Check
        self.unlocked_gil_check.restype = c_int
        #: how jobs are switched into: the native switch (_switch), else the call chain
        self.switch: Optional[NativeSwitch] = None
        self.switch_reason = self._choose_switch(crypto)
        self.openssl_stacks: Optional[OpenSSLStacks] = None
        self.stack_mode, self.stack_mode_reason = self._choose_stack_mode(crypto)
        #: the deepest recursion limit a job stack holds (0: Python calls use no C stack)
        self.depth_budget = self.stack_size // C_STACK_PER_CALL if sys.version_info < (3, 11) else 0

    def _choose_switch(self, crypto: LibCrypto) -> str:
        """Load the native switch unless told not to; why the chosen one runs."""
        mode = _settings.switch_mode()
        if mode == "chain":
            return f"{ENV_SWITCH}=chain"
        try:
            self.switch = load_switch(
                self.libc, self.abi, self.api, self.binding.key, crypto.address("ASYNC_get_current_job")
            )
        except NativeUnsupported as exc:
            if mode == "native":
                raise NativeUnsupported(f"{ENV_SWITCH}=native: {exc}") from None
            return f"call chain: {exc}"
        return self.switch.info()

    def new_runner(self, switch: Optional[str] = None) -> JobRunner:
        """The calling OS thread's runner, with the switch this process uses (``switch``:
        ``"chain"`` forces the call chain for this thread, as the benchmark does)."""
        if self.switch is not None and switch != "chain":
            return NativeRunner(self)
        return ChainRunner(self)

    def _choose_stack_mode(self, crypto: LibCrypto) -> tuple[str, str]:
        forced = _settings.stack_mode()
        if forced == "nested":
            return "nested", f"{ENV_STACK_MODE}=nested"
        if not crypto.has("ASYNC_set_mem_functions"):
            if forced == "openssl":
                raise NativeUnsupported("ASYNC_set_mem_functions needs OpenSSL 3.2+")
            return "nested", "OpenSSL < 3.2 has no ASYNC_set_mem_functions"
        stacks = OpenSSLStacks(self)
        if crypto.ASYNC_set_mem_functions(address_of(stacks.callback), self.libc.noop_address):
            self.openssl_stacks = stacks
            return "openssl", "ASYNC_set_mem_functions accepted our stack allocator"
        if forced == "openssl":
            raise NativeUnsupported("ASYNC_set_mem_functions refused: a job already ran")
        return "nested", "ASYNC_set_mem_functions returned 0: a fibre stack already exists"

    def info(self) -> dict[str, Any]:
        return {
            "abi": self.abi.name,
            "gilstate_binding": self.binding.kind,
            "stack_mode": self.stack_mode,
            "stack_mode_reason": self.stack_mode_reason,
            "stack_size": self.stack_size,
            "switch": "native" if self.switch is not None else "chain",
            "switch_reason": self.switch_reason,
            "cancel_inside_c": self.async_exc.available or f"unavailable: {self.async_exc.reason}",
        }
