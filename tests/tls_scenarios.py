"""TLS scenarios that could crash an interpreter: run in a child by tests/test_tls_*.py.

Run one by hand: ``python tests/tls_scenarios.py interleave --order reverse``.
Each scenario checks what it expects itself (an ``AssertionError`` exits non-zero
with its message) and prints one JSON line of what it saw, for the test to look at.

Connections are pairs over memory BIOs: a server whose RSA key is offloaded to a
Python operation, and a plain client. Each pair runs as a generator (a session)
that yields what it waits for; a scheduler resumes the ready ones in the order
asked for (``fifo``, ``reverse``, ``random``), so paused libssl jobs are resumed
out of the order they paused in.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import json
import os
import random
import select
import signal
import sys
import threading
import time
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pyossl_async as pa
from pyossl_async import tls

Session = Iterator[Tuple[str, Any]]

_KEYS: Dict[str, tls.PrivateKey] = {}


def key(kind: str = "rsa") -> tls.PrivateKey:
    if kind not in _KEYS:
        _KEYS[kind] = tls.PrivateKey.generate_rsa(2048) if kind == "rsa" else tls.PrivateKey.generate_ec("P-256")
    return _KEYS[kind]


def server_context(operation: Callable[[tls.KeyOperation], bytes], *, kind: str = "rsa", **options: Any) -> tls.Context:
    k = key(kind)
    ctx = tls.Context(True, **options)
    ctx.use_certificate(tls.Certificate.self_signed(k))
    ctx.use_private_key(tls.OffloadedRSAKey(k, operation) if kind == "rsa" else tls.OffloadedECKey(k, operation))
    return ctx


def client_context(version: Optional[str] = None) -> tls.Context:
    return tls.Context(False, async_mode=False, maximum_version=version)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def our_frames() -> List[str]:
    """Names of the frames under the caller: none may be a key operation's."""
    names = []
    frame: Any = sys._getframe(1)
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return names


# -- key operations ---------------------------------------------------------------------


class Ops:
    """Key operations of several kinds, each checking that its locals survive its pauses."""

    def __init__(self, workers: int = 4) -> None:
        self.pool = concurrent.futures.ThreadPoolExecutor(workers)
        self.log: List[Dict[str, Any]] = []
        self.cancelled = 0

    def _check(self, token: int, mine: int, where: str) -> None:
        assert token == mine, f"a key operation's local changed across a pause ({where}): {token} != {mine}"

    def pause(self, op: tls.KeyOperation, times: int = 3) -> bytes:
        """Pause libssl's job ``times`` times with nothing to wait on, then compute."""
        token = mine = random.getrandbits(60)
        job = pa.get_current_job()
        assert isinstance(job, tls.TLSJob), job
        try:
            for i in range(times):
                pa.pause_job()
                self._check(token, mine, f"pause {i}")
                assert pa.get_current_job() is job
        except pa.JobCancelled:
            self.cancelled += 1
            raise
        self.log.append({"kind": "pause", "op": op.kind})
        return op.compute()

    def pool_op(self, op: tls.KeyOperation) -> bytes:
        """The work on a thread pool; pause at least once, then await it."""
        token = mine = random.getrandbits(60)
        future = self.pool.submit(op.compute)
        try:
            pa.pause_job()
            result = pa.await_future(future)
        except pa.JobCancelled:
            self.cancelled += 1
            raise
        self._check(token, mine, "await_future")
        ctx = pa.current_wait_ctx()
        assert isinstance(ctx, tls.BorrowedWaitCtx), ctx
        self.log.append({"kind": "pool", "op": op.kind})
        return result

    def fd_op(self, op: tls.KeyOperation) -> bytes:
        """Wait for an fd of our own that another thread makes readable (pausing once first,
        so that the operation pauses whatever the timer does)."""
        token = mine = random.getrandbits(60)
        r, w = os.pipe()
        try:
            timer = threading.Timer(0.002, os.write, (w, b"x"))
            timer.start()
            pa.pause_job()
            paused = pa.wait_for_fd(r)
            os.read(r, 1)
            timer.join()
        finally:
            os.close(r)
            os.close(w)
        self._check(token, mine, "wait_for_fd")
        self.log.append({"kind": "fd", "op": op.kind, "paused": paused})
        return op.compute()

    def held(self, op: tls.KeyOperation) -> bytes:
        """Pause inside C code that keeps the GIL (a ``PyDLL`` binding): the switch hands
        the GIL over on the paused job's behalf and takes it back when it resumes."""
        import ctypes

        pause = ctypes.PyDLL(pa.get_backend("openssl").library_path).ASYNC_pause_job
        token = mine = random.getrandbits(60)
        pause()
        pause()
        self._check(token, mine, "a pause holding the GIL")
        self.log.append({"kind": "held", "op": op.kind})
        return op.compute()

    def mixed(self, op: tls.KeyOperation) -> bytes:
        return random.choice((self.pause, self.pool_op, self.fd_op, self.held))(op)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


