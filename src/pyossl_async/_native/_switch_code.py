"""The machine code of the native job switch, and where it comes from.

``X86_64_SYSV`` is what GNU ``as`` makes of ``switch_x86_64.S`` (beside this
file, which documents every instruction and the structures it reads): the
switch and the nested-stack trampoline, at ``SWITCH_OFFSET`` and
``TRAMPOLINE_OFFSET``. It is position independent and has no relocations:
every address it needs comes through its argument. ``tests/test_native_switch.py`` assembles the source
again wherever ``as`` and ``objcopy`` exist and checks that the bytes agree;
to change the code, change the source and run ``python tools/switch_code.py``,
which prints the new constant.
"""

from __future__ import annotations

__all__ = ["SOURCE", "SWITCH_OFFSET", "TRAMPOLINE_OFFSET", "X86_64_SYSV"]

#: the source file, next to this module (shipped with the package)
SOURCE = "switch_x86_64.S"

#: the whole ``.text``, 263 bytes
X86_64_SYSV = bytes.fromhex(
    "4883ec08488b4710488b7708488b3fffd04883c408c3662e0f1f840000000000"
    "5341544155415641574889fb4c8b6350498b4424304885c0740bffd04885c00f"
    "85ba00000049837c241800741b418b7c242841ff5424204989c5418b7c242848"
    "8b733841ff54241848f7434801000000741448837b6000750d488b7b3841ff14"
    "2441ff542408488b7b404885ff740c48c743400000000041ff1424488b7b0848"
    "8b7310488b5318488b4b204c8b43284c8b4b30ff134c63f04c89735841ff5424"
    "104885c0741749837c2418007406483b4338750941ff5424084889434049837c"
    "241800740d418b7c24284c89ee41ff5424184489f0415f415e415d415c5bc341"
    "beffffffffebeb"
)
#: where each function starts in it
SWITCH_OFFSET = 32
TRAMPOLINE_OFFSET = 0
