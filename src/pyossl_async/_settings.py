"""Every runtime setting of pyossl_async: the ``PYOSSL_ASYNC_*`` environment variables.

Each variable is read here and nowhere else (a test greps the package for it),
when it is needed and not at import, and validated here: a value that is not
accepted raises :class:`~pyossl_async.SettingError`, one line naming the
variable, its value and what is accepted. Nothing falls back to a default on a
bad value: a typo in a tuning setting must not quietly choose another backend.

The accessors read the environment each time they are called; their callers
decide when that is (the backend variables at each ``get_backend(None)``, the
openssl backend's at its load, the close timeout once, at first use).
:func:`check` validates every setting at the library's first use, so that a bad
value for a backend that is not used yet is refused too.

This module must work where ctypes cannot be imported (it imports nothing but
the errors). The test toolkit's variables are in ``testing/_settings.py``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple, TypeVar

from ._errors import SettingError, shown_value

if TYPE_CHECKING:
    from typing import Literal

    from ._protocol import BackendName

    StackMode = Literal["auto", "nested", "openssl"]
    SwitchMode = Literal["auto", "native", "chain"]
    PythonEngine = Literal["auto", "greenlet", "threads"]

__all__ = [
    "ENV_BACKEND",
    "ENV_CLOSE_TIMEOUT",
    "ENV_DEBUG",
    "ENV_LIBCRYPTO",
    "ENV_PYTHON_ENGINE",
    "ENV_STACK_MODE",
    "ENV_STACK_SIZE",
    "ENV_SWITCH",
    "MIN_STACK_SIZE",
    "SETTINGS",
    "Setting",
    "assignment",
    "backend",
    "check",
    "close_timeout",
    "count",
    "debug",
    "default_close_timeout",
    "flag",
    "libcrypto",
    "parse_size",
    "problems",
    "python_engine",
    "raw",
    "stack_mode",
    "stack_size",
    "switch_mode",
    "values",
]

ENV_BACKEND = "PYOSSL_ASYNC_BACKEND"
ENV_LIBCRYPTO = "PYOSSL_ASYNC_LIBCRYPTO"
ENV_CLOSE_TIMEOUT = "PYOSSL_ASYNC_CLOSE_TIMEOUT"
ENV_STACK_SIZE = "PYOSSL_ASYNC_STACK_SIZE"
ENV_STACK_MODE = "PYOSSL_ASYNC_STACK_MODE"
ENV_SWITCH = "PYOSSL_ASYNC_SWITCH"
ENV_DEBUG = "PYOSSL_ASYNC_DEBUG"
ENV_PYTHON_ENGINE = "PYOSSL_ASYNC_PYTHON_ENGINE"

_K = TypeVar("_K", bound=str)
_BACKENDS: Dict[str, BackendName] = {"openssl": "openssl", "python": "python"}
#: the accepted values of the keyword settings, the default first
_STACK_MODES: Dict[str, StackMode] = {"auto": "auto", "nested": "nested", "openssl": "openssl"}
_SWITCH_MODES: Dict[str, SwitchMode] = {"auto": "auto", "native": "native", "chain": "chain"}
_PYTHON_ENGINES: Dict[str, PythonEngine] = {"auto": "auto", "greenlet": "greenlet", "threads": "threads"}
#: the smallest job stack the openssl backend accepts (``PYOSSL_ASYNC_STACK_SIZE``)
MIN_STACK_SIZE = 64 << 10
DEFAULT_CLOSE_TIMEOUT = 10.0
_ON = ("1", "on", "yes", "true")
_OFF = ("0", "off", "no", "false")
_SIZE_ACCEPTED = "use a byte count, or a number with k, M or G (4M, 512k), of at least 64k"


def raw(name: str) -> Optional[str]:
    """A variable's value as set, ``None`` when unset or empty (both mean "not set")."""
    value = os.environ.get(name)
    return value if value else None


def assignment(name: str) -> str:
    """``NAME=value`` as messages show a variable that is set (see ``shown_value``)."""
    return f"{name}={shown_value(raw(name) or '')}"


def _keyword(name: str, choices: Dict[str, _K], what: str) -> _K:
    """A variable that is one of ``choices`` (case and surrounding spaces ignored);
    the first choice when unset."""
    value = raw(name)
    if value is None:
        return next(iter(choices.values()))
    word = value.strip().lower()
    found = choices.get(word)
    if found is None:
        raise SettingError(name, value, f"unknown {what} {word!r}", f"choose from {', '.join(choices)}")
    return found


def backend() -> Optional[BackendName]:
    """``$PYOSSL_ASYNC_BACKEND``: the backend ``get_backend(None)`` must return, or None."""
    value = raw(ENV_BACKEND)
    if value is None:
        return None
    name = value.strip()  # names are exact, as for get_backend(name)
    found = _BACKENDS.get(name)
    if found is None:
        raise SettingError(ENV_BACKEND, value, f"unknown backend {name!r}", f"choose from {', '.join(_BACKENDS)}")
    return found


def libcrypto() -> Optional[str]:
    """``$PYOSSL_ASYNC_LIBCRYPTO``: the one libcrypto file to load, or None.

    Any path is accepted here; whether it loads is the loader's to say (as
    ``BackendUnavailable`` naming the variable).
    """
    return raw(ENV_LIBCRYPTO)


_fixed_close_timeout: Optional[float] = None


def default_close_timeout() -> float:
    """``pa.DEFAULT_CLOSE_TIMEOUT``: :func:`close_timeout` read at its first use, then
    fixed for the process, so that every close agrees (``SettingError`` until the
    variable holds an accepted value)."""
    global _fixed_close_timeout
    if _fixed_close_timeout is None:
        _fixed_close_timeout = close_timeout()
    return _fixed_close_timeout