# -- sessions and their scheduler -------------------------------------------------------


def session(server: tls.Connection, client: tls.Connection, line: bytes, stats: Dict[str, Any]) -> Session:
    """Handshake, then the client sends ``line`` and the server echoes it."""
    done_s = done_c = False
    while not (done_s and done_c):
        progress = False
        if not done_c:
            done_c = client.do_handshake() is tls.Want.DONE
        out = client.take()
        if out:
            server.feed(out)
            progress = True
        if not done_s:
            want = server.do_handshake()
            if want is tls.Want.ASYNC:
                names = our_frames()
                assert not any(n in ("pause", "pool_op", "fd_op", "held", "mixed") for n in names), names
                yield ("async", server)
                continue
            done_s = want is tls.Want.DONE
        out = server.take()
        if out:
            client.feed(out)
            progress = True
        if not progress and not (done_s and done_c):
            yield ("again", None)
    assert client.write(line) == (tls.Want.DONE, len(line))
    server.feed(client.take())
    want, got = server.read()
    assert (want, got) == (tls.Want.DONE, line), (want, got)
    server.write(got)
    client.feed(server.take())
    assert client.read() == (tls.Want.DONE, line)
    stats.update(
        version=server.version, cipher=server.cipher, key_ops=server.key_operations, pauses=server.pauses
    )


def ready(item: Tuple[str, Any], flags: Dict[int, threading.Event]) -> bool:
    what, conn = item
    if what != "async":
        return True
    event = flags.get(id(conn))
    if event is not None and conn.async_status() == pa.WaitStatus.OK:
        return event.is_set()
    fds = conn.async_fds()
    if not fds:
        return True
    return bool(select.select(fds, [], [], 0)[0])


def schedule(sessions: List[Session], order: str, flags: Dict[int, threading.Event], seed: int = 1) -> int:
    """Run sessions to their end, resuming ready ones in ``order``; how many resumes."""
    rng = random.Random(seed)
    waiting: List[Tuple[Session, Tuple[str, Any]]] = []
    for s in sessions:
        try:
            waiting.append((s, next(s)))
        except StopIteration:
            pass
    resumes = 0
    while waiting:
        ready_now = [w for w in waiting if ready(w[1], flags)]
        if not ready_now:
            fds = [fd for _, (what, c) in waiting if what == "async" for fd in c.async_fds()]
            select.select(fds, [], [], 0.002)
            continue
        if order == "reverse":
            ready_now.reverse()
        elif order == "random":
            rng.shuffle(ready_now)
        for item in ready_now:
            waiting.remove(item)
            s, (_what, conn) = item
            event = flags.get(id(conn))
            if event is not None:
                event.clear()
            resumes += 1
            try:
                waiting.append((s, next(s)))
            except StopIteration:
                pass
    return resumes


def thread_state_balance() -> Dict[str, int]:
    from pyossl_async.tls import _binding

    thread = _binding._threads[threading.get_ident()]
    return {"created": thread.tstates.created, "free": len(thread.tstates.free), "pending": len(thread.pending)}


# -- scenarios ----------------------------------------------------------------------------


