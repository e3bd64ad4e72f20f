"""badge.svg tells the truth (issue 15 item 5): green only when ``certification.certified`` is
true; KNOWN deviations, ERROR, NOT-USABLE, FLAKY, STALE, NON-STRICT and observed traffic each
have their own words and colour."""

from __future__ import annotations

import itertools
import time
import xml.etree.ElementTree as ET

import pytest

from conformance import verdicts as V
from conformance.report import OBSERVED, SUITE, build_certificate
from conformance.report.badge import GREEN, badge, badge_text, render_badge

OVERALLS = ["PASS", "FAIL", "ERROR", "FLAKY", "NON-STRICT", "STALE", "NOT-USABLE"]
GREENS = {GREEN, "#97ca00", "#a4a61d", "#44cc11", "#3fb950"}     # shields' green and yellowgreen


def _cert(overall: str, certified: bool, mode: str, known: int) -> dict:
    clauses = [{"id": f"M{n}", "level": "MUST", "verdict": "PASS", "claimed": True} for n in range(5)]
    for row in clauses[:known]:
        row["verdict"] = "KNOWN"
    return {"overall": overall, "mode": mode, "clauses": clauses,
            "certification": {"certified": certified, "reasons": [] if certified else ["r"]},
            **({"baseline": {"file": "b.toml", "known": known}} if known else {})}


@pytest.mark.parametrize("overall,certified,mode,known",
                         list(itertools.product(OVERALLS, (True, False), (SUITE, OBSERVED), (0, 3))))
def test_never_green_unless_certified(overall, certified, mode, known):
    cert = _cert(overall, certified, mode, known)
    text, colour = badge(cert)
    green = certified and mode == SUITE and overall == "PASS"
    assert (colour in GREENS) == green, (text, colour)
    svg = render_badge(cert)
    assert ET.fromstring(svg) is not None and text in svg
    if mode == OBSERVED and overall == "NOT-USABLE":     # the proxy relayed no connection
        assert text == "observed · nothing"
    elif mode == OBSERVED:
        assert text.startswith("observed · MUST")
    elif overall == "NOT-USABLE":
        assert text == "not usable"
    elif green:
        assert text.startswith("PASS · MUST") and (("KNOWN 3" in text) == bool(known))
    elif overall == "PASS":                 # overall PASS but not certified: never reads PASS
        assert text.startswith("not certified · ") and "PASS" not in text
        assert ("KNOWN 3" in text) == bool(known)
    elif overall == "STALE":
        assert text.startswith("stale baseline · MUST")
    else:
        assert text.startswith(f"{overall} · MUST")


def test_each_state_has_its_own_words_and_colour():
    states = {(o, c, m, k): badge(_cert(o, c, m, k))
              for o, c, m, k in [("PASS", True, SUITE, 0), ("PASS", False, SUITE, 3), ("PASS", False, SUITE, 0),
                                 ("ERROR", False, SUITE, 0), ("NOT-USABLE", False, SUITE, 0),
                                 ("FLAKY", False, SUITE, 0), ("STALE", False, SUITE, 0),
                                 ("NON-STRICT", False, SUITE, 0), ("FAIL", False, SUITE, 0),
                                 ("PASS", False, OBSERVED, 0)]}
    texts = [t for t, _ in states.values()]
    assert len(set(texts)) == len(texts), texts
    colours = [c for _, c in states.values()]
    assert len(set(colours)) >= 8 and colours.count(GREEN) == 1


def _records(known: bool) -> list[dict]:
    """A run that passed everything but two MUST clauses, which the baseline may know."""
    registry = V.ClauseRegistry.load(V.default_clauses_path())
    musts = [c.id for c in registry if c.level == "MUST" and not c.retired and not c.requires]
    recs = [{"nodeid": f"cases/t.py::c{n}", "clauses": [cid], "verdict": V.PASS, "reached": [cid],
             "observations": [], "messages": [], "duration_s": 0.0} for n, cid in enumerate(musts)]
    for rec in recs[:2]:
        rec["observations"] = [V.Observation(rec["clauses"][0], "MUST", False, "expect", "bad").as_dict()]
        rec["verdict"] = V.FAIL
        if known:
            rec["verdict"], rec["known"] = "KNOWN", {"verdict": V.FAIL, "entries": [1], "reasons": ["r"]}
    return registry, recs


@pytest.mark.parametrize("known", [False, True])
@pytest.mark.parametrize("mode", [SUITE, OBSERVED])
def test_built_certificates(known, mode):
    """Through build_certificate: a baseline covering failing MUST clauses gives overall PASS but
    not certified, and the badge says so; the proxy's observed certificate says "observed"."""
    registry, recs = _records(known)
    now = time.time()
    cert = build_certificate(registry=registry, records=recs, profile="reference", fingerprint={},
                             started=now, finished=now, strict=False, run_id="r", mode=mode)
    text, colour = badge(cert)
    assert cert["certification"]["certified"] is False and colour not in GREENS
    if mode == OBSERVED and cert["overall"] == "NOT-USABLE":     # the proxy relayed no connection
        assert text == "observed · nothing"
    elif mode == OBSERVED:
        assert text.startswith("observed · MUST")
    elif known:
        assert cert["overall"] == "PASS" and text == "not certified · KNOWN 2"
    else:
        assert text.startswith("FAIL · MUST")
    # and the same run with every clause passing certifies, green, only as a suite run
    clean = [dict(r, verdict=V.PASS, observations=[]) for r in recs]
    for r in clean:
        r.pop("known", None)
    cert = build_certificate(registry=registry, records=clean, profile="reference", fingerprint={},
                             started=now, finished=now, strict=False, run_id="r", mode=mode)
    assert (badge(cert)[1] == GREEN) == (mode == SUITE) == cert["certification"]["certified"]
    assert badge_text(cert).startswith("PASS · MUST" if mode == SUITE else "observed · MUST")
