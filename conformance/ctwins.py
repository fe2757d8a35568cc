"""Compile and run the C twins against the real libcrypto.

Twins are compiled on demand with the system C compiler (``$CC``, else ``cc``,
``gcc`` or ``clang``; ``$CPPFLAGS``, ``$CFLAGS`` and ``$LDFLAGS`` are honoured)
against the OpenSSL headers it finds, and linked against *the same libcrypto
file the "openssl" backend loaded* (its real path, found with ``dladdr``), with
an rpath that takes precedence over ``LD_LIBRARY_PATH``, so the C column and
the backend cannot silently use two different libraries. Each twin also links
``c/_version.c``, which reports on stderr the version the binary really loaded;
the runner checks it.

Binaries are cached outside the source tree, under
``$PYOSSL_ASYNC_CONFORMANCE_CACHE``, else ``$XDG_CACHE_HOME/pyossl-async/conformance``,
else ``~/.cache/pyossl-async/conformance``, in a directory named by a hash of
everything that goes into them: the twin's source, ``trace.h``, ``_version.c``,
the compiler and its version, the flags, and the libcrypto file (path, size,
modification time). A changed input means a new hash, so a stale binary is never
run; nothing needs invalidating by hand.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from typing import List, Optional, Tuple

from pyossl_async.testing import _cbuild
from pyossl_async.testing._cbuild import loaded_library_file

from .catalogue import C_DIR

__all__ = [
    "CompileResult",
    "RunResult",
    "Toolchain",
    "cache_root",
    "compile_twin",
    "find_toolchain",
    "loaded_library_file",
    "run_twin",
]

#: files every twin depends on besides its own source
SHARED_SOURCES = ("trace.h", "_version.c")
VERSION_PREFIX = "# libcrypto: "

def cache_root() -> str:
    """Where compiled twins are kept (never inside the source tree)."""
    explicit = os.environ.get("PYOSSL_ASYNC_CONFORMANCE_CACHE")
    if explicit:
        return explicit
    return _cbuild.cache_root("conformance")


class Toolchain(_cbuild.Toolchain):
    """The package's toolchain, caching under the conformance cache by default."""

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


def find_toolchain(libcrypto: Optional[str]) -> Tuple[Optional[Toolchain], str]:
    """A working toolchain for the twins, or None and the reason there is none."""
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
    """Compile ``source`` (a twin's path) unless an identical build is cached."""
    if not os.path.isfile(source):
        return CompileResult(None, f"C twin {os.path.basename(source)} is missing")
    name = os.path.splitext(os.path.basename(source))[0]
    built = _cbuild.build(
        tc,
        name,
        [source, os.path.join(C_DIR, "_version.c")],
        depends=[os.path.join(C_DIR, "trace.h")],
        include_dirs=[C_DIR],
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
