"""``python -m conformance COMMAND``: tools around the suite, one subcommand per module.

``diff``   — compare two certificates; exit 1 when the new run is worse (conformance.diff, docs/nightly.md)
``matrix`` — put certificates side by side as an HTML page and a Markdown table (conformance.matrix)
``trend``  — draw the nightly history of one target (conformance.trend, docs/nightly.md)
``proxy``  — watch real traffic between a client and a target; exit 6 when none reached it (docs/proxy.md)
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module with add_arguments(parser) and run(args) -> exit status, help)
COMMANDS = {
    "diff": ("conformance.diff", "compare two certificate.json files; exit 1 when the new run is worse"),
    "matrix": ("conformance.matrix", "certificates side by side: clauses down, targets across (HTML and Markdown)"),
    "trend": ("conformance.trend", "the nightly history of one target: MUST passes, FAIL clauses, spend per night"),
    "proxy": ("conformance.proxy.cli", "forward WebSocket traffic to a target and report what the monitor saw"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.set_defaults(module=module)
        importlib.import_module(module).add_arguments(cmd)
    args = parser.parse_args(argv)
    return importlib.import_module(args.module).run(args)


if __name__ == "__main__":
    sys.exit(main())
