"""The monitor's fast JSON parser (msgspec) against json.loads, the parser that decides.

StreamMonitor.feed parses a frame with msgspec and falls back to json.loads where msgspec
refuses the text. That is exact only if every text msgspec accepts, json.loads accepts too,
to a value equal in every type down to the leaves (an int stays an int at any size).
"""
from __future__ import annotations

import json
import math

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from conformance.monitor import StreamMonitor
from conformance.monitor import stream as monitor_stream

pytestmark = pytest.mark.clause("WS-TEXT-JSON-FRAMES")


def same(a, b) -> bool:
    """Equal, with the same type at every node (1 != 1.0 and True != 1 here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2 ** 62, max_value=2 ** 70)
           | st.floats() | st.text(max_size=12) | st.sampled_from(["\ud800", "\udfff", "é", "\x00", "\u2028"]))
values = st.recursive(scalars, lambda inner: (st.lists(inner, max_size=4)
                                             | st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                      max_leaves=20)
SPACE = st.sampled_from(["", " ", "\n", "\t", "\r\n", "\x0c", "\xa0", "\ufeff"])


@st.composite
def texts(draw) -> str:
    """JSON texts, many of them broken: json.dumps output with spaces around it, some
    characters changed, dropped or duplicated."""
    text = draw(SPACE) + json.dumps(draw(values), ensure_ascii=draw(st.booleans())) + draw(SPACE)
    for _ in range(draw(st.integers(0, 2))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        op = draw(st.sampled_from(["drop", "dup", "put"]))
        if op == "drop":
            text = text[:i] + text[i + 1:]
        elif op == "dup":
            text = text[:i] + text[i] + text[i:]
        else:
            text = text[:i] + draw(st.sampled_from(list('{}[],:"\\ 0-.eE+nNaI\x01'))) + text[i:]
    return text


@settings(max_examples=250, deadline=None)
@given(texts())
def test_what_msgspec_accepts_json_loads_gives_alike(text):
    try:
        fast = msgspec.json.decode(text)
    except Exception:  # noqa: BLE001 - as the monitor: whatever msgspec refuses, json.loads decides
        return
    assert same(fast, json.loads(text)), text


@pytest.mark.parametrize("text", ['{"type":"x","sequence_number":18446744073709551616}',
                                  '{"type":"x","n":-9223372036854775809,"m":[123456789012345678901234567890]}',
                                  '{"type":"x","n":NaN}', '{"type":"x","n":Infinity}', '{"type":"x","s":"\\ud800"}',
                                  ' {"type":"x"} ', '{"type":"x","type":"y"}', '{"type":"x","n":1e400}'])
def test_the_monitor_reads_a_frame_as_json_loads_does(text):
    message = StreamMonitor(False).feed(text).message
    assert same(message, json.loads(text)), (text, message)


def test_the_fast_parser_is_msgspec():
    # the parser the self-tests above vouch for (a swap to another parser must rerun them)
    assert monitor_stream._fast_loads.__self__.__class__ is msgspec.json.Decoder
