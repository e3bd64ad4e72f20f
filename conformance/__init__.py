"""responses-ws-conformance: a conformance suite for the OpenAI Responses API WebSocket mode."""
