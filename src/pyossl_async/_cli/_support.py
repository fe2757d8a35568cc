"""What every command of ``python -m pyossl_async`` shares: refusals as one-line
``CliError`` reasons, output-path checks, which backend ran.

Kept apart from ``_cli`` (the parser and the dispatch), so that the commands'
own modules (bench, conformance) can use it without importing the dispatcher
that imports them.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

from .. import _registry
from .._errors import BackendUnavailable, plural

__all__ = ["CliError", "check_output_path", "describe_backend", "get_backend_or_refuse", "plural", "require_backends"]


class CliError(Exception):
    """A one-line reason why a command cannot run as asked; ``main`` prints it."""


def check_output_path(option: str, path: str) -> None:
    """Refuse (CliError) an output file that could not be written, before any work.

    The directory must exist, and the file must be writable or creatable there.
    A file that does not exist yet is created and removed again to find out, so
    the answer holds whatever the permissions model (root, read-only mounts).
    """
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CliError(f"{option} {path}: is a directory")
    if not os.path.isdir(directory):
        raise CliError(f"{option} {path}: no such directory {directory}")
    try:
        if os.path.exists(path):
            with open(path, "a"):
                pass
        else:
            with open(path, "x"):
                pass
            os.unlink(path)
    except OSError as exc:
        raise CliError(f"{option} {path}: cannot write there ({exc.strerror or exc})") from None


def get_backend_or_refuse(name: Optional[str]) -> Any:
    """``_registry.get_backend(name)``, its refusals as CliError."""
    try:
        return _registry.get_backend(name)
    except (BackendUnavailable, ValueError) as exc:
        raise CliError(str(exc)) from None


def require_backends(requested: Dict[str, str]) -> None:
    """Each backend asked for (name -> the setting that asks) must load and run jobs, else CliError."""
    for name, asked in requested.items():
        try:
            backend = _registry.get_backend(name)
        except BackendUnavailable as exc:
            why = str(exc)
            raise CliError(why if why.startswith(asked) else f"{asked}: backend {name} is unavailable: {why}") from None
        if not backend.is_capable():
            why = getattr(backend, "native_error", "") or "ASYNC_is_capable() is false"
            raise CliError(f"{asked}: backend {describe_backend(backend)} loads but cannot run jobs here: {why}")


def describe_backend(backend: Any) -> str:
    """``"openssl (OpenSSL 3.0.19 27 Jan 2026, /usr/lib/.../libcrypto.so.3)"``, ``"python (pure Python)"``."""
    version = getattr(backend, "openssl_version", None)
    if version is None:
        return f"{backend.name} (pure Python)"
    return f"{backend.name} ({version}, {getattr(backend, 'library_path', '?')})"
