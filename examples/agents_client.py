"""A contract client (docs/clients.md) written with openai-agents (``agents``) over its
Responses WebSocket transport, ``agents.responses_websocket_session``.

One agent with one function tool (get_weather). Each ``session.run`` is one user turn: the
Agents SDK sends the request, runs the tool for the function call it gets and sends its
output in the request that continues the response. The next run continues from the last
response (``previous_response_id=result.last_response_id``), so the conversation is
CONFORMANCE_CLIENT_TURNS requests (two per run) over the session's WebSocket. Whatever the
Agents SDK raises (an error event, a failed or incomplete response, a closed socket it could
not recover from) ends the program with exit 1 and the reason on stderr; the recovery
behaviour is the Agents SDK's own (docs/clients.md lists what it does in each scenario).

The endpoint and key come from OPENAI_BASE_URL and OPENAI_API_KEY, the WebSocket URL from
CONFORMANCE_WS_URL. CONFORMANCE_CLIENT_STORE=false sets ``ModelSettings(store=False)``;
CONFORMANCE_CLIENT_PAUSE_S is a pause between two runs (the socket idles).
CONFORMANCE_CLIENT_ABANDON=N: the run that sends the Nth request is streamed
(``session.run_streamed``) and cancelled (``result.cancel()``) once that request's
``response.created`` arrives, as a user pressing stop; the run is then started again.
"""

from __future__ import annotations

import asyncio
import os
import sys

import agents

TURNS = int(os.environ.get("CONFORMANCE_CLIENT_TURNS", "4"))
MODEL = os.environ.get("CONFORMANCE_MODEL", "gpt-5.6")
RUN_TIMEOUT_S = float(os.environ.get("CONFORMANCE_CLIENT_RUN_TIMEOUT_S", "20"))
STORE = os.environ.get("CONFORMANCE_CLIENT_STORE", "true") != "false"
PAUSE_S = float(os.environ.get("CONFORMANCE_CLIENT_PAUSE_S", "0"))
ABANDON = int(os.environ.get("CONFORMANCE_CLIENT_ABANDON", "0"))


@agents.function_tool
def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"{city}: 18 C"


async def converse() -> int:
    agent = agents.Agent(name="weather", instructions="Be terse.", tools=[get_weather], model=MODEL,
                         model_settings=agents.ModelSettings(store=STORE))
    ws_url = os.environ.get("CONFORMANCE_WS_URL")
    base = ws_url.rsplit("/responses", 1)[0] if ws_url else None
    previous = None
    runs = max(1, TURNS // 2)        # each run: the function call, then the turn that uses its output
    created = 0         # response.created events seen: the requests the server began
    async with agents.responses_websocket_session(websocket_base_url=base) as session:
        turn = 1
        while turn <= runs:
            prompt = f"Turn {turn}: what is the weather in Paris?"
            if ABANDON > created:
                # stream the run and stop it once the request to abandon has begun
                result = session.run_streamed(agent, prompt, previous_response_id=previous,
                                              auto_previous_response_id=True, max_turns=4)
                stopped = False
                async for event in result.stream_events():
                    if event.type == "raw_response_event" and event.data.type == "response.created":
                        created += 1
                        if created == ABANDON:
                            result.cancel()
                            stopped = True
                if stopped:
                    continue        # the same run again, from the last completed response
            else:
                result = await asyncio.wait_for(
                    session.run(agent, prompt, previous_response_id=previous, auto_previous_response_id=True,
                                max_turns=4), RUN_TIMEOUT_S)
            previous = result.last_response_id
            turn += 1
            if PAUSE_S and turn <= runs:
                await asyncio.sleep(PAUSE_S)
    print(f"done: {runs} runs, last response {previous}")
    return 0


def main() -> int:
    agents.set_tracing_disabled(True)      # no trace export to the network
    try:
        return asyncio.run(converse())
    except Exception as exc:  # noqa: BLE001 - the caller sees every failure as exit 1 and its reason
        print(f"gave up: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
