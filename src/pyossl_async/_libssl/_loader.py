"""Find, load and bind libssl: the one built with the libcrypto the process uses.

libssl is looked for in the directory of the libcrypto that ``_libcrypto``
loaded (the system's, or the one ``PYOSSL_ASYNC_LIBCRYPTO`` names, such as a
wheel's ``libcrypto-<hash>.so.3`` with its ``libssl-<hash>.so.3`` beside it).
A candidate is accepted only when the libcrypto functions it links against are
that same file's (checked with ``dladdr``): two libcryptos in one process would
mean two async thread-locals, two job pools and two error queues, and libssl's
jobs would be invisible to the ``"openssl"`` backend.
"""

from __future__ import annotations

import ctypes
import glob
import os
from typing import Any, Callable, Dict, List

from .._errors import BackendUnavailable
from .._libcrypto import LibCrypto, drain_errors, loaded_library_file
from ._errors import TLSCallError
from ._prototypes import CHECK_NONNULL, CHECK_ONE, CHECK_POSITIVE, CRYPTO, PROTOTYPES, Prototype

__all__ = ["LibSSL", "candidate_paths", "load_libssl"]

#: ``OPENSSL_init_ssl`` options: load libssl's and libcrypto's error strings
OPENSSL_INIT_LOAD_SSL_STRINGS = 0x00200000
OPENSSL_INIT_LOAD_CRYPTO_STRINGS = 0x00000002


def candidate_paths(crypto_path: str) -> List[str]:
    """libssl files to try for the libcrypto at ``crypto_path``, best first: the name
    that matches libcrypto's (``libcrypto.so.3`` -> ``libssl.so.3``), then any other
    ``libssl*.so*`` in the same directory."""
    directory, name = os.path.split(crypto_path)
    out: List[str] = []
    if name.startswith("libcrypto"):
        twin = os.path.join(directory, "libssl" + name[len("libcrypto") :])
        if os.path.exists(twin):
            out.append(twin)
    for path in sorted(glob.glob(os.path.join(directory or ".", "libssl*.so*"))):
        if path not in out and not path.endswith((".a", ".la")):
            out.append(path)
    return out


class LibSSL:
    """libssl, and the libcrypto functions the TLS layer needs, with every row of
    ``PROTOTYPES`` bound (attributes named after the C functions).

    ``crypto`` is the backend's :class:`~pyossl_async._libcrypto.LibCrypto` (the
    ASYNC API, the error queue); ``path`` the libssl file really loaded.
    """

    path: str
    crypto: LibCrypto
    missing: frozenset[str]

    def __init__(self, path: str, crypto: LibCrypto) -> None:
        self.crypto = crypto
        mode = getattr(os, "RTLD_LOCAL", 0)
        ssl_cdll = ctypes.CDLL(path, mode=mode)
        ssl_pydll = ctypes.PyDLL(path, mode=mode)
        crypto_cdll = ctypes.CDLL(crypto.path, mode=mode)
        crypto_pydll = ctypes.PyDLL(crypto.path, mode=mode)
        self._handles = {
            ("ssl", True): ssl_cdll,
            ("ssl", False): ssl_pydll,
            (CRYPTO, True): crypto_cdll,
            (CRYPTO, False): crypto_pydll,
        }
        self.path = _check_same_libcrypto(ssl_pydll, path, crypto)
        self._addresses: Dict[str, int] = {}
        missing = []
        for proto in PROTOTYPES:
            if not self._bind(proto):
                missing.append(proto.name)
        self.missing = frozenset(missing)

    def _bind(self, proto: Prototype) -> bool:
        handle = self._handles[(proto.lib, proto.releases_gil)]
        try:
            fn = getattr(handle, proto.name)
        except AttributeError:
            if proto.optional:
                return False
            where = self.crypto.path if proto.lib == CRYPTO else self.path
            raise BackendUnavailable(f"{where}: it has no {proto.name}") from None
        fn.restype = proto.restype
        fn.argtypes = proto.argtypes
        check = _ERRCHECKS.get(proto.check or "")
        if check is not None:
            fn.errcheck = check(self.crypto, proto.name)
        setattr(self, proto.name, fn)
        self._addresses[proto.name] = ctypes.cast(fn, ctypes.c_void_p).value or 0
        return True

    def address(self, name: str) -> int:
        """The C address of a bound function (for the bound switch)."""
        return self._addresses[name]

    def has(self, name: str) -> bool:
        return name in self._addresses

    def __getattr__(self, name: str) -> Any:  # only reached for unbound names
        raise AttributeError(f"libssl/libcrypto function {name} is not bound")

    def __repr__(self) -> str:
        return f"<LibSSL {self.path} with {self.crypto.path}>"


def _check_same_libcrypto(handle: Any, path: str, crypto: LibCrypto) -> str:
    """The real path of ``path``; BackendUnavailable unless it is a libssl whose
    libcrypto functions come from ``crypto``'s file."""
    try:
        init = handle.OPENSSL_init_ssl
    except AttributeError:
        raise BackendUnavailable(f"{path}: not a libssl (it has no OPENSSL_init_ssl)") from None
    real = loaded_library_file(ctypes.cast(init, ctypes.c_void_p).value or 0) or os.path.realpath(path)
    try:
        linked = handle.OpenSSL_version_num  # found through libssl's own dependencies
    except AttributeError:
        raise BackendUnavailable(f"{path}: links no libcrypto") from None
    linked_file = loaded_library_file(ctypes.cast(linked, ctypes.c_void_p).value or 0)
    if linked_file is None or not _same_file(linked_file, crypto.path):
        raise BackendUnavailable(
            f"{real} is linked with {linked_file or 'another libcrypto'}, not with {crypto.path} "
            f"(the libcrypto the openssl backend uses)"
        )
    return real


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _nonnull(crypto: LibCrypto, name: str) -> Callable[..., Any]:
    def errcheck(result: Any, func: Any, args: Any) -> Any:
        if not result:
            raise TLSCallError(name, drain_errors(crypto))
        return result

    return errcheck


def _one(crypto: LibCrypto, name: str) -> Callable[..., Any]:
    def errcheck(result: int, func: Any, args: Any) -> int:
        if result != 1:
            raise TLSCallError(name, drain_errors(crypto), f"returned {result}")
        return result

    return errcheck


def _positive(crypto: LibCrypto, name: str) -> Callable[..., Any]:
    def errcheck(result: int, func: Any, args: Any) -> int:
        if result <= 0:
            raise TLSCallError(name, drain_errors(crypto), f"returned {result}")
        return result

    return errcheck


_ERRCHECKS: Dict[str, Callable[[LibCrypto, str], Callable[..., Any]]] = {
    CHECK_NONNULL: _nonnull,
    CHECK_ONE: _one,
    CHECK_POSITIVE: _positive,
}


def load_libssl(crypto: LibCrypto) -> LibSSL:
    """The libssl beside ``crypto`` (initialised), or BackendUnavailable saying what was
    tried and why each candidate was refused."""
    reasons: List[str] = []
    for path in candidate_paths(crypto.path):
        try:
            lib = LibSSL(path, crypto)
        except OSError as exc:
            reasons.append(f"{path}: cannot be loaded ({exc})")
            continue
        except BackendUnavailable as exc:
            reasons.append(str(exc))
            continue
        lib.OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, None)
        return lib
    where = os.path.dirname(crypto.path) or "."
    tried = "; ".join(reasons) if reasons else f"no libssl*.so* in {where}"
    raise BackendUnavailable(f"no libssl built with {crypto.path}: {tried}")


