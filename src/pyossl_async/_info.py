"""What ``python -m pyossl_async info`` reports: versions, backends, capabilities, limits."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any, Dict

from . import __version__, _registry

__all__ = ["collect_info", "format_info"]


def collect_info() -> Dict[str, Any]:
    info: Dict[str, Any] = {
        "pyossl_async": __version__,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": f"{platform.system()} {platform.machine()} {' '.join(platform.libc_ver())}",
        "environment": {
            name: os.environ.get(name) or "(not set)" for name in (_registry.ENV_BACKEND, _registry.ENV_LIBCRYPTO)
        },
        "available_backends": _registry.available_backends(),
        "unavailable_backends": _registry.backend_problems(),
    }
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