def interleave(args: argparse.Namespace) -> Dict[str, Any]:
    """Many connections at once, their jobs paused by Python operations of every kind and
    resumed in ``--order``; then nothing is left: fds, thread states, entries."""
    ops = Ops()
    operation = getattr(ops, args.op)
    sctx = server_context(operation, kind=args.key)
    cctx = client_context()
    notify = args.wait == "callback"  # (else: the fds)
    fds_before = open_fds()
    results: List[Dict[str, Any]] = []
    total_resumes = 0
    for round_ in range(args.rounds):
        pairs = [(tls.Connection(sctx), tls.Connection(cctx)) for _ in range(args.n)]
        flags: Dict[int, threading.Event] = {}
        if notify:
            for server, _ in pairs:
                event = flags[id(server)] = threading.Event()
                server.set_async_callback(event.set)
        stats: List[Dict[str, Any]] = [{} for _ in pairs]
        sessions = [session(s, c, b"line %d %d\n" % (round_, i), stats[i]) for i, (s, c) in enumerate(pairs)]
        total_resumes += schedule(sessions, args.order, flags, seed=round_)
        for (s, c), st in zip(pairs, stats):
            assert st["key_ops"] == 1 and st["pauses"] >= 1, st
            s.close()
            c.close()
        results.extend(stats)
    ops.close()
    gc.collect()
    balance = thread_state_balance()
    assert balance["created"] == balance["free"], balance
    assert open_fds() == fds_before, (open_fds(), fds_before)
    from pyossl_async.tls import _keyops

    current = _keyops.current_entries().get(threading.get_ident())
    assert current is not None and current is not _keyops.REFUSAL, current
    return {
        "handshakes": len(results),
        "versions": sorted({r["version"] for r in results}),
        "pauses": sum(r["pauses"] for r in results),
        "resumes": total_resumes,
        "balance": balance,
    }


def records(args: argparse.Namespace) -> Dict[str, Any]:
    """TLS 1.2 and 1.3 handshakes with RSA and EC keys, records both ways, shutdown."""
    ops = Ops()
    out = {}
    for kind in ("rsa", "ec"):
        for version in ("TLSv1.2", "TLSv1.3"):
            sctx = server_context(ops.pool_op, kind=kind)
            cctx = client_context(version)
            s, c = tls.Connection(sctx), tls.Connection(cctx)
            st: Dict[str, Any] = {}
            schedule([session(s, c, b"x" * 5000 + b"\n", st)], "fifo", {})
            assert st["version"] == version, st
            assert s.shutdown() is tls.Want.DONE
            c.feed(s.take())
            assert c.read() == (tls.Want.DONE, b"")  # close_notify: the end of the stream
            out[f"{kind} {version}"] = st["cipher"]
            s.close()
            c.close()
    ops.close()
    return out


