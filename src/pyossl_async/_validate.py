"""Argument checks shared by both backends, so that both reject bad input identically."""

from __future__ import annotations

from typing import Any, Callable, Hashable

from ._constants import C_INT_MAX, C_INT_MIN, SIZE_MAX

__all__ = [
    "MAX_INIT_SIZE",
    "c_int",
    "callable_or_none",
    "hashable_key",
    "init_size_limit",
    "job_args",
    "job_result",
    "size_t",
]

#: The most jobs ``init_thread`` pre-creates. OpenSSL creates all ``init_size`` jobs
#: at once, each with its own stack: 3.0/3.1 ``malloc`` 32 KiB per stack with no
#: limit, so ``init_thread(2**63, 2**31 - 1)`` ran the machine out of memory until
#: the kernel killed the process; the python backend starts a thread per job. A
#: process can hold about 30,000 paused jobs anyway (README, Security and limits).
MAX_INIT_SIZE = 1 << 15


def _integer(value: Any, what: str) -> int:
    # bool is an int subclass and C accepts it as 0/1, so it is allowed.
    if not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return int(value)


def c_int(value: Any, what: str) -> int:
    """``value`` as a C ``int``: TypeError for non-ints, OverflowError out of range."""
    v = _integer(value, what)
    if not C_INT_MIN <= v <= C_INT_MAX:
        raise OverflowError(f"{what} {v} is out of range for a C int")
    return v


def size_t(value: Any, what: str) -> int:
    """``value`` as a C ``size_t``: negative is ValueError, too large OverflowError."""
    v = _integer(value, what)
    if v < 0:
        raise ValueError(f"{what} must be >= 0, got {v}")
    if v > SIZE_MAX:
        raise OverflowError(f"{what} {v} is out of range for a C size_t")
    return v


def init_size_limit(max_size: int, init_size: int) -> None:
    """Refuse to pre-create more than ``MAX_INIT_SIZE`` jobs (ValueError).

    Only where OpenSSL would pre-create them (``init_size <= max_size``): every
    size OpenSSL refuses with 0 still gives ``False``.
    """
    if max_size >= init_size > MAX_INIT_SIZE:
        raise ValueError(
            f"init_size {init_size} is above {MAX_INIT_SIZE}, the most jobs init_thread() pre-creates "
            f"(each holds a stack; more would exhaust memory)"
        )


def job_result(value: Any, func_name: str = "the job function") -> int:
    """The C ``int`` a job function's return value stands for."""
    if not isinstance(value, int):
        raise TypeError(
            f"{func_name} returned {type(value).__name__}: start_job() passes on a job's C int "
            f"result only; pa.run_job() and aio.run_job() return whatever the job function returns"
        )
    return c_int(value, "job function result")


def job_args(args: Any) -> Any:
    """What the job function receives: bytes-like arguments are copied, as C copies them."""
    if args is None or isinstance(args, bytes):
        return args
    try:
        view = memoryview(args)
    except TypeError:
        return args
    with view:
        return view.tobytes()


def callable_or_none(value: Any, what: str) -> Callable[..., Any] | None:
    if value is not None and not callable(value):
        raise TypeError(f"{what} must be callable or None, not {type(value).__name__}")
    fn: Callable[..., Any] | None = value
    return fn


def hashable_key(key: Any) -> Hashable:
    try:
        hash(key)
    except TypeError:
        raise TypeError(f"wait fd keys must be hashable, not {type(key).__name__}") from None
    hashable: Hashable = key
    return hashable
