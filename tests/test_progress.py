from __future__ import annotations

import io

from pyossl_async._progress import Progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_piped() -> None:
    out = io.StringIO()
    with Progress(3, "run", stream=out) as p:
        for i in range(3):
            p.step(str(i))
    assert out.getvalue() == ""


def test_line_on_a_terminal_and_cleared_at_the_end() -> None:
    out = Tty()
    with Progress(2, "run", stream=out, interval=0) as p:
        p.step("a")
        p.step("b")
    text = out.getvalue()
    assert "\rrun [1/2] a" in text and "run [2/2] b" in text
    assert text.endswith("\r") and "\n" not in text