def unbound(args: argparse.Namespace) -> Dict[str, Any]:
    """A key operation that would pause, where it cannot: it blocks instead."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    seen: List[Any] = []

    def operation(op: tls.KeyOperation) -> bytes:
        seen.append((pa.get_current_job(), pa.pause_job()))
        return pa.await_future(pool.submit(op.compute))

    # 1. a connection without SSL_MODE_ASYNC: its calls run in no job
    sctx = server_context(operation, async_mode=False)
    s, c = tls.Connection(sctx), tls.Connection(client_context())
    st: Dict[str, Any] = {}
    schedule([session(s, c, b"unbound\n", st)], "fifo", {})
    assert st["key_ops"] == 1 and st["pauses"] == 0, st
    assert seen[-1] == (None, True), seen
    s.close()
    c.close()
    # 2. the key used by libcrypto outside any connection, inside one of our own jobs:
    #    pausing is blocked there, so the operation waits in place
    offloaded = sctx.offloaded[0]
    lib = tls._get_support().lib
    import ctypes

    def sign_in_job(arg: Any) -> int:
        pctx = lib.EVP_PKEY_CTX_new(offloaded.pkey, None)
        try:
            lib.EVP_PKEY_sign_init(pctx)
            sig = ctypes.create_string_buffer(256)
            n = ctypes.c_size_t(256)
            digest = bytes(range(32))
            lib.EVP_PKEY_CTX_set_signature_md(pctx, tls._get_support().lib.EVP_sha256())
            lib.EVP_PKEY_sign(pctx, sig, ctypes.byref(n), digest, len(digest))
            return int(n.value)
        finally:
            lib.EVP_PKEY_CTX_free(pctx)

    backend = pa.get_backend("openssl")
    before = offloaded.operations
    assert pa.run_job(sign_in_job, backend=backend) == 256
    assert offloaded.operations == before + 1
    assert seen[-1][1] is True
    # 3. on a thread that never used tls: refused (libcrypto sees a failed operation)
    from pyossl_async.tls import _keyops

    refused_before = _keyops.refused_count()
    outcome: List[Any] = []

    def elsewhere() -> None:
        try:
            sign_in_job(None)
        except tls.TLSError as exc:
            outcome.append(type(exc).__name__)

    t = threading.Thread(target=elsewhere)
    t.start()
    t.join()
    assert outcome == ["TLSCallError"], outcome
    assert _keyops.refused_count() == refused_before + 1
    pool.shutdown()
    return {"unbound_ops": len(seen)}


def failures(args: argparse.Namespace) -> Dict[str, Any]:
    """A key operation that raises: the handshake raises that exception, from the TLS error."""

    class AcceleratorDown(Exception):
        pass

    def broken(op: tls.KeyOperation) -> bytes:
        pa.pause_job()
        raise AcceleratorDown("no accelerator")

    def wrong(op: tls.KeyOperation) -> bytes:
        return b"not bytes of the right size" * 100

    out = {}
    for name, operation in (("raises", broken), ("too long", wrong)):
        s, c = tls.Connection(server_context(operation)), tls.Connection(client_context())
        try:
            schedule([session(s, c, b"x\n", {})], "fifo", {})
        except AcceleratorDown as exc:
            assert isinstance(exc.__cause__, tls.TLSProtocolError), repr(exc.__cause__)
            out[name] = "AcceleratorDown"
        except ValueError as exc:
            out[name] = str(exc)
        s.close()
        c.close()
    assert thread_state_balance()["created"] == thread_state_balance()["free"]
    return out


def ctrl_c(args: argparse.Namespace) -> Dict[str, Any]:
    """Ctrl-C inside a key operation, and while its job is paused: the interrupt reaches
    the caller, the connection closes cleanly, and the next connections work."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    out: Dict[str, Any] = {}

    def spin_until_interrupt(op: tls.KeyOperation) -> bytes:
        signal.raise_signal(signal.SIGINT)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pass
        raise AssertionError("no KeyboardInterrupt inside the key operation")

    s, c = tls.Connection(server_context(spin_until_interrupt)), tls.Connection(client_context())
    try:
        schedule([session(s, c, b"x\n", {})], "fifo", {})
    except KeyboardInterrupt:
        out["inside"] = "KeyboardInterrupt"
    s.close()
    c.close()

    ended: List[str] = []

    def paused(op: tls.KeyOperation) -> bytes:
        try:
            pa.pause_job()
        except pa.JobCancelled:
            ended.append("JobCancelled")
            raise
        return op.compute()

    s, c = tls.Connection(server_context(paused)), tls.Connection(client_context())
    sess = session(s, c, b"x\n", {})
    assert next(sess)[0] in ("again", "async")
    while s.waiting_for_async is False:
        next(sess)
    try:
        signal.raise_signal(signal.SIGINT)
        time.sleep(5)
    except KeyboardInterrupt:
        out["paused"] = "KeyboardInterrupt"
    s.close()
    c.close()
    assert ended == ["JobCancelled"], ended
    out["cancelled"] = ended

    # storm: SIGINT every few hundred microseconds while handshakes run. The handler raises
    # only while the library runs (armed), once per arming, so that the harness itself stays
    # in control; wherever it lands, the connections close (none is leaked) and the next
    # handshake works
    ops = Ops()
    sctx = server_context(ops.pause)
    cctx = client_context()
    main = threading.main_thread().ident
    assert main is not None
    armed = [False]
    counts = {"interrupts": 0, "completed": 0}

    def handler(signum: int, frame: Any) -> None:
        if armed[0]:
            armed[0] = False
            raise KeyboardInterrupt

    def guarded(fn: Callable[[], Any]) -> bool:
        try:
            armed[0] = True
            fn()
            armed[0] = False
            return True
        except KeyboardInterrupt:
            counts["interrupts"] += 1
            return False

    stop = threading.Event()

    def storm() -> None:
        while not stop.is_set():
            signal.pthread_kill(main, signal.SIGINT)
            time.sleep(random.uniform(0.0001, 0.002))

    signal.signal(signal.SIGINT, handler)
    t = threading.Thread(target=storm)
    t.start()
    deadline = time.monotonic() + args.seconds
    def one_round() -> None:
        pair: List[tls.Connection] = []
        if not guarded(lambda: pair.append(tls.Connection(sctx))):
            return
        if not guarded(lambda: pair.append(tls.Connection(cctx))):
            pair[0].close()
            return
        s, c = pair
        sess = session(s, c, b"storm\n", {})
        if guarded(lambda: schedule([sess], "fifo", {})):
            counts["completed"] += 1
        sess.close()  # (the harness's generator, closed here rather than by the collector)
        for conn in (s, c):
            while not conn.closed:
                guarded(conn.close)
            assert not conn._core.leaked, "a connection was leaked"

    while time.monotonic() < deadline:
        one_round()
    stop.set()
    t.join()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ops.close()
    st: Dict[str, Any] = {}
    s, c = tls.Connection(sctx), tls.Connection(cctx)
    schedule([session(s, c, b"after\n", st)], "fifo", {})
    s.close()
    c.close()
    balance = thread_state_balance()
    # an interrupt that lands between two steps of a close or a constructor may leak one
    # thread state (never reuse it): at most one per interrupt
    lost = balance["created"] - balance["free"]
    assert lost <= counts["interrupts"], (balance, counts)
    out["storm"] = {**counts, "after": st["version"], "lost": lost}
    return out


