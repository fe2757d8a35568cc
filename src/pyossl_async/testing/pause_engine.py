"""A test engine whose operations pause the running job from inside C.

Real async engines and providers (OpenSSL's dasync, QAT, afalg) call
``ASYNC_pause_job()`` deep inside ``EVP_*`` calls, so no Python code of the job
runs when it is paused or resumed. This engine does the same, so that code
built on pyossl_async can be tested against jobs paused in C: closing them,
timing them out, cancelling them, collecting them, exiting with them paused.

It is C (``_c/pause_engine.c``), compiled on first use with the system C
compiler against the libcrypto file the ``"openssl"`` backend loaded, cached,
and loaded with ctypes. Each wait of an operation either

* **callback path**: when the job's wait context has a callback (drivers install
  one), sets ``ASYNC_STATUS_OK`` and makes the callback come: at once, from a
  helper thread after ``delay`` seconds, or never; no fd; or
* **fd path**: sets a pipe as a wait fd under the engine's key, with the write
  end as custom data and a C cleanup function that closes both (dasync's layout),
  and makes it readable at once, later or never; after the resume it drains it.

A job resumed before its wait is over pauses again, as real engines do.
``path`` chooses: ``"auto"`` (callback when there is one), ``"fd"`` or
``"callback"``. ``ready``: ``"now"``, ``"later"``, ``"never"`` or ``"eagain"``
(callback path: ``ASYNC_STATUS_EAGAIN``, resume at once).

:meth:`PauseEngine.install_digests` makes the engine OpenSSL's default for
SHA-1/256/384/512, pausing in every update and final: ``EVP_Digest*``,
``hashlib`` and TLS handshakes then pause inside C. Use it in a child process:
it changes every digest of the process's libcrypto.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Dict

from .._errors import AsyncError
from .._protocol import BackendArg
from ._cprograms import ToolchainUnavailable, backend_libcrypto, compile_c

__all__ = ["EngineUnavailable", "PauseEngine"]

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_c", "pause_engine.c")
_PATHS = {"auto": 0, "fd": 1, "callback": 2}
_READY = {"now": 0, "later": 1, "never": 2, "eagain": 3}
_STATS = ("ops", "pauses", "waits", "cleanups", "fds_open", "helpers", "callbacks")

_lock = threading.Lock()
_loaded: Dict[str, "PauseEngine"] = {}


class EngineUnavailable(ToolchainUnavailable):
    """The test engine cannot be built or loaded here (no compiler, no headers, no openssl backend)."""


class PauseEngine:
    """The compiled test engine, bound to one libcrypto file (see the module docstring)."""

    def __init__(self, path: str, libcrypto: str) -> None:
        self.path = path
        #: the libcrypto file it is linked against (the backend's)
        self.libcrypto = libcrypto
        self._cdll = ctypes.CDLL(path)  # releases the GIL, as a ctypes caller of libcrypto would
        self._pydll = ctypes.PyDLL(path)  # keeps it, as hashlib and the ssl module do
        for dll in (self._cdll, self._pydll):
            dll.pe_op.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
            dll.pe_op.restype = ctypes.c_long
        lib = self._cdll
        lib.pe_stat.argtypes = [ctypes.c_int]
        lib.pe_stat.restype = ctypes.c_long
        lib.pe_quiesce.argtypes = [ctypes.c_long]
        lib.pe_quiesce.restype = ctypes.c_int
        for name in ("pe_engine_install", "pe_engine_configure"):
            fn = getattr(lib, name)
            fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
        lib.pe_engine_install.restype = ctypes.c_int
        lib.pe_engine_configure.restype = None
        lib.pe_engine_uninstall.restype = None
        lib.pe_release_never.argtypes = [ctypes.c_int]
        lib.pe_release_never.restype = None

    @classmethod
    def load(cls, backend: BackendArg = None) -> PauseEngine:
        """The engine built for ``backend``'s libcrypto (the ``"openssl"`` backend by default).

        Raises :class:`EngineUnavailable` saying why when it cannot be built.
        """
        try:
            libcrypto = backend_libcrypto(backend)
        except ToolchainUnavailable as exc:
            raise EngineUnavailable(str(exc)) from None
        with _lock:
            engine = _loaded.get(libcrypto)
            if engine is not None:
                return engine
            try:
                path = compile_c([_SOURCE], name="libpyossl_async_pause_engine.so", backend=backend, shared=True)
            except ToolchainUnavailable as exc:
                raise EngineUnavailable(f"the test engine cannot be compiled: {exc}") from None
            except AsyncError as exc:
                raise EngineUnavailable(f"the test engine did not compile: {exc}") from None
            engine = _loaded[libcrypto] = cls(path, libcrypto)
            return engine

    # -- operations ---------------------------------------------------------------

    @staticmethod
    def _args(waits: int, path: str, ready: str, delay: float) -> tuple[int, int, int, int]:
        if path not in _PATHS:
            raise ValueError(f"path must be one of {', '.join(_PATHS)}, not {path!r}")
        if ready not in _READY:
            raise ValueError(f"ready must be one of {', '.join(_READY)}, not {ready!r}")
        if isinstance(waits, bool) or not isinstance(waits, int) or not 0 <= waits < 1 << 31:
            raise ValueError(f"waits must be an int >= 0, not {waits!r}")
        if not 0 <= delay < 3600:
            raise ValueError(f"delay must be between 0 and 3600 seconds, not {delay!r}")
        return _PATHS[path], _READY[ready], waits, int(delay * 1e6)

    def op(self, waits: int = 1, *, path: str = "auto", ready: str = "now", delay: float = 0.0) -> int:
        """One operation that waits ``waits`` times inside C; the number of pauses (0 outside a job).

        Called through a GIL-releasing binding, as ctypes callers of libcrypto do.
        """
        return int(self._cdll.pe_op(*self._args(waits, path, ready, delay)))

    def op_holding_gil(self, waits: int = 1, *, path: str = "auto", ready: str = "now", delay: float = 0.0) -> int:
        """:meth:`op` called with the GIL held (``ctypes.PyDLL``), as ``hashlib`` and ``ssl`` call libcrypto."""
        return int(self._pydll.pe_op(*self._args(waits, path, ready, delay)))

    def install_digests(self, waits: int = 1, *, path: str = "auto", ready: str = "now", delay: float = 0.0) -> None:
        """Make SHA-1/256/384/512 of this libcrypto pause ``waits`` times per update and final."""
        p, r, w, d = self._args(waits, path, ready, delay)
        if not self._cdll.pe_engine_install(p, r, w, d):
            raise EngineUnavailable("ENGINE_set_default_digests failed (a libcrypto built without engines?)")

    def configure_digests(self, waits: int = 1, *, path: str = "auto", ready: str = "now", delay: float = 0.0) -> None:
        """Change how the installed digests pause (``waits=0``: not at all)."""
        self._cdll.pe_engine_configure(*self._args(waits, path, ready, delay))

    def uninstall_digests(self) -> None:
        self._cdll.pe_engine_uninstall()

    # -- bookkeeping ----------------------------------------------------------------

    def stats(self) -> Dict[str, int]:
        """Counters since load: operations, pauses, waits, C cleanups run, fds the engine
        holds open now, helper threads alive now, callbacks made."""
        return {name: int(self._cdll.pe_stat(i)) for i, name in enumerate(_STATS)}

    def release_never(self, on: bool = True) -> None:
        """Let ``ready="never"`` waits complete: one already waiting at its next resume, later
        ones at once (``on=False``: never again means never)."""
        self._cdll.pe_release_never(1 if on else 0)

    def quiesce(self, timeout: float = 5.0) -> bool:
        """Wait until no helper thread (a ``"later"`` completion) is left; True when none is."""
        return bool(self._cdll.pe_quiesce(int(timeout * 1e6)))
