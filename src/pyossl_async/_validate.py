"""Argument checks shared by both backends, so that both reject bad input identically."""

from __future__ import annotations

from typing import Any, Callable, Hashable

from ._constants import C_INT_MAX, C_INT_MIN, SIZE_MAX

__all__ = ["c_int", "callable_or_none", "hashable_key", "job_args", "job_result", "size_t"]


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


def job_result(value: Any) -> int:
    """The C ``int`` a job function's return value stands for."""
    if not isinstance(value, int):
        raise TypeError(
            f"a job function must return an int (the job's C int result), "
            f"not {type(value).__name__}"
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