def threads(args: argparse.Namespace) -> Dict[str, Any]:
    """Two threads, each with its own connections interleaved; one offloaded key shared."""
    ops = Ops()
    k = key("rsa")
    shared = tls.OffloadedRSAKey(k, ops.mixed)
    cert = tls.Certificate.self_signed(k)
    errors: List[BaseException] = []
    done: List[int] = []

    def worker(n: int) -> None:
        try:
            sctx = tls.Context(True)
            sctx.use_certificate(cert)
            sctx.use_private_key(shared)
            cctx = client_context()
            for round_ in range(args.rounds):
                pairs = [(tls.Connection(sctx), tls.Connection(cctx)) for _ in range(args.n)]
                stats: List[Dict[str, Any]] = [{} for _ in pairs]
                sessions = [session(s, c, b"t%d\n" % n, stats[i]) for i, (s, c) in enumerate(pairs)]
                schedule(sessions, "random", {}, seed=n * 100 + round_)
                for s, c in pairs:
                    s.close()
                    c.close()
                assert all(st["key_ops"] == 1 for st in stats), stats
                done.append(n)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    ops.close()
    if errors:
        raise errors[0]
    return {"rounds": len(done), "operations": shared.operations}


def coexist(args: argparse.Namespace) -> Dict[str, Any]:
    """Our own jobs and TLS connections on one thread, paused and resumed in turn."""
    backend = pa.get_backend("openssl")
    ops = Ops()
    ctx = backend.WaitCtx()
    order: List[str] = []

    def our_job(arg: Any) -> int:
        for i in range(3):
            order.append(f"job {i}")
            pa.pause_job()
        return 7

    _st, job, _ = backend.start_job(None, ctx, our_job)
    s, c = tls.Connection(server_context(ops.pause)), tls.Connection(client_context())
    sess = session(s, c, b"both\n", {})
    pending = [sess]
    result = None
    while pending or job is not None:
        if job is not None:
            _st, job, result = backend.start_job(job, ctx, None)
        if pending:
            try:
                next(pending[0])
                order.append("tls")
            except StopIteration:
                pending.clear()
    # TLS from inside our own job, and a job from inside a key operation: refused
    refusals: List[str] = []

    def tls_in_job(arg: Any) -> int:
        try:
            tls.Connection(server_context(ops.pause)).do_handshake()
        except pa.JobStateError as exc:
            refusals.append(str(exc))
        return 0

    pa.run_job(tls_in_job, backend=backend)

    def job_in_op(op: tls.KeyOperation) -> bytes:
        try:
            pa.start_job(None, None, lambda a: 0)
        except pa.JobStateError as exc:
            refusals.append(str(exc))
        return op.compute()

    s2, c2 = tls.Connection(server_context(job_in_op)), tls.Connection(client_context())
    schedule([session(s2, c2, b"x\n", {})], "fifo", {})
    for conn in (s, c, s2, c2):
        conn.close()
    ctx.close()
    ops.close()
    assert result == 7
    assert len(refusals) == 2, refusals
    return {"order": order[:6], "refusals": refusals}


