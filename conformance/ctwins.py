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

import ctypes
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

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

_PROBE = r"""
#include <openssl/async.h>
#include <openssl/crypto.h>
int main(void) { return ASYNC_WAIT_CTX_new() == NULL; }
"""


def cache_root() -> str:
    """Where compiled twins are kept (never inside the source tree)."""
    explicit = os.environ.get("PYOSSL_ASYNC_CONFORMANCE_CACHE")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pyossl-async", "conformance")


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def loaded_library_file(address: int) -> Optional[str]:
    """The real path of the shared object that contains ``address`` (``dladdr``), or None."""
    try:
        libc = ctypes.CDLL(None)
        dladdr = libc.dladdr
    except (OSError, AttributeError):
        return None
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    dladdr.restype = ctypes.c_int
    info = _DlInfo()
    if not dladdr(ctypes.c_void_p(address), ctypes.byref(info)) or not info.dli_fname:
        return None
    path = os.fsdecode(info.dli_fname)
    return os.path.realpath(path) if os.path.isabs(path) else None


@dataclass
class Toolchain:
    """A C compiler that can build twins, and how to link them."""

    cc: str
    cc_version: str
    cflags: List[str]
    ldflags: List[str]
    #: the libcrypto file twins link (None: whatever ``-lcrypto`` finds)
    libcrypto: Optional[str]
    cache_dir: str = field(default_factory=cache_root)

    def link_args(self) -> List[str]:
        if self.libcrypto is None:
            return ["-lcrypto"]
        directory = os.path.dirname(self.libcrypto)
        rpath = f"-Wl,-rpath,{directory}"
        if sys.platform.startswith("linux"):
            # DT_RPATH, not DT_RUNPATH: searched before LD_LIBRARY_PATH
            rpath = f"-Wl,--disable-new-dtags,-rpath,{directory}"
        return [self.libcrypto, rpath]

    def command(self, sources: List[str], output: str) -> List[str]:
        return [
            self.cc,
            "-std=gnu99",
            "-O0",
            "-g",
            "-Wall",
            "-Wno-unused-function",
            f"-I{C_DIR}",
            *self.cflags,
            "-o",
            output,
            *sources,
            *self.link_args(),
            *self.ldflags,
            "-pthread",
        ]

    def identity(self) -> str:
        """Everything about the toolchain that a cached binary depends on."""
        lib = "-lcrypto"
        if self.libcrypto is not None:
            st = os.stat(self.libcrypto)
            lib = f"{self.libcrypto}:{st.st_size}:{st.st_mtime_ns}"
        return "\n".join([self.cc, self.cc_version, " ".join(self.cflags), " ".join(self.ldflags), lib])


def _split_env(name: str) -> List[str]:
    return os.environ.get(name, "").split()


def find_toolchain(libcrypto: Optional[str]) -> Tuple[Optional[Toolchain], str]:
    """A working toolchain, or None and the reason there is none.

    Working means: a compiler runs, and a probe including ``<openssl/async.h>``
    compiles and links against ``libcrypto`` (or ``-lcrypto``).
    """
    candidates = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    cc = None
    for name in candidates:
        found = shutil.which(name.split()[0])
        if found:
            cc = found
            break
    if cc is None:
        return None, f"no C compiler found (tried {', '.join(candidates)}; set CC to choose one)"
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"the C compiler {cc} does not run: {exc}"
    tc = Toolchain(
        cc=cc,
        cc_version=(version.stdout or version.stderr).strip().splitlines()[0]
        if (version.stdout or version.stderr)
        else "",
        cflags=_split_env("CPPFLAGS") + _split_env("CFLAGS"),
        ldflags=_split_env("LDFLAGS"),
        libcrypto=libcrypto,
    )
    with tempfile.TemporaryDirectory(prefix="pyossl-async-probe-") as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(_PROBE)
        try:
            proc = subprocess.run(
                tc.command([src], os.path.join(tmp, "probe")), capture_output=True, text=True, timeout=120
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return None, f"the C compiler {cc} failed to run: {exc}"
    if proc.returncode != 0:
        first = next((ln for ln in proc.stderr.splitlines() if "error" in ln.lower()), proc.stderr.strip()[:200])
        return None, f"cannot build against OpenSSL with {cc} (headers or libcrypto missing?): {first.strip()}"
    return tc, ""


@dataclass
class CompileResult:
    """A compiled twin (``binary``) or why it failed (``error``)."""

    binary: Optional[str]
    error: str = ""
    cached: bool = False


_compile_locks: Dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def compile_twin(tc: Toolchain, source: str) -> CompileResult:
    """Compile ``source`` (a twin's path) unless an identical build is cached."""
    if not os.path.isfile(source):
        return CompileResult(None, f"C twin {os.path.basename(source)} is missing")
    digest = hashlib.sha256()
    digest.update(tc.identity().encode())
    digest.update(b"\0" + os.path.basename(source).encode() + b"\0")
    digest.update(_read(source))
    for shared in SHARED_SOURCES:
        digest.update(b"\0" + _read(os.path.join(C_DIR, shared)))
    key = digest.hexdigest()[:24]
    name = os.path.splitext(os.path.basename(source))[0]
    directory = os.path.join(tc.cache_dir, key)
    binary = os.path.join(directory, name)
    with _locks_guard:
        lock = _compile_locks.setdefault(binary, threading.Lock())
    with lock:
        if os.access(binary, os.X_OK):
            return CompileResult(binary, cached=True)
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            return CompileResult(None, f"cannot create the cache directory {directory}: {exc}")
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
        os.close(fd)
        try:
            cmd = tc.command([source, os.path.join(C_DIR, "_version.c")], tmp)
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                return CompileResult(None, "compile error:\n" + proc.stderr.strip())
            os.replace(tmp, binary)  # atomic: a concurrent run never sees half a binary
        except (OSError, subprocess.SubprocessError) as exc:
            return CompileResult(None, f"compile failed: {exc}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return CompileResult(binary)


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
