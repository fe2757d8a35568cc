"""Find, load and bind libcrypto.

Loading happens once per process (see ``_registry``); this module only knows how.
``PYOSSL_ASYNC_LIBCRYPTO`` names the one library to load, and a failure to load
it is reported as such (the variable, the path and why), never replaced by
another library; otherwise the system's ``crypto`` library is tried, then
versioned names.

A library says what it is before anything is bound: a file that is not a
libcrypto, or a libcrypto older than 3.0, is refused with its version named.
Once loaded, ``LibCrypto.path`` is the real path of the file the symbols come
from (``dladdr``), and ``library_name`` what was asked for.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import Any, Callable, Optional

from .. import _settings
from .._errors import AsyncError, BackendUnavailable
from ._dlinfo import loaded_library_file
from ._errqueue import drain_errors
from ._prototypes import CHECK_NONNULL, CHECK_TRUE, PROTOTYPES, V3_0, Prototype

__all__ = [
    "ENV_LIBCRYPTO",
    "LibCrypto",
    "LibraryRejected",
    "candidate_paths",
    "load_libcrypto",
    "version_name",
]

ENV_LIBCRYPTO = _settings.ENV_LIBCRYPTO
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
    override = _settings.libcrypto()
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


class LibraryRejected(BackendUnavailable):
    """A library that loaded but is not a usable libcrypto; ``reason`` says why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def version_name(number: int, text: Optional[str] = None) -> str:
    """``"OpenSSL 1.1.1w"`` from ``OpenSSL_version_num()`` (and its version text, if any).

    The text's first two words win when there is one (LibreSSL reports an
    OpenSSL-like number); otherwise the name is decoded from the number
    (``MNNFFPPS`` before 3.0, ``MNN00PP0`` since).
    """
    words = (text or "").split()
    if len(words) >= 2:
        return " ".join(words[:2])
    major = number >> 28
    minor = (number >> 20) & 0xFF
    if major >= 3:
        return f"OpenSSL {major}.{minor}.{(number >> 4) & 0xFF}"
    patch = (number >> 4) & 0xFF
    letter = chr(ord("a") + patch - 1) if 1 <= patch <= 26 else ""
    return f"OpenSSL {major}.{minor}.{(number >> 12) & 0xFF}{letter}"


def _identify(handle: ctypes.CDLL, path: str) -> int:
    """The library's version number; LibraryRejected unless it is a libcrypto 3.0+."""

    def text_of(func: str) -> Optional[str]:
        try:
            fn = getattr(handle, func)
        except AttributeError:
            return None
        fn.restype, fn.argtypes = ctypes.c_char_p, (ctypes.c_int,)
        raw = fn(OPENSSL_VERSION_TEXT)
        return raw.decode("ascii", "replace") if raw else None

    try:
        version_num = handle.OpenSSL_version_num
    except AttributeError:
        try:
            ssleay = handle.SSLeay  # OpenSSL 1.0.2 and older
        except AttributeError:
            raise LibraryRejected(path, "not a libcrypto (it has no OpenSSL_version_num)") from None
        ssleay.restype, ssleay.argtypes = ctypes.c_ulong, ()
        found = version_name(int(ssleay()), text_of("SSLeay_version"))
        raise LibraryRejected(path, f"{found} found, 3.0+ needed") from None
    version_num.restype, version_num.argtypes = ctypes.c_ulong, ()
    number = int(version_num())
    if number < V3_0:
        found = version_name(number, text_of("OpenSSL_version"))
        raise LibraryRejected(path, f"{found} found, 3.0+ needed")
    return number


