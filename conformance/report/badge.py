"""``badge.svg``: a shields-style badge made locally from the certificate ("conformance |
PASS · MUST 41/41"), for a vendor's web page next to the published certificate.

Only ``certification.certified`` makes it green (docs/certification.md); every other state
has its own words and colour, first row that applies:

=============================  ===================================  ==========
certificate                    text                                 colour
=============================  ===================================  ==========
observed, nothing relayed       observed · nothing                   grey
``mode: observed`` (proxy)     observed · MUST p/m                  blue
overall NOT-USABLE             not usable                           grey
certified                      PASS · MUST m/m (· KNOWN k)          green
overall FAIL/ERROR/FLAKY/      <overall> · MUST p/m                 red/purple/
NON-STRICT                                                          orange/yellow
overall STALE                  stale baseline · MUST p/m            orange
claimed MUST clauses KNOWN     not certified · KNOWN k              amber
anything else not certified    not certified · MUST p/m             yellow
=============================  ===================================  ==========

MUST p/m: how many of the m claimed MUST clauses (not retired, and the profile claims what
the clause requires) are PASS; KNOWN k: clauses a baseline excuses. Text widths come from a
per-character table of Verdana 11px (the font shields.io uses), so no font file or network is
needed.
"""

from __future__ import annotations

from html import escape

from conformance.vocabulary import BADGE_COLOURS, ERROR, FAIL, FLAKY, KNOWN, NON_STRICT, NOT_USABLE, PASS, STALE

LABEL = "conformance"
GREEN = BADGE_COLOURS[PASS]
# overall verdicts the badge names with their own colour
_COLORS = {verdict: BADGE_COLOURS[verdict] for verdict in (FAIL, NON_STRICT, ERROR, FLAKY)}
_NOT_USABLE, _STALE, _KNOWN = BADGE_COLOURS[NOT_USABLE], BADGE_COLOURS[STALE], BADGE_COLOURS[KNOWN]
_OBSERVED, _NOT_CERTIFIED = "#007ec6", "#dfb317"
_GREY = "#555"

# advance widths (px) of Verdana at 11px; characters not listed count as the widest group
_WIDTHS = {**dict.fromkeys("il.:|!'", 3.5), **dict.fromkeys("fjrt() ", 4.5),
           **dict.fromkeys("acekszv", 6.5), **dict.fromkeys("bdghnopqu0123456789/-", 7.0),
           **dict.fromkeys("xyIJLTF", 6.8), **dict.fromkeys("ABCEKPRSVXYZ", 7.6),
           **dict.fromkeys("DGHNOQU", 8.4), "M": 9.6, "W": 11.0, "m": 10.7, "w": 9.0, "·": 4.5}


def must_counts(cert: dict) -> tuple[int, int]:
    """(MUST clauses PASS, MUST clauses claimed) from the certificate's clause table."""
    claimed = [r for r in cert["clauses"] if r["level"] == "MUST" and r["claimed"]]
    return sum(1 for r in claimed if r["verdict"] == PASS), len(claimed)


def certified(cert: dict) -> bool:
    """The one thing that may make the badge green."""
    return (cert.get("certification") or {}).get("certified") is True and cert.get("mode", "suite") != "observed" \
        and cert.get("overall") == PASS


def badge(cert: dict) -> tuple[str, str]:
    """(text, colour) of the badge's right half, by the table above."""
    passed, claimed = must_counts(cert)
    must = f"MUST {passed}/{claimed}"
    overall = cert.get("overall", "?")
    known = sum(1 for r in cert["clauses"] if r["verdict"] == KNOWN)
    known_must = sum(1 for r in cert["clauses"] if r["verdict"] == KNOWN and r["level"] == "MUST" and r["claimed"])
    if cert.get("mode") == "observed":
        return ("observed · nothing", _NOT_USABLE) if overall == NOT_USABLE else (f"observed · {must}", _OBSERVED)
    if overall == NOT_USABLE:
        return "not usable", _NOT_USABLE
    if certified(cert):
        return f"PASS · {must}" + (f" · KNOWN {known}" if known else ""), GREEN
    if overall in _COLORS:
        return f"{overall} · {must}", _COLORS[overall]
    if overall == STALE:
        return f"stale baseline · {must}", _STALE
    if known_must:
        return f"not certified · KNOWN {known_must}", _KNOWN
    return f"not certified · {must}", _NOT_CERTIFIED


def badge_text(cert: dict) -> str:
    return badge(cert)[0]


def _width(text: str) -> int:
    return int(round(sum(_WIDTHS.get(ch, 7.6) for ch in text))) + 10


def render_badge(cert: dict) -> str:
    value, color = badge(cert)
    label_width, value_width = _width(LABEL), _width(value)
    total = label_width + value_width
    label, text = escape(LABEL), escape(value)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{label}: {text}"><title>{label}: {text}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{label_width}" height="20" fill="{_GREY}"/>'
        f'<rect x="{label_width}" width="{value_width}" height="20" fill="{color}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{label_width / 2:g}" y="15" fill="#010101" fill-opacity=".3">{label}</text>'
        f'<text x="{label_width / 2:g}" y="14">{label}</text>'
        f'<text x="{label_width + value_width / 2:g}" y="15" fill="#010101" fill-opacity=".3">{text}</text>'
        f'<text x="{label_width + value_width / 2:g}" y="14">{text}</text></g></svg>\n'
    )
