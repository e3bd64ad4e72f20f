"""The deterministic engine and pure helpers (no I/O)."""

from __future__ import annotations

import pytest

from conformance.server import engine, stream
from conformance.server.config import ServerConfig, lifetime_phrase
from conformance.server.state import ConnectionCache, Entry, ResponseStore
from conformance.server.validate import validate_create


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
