"""Find, load and bind libcrypto.

Loading happens once per process (see ``_registry``); this module only knows how.
``PYOSSL_ASYNC_LIBCRYPTO`` names the one library to load; otherwise the system's
``crypto`` library is tried, then versioned names.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import Any, Callable

from .._errors import AsyncError, BackendUnavailable
from ._errqueue import drain_errors
from ._prototypes import CHECK_NONNULL, CHECK_TRUE, PROTOTYPES, V3_0, Prototype

__all__ = ["ENV_LIBCRYPTO", "LibCrypto", "candidate_paths", "load_libcrypto"]

ENV_LIBCRYPTO = "PYOSSL_ASYNC_LIBCRYPTO"
OPENSSL_INIT_ASYNC = 0x00000100
OPENSSL_INIT_LOAD_CRYPTO_STRINGS = 0x00000002
OPENSSL_VERSION_TEXT = 0  # OpenSSL_version(OPENSSL_VERSION)

_VERSIONED = {
    "linux": ("libcrypto.so.3", "libcrypto.so"),
    "darwin": ("libcrypto.3.dylib", "libcrypto.dylib"),
    "win32": ("libcrypto-3-x64.dll", "libcrypto-3.dll"),
}


def candidate_paths() -> list[str]:
    """Library names or paths to try, in order."""
    override = os.environ.get(ENV_LIBCRYPTO)
    if override:
        return [override]
    out: list[str] = []
    found = ctypes.util.find_library("crypto")
    if found:
        out.append(found)
    plat = "linux" if sys.platform.startswith("linux") else sys.platform
    for name in _VERSIONED.get(plat, _VERSIONED["linux"]):
        if name not in out:
            out.append(name)
    return out


class LibCrypto:
    """One loaded libcrypto with every prototype of the table bound.

    Attributes named after C functions are the bound ctypes functions.
    ``missing`` lists optional functions this version lacks.
    """

    path: str
    version_number: int
    version_text: str
    missing: frozenset[str]

    def __init__(self, path: str) -> None:
        self.path = path
        mode = getattr(os, "RTLD_LOCAL", 0)
        self._cdll = ctypes.CDLL(path, mode=mode)  # releases the GIL around calls
        self._pydll = ctypes.PyDLL(path, mode=mode)  # keeps it
        self._addresses: dict[str, int] = {}
        missing = []
        for proto in PROTOTYPES:
            if not self._bind(proto):
                missing.append(proto.name)
        self.missing = frozenset(missing)
        self.version_number = int(self.OpenSSL_version_num())
        text = self.OpenSSL_version(OPENSSL_VERSION_TEXT)
        self.version_text = text.decode("ascii", "replace") if text else "unknown"

    def _bind(self, proto: Prototype) -> bool:
        handle = self._cdll if proto.releases_gil else self._pydll
        try:
            fn = getattr(handle, proto.name)
        except AttributeError:
            if proto.optional:
                return False
            raise BackendUnavailable(
                f"{self.path} has no {proto.name}: not an OpenSSL 3.x libcrypto"
            ) from None
        fn.restype = proto.restype
        fn.argtypes = proto.argtypes
        check = _ERRCHECKS.get(proto.check or "")
        if check is not None:
            fn.errcheck = check(self, proto.name)
        setattr(self, proto.name, fn)
        self._addresses[proto.name] = ctypes.cast(fn, ctypes.c_void_p).value or 0
        return True

    def address(self, name: str) -> int:
        """The C address of a bound function (for call chains built in C)."""
        return self._addresses[name]

    def has(self, name: str) -> bool:
        return name in self._addresses

    def __getattr__(self, name: str) -> Any:  # only reached for unbound names
        raise AttributeError(f"libcrypto function {name} is not bound ({self.path})")

    def __repr__(self) -> str:
        return f"<LibCrypto {self.version_text!r} at {self.path}>"


def _nonnull(lib: LibCrypto, name: str) -> Callable[..., Any]:
    def errcheck(result: Any, func: Any, args: Any) -> Any:
        if not result:
            raise AsyncError(f"{name} failed", drain_errors(lib))
        return result

    return errcheck


def _true(lib: LibCrypto, name: str) -> Callable[..., Any]:
    def errcheck(result: int, func: Any, args: Any) -> int:
        if not result:
            raise AsyncError(f"{name} failed", drain_errors(lib))
        return result

    return errcheck


_ERRCHECKS: dict[str, Callable[[LibCrypto, str], Callable[..., Any]]] = {
    CHECK_NONNULL: _nonnull,
    CHECK_TRUE: _true,
}


def load_libcrypto() -> LibCrypto:
    """Load the first usable libcrypto 3.x, or raise BackendUnavailable saying why."""
    reasons = []
    for path in candidate_paths():
        try:
            lib = LibCrypto(path)
        except OSError as exc:
            reasons.append(f"{path}: {exc}")
            continue
        except BackendUnavailable as exc:
            reasons.append(f"{path}: {exc}")
            continue
        if lib.version_number < V3_0:
            reasons.append(f"{path}: {lib.version_text} is older than OpenSSL 3.0")
            continue
        # 3.0.x-3.5.x read the async thread-local through a key that is 0 until
        # this has run; ASYNC_pause_job() before it reads another library's key.
        # Error strings are loaded so that drained errors carry their text.
        if not lib.OPENSSL_init_crypto(OPENSSL_INIT_ASYNC | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, None):
            reasons.append(f"{path}: OPENSSL_init_crypto(OPENSSL_INIT_ASYNC) failed")
            continue
        return lib
    raise BackendUnavailable("no usable libcrypto; tried: " + "; ".join(reasons))
