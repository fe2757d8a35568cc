"""Hypothesis strategies for wait-fd scripts (needs ``hypothesis``, a test dependency).

A script is a list of steps ``"set X"``, ``"clear X"``, ``"poke X"`` and ``"pause"``
over a few names, as :func:`pyossl_async.testing.run_fd_script` runs them inside
a job. Property tests compare what two backends (or a backend and a model) see
at each pause for any such script::

    from hypothesis import given
    from pyossl_async.testing import run_fd_script, assert_traces_equal
    from pyossl_async.testing.strategies import fd_scripts

    @given(fd_scripts())
    def test_backends_agree(script):
        assert_traces_equal(run_fd_script(openssl, script), run_fd_script(python, script))
"""

from __future__ import annotations

from typing import List, Sequence

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - hypothesis is a test dependency
    raise ImportError(
        "pyossl_async.testing.strategies needs hypothesis: pip install 'pyossl-async[test]' or hypothesis"
    ) from exc

__all__ = ["fd_scripts", "script_steps"]


def script_steps(names: Sequence[str] = ("a", "b", "c")) -> st.SearchStrategy[str]:
    """One step of a script over ``names``."""
    if not names:
        raise ValueError("script_steps() needs at least one name")
    named = st.sampled_from(list(names))
    return st.one_of(
        st.just("pause"),
        named.map("set {}".format),
        named.map("clear {}".format),
        named.map("poke {}".format),
    )


def fd_scripts(
    names: Sequence[str] = ("a", "b", "c"), *, min_steps: int = 0, max_steps: int = 16
) -> st.SearchStrategy[List[str]]:
    """Scripts of ``min_steps`` to ``max_steps`` steps over ``names``."""
    return st.lists(script_steps(names), min_size=min_steps, max_size=max_steps)
