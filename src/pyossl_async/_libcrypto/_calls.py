"""How a failed argument conversion of one of our own C calls is reported."""

from __future__ import annotations

import ctypes
import functools
from typing import Any, Callable, TypeVar

from .._errors import from_conversion_failure

__all__ = ["c_call"]

_F = TypeVar("_F", bound=Callable[..., Any])


def c_call(method: _F) -> _F:
    """For a function whose C calls take only arguments we built: a conversion can
    then fail only when the interpreter cannot convert (3.9-3.11 wrap a
    RecursionError at the recursion limit, or a MemoryError, in
    ``ctypes.ArgumentError``); raise what it stands for instead."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except ctypes.ArgumentError as exc:
            raise from_conversion_failure(exc) from None

    return wrapper  # type: ignore[return-value]
