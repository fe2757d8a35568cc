"""Every setting of the test toolkit: its ``PYOSSL_ASYNC_*`` environment variables.

The library's own settings are in ``pyossl_async._settings``; these are the ones
only testing tools read (the pytest plugin, the C builds, the conformance
command and runner, and this project's own test suite). Each is read here and
nowhere else, when it is needed, and validated with the same rules: a value
that is not accepted raises ``SettingError``, one line naming the variable, its
value and what is accepted (the conformance command refuses to start on it, the
pytest plugin stops the run with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from .. import _settings
from .._errors import SettingError

__all__ = [
    "ENV_CACHE",
    "ENV_CONFORMANCE_CACHE",
    "ENV_CONFORMANCE_CATALOGUE",
    "ENV_CONFORMANCE_EXAMPLES",
    "ENV_CONFORMANCE_RANDOM",
    "ENV_FUZZ_EXAMPLES",
    "ENV_FUZZ_LOG",
    "ENV_FUZZ_RANDOM",
    "ENV_FUZZ_STATS",
    "ENV_REQUIRE_BACKENDS",
    "ENV_TEST_ALT_LIBCRYPTO",
    "SETTINGS",
    "ToolSetting",
    "alt_libcrypto",
    "build_cache",
    "check",
    "conformance_cache",
    "conformance_catalogue",
    "conformance_examples",
    "conformance_random",
    "fuzz_examples",
    "fuzz_log",
    "fuzz_random",
    "fuzz_stats",
    "problems",
    "required_backends",
]

ENV_REQUIRE_BACKENDS = "PYOSSL_ASYNC_REQUIRE_BACKENDS"
ENV_CACHE = "PYOSSL_ASYNC_CACHE"
ENV_CONFORMANCE_CACHE = "PYOSSL_ASYNC_CONFORMANCE_CACHE"
ENV_CONFORMANCE_EXAMPLES = "PYOSSL_ASYNC_CONFORMANCE_EXAMPLES"
ENV_CONFORMANCE_RANDOM = "PYOSSL_ASYNC_CONFORMANCE_RANDOM"
ENV_CONFORMANCE_CATALOGUE = "PYOSSL_ASYNC_CONFORMANCE_CATALOGUE"
ENV_TEST_ALT_LIBCRYPTO = "PYOSSL_ASYNC_TEST_ALT_LIBCRYPTO"
ENV_FUZZ_EXAMPLES = "PYOSSL_ASYNC_FUZZ_EXAMPLES"
ENV_FUZZ_RANDOM = "PYOSSL_ASYNC_FUZZ_RANDOM"
ENV_FUZZ_LOG = "PYOSSL_ASYNC_FUZZ_LOG"
ENV_FUZZ_STATS = "PYOSSL_ASYNC_FUZZ_STATS"

#: what ``$PYOSSL_ASYNC_REQUIRE_BACKENDS`` may name: the backends, and ``C`` (the
#: conformance command's C twins)
C_TWINS = "C"
_REQUIRABLE = ("openssl", "python", C_TWINS)


def required_backends() -> List[str]:
    """``$PYOSSL_ASYNC_REQUIRE_BACKENDS``: comma-separated names that must run, in order,
    each once (``C``, in any case, is returned as ``"C"``)."""
    value = _settings.raw(ENV_REQUIRE_BACKENDS)
    names: List[str] = []
    for part in (value or "").split(","):
        name = part.strip()
        if not name:
            continue
        if name.upper() == C_TWINS:
            name = C_TWINS
        if name not in _REQUIRABLE:
            raise SettingError(
                ENV_REQUIRE_BACKENDS, value or "", f"unknown name {name!r}", f"choose from {', '.join(_REQUIRABLE)}"
            )
        if name not in names:
            names.append(name)
    return names


def build_cache() -> Optional[str]:
    """``$PYOSSL_ASYNC_CACHE``: where ``compile_c`` and ``PauseEngine`` keep builds (None: the user's cache)."""
    return _settings.raw(ENV_CACHE)


def conformance_cache() -> Optional[str]:
    """``$PYOSSL_ASYNC_CONFORMANCE_CACHE``: where compiled C twins are kept (None: under the build cache)."""
    return _settings.raw(ENV_CONFORMANCE_CACHE)


def conformance_examples() -> int:
    """``$PYOSSL_ASYNC_CONFORMANCE_EXAMPLES``: how many programs the random differential test runs (300)."""
    return _settings.count(ENV_CONFORMANCE_EXAMPLES, 300)


def conformance_random() -> bool:
    """``$PYOSSL_ASYNC_CONFORMANCE_RANDOM``: on, the random test draws new programs each run
    (off: the same programs every run, for reproducible CI)."""
    return _settings.flag(ENV_CONFORMANCE_RANDOM)


def conformance_catalogue() -> Optional[str]:
    """``$PYOSSL_ASYNC_CONFORMANCE_CATALOGUE``: ``module:function`` returning the scenarios to run
    instead of the built-in suite (the runner's own tests use it), or None."""
    value = _settings.raw(ENV_CONFORMANCE_CATALOGUE)
    if value is None:
        return None
    module, _, function = value.strip().partition(":")
    if not module or not function:
        raise SettingError(ENV_CONFORMANCE_CATALOGUE, value, "not module:function", "use package.module:function")
    return value.strip()


def alt_libcrypto() -> Optional[str]:
    """``$PYOSSL_ASYNC_TEST_ALT_LIBCRYPTO`` (this project's tests): a second libcrypto
    (OpenSSL 3.2+) the tests that need one load in child processes, or None."""
    return _settings.raw(ENV_TEST_ALT_LIBCRYPTO)


def fuzz_examples() -> int:
    """``$PYOSSL_ASYNC_FUZZ_EXAMPLES`` (this project's tests): programs per API fuzz run (1000)."""
    return _settings.count(ENV_FUZZ_EXAMPLES, 1000)


def fuzz_random() -> bool:
    """``$PYOSSL_ASYNC_FUZZ_RANDOM`` (this project's tests): on, new random programs each run."""
    return _settings.flag(ENV_FUZZ_RANDOM)


def fuzz_log() -> Optional[str]:
    """``$PYOSSL_ASYNC_FUZZ_LOG`` (this project's tests): a file that keeps the fuzz child's stderr."""
    return _settings.raw(ENV_FUZZ_LOG)


def fuzz_stats() -> bool:
    """``$PYOSSL_ASYNC_FUZZ_STATS`` (this project's tests): on, print hypothesis statistics."""
    return _settings.flag(ENV_FUZZ_STATS)


@dataclass(frozen=True)
class ToolSetting:
    """One testing setting, as the documentation lists it."""

    name: str
    read: Callable[[], object]
    #: only this project's own test suite reads it
    project_only: bool = False


SETTINGS: Tuple[ToolSetting, ...] = (
    ToolSetting(ENV_REQUIRE_BACKENDS, required_backends),
    ToolSetting(ENV_CACHE, build_cache),
    ToolSetting(ENV_CONFORMANCE_CACHE, conformance_cache),
    ToolSetting(ENV_CONFORMANCE_EXAMPLES, conformance_examples),
    ToolSetting(ENV_CONFORMANCE_RANDOM, conformance_random),
    ToolSetting(ENV_CONFORMANCE_CATALOGUE, conformance_catalogue),
    ToolSetting(ENV_TEST_ALT_LIBCRYPTO, alt_libcrypto, project_only=True),
    ToolSetting(ENV_FUZZ_EXAMPLES, fuzz_examples, project_only=True),
    ToolSetting(ENV_FUZZ_RANDOM, fuzz_random, project_only=True),
    ToolSetting(ENV_FUZZ_LOG, fuzz_log, project_only=True),
    ToolSetting(ENV_FUZZ_STATS, fuzz_stats, project_only=True),
)


def problems() -> List[SettingError]:
    """Every testing setting whose value is refused (``[]``: all valid)."""
    found = []
    for setting in SETTINGS:
        try:
            setting.read()
        except SettingError as exc:
            found.append(exc)
    return found


def check() -> None:
    """Raise the first refused testing setting's ``SettingError`` (the conformance
    command runs this before it starts)."""
    found = problems()
    if found:
        raise found[0]
