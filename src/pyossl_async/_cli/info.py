"""What ``python -m pyossl_async info`` reports: versions, settings, backends, capabilities, limits.

It reports what is wrong instead of failing: a backend that cannot load, and a
setting whose value is refused (then no backend is loaded, as none would be by
any other command, and ``settings_error`` says why).
"""

from __future__ import annotations

import platform
import sys
from typing import Any, Dict

from .. import __version__, _registry, _settings
from .._errors import SettingError

__all__ = ["collect_info", "format_info"]


def collect_info() -> Dict[str, Any]:
    info: Dict[str, Any] = {
        "pyossl_async": __version__,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": f"{platform.system()} {platform.machine()} {' '.join(platform.libc_ver())}",
        "environment": _environment(),
    }
    refused = _settings.problems()
    if refused:
        info["settings_error"] = str(refused[0])
        info["available_backends"] = []
        info["unavailable_backends"] = {name: "not loaded: a setting is refused" for name in _registry.BACKEND_NAMES}
        info["default_backend"] = f"none ({refused[0]})"
        return info
    info["available_backends"] = _registry.available_backends()
    info["unavailable_backends"] = _registry.backend_problems()
    try:
        info["default_backend"] = _registry.get_backend().name
        info["default_backend_reason"] = _registry.selection_reason()
    except Exception as exc:  # noqa: BLE001 - report, do not fail
        info["default_backend"] = f"none ({exc})"
    for name in info["available_backends"]:
        backend = _registry.get_backend(name)
        details: Dict[str, Any] = {"is_capable": backend.is_capable()}
        extra = getattr(backend, "info", None)
        if callable(extra):
            details.update(extra())
        # "library" is the real path of the file loaded; next to it, the name it was asked by
        asked = getattr(backend, "library_name", None)
        if asked is not None:
            ordered: Dict[str, Any] = {}
            for key, value in details.items():
                ordered[key] = value
                if key == "library":
                    ordered["library_name"] = asked
            ordered.setdefault("library_name", asked)
            details = ordered
        info[f"backend.{name}"] = details
    return info


def _environment() -> Dict[str, str]:
    """Each runtime setting as set ("(not set)"), a refused one marked, a debug-only one said so."""
    out: Dict[str, str] = {}
    for setting in _settings.SETTINGS:
        value = _settings.raw(setting.name)
        shown = "(not set)" if value is None else value
        try:
            setting.read()
        except SettingError as exc:
            shown += f"  <- refused: {exc.problem}; {exc.accepted}"
        if setting.debug and value is not None:
            shown += "  (for debugging the library only)"
        out[setting.name] = shown
    return out


def format_info(info: Dict[str, Any]) -> str:
    lines = []
    for key, value in info.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            if not value:
                lines.append("  (none)")
            for k, v in value.items():
                lines.append(f"  {k}: {v}")
        elif isinstance(value, list):
            lines.append(f"{key}: {', '.join(value) or '(none)'}")
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(format_info(collect_info()))
    sys.exit(0)
