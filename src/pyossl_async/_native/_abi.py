"""Platform facts the stack machinery depends on, checked instead of guessed.

The ``ucontext_t`` layout is platform ABI. Only layouts read from the C headers
of a platform we test on are listed; anything else makes the ``openssl`` backend
unavailable with a clear reason (the ``python`` backend still works).
"""

from __future__ import annotations

import platform
import sys
import sysconfig
from dataclasses import dataclass

__all__ = ["ABIS", "NativeUnsupported", "UcontextABI", "check_interpreter", "detect_abi"]


class NativeUnsupported(Exception):
    """This platform or interpreter cannot run the openssl backend's machinery."""


@dataclass(frozen=True)
class UcontextABI:
    """Offsets into ``ucontext_t`` (from ``<sys/ucontext.h>``) and mmap constants."""

    name: str
    #: sizeof(ucontext_t); buffers are allocated with headroom beyond it
    size: int
    uc_link: int
    ss_sp: int
    ss_size: int
    #: offset of mcontext's general register array, and register indices in it
    gregs: int
    reg_sp: int
    #: integer argument registers in calling-convention order
    arg_regs: tuple[int, ...]
    page_size: int
    map_private: int
    map_anonymous: int
    map_noreserve: int
    map_stack: int

    @property
    def alloc_size(self) -> int:
        return (self.size + 127) // 128 * 128 + 128


# glibc, x86_64: sizeof=968 uc_link=8 uc_stack.ss_sp=16 ss_size=32
# uc_mcontext.gregs=40; REG_RSP=15; RDI=8 RSI=9 RDX=12 RCX=14 R8=0 R9=1
X86_64_GLIBC = UcontextABI(
    name="x86_64-linux-gnu",
    size=968,
    uc_link=8,
    ss_sp=16,
    ss_size=32,
    gregs=40,
    reg_sp=15,
    arg_regs=(8, 9, 12, 14, 0, 1),
    page_size=4096,
    map_private=0x02,
    map_anonymous=0x20,
    map_noreserve=0x4000,
    map_stack=0x20000,
)

ABIS = {X86_64_GLIBC.name: X86_64_GLIBC}


def detect_abi() -> UcontextABI:
    """The ABI of this process, or NativeUnsupported saying why there is none."""
    machine = platform.machine()
    if not sys.platform.startswith("linux"):
        raise NativeUnsupported(f"{sys.platform} is not supported (Linux/glibc x86_64 only)")
    libc, _ = platform.libc_ver()
    if libc != "glibc":
        raise NativeUnsupported(f"C library {libc or 'unknown'!r} is not glibc")
    if machine not in ("x86_64", "AMD64"):
        raise NativeUnsupported(f"machine {machine!r} has no known ucontext_t layout")
    return X86_64_GLIBC


SUPPORTED_PYTHONS = ((3, 9), (3, 13))


def check_interpreter() -> None:
    """Raise NativeUnsupported unless this is a CPython whose thread states we handle."""
    if sys.implementation.name != "cpython":
        raise NativeUnsupported(f"{sys.implementation.name} has no CPython thread-state API")
    lo, hi = SUPPORTED_PYTHONS
    if not lo <= sys.version_info[:2] <= hi:
        raise NativeUnsupported(
            f"CPython {sys.version_info[0]}.{sys.version_info[1]} is not supported "
            f"(3.9 to 3.13); 3.14 checks recursion against the stack pointer and needs "
            f"stack-protection support not written yet"
        )
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        raise NativeUnsupported("free-threaded CPython builds are not supported")
