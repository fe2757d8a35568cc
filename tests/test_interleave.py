"""Many jobs paused at once, resumed in any order from any frame: the hazard-1 tests."""

from __future__ import annotations

import json
import random
import sys
import threading
import traceback
from typing import Any, Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyossl_async as pa


def counting_job(backend: pa.Backend, pauses: int) -> Callable[[Any], int]:
    def job(n: int) -> int:
        total = 0
        for i in range(pauses):
            marker = [n, i]  # locals must survive every switch
            backend.pause_job()
            assert marker == [n, i]
            total += i
        return n * 1000 + total

    return job


def _start_from_a_helper(backend: pa.Backend, ctx: Any, job: Any, n: int) -> Any:
    def deeper(k: int) -> Any:
        return deeper(k - 1) if k else backend.start_job(None, ctx, job, n)[1]

    return deeper(n % 7)


class Resumer:
    def resume(self, backend: pa.Backend, handle: Any) -> Any:
        return backend.start_job(handle, None, None)


def test_hundreds_of_jobs_resumed_in_random_order(backend: pa.Backend) -> None:
    rng = random.Random(1234)
    pauses = 4
    job = counting_job(backend, pauses)
    with backend.WaitCtx() as ctx:
        pending = {n: _start_from_a_helper(backend, ctx, job, n) for n in range(300)}
        results: dict[int, int] = {}
        resumers: list[Callable[[Any], Any]] = [
            lambda h: backend.start_job(h, None, None),
            lambda h: Resumer().resume(backend, h),
            lambda h: (lambda: backend.start_job(h, None, None))(),
        ]

        def gen_resume(h: Any) -> Any:
            def g() -> Iterator[Any]:
                yield backend.start_job(h, None, None)

            return next(g())

        resumers.append(gen_resume)
        while pending:
            n = rng.choice(list(pending))
            status, _, ret = rng.choice(resumers)(pending[n])
            if status == pa.FINISH:
                results[n] = ret
                del pending[n]
    assert results == {n: n * 1000 + sum(range(pauses)) for n in range(300)}


@settings(max_examples=25)
@given(order=st.lists(st.integers(min_value=0, max_value=9), min_size=10, max_size=60))
def test_any_resume_order(order: list[int]) -> None:
    for name in pa.available_backends():
        backend = pa.get_backend(name)
        job = counting_job(backend, 3)
        with backend.WaitCtx() as ctx:
            handles = {n: backend.start_job(None, ctx, job, n)[1] for n in range(10)}
            for n in order:
                if n in handles:
                    status, _, ret = backend.start_job(handles[n], None, None)
                    if status == pa.FINISH:
                        assert ret == n * 1000 + 3
                        del handles[n]
            for h in handles.values():
                h.close()
        backend.cleanup_thread()


def test_deep_recursion_with_c_callbacks_inside_a_job(backend: pa.Backend) -> None:
    """Depth 600 with json, sorting with a key and tracebacks: needs a real stack."""

    def deep(n: int) -> int:
        if n:
            return deep(n - 1)
        backend.pause_job()
        nested: Any = []
        for i in range(80):
            nested = [i, {"k": nested}]
        text = json.dumps(nested)
        ordered = sorted(range(2000), key=lambda x: (x * 7919) % 2003)
        stack = traceback.extract_stack()
        formatted = "".join(traceback.format_list(stack))
        backend.pause_job()
        assert sum(1 for fs in stack if fs.name == "deep") == 601 and "deep" in formatted
        return len(text) % 1000 + len(ordered) + len(stack)

    def job(arg: Any) -> int:
        return deep(600)

    with backend.WaitCtx() as ctx:
        handles = [backend.start_job(None, ctx, job)[1] for _ in range(3)]
        for h in handles:
            assert backend.start_job(h, None, None)[0] == pa.PAUSE
        results = [backend.start_job(h, None, None) for h in handles]
    assert [status for status, _, _ in results] == [pa.FINISH] * 3
    assert all(ret >= 2000 + 600 for _, _, ret in results), results


def test_generators_and_exception_stacks_paused_mid_iteration(backend: pa.Backend) -> None:
    def gen(n: int) -> Iterator[int]:
        try:
            raise ValueError(n)
        except ValueError:
            for i in range(3):
                backend.pause_job()
                assert sys.exc_info()[1].args == (n,)  # type: ignore[union-attr]
                yield i

    def job(n: int) -> int:
        return sum(gen(n)) + n

    with backend.WaitCtx() as ctx:
        handles = {n: backend.start_job(None, ctx, job, n)[1] for n in range(20)}
        results = {}
        while handles:
            for n in list(handles)[::-1]:
                status, _, ret = backend.start_job(handles[n], None, None)
                if status == pa.FINISH:
                    results[n] = ret
                    del handles[n]
    assert results == {n: 3 + n for n in range(20)}


def test_each_thread_drives_its_own_jobs(backend: pa.Backend) -> None:
    errors: list[BaseException] = []
    done: list[int] = []

    def worker(seed: int) -> None:
        try:
            rng = random.Random(seed)
            job = counting_job(backend, 3)
            with backend.WaitCtx() as ctx:
                handles = [backend.start_job(None, ctx, job, n)[1] for n in range(60)]
                count = 0
                while handles:
                    h = rng.choice(handles)
                    if backend.start_job(h, None, None)[0] == pa.FINISH:
                        handles.remove(h)
                        count += 1
            backend.cleanup_thread()
            done.append(count)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and done == [60] * 4


def test_jobs_started_in_a_function_that_returned(backend: pa.Backend) -> None:
    """The naive binding crashes here: the starting frame is gone before the resume."""
    job = counting_job(backend, 2)
    ctx = backend.WaitCtx()

    def start_some() -> list[Any]:
        return [backend.start_job(None, ctx, job, n)[1] for n in range(5)]

    def resume_all(handles: list[Any]) -> list[Any]:
        return [backend.start_job(h, None, None) for h in handles]

    handles = start_some()
    resume_all(handles)
    assert [r[2] for r in resume_all(handles[::-1])] == [n * 1000 + 1 for n in range(5)][::-1]
    ctx.close()


@pytest.mark.slow
def test_many_jobs_start_and_finish(backend: pa.Backend) -> None:
    job = counting_job(backend, 1)
    with backend.WaitCtx() as ctx:
        for n in range(2000):
            _, h, _ = backend.start_job(None, ctx, job, n)
            assert backend.start_job(h, None, None) == (pa.FINISH, None, n * 1000)