def teardown(args: argparse.Namespace) -> Dict[str, Any]:
    """Connections closed or collected while their job is paused; one that will not end."""
    out: Dict[str, Any] = {}
    ended: List[str] = []

    def paused(op: tls.KeyOperation) -> bytes:
        try:
            for _ in range(100):
                pa.pause_job()
        except pa.JobCancelled:
            ended.append("cancelled")
            raise
        return op.compute()

    sctx = server_context(paused)
    cctx = client_context()
    fds_before = open_fds()

    def start_paused() -> Tuple[tls.Connection, tls.Connection]:
        s, c = tls.Connection(sctx), tls.Connection(cctx)
        sess = session(s, c, b"x\n", {})
        while not s.waiting_for_async:
            next(sess)
        return s, c

    # closed while paused; meanwhile the backend's cleanup_thread refuses (it would free
    # the pool, and on 3.2+ the stack, libssl's job is paused on)
    s, c = start_paused()
    backend = pa.get_backend("openssl")
    try:
        backend.cleanup_thread()
        raise AssertionError("cleanup_thread() did not refuse")
    except pa.JobStateError as exc:
        assert "libssl job(s) of TLS connections" in str(exc), exc
        out["cleanup_refused"] = True
    s.close()
    c.close()
    backend.cleanup_thread()
    assert ended == ["cancelled"], ended
    # collected while paused (on its own thread: at once)
    s, c = start_paused()
    del s
    gc.collect()
    assert ended == ["cancelled"] * 2, ended
    c.close()
    # collected on another thread: closed by its own thread at its next TLS call
    s, c = start_paused()
    holder = [s]
    del s
    t = threading.Thread(target=lambda: (holder.clear(), gc.collect()))
    t.start()
    t.join()
    assert ended == ["cancelled"] * 2, ended
    assert thread_state_balance()["pending"] == 1
    c.close()
    tls.Connection(cctx).close()  # the thread's next TLS call closes it
    assert ended == ["cancelled"] * 3, ended
    assert thread_state_balance()["pending"] == 0
    balance = thread_state_balance()
    assert balance["created"] == balance["free"], balance

    # an operation paused inside C that ignores JobCancelled (set PYOSSL_ASYNC_CLOSE_TIMEOUT
    # low): left paused, its thread state never reused
    import ctypes

    raw_pause = ctypes.CDLL(pa.get_backend("openssl").library_path).ASYNC_pause_job

    def stubborn(op: tls.KeyOperation) -> bytes:
        while True:
            try:
                raw_pause()
            except pa.JobCancelled:
                pass

    s, c = tls.Connection(server_context(stubborn)), tls.Connection(cctx)
    sess = session(s, c, b"x\n", {})
    while not s.waiting_for_async:
        next(sess)
    ts = s._core.bound.ts
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s.close()
    assert s.closed and s._core.leaked
    assert any(issubclass(w.category, ResourceWarning) for w in caught), caught
    from pyossl_async.tls import _binding

    thread = _binding._threads[threading.get_ident()]
    assert ts not in thread.tstates.free
    c.close()
    # later connections still work
    st: Dict[str, Any] = {}
    ops = Ops()
    s, c = tls.Connection(server_context(ops.pool_op)), tls.Connection(cctx)
    schedule([session(s, c, b"after\n", st)], "fifo", {})
    s.close()
    c.close()
    ops.close()
    assert ts not in thread.tstates.free
    out["after"] = st["version"]
    out["ended"] = len(ended)
    out["fds"] = open_fds() - fds_before
    return out


def deep(args: argparse.Namespace) -> Dict[str, Any]:
    """A key operation that needs far more than 32 KiB of C stack (OpenSSL 3.0's fibres)."""

    def recurse(n: int) -> int:
        return 0 if n == 0 else 1 + recurse(n - 1)

    def heavy(op: tls.KeyOperation) -> bytes:
        nested: Any = []
        for _ in range(300):
            nested = {"k": [nested]}  # json's C encoder recurses 600 levels deep
        assert json.dumps(nested).count("[") == 301
        assert recurse(args.depth) == args.depth
        pa.pause_job()
        assert recurse(args.depth) == args.depth
        return op.compute()

    s, c = tls.Connection(server_context(heavy)), tls.Connection(client_context())
    st: Dict[str, Any] = {}
    schedule([session(s, c, b"deep\n", st)], "fifo", {})
    s.close()
    c.close()
    return {"depth": args.depth, "version": st["version"], "stacks": tls.info()["key_operation_stacks"]}


