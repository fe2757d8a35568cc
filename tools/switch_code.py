"""Assemble src/pyossl_async/_native/switch_x86_64.S and print its bytes as the
``X86_64_SYSV`` constant of ``_switch_code.py`` (needs GNU as and objcopy).

Usage: python tools/switch_code.py   (prints the constant; paste it over the old one)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "src", "pyossl_async", "_native", "switch_x86_64.S")


def assemble(source: str = SOURCE) -> bytes:
    """The ``.text`` bytes GNU as makes of ``source``."""
    with tempfile.TemporaryDirectory() as tmp:
        obj, raw = os.path.join(tmp, "switch.o"), os.path.join(tmp, "switch.bin")
        subprocess.run(["as", "--64", "-o", obj, source], check=True, capture_output=True)
        subprocess.run(["objcopy", "-O", "binary", "--only-section=.text", obj, raw], check=True)
        with open(raw, "rb") as f:
            return f.read()


def main() -> int:
    code = assemble().hex()
    print(f"#: ``int pyossl_switch(struct switch_block *b)``, {len(code) // 2} bytes")
    print("X86_64_SYSV = bytes.fromhex(")
    for i in range(0, len(code), 64):
        print(f'    "{code[i:i + 64]}"')
    print(")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
