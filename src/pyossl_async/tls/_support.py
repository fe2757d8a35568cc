"""What the TLS layer needs once per process: the openssl backend's native machinery,
libssl beside its libcrypto, and where key operations run (nested stacks or not).

Loaded on first use, under a lock; a failure says why in one ``BackendUnavailable``.
"""

from __future__ import annotations

import ctypes
import threading
from typing import TYPE_CHECKING, Any, Callable, List, Optional

from .._errors import BackendUnavailable

if TYPE_CHECKING:
    from .._libcrypto import LibCrypto
    from .._libssl import LibSSL
    from .._native._support import NativeSupport
    from .._native._switch import NativeSwitch

__all__ = ["ON_LOAD", "TLSSupport", "get_support"]

#: what the modules above this one do with the process's support once it is made
#: (they add to it when imported, so this module imports none of them)
ON_LOAD: List[Callable[[TLSSupport], None]] = []


class TLSSupport:
    """The process-wide pieces every connection shares."""

    def __init__(self, backend: Any) -> None:
        from .._libssl import load_libssl

        native: Optional[NativeSupport] = getattr(backend, "native", None)
        if native is None:
            why = getattr(backend, "native_error", "") or "no native support"
            raise BackendUnavailable(f"pyossl_async.tls needs the openssl backend's job machinery: {why}")
        if not backend.is_capable():
            raise BackendUnavailable("pyossl_async.tls: ASYNC_is_capable() is false here")
        self.backend = backend
        self.native: NativeSupport = native
        self.crypto: LibCrypto = backend.crypto
        self.lib: LibSSL = load_libssl(self.crypto)
        #: the machine-code switch, or None: bound calls then run through call chains
        self.switch: Optional[NativeSwitch] = native.switch
        #: key operations hop onto a stack of ours: libssl's fibres are OpenSSL's own
        #: 32 KiB stacks unless ``ASYNC_set_mem_functions`` gave it ours (3.2+), and a
        #: call chain runs libssl on a helper stack of 256 KiB
        self.nested = native.stack_mode != "openssl" or native.switch is None
        # ASYNC_get_current_job keeping the GIL (PyDLL): the cheapest "inside a job?"
        self.current_job = native.fast_current_job
        self.pause_job = native.fast_pause_job
        crypto_py = ctypes.PyDLL(self.crypto.path)
        self.get_wait_ctx = crypto_py.ASYNC_get_wait_ctx
        self.get_wait_ctx.restype = ctypes.c_void_p
        self.get_wait_ctx.argtypes = [ctypes.c_void_p]
        for hook in ON_LOAD:
            hook(self)

    def info(self) -> dict[str, Any]:
        return {
            "libssl": self.lib.path,
            "libcrypto": self.crypto.path,
            "openssl_version": self.crypto.version_text,
            "switch": "native" if self.switch is not None else "chain",
            "key_operation_stacks": "ours, entered from libssl's fibre" if self.nested else "libssl's fibres (ours)",
        }


_lock = threading.Lock()
_support: Optional[TLSSupport] = None


def get_support() -> TLSSupport:
    """The process's ``TLSSupport`` (made on first use); ``BackendUnavailable`` says why not."""
    global _support
    support = _support
    if support is not None:
        return support
    from .._registry import get_backend

    backend = get_backend("openssl")
    with _lock:
        if _support is None:
            _support = TLSSupport(backend)
        return _support
