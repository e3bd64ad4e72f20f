"""A client project's own tests, as ``--client-test-command`` runs them unchanged
(docs/clients.md "A client's own tests"): ``python tests/clients/own_tests.py [VARIANT]``.

Three small tests of the official Python SDK's WebSocket mode (``client.responses.connect()``)
that follow no scenario and no N-turn contract: one answer, a tool call answered on a
continuation, a new conversation on the same socket. The SDK reads OPENAI_BASE_URL and
OPENAI_API_KEY. It prints one line per test and exits 1 when one failed. VARIANT breaks it
for the self-tests (tests/test_ownsuite.py):

* ``ok``: the tests as they should be;
* ``full-history``: the continuation resends the function call with its output (a SHOULD);
* ``key-in-url``: every connection also carries the key in its query (a MUST);
* ``failing``: one test asserts a model's answer that a model-free server never gives (exit 1);
* ``recovers``: the tool-call test survives eviction: after ``previous_response_not_found`` it
  starts a new chain with the whole context (``--client-test-scenario eviction`` passes it;
  ``ok`` fails that scenario's clause, since its continuation then fails).
"""

from __future__ import annotations

import json
import os
import sys

import openai

VARIANT = sys.argv[1] if len(sys.argv) > 1 else "ok"
MODEL = os.environ.get("CONFORMANCE_MODEL", "gpt-5.6")
TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {
    "city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}, "strict": True}
TERMINAL = ("response.completed", "response.failed", "response.incomplete")


def connection(client: openai.OpenAI):
    query = {"api_key": client.api_key} if VARIANT == "key-in-url" else {}
    return client.responses.connect(extra_query=query, max_retries=0)


class ServerError(AssertionError):
    """The server answered a request with an ``error`` event."""

    def __init__(self, code: str | None):
        super().__init__(f"error {code}")
        self.code = code


def answer(conn, **params):
    conn.response.create(model=MODEL, **params)
    for event in conn:
        if event.type in TERMINAL:
            assert event.type == "response.completed", event.type
            return event.response
        if event.type == "error":
            raise ServerError(event.error.code)
    raise AssertionError("the connection closed before the response ended")


def test_one_answer(client):
    with connection(client) as conn:
        response = answer(conn, input="Say hello.")
    assert response.output, "an answer has output"
    if VARIANT == "failing":
        assert "Paris" in (response.output_text or ""), "expected the model to name Paris"


def test_tool_call_answered(client):
    question = {"role": "user", "content": "What is the weather in Paris?"}
    with connection(client) as conn:
        first = answer(conn, input=[question], tools=[TOOL], store=True)
        calls = [item for item in first.output if item.type == "function_call"]
        assert calls, "the server calls the offered tool"
        outputs = [{"type": "function_call_output", "call_id": c.call_id, "output": json.dumps({"temp_c": 18})}
                   for c in calls]
        made = [c.to_dict(exclude_none=True) for c in calls]
        resent = made if VARIANT == "full-history" else []
        try:
            second = answer(conn, input=resent + outputs, tools=[TOOL], previous_response_id=first.id, store=True)
        except ServerError as exc:
            if VARIANT != "recovers" or exc.code != "previous_response_not_found":
                raise
            # the server lost the chain: a new one carrying the whole context
            second = answer(conn, input=[question, *made, *outputs], tools=[TOOL], store=True)
    assert second.status == "completed"


def test_new_conversation_on_the_same_socket(client):
    with connection(client) as conn:
        answer(conn, input="First conversation.")
        again = answer(conn, input="A second conversation, from scratch.")
    assert again.id


TESTS = (test_one_answer, test_tool_call_answered, test_new_conversation_on_the_same_socket)


def main() -> int:
    client = openai.OpenAI(max_retries=0, timeout=20)
    failed = 0
    for test in TESTS:
        try:
            test(client)
            print(f"PASSED {test.__name__}")
        except Exception as exc:  # noqa: BLE001 - a test runner reports every failure
            failed += 1
            print(f"FAILED {test.__name__}: {type(exc).__name__}: {exc}")
    print(f"{len(TESTS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
