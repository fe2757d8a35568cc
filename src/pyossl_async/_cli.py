"""``python -m pyossl_async {demo,info,conformance,bench}``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from . import _registry

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    backend = _registry.get_backend(args.backend)
    return run_demo(backend, write=lambda line: print(line, flush=True))


def _info(args: argparse.Namespace) -> int:
    from ._info import collect_info, format_info

    info = collect_info()
    print(json.dumps(info, indent=2, default=str) if args.json else format_info(info))
    return 0


def _conformance(args: argparse.Namespace) -> int:
    from ._conformance_entry import run_conformance

    return run_conformance(args)


def _bench(args: argparse.Namespace) -> int:
    from ._bench import run_bench

    return run_bench(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pyossl_async", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the man page's example")
    demo.add_argument("--backend", choices=_registry.BACKEND_NAMES, default=None)
    demo.set_defaults(run=_demo)
    info = sub.add_parser("info", help="versions, backends, capabilities, limits")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(run=_info)
    conf = sub.add_parser("conformance", help="compare backends with the C library")
    conf.add_argument("--backend", action="append", choices=_registry.BACKEND_NAMES)
    conf.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    conf.add_argument("--no-c", action="store_true", help="skip the C reference programs")
    conf.add_argument("-k", dest="select", metavar="SUBSTRING", help="only matching scenarios")
    conf.set_defaults(run=_conformance)
    bench = sub.add_parser("bench", help="measure costs side by side")
    bench.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    bench.add_argument("--plot", metavar="FILE", help="draw cost vs paused jobs (matplotlib)")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions")
    bench.set_defaults(run=_bench)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