def close_timeout() -> float:
    """``$PYOSSL_ASYNC_CLOSE_TIMEOUT``: seconds closing a job may take by default (10)."""
    value = raw(ENV_CLOSE_TIMEOUT)
    if value is None or not value.strip():
        return DEFAULT_CLOSE_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        problem = "not a number" if math.isnan(seconds) else "out of range"
        raise SettingError(ENV_CLOSE_TIMEOUT, value, problem, "use a number of seconds >= 0 (10 by default)")
    return seconds


def parse_size(text: str) -> int:
    """``"4M"``, ``"512k"`` or a byte count; ``ValueError`` for anything else."""
    t = text.strip().lower()
    scale = 1
    if t and t[-1] in "kmg":
        scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[t[-1]]
        t = t[:-1]
    if not t.isdigit():  # int() would also take "+1", "1_000" and " 1"
        raise ValueError("not a size")
    return int(t) * scale


def stack_size() -> Optional[int]:
    """``$PYOSSL_ASYNC_STACK_SIZE``: a job's stack in bytes for the openssl backend;
    None when unset (the backend's default, 4 MiB, applies)."""
    value = raw(ENV_STACK_SIZE)
    if value is None:
        return None
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise SettingError(ENV_STACK_SIZE, value, str(exc), _SIZE_ACCEPTED) from None
    if size < MIN_STACK_SIZE:
        raise SettingError(ENV_STACK_SIZE, value, f"{size} bytes is below the minimum {MIN_STACK_SIZE}", _SIZE_ACCEPTED)
    return size


def stack_mode() -> StackMode:
    """``$PYOSSL_ASYNC_STACK_MODE``: where the openssl backend's job stacks come from.

    ``nested``: ours, entered from OpenSSL's small fibre; ``openssl``: ours, handed
    to OpenSSL 3.2+ with ``ASYNC_set_mem_functions``; ``auto`` (unset): ``openssl``
    where that works, else ``nested``.
    """
    return _keyword(ENV_STACK_MODE, _STACK_MODES, "stack mode")


def switch_mode() -> SwitchMode:
    """``$PYOSSL_ASYNC_SWITCH``: how the openssl backend switches into jobs.

    ``native``: a machine-code switch entry; ``chain``: the portable call chain;
    ``auto`` (unset): native where possible.
    """
    return _keyword(ENV_SWITCH, _SWITCH_MODES, "switch mode")


def python_engine() -> PythonEngine:
    """``$PYOSSL_ASYNC_PYTHON_ENGINE``: what runs the python backend's jobs.

    ``greenlet``: greenlets (the package must import); ``threads``: worker
    threads; ``auto`` (unset): greenlets when greenlet imports, else threads.
    """
    return _keyword(ENV_PYTHON_ENGINE, _PYTHON_ENGINES, "python engine")


def flag(name: str) -> bool:
    """An on/off variable (off when unset): ``1``/``on``/``yes``/``true`` or ``0``/``off``/``no``/``false``."""
    value = raw(name)
    if value is None:
        return False
    word = value.strip().lower()
    if word in _ON:
        return True
    if word in _OFF:
        return False
    raise SettingError(name, value, "not on or off", f"use {', '.join(_ON)} or {', '.join(_OFF)}")


def count(name: str, default: int) -> int:
    """A variable that is a whole number >= 0 (``default`` when unset)."""
    value = raw(name)
    if value is None:
        return default
    text = value.strip()
    if not text.isdigit():
        raise SettingError(name, value, "not a whole number", f"use a number >= 0 ({default} by default)")
    return int(text)


def debug() -> bool:
    """``$PYOSSL_ASYNC_DEBUG``, for debugging the library itself: on/off (off when unset).

    On, the openssl backend checks its thread-state binding at every job start
    and resume instead of at the first ones only (slower).
    """
    return flag(ENV_DEBUG)


@dataclass(frozen=True)
class Setting:
    """One runtime setting, as ``info`` and the documentation list it."""

    name: str
    #: what applies when the variable is not set
    default: str
    #: the accessor: reads and validates the variable (``SettingError``)
    read: Callable[[], object]
    #: only for debugging the library itself
    debug: bool = False


SETTINGS: Tuple[Setting, ...] = (
    Setting(ENV_BACKEND, "the first backend that can run jobs", backend),
    Setting(ENV_LIBCRYPTO, "the system's libcrypto", libcrypto),
    Setting(ENV_CLOSE_TIMEOUT, "10", close_timeout),
    Setting(ENV_STACK_SIZE, "4M", stack_size),
    Setting(ENV_STACK_MODE, "auto", stack_mode),
    Setting(ENV_SWITCH, "auto", switch_mode),
    Setting(ENV_PYTHON_ENGINE, "auto", python_engine),
    Setting(ENV_DEBUG, "off", debug, debug=True),
)

#: set once every setting was found valid (see ``check``)
_checked = False


def problems() -> List[SettingError]:
    """Every setting whose value is refused, in ``SETTINGS`` order (``[]``: all valid)."""
    found = []
    for setting in SETTINGS:
        try:
            setting.read()
        except SettingError as exc:
            found.append(exc)
    return found


def check() -> None:
    """Raise the first refused setting's ``SettingError``; at the library's first use.

    Once every setting was valid this returns at once: the variables a backend
    reads are read (and validated) again when it loads, the close timeout when
    it is first needed.
    """
    global _checked
    if _checked:
        return
    found = problems()
    if found:
        raise found[0]
    _checked = True


def values() -> Dict[str, Optional[str]]:
    """Each runtime variable's value as set (None: not set), for ``info``."""
    return {setting.name: raw(setting.name) for setting in SETTINGS}
