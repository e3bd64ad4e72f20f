"""Client mode's parts without whole suite runs: collection by side, the option's validator,
the registry's sides, the runner's deadline and start errors, the stage under hostile frames,
and the judge on recordings made by hand (conformance/clientmode/)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from conformance import collection
from conformance import options
from conformance import verdicts as V
from conformance.clientmode import judge as J
from conformance.clientmode import scenarios as S
from conformance.clientmode.record import Connection, Direction, Frame, Process, Recording
from conformance.clientmode.runner import CommandError, run_scenario, split_command
from conformance.target import load_profile

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("path, server_run, client_run", [
    ("/r/cases/test_lanes.py", False, True),
    ("/r/cases/client", True, False),
    ("/r/cases/client/test_scenarios.py", True, False),
    ("/r/cases", False, False),
    ("/r/tests/test_x.py", False, False),
    ("/r/cases/conftest.py", False, False),
])
def test_a_run_collects_one_side(path, server_run, client_run):
    assert collection.ignored(Path(path), client_mode=False) is server_run
    assert collection.ignored(Path(path), client_mode=True) is client_run


def test_client_command_validator():
    assert options._validate_client_command(None, None) is None
    assert options._validate_client_command("python x.py", None) == "python x.py"
    for bad, target in (("", None), ("python 'x", None), ("python x.py", "ws://h/v1/responses")):
        with pytest.raises(pytest.UsageError):
            options._validate_client_command(bad, target)
    assert split_command("python x.py")[0] == sys.executable
    with pytest.raises(CommandError):
        split_command("   ")


def test_registry_sides_split_and_keep_the_whole_digest():
    whole = V.ClauseRegistry.load(V.default_clauses_path())
    client, server = whole.side(V.CLIENT), whole.side(V.SERVER)
    assert len(client) + len(server) == len(whole)
    assert {c.id for c in client} == set(S.client_clauses())
    assert "CLIENT-MALFORMED-JSON" in server        # a server clause about client input
    assert client.digest() == server.digest() == whole.digest()


def test_registry_rejects_an_unknown_side(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[[clause]]\nid = "X"\nlevel = "MUST"\nside = "both"\n')
    with pytest.raises(V.RegistryError, match="side"):
        V.ClauseRegistry.load(path)


def test_a_hung_client_is_killed_at_the_deadline():
    scenario = S.BY_NAME["tool-loop"]
    started = time.monotonic()
    run = run_scenario(scenario, "python -c 'import time; time.sleep(60)'", deadline_s=1.0)
    assert time.monotonic() - started < 10
    p = run.recording.process
    assert p.timed_out and p.returncode is None
    verdicts = {j.clause: j.ok for j in J.judge(run.recording, scenario)}
    assert verdicts[S.FINISHES] is False
    assert verdicts[S.TEXT_JSON] is None and verdicts[S.CHAIN] is None     # nothing to judge: NOT-REACHED


def test_a_command_that_cannot_start_is_judged_not_crashed():
    run = run_scenario(S.BY_NAME["tool-loop"], "/nonexistent/client --x", deadline_s=2.0)
    assert "cannot start" in run.recording.process.start_error
    assert {j.clause: j.ok for j in J.judge(run.recording, S.BY_NAME["tool-loop"])}[S.FINISHES] is False


HOSTILE = r'''
import os, websockets.sync.client as c
ws = c.connect(os.environ["CONFORMANCE_WS_URL"], additional_headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]})
for frame in (b"\x00\xff", "not json", "[1]", '{"type": 5}', '{"type":"response.create"}'):
    ws.send(frame)
    print(ws.recv(timeout=5)[:80])
ws.send('{"type":"response.create","model":"m","input":"hi"}')
while '"response.completed"' not in ws.recv(timeout=5):
    pass
print("still served")
'''


def test_the_stage_survives_hostile_frames(tmp_path):
    script = tmp_path / "hostile.py"
    script.write_text(HOSTILE)
    run = run_scenario(S.BY_NAME["tool-loop"], f"python {script}", deadline_s=8.0)
    p = run.recording.process
    assert p.returncode == 0 and "still served" in p.stdout, p.stderr
    verdicts = {j.clause: j for j in J.judge(run.recording, S.BY_NAME["tool-loop"])}
    assert verdicts[S.TEXT_JSON].ok is False and "binary" in verdicts[S.TEXT_JSON].message
    assert run.key not in p.stdout + p.stderr


def _conn(index: int, frames: list, **kw) -> Connection:
    return Connection(index=index, opened=kw.pop("opened", 0.0), path="/v1/responses", key_in_header=True,
                      key_in_url=False, frames=frames, **kw)


def _in(at: float, event: dict) -> Frame:
    return Frame(at, Direction.IN, True, "", 10, event)


def _out(at: float, event: dict, size: int = 10) -> Frame:
    return Frame(at, Direction.OUT, True, "", size, event)


def _done(rid: str, output=()) -> dict:
    return {"type": "response.completed", "response": {"id": rid, "output": list(output)}}


def test_judge_by_hand_chain_tools_and_history():
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    frames = [_in(0.1, {"type": "response.create", "input": "hi"}), _out(0.2, _done("r1", [call])),
              _in(0.3, {"type": "response.create", "previous_response_id": "r1",
                        "input": [call, {"type": "function_call_output", "call_id": "c1", "output": "x"}]}),
              _out(0.4, _done("r2"))]
    rec = Recording(connections=[_conn(0, frames)], process=Process(0, 0.5, False))
    reqs = J.requests(rec)
    scenario = S.Scenario("t", "", (S.CHAIN, S.TOOL_OUTPUT, S.NEW_INPUT_ONLY), turns=2)
    assert J.chain(rec, scenario, reqs).ok is True
    assert J.tool_output(rec, scenario, reqs).ok is True
    resent = J.new_input_only(rec, scenario, reqs)
    assert resent.ok is False and "c1" in resent.message
    assert J.finishes(rec, scenario, reqs).ok is True


def test_judge_by_hand_eviction_and_give_up():
    frames = [_in(0.1, {"type": "response.create", "input": "hi"}), _out(0.2, _done("r1")),
              _in(0.3, {"type": "response.create", "previous_response_id": "r1", "input": "x"}),
              _out(0.4, {"type": "error", "error": {"code": "previous_response_not_found"}}),
              _in(0.5, {"type": "response.create", "previous_response_id": "r1", "input": "x"})]
    rec = Recording(connections=[_conn(0, frames)], dead_ids=["r1"], process=Process(1, 0.6, False))
    scenario = S.BY_NAME["eviction"]
    assert J.eviction(rec, scenario, J.requests(rec)).ok is False
    assert J.error_ends(rec, scenario, J.requests(rec)).ok is True       # exit 1 in time
    rec.process = Process(None, 8.0, True)
    assert "hung" in J.error_ends(rec, scenario, J.requests(rec)).message


def test_judge_by_hand_flat_and_no_stream_are_separate_clauses():
    """A nested (Realtime-shaped) create fails CLIENT-CREATE-FLAT only; stream or background
    (as OpenAI's own SDKs send) fails the SHOULD CLIENT-CREATE-NO-STREAM only."""
    flat = {"type": "response.create", "model": "m", "input": "hi"}
    cases = [(flat, True, True),
             (dict(flat, stream=True), True, False),
             (dict(flat, background=False), True, False),
             ({"type": "response.create", "response": {"model": "m", "input": "hi"}}, False, True)]
    for create, flat_ok, no_stream_ok in cases:
        rec = Recording(connections=[_conn(0, [_in(0.1, create), _out(0.2, _done("r1"))])],
                        process=Process(0, 0.3, False))
        reqs = J.requests(rec)
        scenario = S.BY_NAME["tool-loop"]
        assert J.create_flat(rec, scenario, reqs).ok is flat_ok, create
        judged = J.create_no_stream(rec, scenario, reqs)
        assert judged.ok is no_stream_ok, create
        if not no_stream_ok:
            assert "stream" in judged.message or "background" in judged.message
    empty = Recording(connections=[], process=Process(0, 0.1, False))
    assert J.create_flat(empty, S.BY_NAME["tool-loop"], []).ok is None
    assert J.create_no_stream(empty, S.BY_NAME["tool-loop"], []).ok is None
    client = V.ClauseRegistry.load(V.default_clauses_path()).side(V.CLIENT)
    levels = {c.id: c.level for c in client.for_profile(load_profile("openai").capabilities())}
    assert levels[S.CREATE_FLAT] == "MUST" and levels[S.CREATE_NO_STREAM] == "SHOULD"


@pytest.mark.parametrize("profile, level", [("openai", "SHOULD"), ("openai-2026-02", "SHOULD"),
                                            ("reference", "SHOULD"), ("open-responses", "MUST"), ("xai", "MUST")])
def test_a_client_profile_sets_the_level_of_sending_stream(profile, level):
    """§4.11 item 54: stream/background is a SHOULD for a client of a server that tolerates
    stream (the OpenAI profiles), a MUST for one whose server may refuse it (P-open; xAI's
    docs do not say it is tolerated); the digest stays the whole registry's."""
    whole = V.ClauseRegistry.load(V.default_clauses_path())
    view = whole.side(V.CLIENT).for_profile(load_profile(profile).capabilities())
    assert view[S.CREATE_NO_STREAM].level == level
    assert view[S.CREATE_FLAT].level == "MUST" and view.digest() == whole.digest()


def test_should_when_only_lowers_a_must(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[[clause]]\nid = "X"\nlevel = "SHOULD"\nshould_when = ["lanes"]\n')
    with pytest.raises(V.RegistryError, match="should_when"):
        V.ClauseRegistry.load(path)


def _create(**fields) -> dict:
    return dict({"type": "response.create", "model": "m", "input": "x"}, **fields)


def test_judge_one_in_flight_counts_only_creates_before_the_answer():
    """A create that arrives after the answer went out is never counted (the client may have
    sent it a moment before it read the answer: a race it cannot see); one that arrives before
    is; creates of another lane are not the default lane's."""
    scenario = S.BY_NAME["busy-reject"]
    after = [_in(0.1, _create()), _out(0.2, _done("r1")), _in(0.2, _create(previous_response_id="r1")),
             _out(0.3, _done("r2"))]
    rec = Recording(connections=[_conn(0, after)], process=Process(0, 0.4, False))
    assert J.one_in_flight(rec, scenario, J.requests(rec)).ok is True
    early = [_in(0.1, _create()), _in(0.15, _create()), _out(0.16, {"type": "error", "error": {
        "code": "response_already_in_flight"}}), _out(0.2, _done("r1"))]
    rec = Recording(connections=[_conn(0, early)], process=Process(0, 0.4, False))
    judged = J.one_in_flight(rec, scenario, J.requests(rec))
    assert judged.ok is False and "1 busy rejection" in judged.message
    lanes = [_in(0.1, _create(stream_id="a")), _in(0.15, _create(stream_id="b")),
             _out(0.2, dict(_done("r1"), stream_id="a")), _out(0.3, dict(_done("r2"), stream_id="b"))]
    rec = Recording(connections=[_conn(0, lanes)], process=Process(0, 0.4, False))
    assert J.one_in_flight(rec, scenario, J.requests(rec)).ok is None      # no lane had a second request
    single = Recording(connections=[_conn(0, after[:2])], process=Process(0, 0.4, False))
    assert J.one_in_flight(single, scenario, J.requests(single)).ok is None


def test_judge_slow_first_event_counts_what_came_before_it():
    scenario = S.BY_NAME["slow-first-token"]
    base = [_in(0.1, _create()), _out(0.2, _done("r1")), _in(0.3, _create(previous_response_id="r1"))]
    waited = base + [_out(3.3, {"type": "response.created"}), _out(3.4, _done("r2"))]
    rec = Recording(connections=[_conn(0, waited)], process=Process(0, 4.0, False))
    judged = J.waits_for_slow(rec, scenario, J.requests(rec))
    assert judged.ok is False and "2 response(s) completed (4 needed)" in judged.message       # waited, but did not finish
    resent = base + [_in(1.3, _create(previous_response_id="r1")), _out(3.3, {"type": "response.created"})]
    rec = Recording(connections=[_conn(0, resent)], process=Process(0, 4.0, False))
    assert J.waits_for_slow(rec, scenario, J.requests(rec)).ok is False
    # a create after the first event went out is the client's next business, not a resend
    later = waited + [_in(3.5, _create(previous_response_id="r2"))]
    rec = Recording(connections=[_conn(0, later)], process=Process(0, 4.0, False))
    assert "waited 3.00 s" in J.waits_for_slow(rec, scenario, J.requests(rec)).message
    closed = Recording(connections=[_conn(0, base, closed_by="client", closed=1.3),
                                    _conn(1, [], opened=1.5)], process=Process(0, 4.0, False))
    assert "closed the connection" in J.waits_for_slow(closed, scenario, J.requests(closed)).message


def test_judge_store_false_names_only_its_own_connection():
    scenario = S.Scenario("t", "", (S.STORE_FALSE,), turns=2)
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    first = [_in(0.1, _create(store=False)), _out(0.2, _done("r1", [call]))]
    stale = Recording(connections=[_conn(0, first), _conn(1, [_in(0.4, _create(store=False, previous_response_id="r1")),
                                                              _out(0.5, _done("r2"))], opened=0.3)],
                      process=Process(0, 0.6, False))
    judged = J.store_false(stale, scenario, J.requests(stale))
    assert judged.ok is False and "connection 0" in judged.message
    forgot = Recording(connections=[_conn(0, first), _conn(1, [_in(0.4, _create(store=False)), _out(0.5, _done("r2"))],
                                                           opened=0.3)], process=Process(0, 0.6, False))
    assert "c1" in J.store_false(forgot, scenario, J.requests(forgot)).message
    full = Recording(connections=[_conn(0, first), _conn(1, [_in(0.4, _create(store=False, input=[call])),
                                                             _out(0.5, _done("r2"))], opened=0.3)],
                     process=Process(0, 0.6, False))
    assert J.store_false(full, scenario, J.requests(full)).ok is True
    stored = Recording(connections=[_conn(0, [_in(0.1, _create()), _out(0.2, _done("r1"))])], process=Process(0, 0.3, False))
    assert J.store_false(stored, scenario, J.requests(stored)).ok is None


def test_judge_pairs_answers_in_the_servers_order_and_sees_abandonment():
    """Responses answer creates first in, first answered per connection; a create that arrives
    before the answer of the one before it marks that one abandoned; a later request naming the
    abandoned response shifted its replies; one naming the retry's response did not."""
    scenario = S.BY_NAME["abandoned"]
    frames = [_in(0.1, _create()), _out(0.2, _done("r1")),
              _in(0.3, _create(previous_response_id="r1")), _out(0.31, {"type": "response.created", "response": {"id": "r2"}}),
              _in(0.4, _create(previous_response_id="r1")),        # abandons request 2, sends it again
              _out(1.9, _done("r2")), _out(2.0, {"type": "response.created", "response": {"id": "r3"}}),
              _out(2.1, _done("r3"))]
    right = frames + [_in(2.2, _create(previous_response_id="r3")), _out(2.3, _done("r4"))]
    rec = Recording(connections=[_conn(0, right)], process=Process(0, 2.4, False))
    reqs = J.requests(rec)
    assert [(r.number, r.response_id, r.overtaken_by) for r in reqs] == [(1, "r1", None), (2, "r2", 3), (3, "r3", None),
                                                                         (4, "r4", None)]
    assert J.ignores_abandoned(rec, S.Scenario("t", "", (S.IGNORES_ABANDONED,), turns=3), reqs).ok is True
    shifted = frames + [_in(1.95, _create(previous_response_id="r2")), _out(2.3, _done("r4"))]
    rec = Recording(connections=[_conn(0, shifted)], process=Process(0, 2.4, False))
    judged = J.ignores_abandoned(rec, scenario, J.requests(rec))
    assert judged.ok is False and "request 4 continues r2" in judged.message
    plain = Recording(connections=[_conn(0, frames[:2])], process=Process(0, 0.3, False))
    assert J.ignores_abandoned(plain, scenario, J.requests(plain)).ok is None


def test_judge_no_lost_request_is_the_same_whichever_way_the_race_went():
    """The client's next create crossed the server's unsolicited limit error: it reached the
    server unanswered, or never arrived. Either way the verdict asks the same of the first
    request on the new connection: continue the last completed response with that input."""
    scenario = S.Scenario("t", "", (S.NO_LOST_REQUEST,), turns=2)
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    answer = {"type": "function_call_output", "call_id": "c1", "output": "x"}
    limit = {"type": "error", "error": {"code": "websocket_connection_limit_reached"}}
    head = [_in(0.1, _create()), _out(0.2, _done("r1", [call])), _out(0.3, limit)]
    resend = _create(previous_response_id="r1", input=[answer])
    for crossed in ([_in(0.31, resend)], []):          # arrived unanswered / lost on the closed socket
        old = _conn(0, head + crossed, closed_by="server", closed=0.35)
        good = _conn(1, [_in(0.5, resend), _out(0.6, _done("r2"))], opened=0.4)
        rec = Recording(connections=[old, good], process=Process(0, 0.7, False))
        assert J.no_lost_request(rec, scenario, J.requests(rec)).ok is True, crossed
        moved_on = _conn(1, [_in(0.5, _create(previous_response_id="r1")), _out(0.6, _done("r2"))], opened=0.4)
        rec = Recording(connections=[old, moved_on], process=Process(0, 0.7, False))
        judged = J.no_lost_request(rec, scenario, J.requests(rec))
        assert judged.ok is False and "c1" in judged.message, crossed
    older = _conn(1, [_in(0.5, _create(previous_response_id="r0", input=[answer]))], opened=0.4)
    rec = Recording(connections=[_conn(0, head, closed_by="server", closed=0.35), older], process=Process(1, 0.7, False))
    assert "names r0" in J.no_lost_request(rec, scenario, J.requests(rec)).message
    alone = Recording(connections=[_conn(0, head, closed_by="server", closed=0.35)], process=Process(1, 0.4, False))
    assert J.no_lost_request(alone, scenario, J.requests(alone)).ok is None


def test_client_claims_validator():
    """--client-claims: known names, comma-separated, with --client-command only."""
    assert options._validate_client_claims(None, None) == ()
    assert options._validate_client_claims("steering, lanes,lanes", "python c.py") == ("lanes", "steering")
    for bad, command, said in (("lanes,teleport", "python c.py", r"unknown claim\(s\) 'teleport'"),
                               (" , ", "python c.py", "name a claim"),
                               ("lanes", None, "give --client-command too")):
        with pytest.raises(pytest.UsageError, match=said):
            options._validate_client_claims(bad, command)


def _lane_done(rid: str, lane: str, at: float) -> Frame:
    return _out(at, dict(_done(rid), stream_id=lane))


def test_judge_lanes_by_hand():
    """Lane names, the 32-name and 16-in-flight limits, lanes at once, each lane's own chain."""
    scenario = S.BY_NAME["lanes"]
    at_once = [_in(0.1, _create(stream_id="a")), _in(0.1, _create(stream_id="b")), _lane_done("ra", "a", 0.3),
               _lane_done("rb", "b", 0.3), _in(0.4, _create(stream_id="a", previous_response_id="ra")),
               _in(0.4, _create(stream_id="b", previous_response_id="ra")), _lane_done("ra2", "a", 0.6),
               _lane_done("rb2", "b", 0.6)]
    rec = Recording(connections=[_conn(0, at_once)], process=Process(0, 1.0, False))
    reqs = J.requests(rec)
    assert J.CHECKS[S.LANE_NAMES](rec, scenario, reqs).ok is True
    assert J.CHECKS[S.LANE_COUNT](rec, scenario, reqs).ok is True
    assert J.CHECKS[S.LANES_IN_FLIGHT](rec, scenario, reqs).ok is False      # 4 of 12 turns: not finished
    crossed = J.CHECKS[S.LANE_OWN_CHAIN](rec, scenario, reqs)
    assert crossed.ok is False and "request 4" in crossed.message and "lane 'a'" in crossed.message
    fork = at_once[:5] + [_in(0.4, _create(stream_id="c", previous_response_id="ra")), _lane_done("rc", "c", 0.6)]
    rec = Recording(connections=[_conn(0, fork)], process=Process(0, 1.0, False))
    assert J.CHECKS[S.LANE_OWN_CHAIN](rec, scenario, J.requests(rec)).ok is True     # a fork begins a lane
    serial = [_in(0.1, _create(stream_id="a")), _lane_done("ra", "a", 0.3), _in(0.3, _create(stream_id="b")),
              _lane_done("rb", "b", 0.5)]
    rec = Recording(connections=[_conn(0, serial)], process=Process(0, 1.0, False))
    judged = J.CHECKS[S.LANES_IN_FLIGHT](rec, scenario, J.requests(rec))
    assert judged.ok is False and "one after another" in judged.message
    bad = [_in(0.1, _create(stream_id="a b")), _in(0.1, _create(stream_id="x" * 257))]
    rec = Recording(connections=[_conn(0, bad)], process=Process(0, 1.0, False))
    assert J.CHECKS[S.LANE_NAMES](rec, scenario, J.requests(rec)).ok is False
    assert J.text_json(rec, scenario, J.requests(rec)).ok is True       # the lane name is LANE-NAMES' to judge
    assert J.text_json(rec, S.BY_NAME["tool-loop"], J.requests(rec)).ok is False
    many = [_in(0.1 + n / 1000, _create(stream_id=f"l{n}")) for n in range(17)]
    rec = Recording(connections=[_conn(0, many)], process=Process(0, 1.0, False))
    judged = J.CHECKS[S.LANE_COUNT](rec, scenario, J.requests(rec))
    assert judged.ok is False and "17 in flight" in judged.message
    names = [frame for n in range(33) for frame in (_in(n, _create(stream_id=f"l{n}")), _lane_done(f"r{n}", f"l{n}", n + 0.5))]
    rec = Recording(connections=[_conn(0, names)], process=Process(0, 40.0, False))
    judged = J.CHECKS[S.LANE_COUNT](rec, scenario, J.requests(rec))
    assert judged.ok is False and "distinct lane name number 33" in judged.message
    plain = Recording(connections=[_conn(0, [_in(0.1, _create())])], process=Process(0, 1.0, False))
    assert all(J.CHECKS[c](plain, scenario, J.requests(plain)).ok is None for c in scenario.clauses)


def test_judge_steers_by_hand():
    """A steer names a response begun and not ended on its connection; the successor the server
    starts answers the steered request (so the conversation still counts as complete)."""
    scenario = S.BY_NAME["steering"]
    steer = {"type": "response.steer", "previous_response_id": "r2", "input": "in Celsius"}
    start = [_in(0.1, _create()), _out(0.2, _done("r1")), _in(0.3, _create(previous_response_id="r1")),
             _out(0.31, {"type": "response.created", "response": {"id": "r2"}})]
    ending = [_out(0.9, {"type": "response.incomplete", "response": {"id": "r2", "output": []}}),
              _out(0.91, {"type": "response.created", "response": {"id": "r3"}}), _out(1.5, _done("r3")),
              _in(1.6, _create(previous_response_id="r3")), _out(1.7, _done("r4")),
              _in(1.8, _create(previous_response_id="r4")), _out(1.9, _done("r5"))]
    rec = Recording(connections=[_conn(0, start + [_in(0.32, steer), _in(0.33, steer)] + ending)],
                    process=Process(0, 2.0, False))
    reqs = J.requests(rec)
    assert [(r.answer, r.response_id, r.steered) for r in reqs][1] == ("response.completed", "r3", ("r2",))
    assert J.CHECKS[S.STEERS_ACTIVE](rec, scenario, reqs).ok is True
    late = Recording(connections=[_conn(0, start + ending[:1] + [_in(0.95, steer)] + ending[1:])],
                     process=Process(0, 2.0, False))
    judged = J.CHECKS[S.STEERS_ACTIVE](late, scenario, J.requests(late))
    assert judged.ok is False and "already ended (response.incomplete)" in judged.message
    early = Recording(connections=[_conn(0, start[:3] + [_in(0.305, steer)] + start[3:] + ending)],
                      process=Process(0, 2.0, False))
    judged = J.CHECKS[S.STEERS_ACTIVE](early, scenario, J.requests(early))
    assert judged.ok is False and "had not begun" in judged.message
    none = Recording(connections=[_conn(0, start + ending)], process=Process(0, 2.0, False))
    assert J.CHECKS[S.STEERS_ACTIVE](none, scenario, J.requests(none)).ok is None


def test_the_steered_response_waits_for_late_steers():
    """The steering scenario holds the steered response until the steers arrived: a client that
    steers 1 s after response.created (past the 0.6 s first token) still finds it running, so
    only a steer after the end can fail CLIENT-STEERS-ACTIVE-RESPONSE."""
    scenario = S.BY_NAME["steering"]
    run = run_scenario(scenario, "python tests/clients/broken.py slow-steer")
    judged = {j.clause: j for j in J.judge(run.recording, scenario)}
    assert judged[S.STEERS_ACTIVE].ok is True, judged[S.STEERS_ACTIVE].message
    (target,) = J.requests(run.recording)[S.STEERED_REQUEST - 1].steered     # its successor answered it
    created = next(f.at for _, f in run.recording.frames(Direction.OUT) if (f.event or {}).get("type") ==
                   "response.created" and f.event["response"]["id"] == target)
    steers = [f.at for _, f in run.recording.frames(Direction.IN) if (f.event or {}).get("type") == "response.steer"]
    assert len(steers) == S.STEERS and min(steers) - created >= S.STEER_TTFT_MS / 1000
