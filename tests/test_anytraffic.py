"""The parts of a client's own tests and of the gateway sandwich that start no suite run: the
any-traffic judge on recordings made by hand (conformance/clientmode/anytraffic.py), the
sandwich's digests and excuses (conformance/clientmode/sandwich.py), and the options'
one-line usage errors (exit 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.clientmode import anytraffic
from conformance.clientmode import sandwich
from conformance.clientmode import scenarios
from conformance.clientmode.record import Connection, Direction, Frame, Process, Recording

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parent.parent
CALL = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}


def _conn(index: int, frames: list, **fields) -> Connection:
    fields.setdefault("key_in_header", True)
    fields.setdefault("key_in_url", False)
    return Connection(index=index, opened=0.0, path="/v1/responses", frames=frames, **fields)


def _in(at: float, event: dict | str, binary: bool = False) -> Frame:
    text = event if isinstance(event, str) else json.dumps(event)
    return Frame(at, Direction.IN, not binary, text, len(text), event if isinstance(event, dict) else None)


def _done(at: float, rid: str, output=()) -> Frame:
    event = {"type": "response.completed", "response": {"id": rid, "output": list(output)}}
    return Frame(at, Direction.OUT, True, json.dumps(event), 10, event)


def _create(**fields) -> dict:
    return {"type": "response.create", "model": "m", **fields}


def _verdicts(rec: Recording, excused=anytraffic._never) -> dict:
    return {j.clause: j for j in anytraffic.judge_any(rec, excused)}


def test_clean_traffic_passes_what_it_shows_and_leaves_the_rest_unjudged():
    first = [_in(0.1, _create(input="hi")), _done(0.2, "r1", [CALL]),
             _in(0.3, _create(previous_response_id="r1",
                              input=[{"type": "function_call_output", "call_id": "c1", "output": "x"}])),
             _done(0.4, "r2")]
    rec = Recording(connections=[_conn(0, first), _conn(1, [_in(0.5, _create(input="new"))])],
                    process=Process(0, 1.0, False))
    verdicts = _verdicts(rec)
    assert set(verdicts) == set(anytraffic.ANY_TRAFFIC)
    assert all(j.ok is True for j in verdicts.values()), verdicts
    # nothing continued: the chain, tool and history clauses have nothing to judge
    alone = Recording(connections=[_conn(0, [_in(0.1, _create(input="hi")), _done(0.2, "r1")])])
    verdicts = _verdicts(alone)
    assert verdicts[scenarios.CHAIN].ok is None and verdicts[scenarios.TOOL_OUTPUT].ok is None
    assert verdicts[scenarios.NEW_INPUT_ONLY].ok is None and verdicts[scenarios.TEXT_JSON].ok is True
    assert all(j.ok is None for j in _verdicts(Recording()).values())


@pytest.mark.parametrize("frames, clause", [
    ([_in(0.1, "not json")], scenarios.TEXT_JSON),
    ([_in(0.1, "\x00\x01", binary=True)], scenarios.TEXT_JSON),
    ([_in(0.1, {"type": "response.create", "response": {"model": "m"}})], scenarios.CREATE_FLAT),
    ([_in(0.1, _create(input="hi", stream=True))], scenarios.CREATE_NO_STREAM),
    ([_in(0.1, _create(input="hi")), _done(0.2, "r1"), _in(0.3, _create(previous_response_id="r0", input="x"))],
     scenarios.CHAIN),
    ([_in(0.1, _create(input="hi")), _done(0.2, "r1", [CALL]),
      _in(0.3, _create(previous_response_id="r1", input="no output"))], scenarios.TOOL_OUTPUT),
    ([_in(0.1, _create(input="hi")), _done(0.2, "r1", [CALL]),
      _in(0.3, _create(previous_response_id="r1", input=[CALL, {"type": "function_call_output", "call_id": "c1",
                                                                   "output": "x"}]))], scenarios.NEW_INPUT_ONLY),
])
def test_each_violation_fails_its_clause_and_an_excuse_takes_it_back(frames, clause):
    rec = Recording(connections=[_conn(0, frames)])
    verdicts = _verdicts(rec)
    assert verdicts[clause].ok is False, verdicts[clause]
    assert [c for c, j in verdicts.items() if j.ok is False] == [clause]
    excused = _verdicts(rec, lambda judged, frame: judged == clause)
    assert excused[clause].ok is not False and "relayed" in excused[clause].message


def test_the_key_in_a_url_fails_and_a_refused_wrong_key_does_not():
    refused = _conn(1, [], key_in_header=False, refused=401)
    assert _verdicts(Recording(connections=[_conn(0, []), refused]))[scenarios.KEY_IN_HEADER].ok is True
    assert _verdicts(Recording(connections=[_conn(0, [], key_in_url=True)]))[scenarios.KEY_IN_HEADER].ok is False
    assert _verdicts(Recording(connections=[refused]))[scenarios.KEY_IN_HEADER].ok is False


def test_a_continuation_on_another_socket_is_no_chain_to_judge():
    rec = Recording(connections=[_conn(0, [_in(0.1, _create(input="hi")), _done(0.2, "r1")]),
                                 _conn(1, [_in(0.3, _create(previous_response_id="r0", input="x"))])])
    assert _verdicts(rec)[scenarios.CHAIN].ok is None


def test_digests_of_what_the_suite_sent_match_what_the_upstream_got():
    redact = lambda text: text.replace("sk-secret-key-0123456789", "<redacted>")   # noqa: E731
    create = _create(previous_response_id="r0", input=[{"type": "function_call_output", "call_id": "c9",
                                                         "output": "x"}], stream=True)
    sent = set(sandwich.sent_digests(json.dumps(create, indent=1)))       # spacing does not matter
    same = _in(0.1, create)
    assert sandwich.upstream_digests(same, redact)[0] in sent
    # the gateway rewrote the input: the whole frame and the input's projection differ, the rest matches
    rewritten = _in(0.1, dict(create, input=[CALL, *create["input"]]))
    own = sandwich.upstream_digests(rewritten, redact)
    assert own[0] not in sent
    matched = {d.split(":", 1)[0] for d in own[1:] if d in sent}
    assert matched == {scenarios.TEXT_JSON, scenarios.CREATE_FLAT, scenarios.CREATE_NO_STREAM, scenarios.CHAIN,
                       scenarios.TOOL_OUTPUT}
    # binary frames compare by size, long ones by their beginning, as the suite's transcript keeps them
    assert sandwich.sent_digests("<binary frame, 5 bytes: 0001020304>") == \
        sandwich.upstream_digests(Frame(0, Direction.IN, False, "\x00\x01\x02\x03\x04", 5), redact)
    long_text = "x" * (sandwich.LONG_TEXT + 10)
    assert sandwich.sent_digests(long_text[:1000] + "...<99 more chars>") != []
    assert sandwich.upstream_digests(Frame(0, Direction.IN, True, long_text[:20000], len(long_text)), redact) == \
        sandwich.sent_digests(long_text)


def test_the_upstream_judge_excuses_only_what_was_relayed_as_sent():
    odd = _create(previous_response_id="r-old", input="x")
    frames = [_in(0.1, _create(input="hi")), _done(0.2, "r1"), _in(0.3, odd), _in(0.4, "garbage")]
    rec = Recording(connections=[_conn(0, frames)])
    sent = set(sandwich.sent_digests(json.dumps(odd))) | set(sandwich.sent_digests("garbage"))
    judgements, relayed = sandwich.judge_upstream(rec, sent, lambda text: text)
    verdicts = {j.clause: j.ok for j in judgements}
    assert relayed == 2 and verdicts[scenarios.CHAIN] is None and verdicts[scenarios.TEXT_JSON] is True
    judgements, relayed = sandwich.judge_upstream(rec, set(), lambda text: text)
    verdicts = {j.clause: j.ok for j in judgements}
    assert relayed == 0 and verdicts[scenarios.CHAIN] is False and verdicts[scenarios.TEXT_JSON] is False


def test_a_continuation_made_into_a_new_chain_fails_the_chain_clause():
    """The gateway's client continued r1 with one message; the gateway sent a new chain with the
    history in front. The same input sent as a deliberate new chain, unchanged, is no violation."""
    continuation = _create(previous_response_id="r1", input="and then?")
    history = [{"role": "user", "content": "hi"}, {"type": "message", "role": "assistant",
                                                   "content": [{"type": "output_text", "text": "hello"}]}]
    rebuilt = _create(input=[*history, {"type": "message", "role": "user",
                                        "content": [{"type": "input_text", "text": "and then?"}]}])
    fresh = _create(input="and then?")
    frames = [_in(0.1, _create(input="hi")), _done(0.2, "r1"), _in(0.3, rebuilt), _done(0.4, "r2"), _in(0.5, fresh)]
    rec = Recording(connections=[_conn(0, frames)])
    sent = {d for event in (_create(input="hi"), continuation, fresh) for d in sandwich.sent_digests(json.dumps(event))}
    verdicts = {j.clause: j for j in sandwich.judge_upstream(rec, sent, lambda text: text)[0]}
    chain = verdicts[scenarios.CHAIN]
    assert chain.ok is False and "a new chain (no previous_response_id, 3 input item(s))" in chain.message
    assert "1 new item(s)" in chain.message and "connection 0 at 0.3 s" in chain.message
    # the relay sends the continuation as it came: nothing made into a new chain, and the message says what held
    frames[2] = _in(0.3, continuation)
    verdicts = {j.clause: j for j in sandwich.judge_upstream(Recording(connections=[_conn(0, frames)]), sent,
                                                              lambda text: text)[0]}
    chain = verdicts[scenarios.CHAIN]
    assert chain.ok is True, chain.message
    assert chain.message.startswith("1 continuation(s) right after a completed response on the same connection, "
                                    "each naming that response in previous_response_id; 2 request(s) without")
    # a client's own tests have no client frames to pair with: the pass message says what it checked
    own = {j.clause: j for j in anytraffic.judge_any(Recording(connections=[_conn(0, frames)]))}[scenarios.CHAIN]
    assert own.ok is True and "request(s) without" not in own.message


@pytest.mark.parametrize("args, words", [
    (["--client-test-command", "python 'x"], "--client-test-command"),
    (["--client-test-command", "python x.py", "--target", "ws://127.0.0.1:9/v1/responses"], "--target"),
    (["--gateway-command", ""], "--gateway-command"),
    (["--gateway-command", "python x.py", "--target", "ws://127.0.0.1:9/v1/responses"], "--target"),
    (["--gateway-command", "python x.py", "--client-command", "python y.py"], "--client-command"),
    (["--gateway-command", "python x.py", "--api-key", "k"], "--api-key"),
    (["--gateway-command", "python x.py", "--gateway-start-timeout", "0"], "--gateway-start-timeout"),
    (["--gateway-start-timeout", "5"], "--gateway-command"),
])
def test_bad_options_are_one_line_and_exit_4(args, words):
    proc = subprocess.run([sys.executable, "-m", "pytest", "cases", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "--no-report", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4, proc.stdout[-1000:] + proc.stderr[-1000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], proc.stderr
