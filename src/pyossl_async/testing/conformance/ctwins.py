"""Compiling and running the C twins against the libcrypto file the ``"openssl"`` backend loaded.

Built on :mod:`pyossl_async.testing._cbuild`: twins are compiled on demand with
the system C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``; ``$CPPFLAGS``,
``$CFLAGS`` and ``$LDFLAGS`` are honoured) against the OpenSSL headers it finds,
and linked against *the very file the backend loaded* (its resolved path, found
with ``dladdr``), with an rpath that takes precedence over ``LD_LIBRARY_PATH``,
so the C column and the backend cannot silently use two different libraries.
Each twin also links ``c/_version.c`` (next to this module), which reports on
stderr the version the binary really loaded; the runner checks it. Twins
include ``c/trace.h`` from there too, and may include headers of their own from
their folder.

Binaries are cached outside any source tree, under
``$PYOSSL_ASYNC_CONFORMANCE_CACHE``, else ``$PYOSSL_ASYNC_CACHE/conformance``,
else ``$XDG_CACHE_HOME/pyossl-async/conformance``, else
``~/.cache/pyossl-async/conformance``, in a directory named by a hash of
everything that goes into them: the twin's source, ``trace.h``, ``_version.c``,
the compiler and its version, the flags, and the libcrypto file (path, size,
modification time). A changed input means a new hash, so a stale binary is
never run; nothing needs invalidating by hand.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import pyossl_async as pa
from pyossl_async._registry import resolve_backend
from pyossl_async.testing import _cbuild, _settings

__all__ = [
    "SHARED_DIR",
    "SHARED_SOURCES",
    "CompileResult",
    "RunResult",
    "Toolchain",
    "TwinSetup",
    "backend_library",
    "cache_root",
    "compile_twin",
    "find_toolchain",
    "prepare_twins",
    "run_twin",
]

#: the folder of the files every twin uses: ``trace.h`` and ``_version.c``
SHARED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c")
#: files every twin depends on besides its own source
SHARED_SOURCES = ("trace.h", "_version.c")
#: how ``_version.c`` starts the line naming the libcrypto a twin loaded
VERSION_PREFIX = "# libcrypto: "
ENV_CACHE = _settings.ENV_CONFORMANCE_CACHE


def cache_root() -> str:
    """Where compiled twins are kept (never inside a source tree)."""
    return _settings.conformance_cache() or _cbuild.cache_root("conformance")


class Toolchain(_cbuild.Toolchain):
    """The package's C toolchain, caching under :func:`cache_root` unless told otherwise."""

    def __init__(
        self,
        cc: str,
        cc_version: str,
        cflags: List[str],
        ldflags: List[str],
        libcrypto: Optional[str],
        cache_dir: Optional[str] = None,
    ) -> None:
        super().__init__(cc, cc_version, cflags, ldflags, libcrypto, cache_dir or cache_root())


def backend_library(backend: pa.BackendArg = None) -> Optional[str]:
    """The resolved path of the libcrypto file the ``"openssl"`` backend loaded (None if unknown).

    ``backend`` defaults to ``get_backend("openssl")``; raises BackendUnavailable
    when there is none.
    """
    be: Any = resolve_backend(backend, "openssl")
    crypto = getattr(be, "crypto", None)
    if crypto is None:
        return None
    return _cbuild.loaded_library_file(crypto.address("OpenSSL_version"))


def find_toolchain(libcrypto: Optional[str]) -> Tuple[Optional[Toolchain], str]:
    """A toolchain that builds twins linked to ``libcrypto``, or None and the reason there is none."""
    tc, reason = _cbuild.find_toolchain(libcrypto, cache_root())
    if tc is None:
        return None, reason
    return Toolchain(tc.cc, tc.cc_version, tc.cflags, tc.ldflags, tc.libcrypto, tc.cache_dir), ""


@dataclass
class CompileResult:
    """A compiled twin (``binary``) or why it failed (``error``)."""

    binary: Optional[str]
    error: str = ""
    cached: bool = False


def compile_twin(tc: Toolchain, source: str) -> CompileResult:
    """Compile ``source`` (a twin's path) with the shared files, unless an identical build is cached."""
    if not os.path.isfile(source):
        return CompileResult(None, f"C twin {os.path.basename(source)} is missing (looked for {source})")
    name = os.path.splitext(os.path.basename(source))[0]
    built = _cbuild.build(
        tc,
        name,
        [source, os.path.join(SHARED_DIR, "_version.c")],
        depends=[os.path.join(SHARED_DIR, "trace.h")],
        include_dirs=[SHARED_DIR, os.path.dirname(os.path.abspath(source))],
    )
    return CompileResult(built.path, built.error, built.cached)


@dataclass
class RunResult:
    """What a twin printed, and how it ended."""

    lines: List[str]
    returncode: int
    stderr: str
    #: the libcrypto version the binary reported (``_version.c``), "" if none
    libcrypto_version: str = ""
    #: a crash, a non-zero exit or a timeout ("" when it ran to the end)
    error: str = ""


def run_twin(binary: str, timeout: float = 60.0) -> RunResult:
    """Run a compiled twin; a crash, a non-zero exit or a timeout is reported in ``error``."""
    try:
        proc = subprocess.run([binary], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return RunResult(out.splitlines(), -1, "", error=f"timed out after {timeout:g} s")
    version = ""
    stderr_lines = []
    for line in proc.stderr.splitlines():
        if line.startswith(VERSION_PREFIX):
            version = line[len(VERSION_PREFIX) :]
        else:
            stderr_lines.append(line)
    error = ""
    if proc.returncode < 0:
        try:
            signame = signal.Signals(-proc.returncode).name
        except ValueError:
            signame = f"signal {-proc.returncode}"
        error = f"crashed ({signame})"
    elif proc.returncode != 0:
        error = f"exit status {proc.returncode}"
    return RunResult(proc.stdout.splitlines(), proc.returncode, "\n".join(stderr_lines), version, error)


@dataclass
class TwinSetup:
    """How the C column runs this time (``toolchain``), or why it does not (``reason``)."""

    toolchain: Optional[Toolchain]
    reason: str
    #: the version the ``"openssl"`` backend loaded: every twin must report the same
    expected_version: Optional[str]
    compiled: int = 0
    cached: int = 0


def prepare_twins(enabled: bool = True) -> TwinSetup:
    """Find a toolchain linked to the backend's libcrypto (``enabled=False``: the C column is off)."""
    if not enabled:
        return TwinSetup(None, "off (--no-c)", None)
    expected = library = None
    try:
        be = pa.get_backend("openssl")
        library = backend_library(be)
        expected = be.openssl_version
    except pa.BackendUnavailable:
        pass
    tc, reason = find_toolchain(library)
    return TwinSetup(tc, reason, expected)