def decrypt(args: argparse.Namespace) -> Dict[str, Any]:
    """RSA decryption (priv_dec) and signatures through libcrypto with an offloaded key."""
    import ctypes

    seen: List[Tuple[str, int]] = []

    def operation(op: tls.KeyOperation) -> bytes:
        seen.append((op.kind, op.padding))
        return op.compute()

    k = key("rsa")
    offloaded = tls.OffloadedRSAKey(k, operation)
    lib = tls._get_support().lib
    message = b"premaster secret, 48 bytes of it, or so it says"
    # encrypt with the plain key's public half, decrypt with the offloaded one
    enc = lib.EVP_PKEY_CTX_new(k.pkey, None)
    lib.EVP_PKEY_encrypt_init(enc)
    lib.EVP_PKEY_CTX_set_rsa_padding(enc, tls.RSA_PKCS1_PADDING)
    out_len = ctypes.c_size_t(512)
    ciphertext = ctypes.create_string_buffer(512)
    lib.EVP_PKEY_encrypt(enc, ciphertext, ctypes.byref(out_len), message, len(message))
    lib.EVP_PKEY_CTX_free(enc)
    dec = lib.EVP_PKEY_CTX_new(offloaded.pkey, None)
    lib.EVP_PKEY_decrypt_init(dec)
    lib.EVP_PKEY_CTX_set_rsa_padding(dec, tls.RSA_PKCS1_PADDING)
    plain_len = ctypes.c_size_t(512)
    plain = ctypes.create_string_buffer(512)
    lib.EVP_PKEY_decrypt(dec, plain, ctypes.byref(plain_len), ciphertext, out_len.value)
    lib.EVP_PKEY_CTX_free(dec)
    assert plain.raw[: plain_len.value] == message
    assert seen == [("rsa_decrypt", tls.RSA_PKCS1_PADDING)], seen
    return {"seen": seen}


