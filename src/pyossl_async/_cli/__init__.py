"""``python -m pyossl_async {demo,info,conformance,bench,tls-server}``.

Errors the user can fix (a setting the library does not accept, a backend that
cannot be had, an output file that cannot be written, a missing optional
dependency) are one line on stderr and exit status 2, checked before any work
starts; never a traceback. ``info`` reports them instead of refusing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, List, Optional

from .. import _registry, _settings
from .._errors import SettingError
from ._support import (
    CliError,
    check_output_path,
    describe_backend,
    get_backend_or_refuse,
    plural,
    require_backends,
)

__all__ = ["CliError", "check_output_path", "main", "plural", "require_backends"]

PROG = "python -m pyossl_async"
DESCRIPTION = "Drive OpenSSL's ASYNC jobs from Python: the man page's example, diagnostics, benchmarks, conformance."
#: exit status of a command that cannot run as asked (as for argparse's usage errors)
EXIT_CANNOT_RUN = 2
#: exit status when the reader of our output went away (``| head``); see ``main``
EXIT_BROKEN_PIPE = 1


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    asked = _registry.requested_backends()
    if args.backend is not None:
        asked = {args.backend: f"--backend {args.backend}"}
    require_backends(asked)  # asked for but unable to run jobs: refused before the first line
    backend = get_backend_or_refuse(args.backend)
    # stdout stays byte for byte what the C example prints; what ran goes to stderr
    print(f"pyossl_async demo: backend {describe_backend(backend)}", file=sys.stderr, flush=True)
    return run_demo(backend, write=lambda line: print(line, flush=True))


def _info(args: argparse.Namespace) -> int:
    from .info import collect_info, format_info

    info = collect_info()
    print(json.dumps(info, indent=2, default=str) if args.json else format_info(info))
    return 0


def _conformance(args: argparse.Namespace) -> int:
    from .conformance import run_conformance

    if args.json:
        check_output_path("--json", args.json)
    return run_conformance(args)


def _bench(args: argparse.Namespace) -> int:
    from .bench import check_bench_args, run_bench

    check_bench_args(args)
    return run_bench(args)


def _tls_server(args: argparse.Namespace) -> int:
    from .tls_server import run_server

    return run_server(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        p.set_defaults(run=run)
        return p

    demo = command("demo", "run the man page's example (ASYNC_start_job(3)) and print what it prints", _demo)
    demo.add_argument(
        "--backend",
        choices=_registry.BACKEND_NAMES,
        default=None,
        help="the backend to run it on (default: the one get_backend() chooses)",
    )
    info = command("info", "versions, backends, library files, capabilities, limits", _info)
    info.add_argument("--json", action="store_true", help="machine-readable output")
    conf = command("conformance", "compare the backends with the C library, scenario by scenario", _conformance)
    conf.add_argument(
        "--backend",
        action="append",
        choices=_registry.BACKEND_NAMES,
        help="only this backend (repeatable); a named backend that cannot run makes the run fail",
    )
    conf.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    conf.add_argument("--no-c", action="store_true", help="skip the C reference programs")
    conf.add_argument("-k", dest="select", metavar="SUBSTRING", help="only matching scenarios")
    conf.add_argument(
        "--scenarios",
        metavar="PATH",
        help="run the scenario modules in the folder PATH (their C twins in PATH/c/) instead of the built-in suite",
    )
    bench = command("bench", "measure costs side by side", _bench)
    bench.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    bench.add_argument("--plot", metavar="FILE", help="draw cost vs paused jobs (needs matplotlib)")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions")
    from .tls_server import add_arguments as tls_server_arguments

    tls_server = command("tls-server", "a TLS echo server whose private-key operations run in Python", _tls_server)
    tls_server_arguments(tls_server)
    return parser


def _stdout_gone() -> int:
    """The reader of stdout went away (``info | head``): end quietly.

    Without this Python prints a BrokenPipeError traceback, and another one
    when it flushes stdout at exit. stdout is pointed at /dev/null so that last
    flush succeeds. The exit status is 1, as in the idiom of Python's
    documentation (``signal`` module, "Note on SIGPIPE"): the output was cut
    short, so this is not a success, but it is no error worth a message either,
    as for ``yes | head``.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.run is not _info:  # info reports a refused setting instead
            _settings.check()
            if args.run is _conformance:
                from ..testing import _settings as _testing_settings

                _testing_settings.check()
        status = int(args.run(args))
        sys.stdout.flush()  # inside the try: a reader gone shows here, not at exit
    except (CliError, SettingError) as exc:
        print(f"pyossl_async {args.command}: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except BrokenPipeError:
        return _stdout_gone()
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
