"""The machine code of the native job switch, and where it comes from.

``X86_64_SYSV`` is what GNU ``as`` makes of ``switch_x86_64.S`` (beside this
file, which documents every instruction and the structures it reads). It is
position independent and has no relocations: every address it needs comes
through its one argument. ``tests/test_native_switch.py`` assembles the source
again wherever ``as`` and ``objcopy`` exist and checks that the bytes agree;
to change the code, change the source and run ``python tools/switch_code.py``,
which prints the new constant.
"""

from __future__ import annotations

__all__ = ["SOURCE", "X86_64_SYSV"]

#: the source file, next to this module (shipped with the package)
SOURCE = "switch_x86_64.S"

#: ``int pyossl_switch(struct switch_block *b)``, 231 bytes
X86_64_SYSV = bytes.fromhex(
    "5341544155415641574889fb4c8b6350498b4424304885c0740bffd04885c00f"
    "85ba00000049837c241800741b418b7c242841ff5424204989c5418b7c242848"
    "8b733841ff54241848f7434801000000741448837b6000750d488b7b3841ff14"
    "2441ff542408488b7b404885ff740c48c743400000000041ff1424488b7b0848"
    "8b7310488b5318488b4b204c8b43284c8b4b30ff134c63f04c89735841ff5424"
    "104885c0741749837c2418007406483b4338750941ff5424084889434049837c"
    "241800740d418b7c24284c89ee41ff5424184489f0415f415e415d415c5bc341"
    "beffffffffebeb"
)
