"""The deterministic engine and pure helpers (no I/O)."""

from __future__ import annotations

import pytest

from conformance.server import engine, stream
from conformance.server.config import ServerConfig, lifetime_phrase
from conformance.server.state import ConnectionCache, Entry, ResponseStore
from conformance.server.errors import ApiError
from conformance.server.validate import validate_create, validate_steer


def req(**body):
    body.setdefault("model", "m")
    return validate_create(body, websocket=True)


def ids():
    n = iter(range(1000))
    return lambda prefix: f"{prefix}_{next(n)}"


def test_tokens_are_words_and_punctuation():
    assert engine.count_tokens("Hello, world!") == 4
    assert engine.count_tokens("") == 0


def test_nonces_in_order_without_duplicates():
    texts = ["a KIWI-7342 b", "ABC-1234 KIWI-7342", "lowercase-1234 AB-1234 TOOLONGNAMEXX-1234 XYZ-123 ZED-123456789"]
    assert engine.find_nonces(texts) == ["KIWI-7342", "ABC-1234"]


def test_default_reply_is_truncated_by_16_tokens():
    gen = engine.generate(req(input="hi"), (), new_id=ids())
    text = gen.output[0]["content"][0]["text"]
    assert engine.count_tokens(text) > 16 and gen.status is engine.TurnStatus.COMPLETED
    cut = engine.generate(req(input="hi", max_output_tokens=16), (), new_id=ids())
    assert cut.status is engine.TurnStatus.INCOMPLETE and cut.usage["output_tokens"] == 16
    assert text.startswith(cut.output[0]["content"][0]["text"])


def test_input_tokens_count_instructions_history_and_input():
    alone = engine.generate(req(input="one two", instructions="three"), (), new_id=ids())
    assert alone.usage["input_tokens"] == 3
    carried = ({"type": "message", "role": "user", "content": "four five"},)
    chained = engine.generate(req(input="one two", instructions="three"), carried, new_id=ids(),
                              carried_cached=True)
    assert chained.usage["input_tokens"] == 5
    assert chained.usage["input_tokens_details"]["cached_tokens"] == 2


def test_split_text_adds_up():
    for text in ["", "a", "Hello there, friend!", "x" * 50, "  spaced   out  "]:
        pieces = stream.split_text(text)
        assert "".join(pieces) == text
        assert len(pieces) <= stream.TEXT_CHUNKS
    assert "".join(stream.split_chars('{"a": 1}')) == '{"a": 1}'


def test_compaction_round_trip():
    blob = engine.encode_compaction(["FIG-1234 here"])
    assert engine.decode_compaction(blob) == ["FIG-1234 here"]
    assert engine.decode_compaction("garbage") == []
    assert engine.item_texts({"type": "compaction", "encrypted_content": blob}) == ["FIG-1234 here"]


def test_cache_keeps_latest_per_lane_and_evicts():
    cache = ConnectionCache()
    a = Entry("resp_a", "k", (), {}, False)
    b = Entry("resp_b", "k", (), {}, False)
    c = Entry("resp_c", "k", (), {}, False, "lane")
    cache.remember(None, a)
    cache.remember(None, b)
    cache.remember("lane", c)
    assert cache.get("resp_a") is None and cache.get("resp_b") is b and cache.get("resp_c") is c
    assert cache.evict("resp_c") and cache.get("resp_c") is None and not cache.evict("resp_c")


def test_store_is_per_owner(tmp_path):
    store = ResponseStore(str(tmp_path / "s.jsonl"))
    store.put(Entry("resp_1", "k1", ({"x": 1},), {"id": "resp_1"}, True))
    assert store.get("resp_1", "k2") is None and store.get("resp_1", "k1").context == ({"x": 1},)
    assert not store.delete("resp_1", "k2") and store.delete("resp_1", "k1")
    assert len(ResponseStore(str(tmp_path / "s.jsonl"))) == 0


def test_settings_resolution():
    assert lifetime_phrase(3600) == "60 minutes" and lifetime_phrase(1500) == "25 minutes"
    assert lifetime_phrase(0.5) == "0.5 seconds" and lifetime_phrase(1) == "1 second"
    s = ServerConfig(profile="xai").resolve()
    assert s.lifetime_s == 1500
    assert ServerConfig(profile="xai", lifetime_s=10).resolve().lifetime_s == 10
    # an explicit 60 minutes wins over xai's 25, and the limit message then says so
    assert ServerConfig(profile="xai", lifetime_s=3600).resolve().lifetime_s == 3600
    assert ServerConfig().resolve().lifetime_s == 3600
    assert ServerConfig(zdr=True).resolve().store_true_hydrates is False
    assert ServerConfig(defects=("reject-when-busy",)).resolve().busy_policy == "reject"
    with pytest.raises(ValueError):
        ServerConfig(profile="nope").resolve()
    with pytest.raises(ValueError):
        ServerConfig(lifetime_s=0).resolve()
    with pytest.raises(ValueError):
        ServerConfig(lifetime_s="soon").resolve()


