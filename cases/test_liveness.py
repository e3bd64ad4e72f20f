"""Liveness: every create is answered, and an answered create ends (§1.5, §4.3 item 15).

A silence that ends in a correct terminal event is conformant, however long the turn took,
as long as no single silence outlasts the idle deadline (``--turn-timeout``); the harness
judges the unanswered create (CREATE-ANSWERED) and the unfinished response
(STREAM-ONE-TERMINAL) on every full turn, so these cases only make sure both are asked.
"""

from __future__ import annotations

import pytest

from conformance.casekit import PROMPT, RAN, expect_monitor_clean


@pytest.mark.clause("CREATE-ANSWERED", "STREAM-ONE-TERMINAL")
@pytest.mark.max_requests(creates=2)
def test_create_answered_and_ended(connect, expect):
    conn = connect()
    for _ in range(2):     # the second create shows the first one's end left the socket usable
        turn = conn.turn(input=PROMPT, store=False)
        expect("CREATE-ANSWERED", bool(turn.events) or turn.error is not None or turn.status == "closed", turn,
               "the response.create got no answer at all before the turn deadline")
        expect_monitor_clean(expect, conn, ("CREATE-ANSWERED", "STREAM-ONE-TERMINAL"))
        expect("STREAM-ONE-TERMINAL", turn.status in RAN + ("failed", "error"), turn,
               "the response did not end with a terminal event")
