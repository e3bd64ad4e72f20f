"""responses-ws-conformance: a conformance suite for the OpenAI Responses API WebSocket mode."""

# the suite's release (CHANGELOG.md; pyproject.toml reads it): certificates carry it
__version__ = "0.2.0"