class LibCrypto:
    """One loaded libcrypto with every prototype of the table bound.

    Attributes named after C functions are the bound ctypes functions.
    ``missing`` lists optional functions this version lacks. ``path`` is the
    real path of the file that was loaded (found with ``dladdr``; what was
    asked for when that cannot be told), ``library_name`` what was asked for.

    Raises ``OSError`` when the dynamic loader cannot load ``path`` and
    ``LibraryRejected`` when it is not a libcrypto 3.0+.
    """

    path: str
    library_name: str
    version_number: int
    version_text: str
    missing: frozenset[str]

    def __init__(self, path: str) -> None:
        self.library_name = path
        self.path = path
        mode = getattr(os, "RTLD_LOCAL", 0)
        self._cdll = ctypes.CDLL(path, mode=mode)  # releases the GIL around calls
        self._pydll = ctypes.PyDLL(path, mode=mode)  # keeps it
        _identify(self._pydll, path)
        self._addresses: dict[str, int] = {}
        missing = []
        for proto in PROTOTYPES:
            if not self._bind(proto):
                missing.append(proto.name)
        self.missing = frozenset(missing)
        self.version_number = int(self.OpenSSL_version_num())
        text = self.OpenSSL_version(OPENSSL_VERSION_TEXT)
        self.version_text = text.decode("ascii", "replace") if text else "unknown"
        real = loaded_library_file(self.address("OpenSSL_version"))
        if real is None:
            real = os.path.realpath(path) if os.sep in path else path
        self.path = real

    def _bind(self, proto: Prototype) -> bool:
        handle = self._cdll if proto.releases_gil else self._pydll
        try:
            fn = getattr(handle, proto.name)
        except AttributeError:
            if proto.optional:
                return False
            raise LibraryRejected(self.path, f"it has no {proto.name}: not an OpenSSL 3.x libcrypto") from None
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


def _load_error(path: str, exc: OSError) -> str:
    """Why the dynamic loader could not load ``path``, in a few words."""
    if os.sep in path:
        if not os.path.lexists(path):
            return "no such file"
        if not os.path.exists(path):
            return "a broken symbolic link"
        if os.path.isdir(path):
            return "a directory, not a shared library"
    text = str(exc)
    if text.startswith(path + ": "):
        text = text[len(path) + 2 :]
    return f"cannot be loaded ({text})"


def _open(path: str) -> LibCrypto:
    """Load and initialise one library; LibraryRejected saying why it cannot be used."""
    try:
        lib = LibCrypto(path)
    except OSError as exc:
        raise LibraryRejected(path, _load_error(path, exc)) from None
    # 3.0.x-3.5.x read the async thread-local through a key that is 0 until
    # this has run; ASYNC_pause_job() before it reads another library's key.
    # Error strings are loaded so that drained errors carry their text.
    if not lib.OPENSSL_init_crypto(OPENSSL_INIT_ASYNC | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, None):
        raise LibraryRejected(path, "OPENSSL_init_crypto(OPENSSL_INIT_ASYNC) failed")
    return lib


def _open_override(path: str) -> LibCrypto:
    """The library ``$PYOSSL_ASYNC_LIBCRYPTO`` names, and nothing else."""
    try:
        lib = _open(path)
    except LibraryRejected as exc:
        raise BackendUnavailable(f"{ENV_LIBCRYPTO}={path}: {exc.reason}") from None
    if os.sep in path:
        # dlsym also searches a library's dependencies: libssl "has" libcrypto's
        # functions. Only the file that really holds them is accepted.
        try:
            same = os.path.samefile(path, lib.path)
        except OSError:
            same = True  # cannot tell: trust the loader
        if not same:
            raise BackendUnavailable(
                f"{ENV_LIBCRYPTO}={path}: not a libcrypto (its OpenSSL functions come from "
                f"{lib.path}, a library it depends on; name that file instead)"
            )
    return lib


def load_libcrypto() -> LibCrypto:
    """Load the first usable libcrypto 3.x, or raise BackendUnavailable saying why.

    With ``$PYOSSL_ASYNC_LIBCRYPTO`` set, only that library is tried, and the
    message names the variable, the path and why it cannot be used.
    """
    override = _settings.libcrypto()
    if override:
        return _open_override(override)
    reasons = []
    for path in candidate_paths():
        try:
            return _open(path)
        except LibraryRejected as exc:
            reasons.append(f"{path}: {exc.reason}")
    raise BackendUnavailable("no usable libcrypto; tried: " + "; ".join(reasons))