def _events(text: str = "hello there, friend. How are you today?") -> list:
    started = stream.response_object(req(input="x"), "resp_1", 0, None)
    gen = engine.Generation([{"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
                              "content": [{"type": "output_text", "annotations": [], "logprobs": [],
                                           "text": text}]}], engine.TurnStatus.COMPLETED,
                            {"input_tokens": 1, "output_tokens": 9, "total_tokens": 10})
    return stream.number(stream.turn_events(started, stream.final_object(started, gen, 0), gen))


def test_schedule_offsets():
    ev = _events()
    assert stream.schedule(ev) is None
    even = stream.schedule(ev, turn_delay_s=1.0)
    assert even[0] == 0 and abs(even[-1] - 1.0) < 1e-9
    paced = stream.schedule(ev, ttft_s=0.4, tokens_per_second=10)
    assert paced[1] == 0 and paced[2] == 0.4  # the wait is before the first event after in_progress
    tokens = sum(engine.count_tokens(e["delta"]) for e in ev if e["type"].endswith(".delta"))
    assert abs(paced[-1] - (0.4 + tokens / 10)) < 1e-9
    paused = stream.schedule(ev, pause_s=2.0)
    mid = len(ev) // 2
    assert paused[mid - 1] == 0 and paused[mid] == 2.0 and paused[-1] == 2.0


def test_streaming_variations_and_steered_cut():
    ev = _events()
    bare = stream.streaming_variations([dict(e) for e in ev], True, "full")
    assert not stream.SETUP_EVENTS & {e["type"] for e in bare} and bare[-1]["response"]["output"]
    for mode, check in (("empty", lambda r: r["output"] == []), ("null", lambda r: r["output"] is None),
                        ("missing", lambda r: "output" not in r)):
        assert check(stream.streaming_variations([dict(e) for e in ev], False, mode)[-1]["response"])
    assert ev[-1]["response"]["output"]  # the original list is left alone
    assert stream.steered_cut(ev, 0) is None  # one item: no safe boundary before the end
    two = ev[:-1] + [dict(e, output_index=1) for e in ev[2:-1]] + ev[-1:]
    k = stream.steered_cut(two, 0)
    assert two[k - 1]["type"] == "response.output_item.done" and two[k]["type"] == "response.output_item.added"
    term = stream.steered_terminal(two, k)
    assert term["type"] == "response.incomplete" and term["sequence_number"] == two[k]["sequence_number"]
    r = term["response"]
    assert r["incomplete_details"] == {"reason": "steered"} and r["output"] == [two[k - 1]["item"]]
    assert r["usage"]["output_tokens"] == engine.count_tokens(ev[-1]["response"]["output"][0]["content"][0]["text"])


@pytest.mark.parametrize("event,param", [
    ({"type": "response.steer", "previous_response_id": "r", "input": "x", "extra": 1}, "extra"),
    ({"type": "response.steer", "previous_response_id": 5, "input": "x"}, "previous_response_id"),
    ({"type": "response.steer", "previous_response_id": "r"}, "input"),
    ({"type": "response.steer", "previous_response_id": "r", "input": [{"role": "user", "content": []}]},
     "input[0]"),
    ({"type": "response.steer", "previous_response_id": "r",
      "input": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]}, "input[0]"),
])
def test_validate_steer_rejects(event, param):
    with pytest.raises(ApiError) as exc:
        validate_steer(event)
    assert (exc.value.code, exc.value.param, exc.value.status) == ("invalid_input", param, 400)


def test_validate_steer_accepts_text_and_messages():
    assert validate_steer({"type": "response.steer", "previous_response_id": "r", "input": "go"}) == (
        "r", [{"type": "message", "role": "user", "content": "go"}])
    parts = [{"type": "input_text", "text": "a"}, {"type": "input_image", "image_url": "data:x"}]
    _, items = validate_steer({"type": "response.steer", "previous_response_id": "r",
                               "input": [{"type": "message", "role": "user", "content": parts}]})
    assert items == [{"type": "message", "role": "user", "content": parts}]
