"""Compiling C code of ours against the very libcrypto the openssl backend loaded.

Used for the conformance suite's C twins and for the test engine that pauses
jobs from C. Nothing here is needed at run time: a C compiler is looked for only
when one of those is asked for.

The compiler is ``$CC``, else ``cc``, ``gcc`` or ``clang`` (``$CPPFLAGS``,
``$CFLAGS`` and ``$LDFLAGS`` are honoured), with the OpenSSL headers it finds.
Output links *the same libcrypto file the backend loaded* (its real path, found
with ``dladdr``), with an rpath that takes precedence over ``LD_LIBRARY_PATH``,
so C and the backend cannot silently use two different libraries. Builds are
cached outside the source tree (:func:`cache_root`) in a directory named by a
hash of everything that goes into them (sources, compiler and its version,
flags, and the libcrypto file's path, size and modification time): a changed
input means a new build, never a stale one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .._libcrypto._dlinfo import loaded_library_file
from . import _settings

__all__ = [
    "BuildResult",
    "Toolchain",
    "build",
    "cache_root",
    "find_toolchain",
    "loaded_library_file",
]

ENV_CACHE = _settings.ENV_CACHE

_PROBE = r"""
#include <openssl/async.h>
#include <openssl/crypto.h>
int main(void) { return ASYNC_WAIT_CTX_new() == NULL; }
"""


def cache_root(kind: str = "build") -> str:
    """Where builds of ``kind`` are kept: ``$PYOSSL_ASYNC_CACHE/kind``, else the user's cache."""
    explicit = _settings.build_cache()
    if explicit:
        return os.path.join(explicit, kind)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pyossl-async", kind)


@dataclass
class Toolchain:
    """A C compiler that builds against OpenSSL, and how to link what it builds."""

    cc: str
    cc_version: str
    cflags: List[str]
    ldflags: List[str]
    #: the libcrypto file to link (None: whatever ``-lcrypto`` finds)
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

    def command(
        self, sources: Sequence[str], output: str, include_dirs: Sequence[str] = (), shared: bool = False
    ) -> List[str]:
        return [
            self.cc,
            "-std=gnu99",
            "-O0" if not shared else "-O1",
            "-g",
            "-Wall",
            "-Wno-unused-function",
            "-Wno-deprecated-declarations",
            *(["-shared", "-fPIC"] if shared else []),
            *[f"-I{d}" for d in include_dirs],
            *self.cflags,
            "-o",
            output,
            *sources,
            *self.link_args(),
            *self.ldflags,
            "-pthread",
        ]

    def identity(self) -> str:
        """Everything about the toolchain that a cached build depends on."""
        lib = "-lcrypto"
        if self.libcrypto is not None:
            st = os.stat(self.libcrypto)
            lib = f"{self.libcrypto}:{st.st_size}:{st.st_mtime_ns}"
        return "\n".join([self.cc, self.cc_version, " ".join(self.cflags), " ".join(self.ldflags), lib])


def _split_env(name: str) -> List[str]:
    return os.environ.get(name, "").split()


def find_toolchain(libcrypto: Optional[str], cache_dir: Optional[str] = None) -> Tuple[Optional[Toolchain], str]:
    """A working toolchain, or None and the reason there is none.

    Working means: a compiler runs, and a probe including ``<openssl/async.h>``
    compiles and links against ``libcrypto`` (a file path; ``None`` for ``-lcrypto``).
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
    text = (version.stdout or version.stderr).strip()
    tc = Toolchain(
        cc=cc,
        cc_version=text.splitlines()[0] if text else "",
        cflags=_split_env("CPPFLAGS") + _split_env("CFLAGS"),
        ldflags=_split_env("LDFLAGS"),
        libcrypto=libcrypto,
    )
    if cache_dir is not None:
        tc.cache_dir = cache_dir
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
class BuildResult:
    """A built file (``path``) or why it failed (``error``)."""

    path: Optional[str]
    error: str = ""
    cached: bool = False


_locks: Dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def build(
    tc: Toolchain,
    name: str,
    sources: Sequence[str],
    *,
    depends: Sequence[str] = (),
    include_dirs: Sequence[str] = (),
    shared: bool = False,
) -> BuildResult:
    """Build ``sources`` into ``name`` (a program, or a shared library with ``shared``)
    unless an identical build is cached; ``depends`` are further inputs (headers)."""
    for source in sources:
        if not os.path.isfile(source):
            return BuildResult(None, f"{os.path.basename(source)} is missing")
    digest = hashlib.sha256()
    digest.update(tc.identity().encode())
    digest.update(b"\0shared" if shared else b"\0program")
    for path in [*sources, *depends]:
        digest.update(b"\0" + os.path.basename(path).encode() + b"\0")
        digest.update(_read(path))
    directory = os.path.join(tc.cache_dir, digest.hexdigest()[:24])
    output = os.path.join(directory, name)
    with _locks_guard:
        lock = _locks.setdefault(output, threading.Lock())
    with lock:
        if os.path.isfile(output):
            return BuildResult(output, cached=True)
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            return BuildResult(None, f"cannot create the cache directory {directory}: {exc}")
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
        os.close(fd)
        try:
            cmd = tc.command(list(sources), tmp, include_dirs, shared)
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                return BuildResult(None, "compile error:\n" + proc.stderr.strip())
            os.replace(tmp, output)  # atomic: a concurrent run never sees half a build
        except (OSError, subprocess.SubprocessError) as exc:
            return BuildResult(None, f"compile failed: {exc}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return BuildResult(output)
