"""Compiling and running C programs against the libcrypto file the openssl backend loaded.

For interop tests that compare what C does with what Python does: a C program
built here links the *same file* (resolved path, with an rpath that wins over
``LD_LIBRARY_PATH``), so the two cannot silently use different libraries.
Builds are cached (see :mod:`._cbuild`); a C compiler and the OpenSSL headers
are needed when a program is built, never at run time.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any, Optional, Sequence

from .._errors import AsyncError
from .._protocol import BackendArg
from .._registry import resolve_backend
from ._cbuild import Toolchain, build, find_toolchain, loaded_library_file

__all__ = ["ToolchainUnavailable", "backend_libcrypto", "compile_c", "run_c", "toolchain_for"]


class ToolchainUnavailable(AsyncError):
    """C code cannot be built here: no compiler, no OpenSSL headers, or no openssl backend."""


def backend_libcrypto(backend: BackendArg = None) -> str:
    """The real path of the libcrypto file the openssl backend loaded."""
    be: Any = resolve_backend(backend, "openssl")
    crypto = getattr(be, "crypto", None)
    if crypto is None:
        raise ToolchainUnavailable(f"C programs need the openssl backend, not {be.name!r}")
    path = loaded_library_file(crypto.address("OpenSSL_version"))
    if path is None:
        raise ToolchainUnavailable(f"cannot tell which file {crypto.path!r} was loaded from")
    return path


def toolchain_for(backend: BackendArg = None) -> Toolchain:
    """A working C toolchain that links the backend's libcrypto file."""
    tc, why = find_toolchain(backend_libcrypto(backend))
    if tc is None:
        raise ToolchainUnavailable(why)
    return tc


def compile_c(
    sources: Sequence[str],
    *,
    name: Optional[str] = None,
    backend: BackendArg = None,
    include_dirs: Sequence[str] = (),
    depends: Sequence[str] = (),
    shared: bool = False,
) -> str:
    """Build ``sources`` into a program (or, with ``shared``, a shared library); its path.

    ``name`` defaults to the first source's name without ``.c``. ``depends``
    (headers) take part in the cache key. Raises :class:`ToolchainUnavailable`
    when nothing can be built here, ``AsyncError`` with the compiler's messages
    when these sources do not compile.
    """
    if not sources:
        raise ValueError("compile_c() needs at least one source file")
    sources = [os.path.abspath(s) for s in sources]
    if name is None:
        name = os.path.splitext(os.path.basename(sources[0]))[0] + (".so" if shared else "")
    built = build(toolchain_for(backend), name, sources, depends=depends, include_dirs=include_dirs, shared=shared)
    if built.path is None:
        raise AsyncError(f"{name} did not build: {built.error}")
    return built.path


def run_c(
    path: str, *args: str, timeout: float = 60.0, input: Optional[str] = None
) -> subprocess.CompletedProcess[str]:
    """Run a program built by :func:`compile_c`; its completed process (text output).

    A crash shows as a negative ``returncode``; a hang past ``timeout`` raises
    ``subprocess.TimeoutExpired``.
    """
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=timeout, input=input)