def aio(args: argparse.Namespace) -> Dict[str, Any]:
    """The asyncio server against Python's ssl clients and ours, many at once, with a port
    probe, our own jobs paused on the same loop, and a handshake cut off while its job waits."""
    import asyncio
    import ssl
    import tempfile

    from pyossl_async import aio as pa_aio
    from pyossl_async.tls import aio as tls_aio

    ops = Ops()
    k = key(args.key)
    cert = tls.Certificate.self_signed(k)
    never: "concurrent.futures.Future[bytes]" = concurrent.futures.Future()
    stuck: List[str] = []

    def operation(op: tls.KeyOperation) -> bytes:
        if op.key is stuck_key:
            try:
                return pa.await_future(never)
            except pa.JobCancelled:
                stuck.append("JobCancelled")
                raise
        return getattr(ops, args.op)(op)

    offloaded = tls.OffloadedRSAKey(k, operation) if args.key == "rsa" else tls.OffloadedECKey(k, operation)
    stuck_key = tls.OffloadedRSAKey(key("rsa"), operation)
    sctx = tls.Context(True)
    sctx.use_certificate(cert)
    sctx.use_private_key(offloaded)
    stuck_ctx = tls.Context(True)
    stuck_ctx.use_certificate(tls.Certificate.self_signed(key("rsa")))
    stuck_ctx.use_private_key(stuck_key)
    stats: List[Dict[str, Any]] = []
    probes: List[str] = []
    handlers: List["asyncio.Task[Any]"] = []

    async def handler(stream: tls_aio.TLSStream) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        try:
            await stream.handshake()
        except tls.TLSEOFError:
            probes.append("probe")
            return
        stats.append({"version": stream.version, "key_ops": stream.key_operations, "pauses": stream.pauses})
        while True:
            line = await stream.readline()
            if not line:
                return
            await stream.write(line)

    async def our_job_loop() -> int:
        def job(arg: Any) -> int:
            total = 0
            for i in range(3):
                total += pa.await_future(ops.pool.submit(lambda x: x * 2, i))
            return total

        results = await asyncio.gather(*[pa_aio.run_job(job, backend="openssl") for _ in range(args.n)])
        return sum(results)

    async def main() -> Dict[str, Any]:
        server = await tls_aio.serve(sctx, handler, "127.0.0.1", 0, notify=args.wait)
        stuck_server = await tls_aio.serve(stuck_ctx, handler, "127.0.0.1", 0, notify=args.wait)
        port = server.sockets[0].getsockname()[1]
        with tempfile.TemporaryDirectory() as tmp:
            cafile = os.path.join(tmp, "ca.pem")
            with open(cafile, "wb") as f:
                f.write(cert.to_pem())

            async def python_client(i: int) -> bytes:
                ctx = ssl.create_default_context(cafile=cafile)
                ctx.maximum_version = ssl.TLSVersion.TLSv1_3 if i % 2 else ssl.TLSVersion.TLSv1_2
                reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
                writer.write(b"python %d\n" % i)
                line = await reader.readline()
                writer.close()
                return line

            async def our_client(i: int) -> bytes:
                ctx = tls.Context(False, cafile=cafile, async_mode=False)
                stream = await tls_aio.connect("127.0.0.1", port, ctx, server_hostname="localhost", notify=args.wait)
                await stream.write(b"ours %d\n" % i)
                line = await stream.readline()
                await stream.close()
                return line

            async def probe() -> None:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()

            async def cut_off() -> None:
                ctx = ssl.create_default_context(cafile=cafile)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                stuck_port = stuck_server.sockets[0].getsockname()[1]
                try:
                    await asyncio.wait_for(asyncio.open_connection("127.0.0.1", stuck_port, ssl=ctx), 0.5)
                except (asyncio.TimeoutError, OSError):
                    pass

            lines = await asyncio.gather(
                *[python_client(i) for i in range(args.n)],
                *[our_client(i) for i in range(args.n)],
                probe(),
                our_job_loop(),
                cut_off(),
            )
        expected = [b"python %d\n" % i for i in range(args.n)] + [b"ours %d\n" % i for i in range(args.n)]
        assert list(lines[: 2 * args.n]) == expected, lines
        assert lines[2 * args.n + 1] == args.n * (0 + 2 + 4)
        server.close()
        stuck_server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
        await stuck_server.wait_closed()
        return {"handshakes": len(stats), "probes": len(probes), "stuck": stuck}

    out = asyncio.run(main())
    ops.close()
    assert out["handshakes"] == 2 * args.n, out
    assert out["probes"] >= 1, out
    assert all(st["key_ops"] == 1 and st["pauses"] >= 1 for st in stats), stats
    assert stuck == ["JobCancelled"], stuck
    gc.collect()
    balance = thread_state_balance()
    assert balance["created"] == balance["free"], balance
    out["versions"] = sorted({st["version"] for st in stats})
    return out


_left: List[Any] = []


def at_exit(args: argparse.Namespace) -> Dict[str, Any]:
    """A connection left paused when the interpreter exits: its job is driven to its end
    (the operation gets JobCancelled, and prints so after the JSON line)."""

    def op(o: tls.KeyOperation) -> bytes:
        try:
            pa.pause_job()
        except pa.JobCancelled:
            print("cancelled at exit", flush=True)
            raise
        return o.compute()

    s, c = tls.Connection(server_context(op)), tls.Connection(client_context())
    sess = session(s, c, b"x\n", {})
    while not s.waiting_for_async:
        next(sess)
    _left.extend((s, c, sess))
    return {"paused": s.waiting_for_async}


SCENARIOS = {
    f.__name__: f
    for f in (interleave, records, unbound, failures, ctrl_c, threads, coexist, teardown, deep, decrypt, aio, at_exit)
}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--n", type=int, default=8, help="connections at once")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--order", choices=("fifo", "reverse", "random"), default="random")
    parser.add_argument("--op", choices=("pause", "pool_op", "fd_op", "held", "mixed"), default="mixed")
    parser.add_argument("--wait", choices=("fd", "callback"), default="fd")
    parser.add_argument("--key", choices=("rsa", "ec"), default="rsa")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--depth", type=int, default=800)
    args = parser.parse_args(argv)
    result = SCENARIOS[args.scenario](args)
    print(json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
