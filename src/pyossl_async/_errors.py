"""Exceptions raised by pyossl_async, shared by every backend.

The hierarchy is part of the public contract: ``AsyncError`` is the base of
everything the library raises itself; ``JobCancelled`` deliberately is not, so
that ``except Exception`` in job code cannot swallow a cancellation.
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple, Optional

__all__ = [
    "AsyncError",
    "BackendUnavailable",
    "ErrorEntry",
    "JobCancelled",
    "JobStateError",
    "SettingError",
    "WaitCtxClosedError",
]


class ErrorEntry(NamedTuple):
    """One entry drained from libcrypto's thread error queue."""

    library: int
    reason: int
    text: str


class AsyncError(Exception):
    """Base of every error pyossl_async raises itself.

    ``errors`` holds the libcrypto error-queue entries drained when the error
    came from libcrypto, and is empty otherwise.
    """

    errors: tuple[ErrorEntry, ...]

    def __init__(self, message: str, errors: Iterable[ErrorEntry] = ()) -> None:
        super().__init__(message)
        self.errors = tuple(errors)

    def __str__(self) -> str:
        base = super().__str__()
        if not self.errors:
            return base
        return base + " [" + "; ".join(e.text for e in self.errors) + "]"


class BackendUnavailable(AsyncError):
    """A backend cannot be loaded; the message says why and what was tried."""


class JobStateError(AsyncError, RuntimeError):
    """A job was used in a way its state does not allow.

    Raised where C would have undefined behaviour: resuming a finished, running
    or foreign job, resuming from another OS thread, starting a job from inside
    a job, pausing with no usable wait context, cleaning up a thread that still
    has paused jobs.
    """


class WaitCtxClosedError(AsyncError, ValueError):
    """A closed ``WaitCtx`` was used."""


class SettingError(AsyncError, ValueError):
    """A ``PYOSSL_ASYNC_*`` environment variable has a value the library does not accept.

    ``str()`` is one line: the variable, its value, what is wrong and what is
    accepted (``PYOSSL_ASYNC_STACK_MODE=bogus: unknown stack mode 'bogus'; choose
    from auto, nested, openssl``). Raised at the library's first use
    (``get_backend()``, ``WaitCtx()``, ``run_job()``...), never at import, and
    never turned into a fallback: a typo in a setting must not quietly run
    something else. A ``ValueError`` too, as a bad value is.
    """

    variable: str
    value: str
    problem: str
    accepted: str

    def __init__(self, variable: str, value: str, problem: str, accepted: str) -> None:
        super().__init__(f"{variable}={shown_value(value)}: {problem}; {accepted}")
        self.variable, self.value, self.problem, self.accepted = variable, value, problem, accepted

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.variable, self.value, self.problem, self.accepted))


def plural(count: int, noun: str, nouns: Optional[str] = None) -> str:
    """``"1 scenario"``, ``"2 scenarios"``, ``"0 scenarios"`` (for messages)."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def shown_value(value: str) -> str:
    """An environment variable's value as a message shows it: as typed, or quoted
    (``repr``) when it is empty or has spaces or unprintable characters."""
    if value and value.isprintable() and not any(c.isspace() for c in value):
        return value
    return repr(value)


class JobCancelled(BaseException):
    """Raised inside a paused job, from its ``pause_job()``, when it is closed.

    Like ``GeneratorExit`` it derives from ``BaseException`` so that
    ``except Exception`` in job code lets it through and ``finally`` blocks run.
    """


def from_conversion_failure(exc: BaseException) -> BaseException:
    """What a ``ctypes.ArgumentError`` from one of the library's own C calls stands for.

    Our own arguments are always of the right type, so such an error means the
    interpreter could not convert one (on 3.9-3.11 ctypes wraps the RecursionError
    of a call made at the recursion limit, or a MemoryError, into ArgumentError,
    sometimes with only ``???`` for a message).
    """
    if "MemoryError" in str(exc):
        return MemoryError(str(exc))
    return RecursionError(f"maximum recursion depth exceeded ({exc})")
