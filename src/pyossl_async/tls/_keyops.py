"""Getting from libcrypto's private-key callback into Python, safely, and back.

An offloaded key's ``RSA_METHOD`` (``priv_enc``, ``priv_dec``) and
``EC_KEY_METHOD`` (``sign``) point at three process-wide C callbacks. libcrypto
calls them from wherever the key is used: inside libssl's job for a connection
of ours (the bound case: a handshake in ``SSL_MODE_ASYNC``), in a connection's
call outside any job, or from some other libcrypto call on a thread (the
unbound case).

**Which entry.** Each callback looks up the calling thread's current *entry*
(``_current``, keyed by OS thread): the connection whose bound call runs on this
thread right now (set by ``_binding`` around every call), else the thread's own
idle entry (registered by ``register_thread``), else a refusal. An entry owns a
generator that runs one operation at a time; while it runs, the thread's entry
is the refusal, so an operation nested in another fails instead of re-entering
a running generator.

**C all the way to a ``try``.** A signal handler's exception raised at the first
line of a Python callback escapes into ctypes, which then returns an
uninitialised integer to libcrypto: garbage as a signature length. So, as for
the job entry and the stack allocator of ``_native._runner``, nothing but C runs
until Python code is inside a ``try``:

* the C callback's target is an object whose ``__call__`` is a property whose
  getter is ``functools.partial(next, <map over the thread table>)``: it returns
  the entry's class for the calling thread, which ctypes then calls with the C
  arguments;
* the class's ``__init__`` is ``struct.pack_into`` (a ``staticmethod`` of a
  ``partial``): it stores the arguments in the entry's buffer;
* ctypes converts the instance to the C ``int`` result through ``__index__``, a
  property whose getter returns the entry's *runner* (``next(repeat(runner))``),
  which ``__index__`` then calls:

  - where libssl's fibres run on stacks of ours (OpenSSL 3.2+ with
    ``ASYNC_set_mem_functions``) the runner is ``partial(next, generator, -1)``:
    the generator resumes at a ``yield`` inside its ``try`` and yields the result;
  - elsewhere (OpenSSL 3.0/3.1: a 32 KiB fibre with no guard page, where a
    realistic offload callback was measured at 55 KiB) the runner is
    ``makecontext`` then ``swapcontext`` onto the entry's own guarded stack (a
    *hop unit*), where a C callback resumes the generator; the generator leaves
    the result in a cell, and the ``swapcontext`` binding's ``restype``
    (``partial(getitem, cell)``) reads it once the hop has come back.

An operation that pauses (``pa.await_future`` inside a bound libssl job) pauses
on the stack it runs on: the entry's hop stack or libssl's fibre stack, both
ours. The thread state it runs on is the connection's (``_binding``).
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import operator
import struct
import threading
from ctypes import CFUNCTYPE, c_int, c_uint64
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from .._native._libs import address_of
from .._native._stacks import GuardedStack
from .._native._ucontext import UContext

if TYPE_CHECKING:
    from ._support import TLSSupport

__all__ = [
    "ARGS_EC",
    "ARGS_RSA",
    "KIND_EC_SIGN",
    "KIND_RSA_DECRYPT",
    "KIND_RSA_SIGN",
    "Entry",
    "KeyOpCallbacks",
    "callbacks",
    "current_entries",
    "refused_count",
    "unowned",
]

#: what an entry's buffer holds first: which callback was called
KIND_RSA_SIGN = 1  # RSA_METHOD priv_enc: signatures (PSS with RSA_NO_PADDING, PKCS#1 v1.5)
KIND_RSA_DECRYPT = 2  # RSA_METHOD priv_dec
KIND_EC_SIGN = 3  # EC_KEY_METHOD sign (ECDSA)
KIND = struct.Struct("=i")
#: kind, flen, from, to, rsa, padding
ARGS_RSA = struct.Struct("=iiQQQi")
#: kind, type, dgst, dlen, sig, siglen, kinv, r, eckey
ARGS_EC = struct.Struct("=iiQiQQQQQ")
ARG_BYTES = max(ARGS_RSA.size, ARGS_EC.size)

#: ``int (*)(int flen, const unsigned char *from, unsigned char *to, RSA *rsa, int padding)``
#: (pointers as integers: ctypes would give ``None`` for NULL, which ``pack_into`` refuses)
RSA_PRIV_FN = CFUNCTYPE(c_int, c_int, c_uint64, c_uint64, c_uint64, c_int)
#: ``int (*)(int type, const unsigned char *dgst, int dlen, unsigned char *sig,
#: unsigned int *siglen, const BIGNUM *kinv, const BIGNUM *r, EC_KEY *eckey)``
EC_SIGN_FN = CFUNCTYPE(c_int, c_int, c_uint64, c_int, c_uint64, c_uint64, c_uint64, c_uint64, c_uint64)
#: the entry closure a hop unit starts on its stack
_HOP_ENTRY = CFUNCTYPE(None)

_MINUS1 = (-1).__index__

#: OS thread ident -> the entry key operations on that thread run through now
_current: Dict[int, Any] = {}
#: operations refused (no entry, or nested in another): counted by C-only code
refusals = itertools.count()


def current_entries() -> Dict[int, Any]:
    """The thread table (``_binding`` sets a connection's entry around each bound call)."""
    return _current


def unowned(entry: Entry, raw: bytes) -> int:
    """What a pooled entry runs should anything call it before its next owner: a refusal."""
    return -1


def _ignore(exc: BaseException) -> None:
    pass


def refused_count() -> int:
    """How many key operations were refused so far in this process."""
    # read from its repr, ``count(N)``: ``next`` would advance it
    return int(repr(refusals)[len("count(") : -1])


def _make_class(name: str, fmt: struct.Struct, buffer: Any, kind: int, index: Callable[[Any], Any]) -> type:
    """A class that ctypes calls with a callback's C arguments: ``__init__`` stores them in
    ``buffer`` after ``kind``; ``__index__`` (the C result) is a property whose getter,
    ``index``, returns the callable that runs the operation and returns its result. C only."""
    return type(
        name,
        (),
        {
            "__slots__": (),
            "__init__": staticmethod(functools.partial(fmt.pack_into, buffer, 0, kind)),
            "__index__": property(index),
        },
    )


class _Refusal:
    """The entry of a thread with none of its own, or whose entry is busy: every
    operation fails at once (-1) and is counted. C only."""

    def __init__(self) -> None:
        self.scratch = ctypes.create_string_buffer(ARG_BYTES)
        # __index__ returns the refusal's runner, (-1).__index__, having advanced the counter
        minus1 = map(operator.itemgetter(1), zip(refusals, itertools.repeat(_MINUS1)))
        index = property(functools.partial(next, minus1))

        def refusal(fmt: struct.Struct) -> type:
            init = staticmethod(functools.partial(fmt.pack_into, self.scratch, 0, 0))
            return type("_Refused", (), {"__slots__": (), "__init__": init, "__index__": index})

        self.rsa_sign = self.rsa_decrypt = refusal(ARGS_RSA)
        self.ec_sign = refusal(ARGS_EC)


REFUSAL = _Refusal()


class _Dispatch:
    """The target of one process-wide C callback: calling it calls the calling thread's
    entry class for ``kind`` (``__call__`` is a property, see the module docstring)."""

    def __init__(self, attribute: str) -> None:
        lookup = map(
            operator.attrgetter(attribute),
            map(_current.get, iter(threading.get_ident, None), itertools.repeat(REFUSAL)),
        )
        call = property(functools.partial(next, lookup))
        cls = type(f"_Dispatch_{attribute}", (), {"__slots__": (), "__call__": call})
        self.target = cls()


class KeyOpCallbacks:
    """The three C callbacks every offloaded key's method points at (one set per process,
    never freed: a key's method may be called as long as any copy of the key lives)."""

    def __init__(self) -> None:
        self.rsa_sign = RSA_PRIV_FN(_Dispatch("rsa_sign").target)
        self.rsa_decrypt = RSA_PRIV_FN(_Dispatch("rsa_decrypt").target)
        self.ec_sign = EC_SIGN_FN(_Dispatch("ec_sign").target)
        self.rsa_sign_address = address_of(self.rsa_sign)
        self.rsa_decrypt_address = address_of(self.rsa_decrypt)
        self.ec_sign_address = address_of(self.ec_sign)


_callbacks: Optional[KeyOpCallbacks] = None
_callbacks_lock = threading.Lock()


def callbacks() -> KeyOpCallbacks:
    global _callbacks
    with _callbacks_lock:
        if _callbacks is None:
            _callbacks = KeyOpCallbacks()
        return _callbacks


class HopUnit:
    """A guarded stack of ours that an operation hops onto from libssl's small fibre.

    ``index`` is the ``__index__`` getter of the entry's classes, C only:
    ``next(iter(remake, NEVER))`` calls ``makecontext(start, entry, 0)`` (which
    writes the return slot a previous run spent, so every run starts the same),
    and its ``restype`` returns the *hop*, ``swapcontext(back, start)``, which
    ``__index__`` then calls (ctypes releases the GIL). ``start`` runs ``entry``
    (a C callback resuming the generator) on our stack and, when it returns,
    continues at ``back`` (its ``uc_link``), so the hop returns; its ``restype``
    reads the result from ``cell``. No Python code runs on libssl's fibre, and
    none is needed for the context to be right at the next hop: whatever an
    interrupt did to the previous run, glibc's ``__start_context`` cannot find a
    spent return slot (it would ``exit(0)`` the process).
    """

    def __init__(self, support: TLSSupport, resume: Callable[..., Any], cell: List[int]) -> None:
        native = support.native
        self.stack = GuardedStack(native.libc, native.abi, native.stack_size)
        self.back = UContext(native.libc, native.abi)
        self.start = UContext(native.libc, native.abi)
        self.entry = _HOP_ENTRY(resume)
        entry_address = address_of(self.entry)
        self.start.make(self.stack.base, self.stack.size, self.back, entry_address)
        libc = native.libc.dll
        funcptr = type(libc.swapcontext)
        swap = funcptr(("swapcontext", libc))  # bindings of our own: their restypes below
        swap.restype = functools.partial(operator.getitem, cell)
        hop = functools.partial(swap, self.back.buffer, self.start.buffer)
        remake = funcptr(("makecontext", libc))  # (variadic: no argtypes; returns void)
        remake.restype = functools.partial(next, itertools.repeat(hop))
        again = functools.partial(remake, self.start.buffer, ctypes.c_void_p(entry_address), c_int(0))
        self.index: Callable[[Any], Any] = functools.partial(next, iter(again, _NEVER))

    def close(self) -> None:
        self.stack.close()


#: ``iter(callable, sentinel)``'s sentinel: never what the callable returns
_NEVER = object()


#: what a pooled entry's callbacks are between owners
UNOWNED = (unowned, _ignore)


class Entry:
    """One way into key operations: a generator that runs them one at a time, the
    classes the C callbacks call, and (nested mode) the hop unit it runs on.

    ``run`` is the owner's policy for one operation (a connection's, or the
    thread's idle one); ``failed`` receives what an operation raised.
    """

    def __init__(
        self,
        support: TLSSupport,
        operate: Callable[[Entry, bytes], int],
        interrupted: Callable[[BaseException], None],
    ) -> None:
        self.args = ctypes.create_string_buffer(ARG_BYTES)
        self._operate = operate
        self._interrupted = interrupted
        self.cell = [-1]
        generator = self._serve()
        next(generator)
        self.generator = generator
        self.unit: Optional[HopUnit] = None
        index: Callable[[Any], Any]
        if support.nested:
            self.unit = HopUnit(support, functools.partial(next, generator, None), self.cell)
            index = self.unit.index
        else:
            run = functools.partial(next, generator, -1)  # -1 should the generator have ended
            index = functools.partial(next, itertools.repeat(run))
        buf = self.args
        self.rsa_sign = _make_class("_RSASign", ARGS_RSA, buf, KIND_RSA_SIGN, index)
        self.rsa_decrypt = _make_class("_RSADecrypt", ARGS_RSA, buf, KIND_RSA_DECRYPT, index)
        self.ec_sign = _make_class("_ECSign", ARGS_EC, buf, KIND_EC_SIGN, index)
        #: the entry has run its first operation (its binding is verified then)
        self.used = 0

    @property
    def busy(self) -> bool:
        """An operation is in progress (running, or paused inside libssl's job)."""
        return bool(self.generator.gi_running)

    @property
    def alive(self) -> bool:
        return self.generator.gi_frame is not None

    def _serve(self) -> Any:
        """Run operations as they come: resumed at a ``yield`` inside a ``try`` (so an
        exception from a signal handler lands here, never in ctypes), each run
        yields the C result. Nested twice: a second signal inside the first handler
        does not end it either. It ends when closed (``GeneratorExit``), also when a
        signal handler's exception lands in the middle of that close."""
        result: Optional[int] = None
        while True:
            try:
                while True:
                    try:
                        while True:
                            yield result
                            result = -1
                            self.cell[0] = -1
                            result = self._step()
                            self.cell[0] = result
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # noqa: BLE001 - never unwind into C
                        if isinstance(exc.__context__, GeneratorExit):
                            return
                        result = -1
                        self.cell[0] = -1
                        self._interrupted(exc)
            except GeneratorExit:
                return
            except BaseException as exc:  # noqa: BLE001 - never unwind into C
                if isinstance(exc.__context__, GeneratorExit):
                    return
                result = -1
                self.cell[0] = -1

    def _step(self) -> int:
        """One operation, the thread's entry being the refusal meanwhile."""
        ident = threading.get_ident()
        saved = _current.get(ident)
        _current[ident] = REFUSAL
        try:
            self.used += 1
            return self._operate(self, self.args.raw)
        finally:
            if saved is None:
                _current.pop(ident, None)
            else:
                _current[ident] = saved

    def rebind(self, operate: Callable[[Entry, bytes], int], interrupted: Callable[[BaseException], None]) -> None:
        """Serve another owner (entries are pooled per thread: a hop stack is an mmap)."""
        self._operate = operate
        self._interrupted = interrupted

    def close(self) -> None:
        """Free the hop stack; only when no operation is in progress."""
        if self.busy:
            raise RuntimeError("an entry with an operation in progress cannot be closed")
        self.generator.close()
        if self.unit is not None:
            self.unit.close()
            self.unit = None
