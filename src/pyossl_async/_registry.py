"""Choosing and loading backends: one object per name per process, loaded lazily.

Selection is strict about what was asked for. ``get_backend()`` falls back to
``"python"`` only when nothing was asked: with ``$PYOSSL_ASYNC_BACKEND`` or
``$PYOSSL_ASYNC_LIBCRYPTO`` set, a request that cannot be honoured raises, naming
the variable, its value and why, instead of quietly running something else. A
setting the library does not accept (``_settings``) is refused at the first call
here, whichever backend is asked for, for the same reason.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Dict, List, Optional, Union

from . import _settings
from ._errors import BackendUnavailable
from ._protocol import Backend, BackendArg, BackendName, WaitCtx, set_default_wait_ctx
from .backends._base import LOADED_BACKENDS, set_default_backend

__all__ = [
    "BACKEND_NAMES",
    "ENV_BACKEND",
    "ENV_LIBCRYPTO",
    "available_backends",
    "backend_problems",
    "get_backend",
    "requested_backends",
    "resolve_backend",
    "selection_reason",
]

ENV_BACKEND = _settings.ENV_BACKEND
ENV_LIBCRYPTO = _settings.ENV_LIBCRYPTO
BACKEND_NAMES = ("openssl", "python")

_lock = threading.RLock()
_loaded: Dict[str, Backend] = LOADED_BACKENDS  # (defined below the backends: see there)
_failed: Dict[str, BackendUnavailable] = {}
#: why get_backend(None) chose what it chose (for ``info``)
_selection_reason = ""


def _load_openssl() -> Backend:
    try:
        from ._libcrypto import load_libcrypto
        from ._native._abi import NativeUnsupported
        from .backends.openssl import OpenSSLBackend
    except ImportError as exc:  # an interpreter built without ctypes
        why = f"the openssl backend cannot be imported: {exc}"
        asked = _settings.libcrypto()
        raise BackendUnavailable(f"{ENV_LIBCRYPTO}={asked}: {why}" if asked else why) from exc

    crypto = load_libcrypto()
    try:
        from ._native._support import NativeSupport

        native: Optional[NativeSupport] = NativeSupport(crypto)
        error = ""
    except NativeUnsupported as exc:
        native, error = None, str(exc)
    backend = OpenSSLBackend(crypto, native, error)
    return backend


def _load_python() -> Backend:
    try:
        from .backends.python import PythonBackend
    except ImportError as exc:
        raise BackendUnavailable(f"the python backend is not available: {exc}") from exc
    return PythonBackend()


_LOADERS: Dict[str, Callable[[], Backend]] = {"openssl": _load_openssl, "python": _load_python}


def _load(name: str) -> Backend:
    backend = _loaded.get(name)  # loaded once and for good: no lock to find it again
    if backend is not None:
        return backend
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


def get_backend(name: Optional[Union[BackendName, str]] = None) -> Backend:
    """The backend called ``name``; with ``None``, the one this process should use.

    ``None`` means ``$PYOSSL_ASYNC_BACKEND`` if set; else, when
    ``$PYOSSL_ASYNC_LIBCRYPTO`` is set, ``"openssl"`` with that library, which
    must load and be able to run jobs; else ``"openssl"`` when libcrypto loads
    and can run jobs here, else ``"python"``. What the environment asks for and
    cannot be had raises ``BackendUnavailable``, naming the variable; there is no
    fallback then. Any ``PYOSSL_ASYNC_*`` setting with a value that is not
    accepted (an unknown ``$PYOSSL_ASYNC_BACKEND`` too) raises ``SettingError``,
    whatever ``name`` is.
    """
    global _selection_reason
    _settings.check()
    if name is None:
        asked = _settings.backend()
        if asked is None:
            return _default()
        try:
            backend = _load(asked)
        except BackendUnavailable as exc:
            raise BackendUnavailable(f"{ENV_BACKEND}={asked}: {exc}", exc.errors) from None
        _selection_reason = f"{ENV_BACKEND}={asked}"
        return backend
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a str or None, not {type(name).__name__}")
    if name not in _LOADERS:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKEND_NAMES)}")
    return _load(name)


def resolve_backend(backend: BackendArg, default: Optional[BackendName] = None) -> Backend:
    """The backend a ``backend=`` argument stands for; the one check every such parameter uses.

    ``None``: ``get_backend(default)``; a name: ``get_backend(name)`` (``ValueError``
    for an unknown one); an object with the backend's methods: itself. Anything
    else is a ``TypeError`` that says what is accepted.
    """
    if backend is None:
        return get_backend(default)
    if isinstance(backend, str):
        return get_backend(backend)
    if callable(getattr(backend, "start_job", None)) and callable(getattr(backend, "WaitCtx", None)):
        return backend
    raise TypeError(
        f"backend must be a backend name ({', '.join(map(repr, BACKEND_NAMES))}), a Backend or None, "
        f"not {type(backend).__name__}"
    )


def _default() -> Backend:
    global _selection_reason
    library = _settings.libcrypto()
    try:
        backend = _load("openssl")
    except BackendUnavailable as exc:
        if library is not None:
            raise  # the message names the variable, the path and why
        reason = f"fell back to python: openssl is unavailable ({exc})"
    else:
        if backend.is_capable():
            _selection_reason = "openssl loads and is capable"
            if library is not None:
                _selection_reason = f"{ENV_LIBCRYPTO}={library}: {_selection_reason}"
            return backend
        why = getattr(backend, "native_error", "") or "ASYNC_is_capable() is false"
        if library is not None:
            raise BackendUnavailable(
                f"{ENV_LIBCRYPTO}={library}: {backend.openssl_version} "
                f"({getattr(backend, 'library_path', library)}) loads but cannot run jobs here: {why}"
            )
        reason = f"fell back to python: openssl cannot run jobs here ({why})"
    python = _load("python")
    _selection_reason = reason
    return python


def requested_backends() -> Dict[str, str]:
    """The backends the environment asks for, each with the setting that asks.

    ``{"openssl": "PYOSSL_ASYNC_LIBCRYPTO=/x/libcrypto.so.3"}``: what a command
    must be able to run, or refuse to run. ``SettingError`` for an unknown
    ``$PYOSSL_ASYNC_BACKEND``.
    """
    out: Dict[str, str] = {}
    asked = _settings.backend()
    if asked is not None:
        out[asked] = f"{ENV_BACKEND}={asked}"
    library = _settings.libcrypto()
    if library is not None:
        out.setdefault("openssl", f"{ENV_LIBCRYPTO}={library}")
    return out


def selection_reason() -> str:
    """Why the last ``get_backend(None)`` returned the backend it did ("" before any)."""
    return _selection_reason


def available_backends() -> List[str]:
    """The names of the backends that load in this process (``SettingError`` for a
    setting that is not accepted)."""
    _settings.check()
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


def _default_wait_ctx() -> WaitCtx:
    """``pa.WaitCtx()``: a context of the default backend."""
    return get_backend().WaitCtx()


set_default_wait_ctx(_default_wait_ctx)
set_default_backend(get_backend)
