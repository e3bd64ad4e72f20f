"""``python -m conformance``: tools around the suite's reports.

``diff OLD.json NEW.json [--output FILE]`` compares two certificates (``conformance.diff``):
Markdown on stdout (and in FILE), exit 1 on a regression, 2 on unusable input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance import diff as D


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m conformance", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("diff", help="compare two certificate.json files; exit 1 on a regression")
    d.add_argument("old", help="the earlier certificate.json")
    d.add_argument("new", help="the later certificate.json")
    d.add_argument("--output", "-o", default=None, metavar="FILE", help="also write the Markdown report here")
    args = p.parse_args(argv)
    try:
        old, new = D.load(args.old), D.load(args.new)
    except D.CertificateError as exc:
        print(f"python -m conformance diff: {exc}", file=sys.stderr)
        return 2
    result = D.compare(old, new)
    text = D.render(old, new, result)
    sys.stdout.write(text)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"python -m conformance diff: cannot write {args.output}: {exc}", file=sys.stderr)
            return 2
    return 1 if result["regressions"] else 0


if __name__ == "__main__":
    sys.exit(main())
