"""Assemble src/pyossl_async/_native/switch_x86_64.S and print its bytes and function
offsets as the constants of ``_switch_code.py`` (needs GNU as, objcopy and nm).

Usage: python tools/switch_code.py   (prints the constant; paste it over the old one)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Dict, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "src", "pyossl_async", "_native", "switch_x86_64.S")


def assemble(source: str = SOURCE) -> Tuple[bytes, Dict[str, int]]:
    """The ``.text`` bytes GNU as makes of ``source``, and the offset of each global function."""
    with tempfile.TemporaryDirectory() as tmp:
        obj, raw = os.path.join(tmp, "switch.o"), os.path.join(tmp, "switch.bin")
        subprocess.run(["as", "--64", "-o", obj, source], check=True, capture_output=True)
        subprocess.run(["objcopy", "-O", "binary", "--only-section=.text", obj, raw], check=True)
        symbols = subprocess.run(["nm", obj], check=True, capture_output=True, text=True).stdout
        offsets = {}
        for line in symbols.splitlines():
            value, kind, name = line.split()
            if kind == "T":
                offsets[name] = int(value, 16)
        with open(raw, "rb") as f:
            return f.read(), offsets


def main() -> int:
    code, offsets = assemble()
    text = code.hex()
    print(f"#: the whole ``.text``, {len(code)} bytes")
    print("X86_64_SYSV = bytes.fromhex(")
    for i in range(0, len(text), 64):
        print(f'    "{text[i:i + 64]}"')
    print(")")
    print("#: where each function starts in it")
    print(f"SWITCH_OFFSET = {offsets['pyossl_switch']}")
    print(f"TRAMPOLINE_OFFSET = {offsets['pyossl_trampoline']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
