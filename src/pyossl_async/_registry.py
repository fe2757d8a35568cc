"""Choosing and loading backends: one object per name per process, loaded lazily."""

from __future__ import annotations

import os
import threading
from typing import Callable, Dict, List, Optional

from ._errors import BackendUnavailable
from ._protocol import Backend

__all__ = [
    "BACKEND_NAMES",
    "ENV_BACKEND",
    "available_backends",
    "backend_problems",
    "get_backend",
    "selection_reason",
]

ENV_BACKEND = "PYOSSL_ASYNC_BACKEND"
BACKEND_NAMES = ("openssl", "python")

_lock = threading.RLock()
_loaded: Dict[str, Backend] = {}
_failed: Dict[str, BackendUnavailable] = {}
#: why get_backend(None) chose what it chose (for ``info``)
_selection_reason = ""


def _load_openssl() -> Backend:
    try:
        from ._libcrypto import load_libcrypto
        from ._native._abi import NativeUnsupported
        from .backends.openssl import OpenSSLBackend
    except ImportError as exc:  # an interpreter built without ctypes
        raise BackendUnavailable(f"the openssl backend cannot be imported: {exc}") from exc

    crypto = load_libcrypto()
    try:
        from ._native._runner import NativeSupport

        native: Optional[NativeSupport] = NativeSupport(crypto)
        error = ""
    except NativeUnsupported as exc:
        native, error = None, str(exc)
    return OpenSSLBackend(crypto, native, error)


def _load_python() -> Backend:
    try:
        from .backends.python import PythonBackend
    except ImportError as exc:
        raise BackendUnavailable(f"the python backend is not available: {exc}") from exc
    return PythonBackend()


_LOADERS: Dict[str, Callable[[], Backend]] = {"openssl": _load_openssl, "python": _load_python}


def _load(name: str) -> Backend:
    with _lock:
        backend = _loaded.get(name)
        if backend is not None:
            return backend
        failed = _failed.get(name)
        if failed is not None:
            raise BackendUnavailable(str(failed), failed.errors)
        try:
            backend = _LOADERS[name]()
        except BackendUnavailable as exc:
            _failed[name] = exc
            raise
        _loaded[name] = backend
        return backend


def get_backend(name: Optional[str] = None) -> Backend:
    """The backend called ``name``; with ``None``, the one this process should use.

    ``None`` means ``$PYOSSL_ASYNC_BACKEND`` if set, else ``"openssl"`` when
    libcrypto loads and can run jobs here, else ``"python"``.
    """
    global _selection_reason
    from_env = name is None
    if name is None:
        name = os.environ.get(ENV_BACKEND) or None
        if name is None:
            return _default()
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a str or None, not {type(name).__name__}")
    if name not in _LOADERS:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKEND_NAMES)}")
    backend = _load(name)
    if from_env:
        _selection_reason = f"{ENV_BACKEND}={name}"
    return backend


def _default() -> Backend:
    global _selection_reason
    try:
        backend = _load("openssl")
    except BackendUnavailable as exc:
        reason = f"fell back to python: openssl is unavailable ({exc})"
    else:
        if backend.is_capable():
            _selection_reason = "openssl loads and is capable"
            return backend
        why = getattr(backend, "native_error", "") or "ASYNC_is_capable() is false"
        reason = f"fell back to python: openssl cannot run jobs here ({why})"
    python = _load("python")
    _selection_reason = reason
    return python


def selection_reason() -> str:
    """Why the last ``get_backend(None)`` returned the backend it did ("" before any)."""
    return _selection_reason


def available_backends() -> List[str]:
    """The names of the backends that load in this process."""
    out = []
    for name in BACKEND_NAMES:
        try:
            _load(name)
        except BackendUnavailable:
            continue
        out.append(name)
    return out


def backend_problems() -> Dict[str, str]:
    """Why each backend that failed to load failed (for ``info``)."""
    available_backends()
    return {name: str(exc) for name, exc in _failed.items()}


def _after_fork_in_child() -> None:
    for backend in _loaded.values():
        hook = getattr(backend, "_after_fork_in_child", None)
        if hook is not None:
            hook()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
