"""What a process spends on targets: ``response.create`` frames, HTTP requests and billed tokens.

One ``UsageMeter`` per run travels in the run context (``conformance.runcontext``); the plugin
snapshots it around each case so the certificate says what a run costs (docs/design.md
"Reports"). The proxy keeps one of its own. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class UsageMeter:
    """What this process has spent on targets: requests sent and tokens billed. The plugin
    takes a snapshot around each case, so the certificate says what a run costs."""

    creates: int = 0            # response.create frames sent on sockets
    http_requests: int = 0
    input_tokens: int = 0       # from the usage of terminal responses (and HTTP bodies)
    output_tokens: int = 0

    def snapshot(self) -> dict[str, int]:
        return {"creates": self.creates, "http_requests": self.http_requests,
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens}

    def add_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            for key in ("input_tokens", "output_tokens"):
                value = usage.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    setattr(self, key, getattr(self, key) + value)
