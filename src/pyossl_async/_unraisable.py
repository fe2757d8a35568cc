"""Reporting exceptions that must not propagate (cleanup functions, wait-ctx callbacks,
finalisers) through ``sys.unraisablehook``, the way CPython reports them itself.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional

__all__ = ["report_unraisable"]

_args_type: Optional[Callable[[Any], Any]] = None


def _unraisable_args_type() -> Callable[[Any], Any]:
    """``sys.UnraisableHookArgs`` is not exposed; obtain it from CPython once."""
    global _args_type
    if _args_type is None:
        captured: list[Any] = []
        previous = sys.unraisablehook
        sys.unraisablehook = captured.append

        class _Probe:
            def __del__(self) -> None:
                raise RuntimeError("probe")

        try:
            _Probe()
        finally:
            sys.unraisablehook = previous
        if not captured:  # pragma: no cover - an implementation without the hook
            raise RuntimeError("cannot obtain UnraisableHookArgs")
        _args_type = type(captured[0])
        # The probe's exception has the exception being handled now (the one about
        # to be reported) as its __context__; through it, that exception's frames and
        # everything they reference stayed alive for good. Let go of all of it.
        probe = captured.pop().exc_value
        if probe is not None:
            probe.__context__ = probe.__traceback__ = None
    return _args_type


def report_unraisable(exc: BaseException, message: str, obj: Any = None) -> None:
    """Hand ``exc`` to ``sys.unraisablehook`` with ``message``; never raises."""
    try:
        args = _unraisable_args_type()((type(exc), exc, exc.__traceback__, message, obj))
        sys.unraisablehook(args)
    except BaseException:  # noqa: BLE001 - last resort: a broken hook
        try:
            print(f"{message}: {exc!r}", file=sys.stderr)
        except BaseException:  # noqa: BLE001
            pass
