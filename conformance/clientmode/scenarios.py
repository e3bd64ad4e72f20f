"""Client-mode scenarios as data: what the reference server does on which request, and which
client clauses each scenario checks (docs/clients.md, docs/spec.md §4.11).

A scenario names, per ``response.create`` (counted from 1 across all connections of the run),
an ``Act`` that replaces or reshapes the reference server's usual answer; requests without an
act are answered by the reference server as usual. ``conformance.clientmode.stage`` plays the
acts, ``conformance.clientmode.judge`` reads what the client did. No I/O here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


class Act(enum.StrEnum):
    """What the reference server does with one request of a scenario."""

    NOT_FOUND = "not-found"            # answer previous_response_not_found; that id stays dead
    TOP_ERROR = "top-error"            # answer a top-level error event (nested shape), server_error
    FAILED = "failed"                  # the response ends with response.failed
    INCOMPLETE = "incomplete"          # the response ends with response.incomplete
    CLOSE_MID = "close-mid"            # the first events of the response, then a close (1011)
    LIMIT_CLOSE = "limit-close"        # the response, then the lifetime error and a close (1000)
    IDLE_CLOSE = "idle-close"          # the response, then the idle socket is closed (1000)
    EXTRA_EVENTS = "extra-events"      # unknown server events between the response's events
    LARGE_TERMINAL = "large-terminal"  # the terminal event padded to more than 1 MiB
    IDLE_LIMIT = "idle-limit"          # the response; once the socket idles, the lifetime error
                                       # unsolicited and a close (1000): §4.6 item 38a
    LIMIT_ANSWER = "limit-answer"      # the lifetime error as the answer to the request, then a close
    SLOW_FIRST = "slow-first"          # the response's first event comes SLOW_FIRST_S late
    STALL = "stall"                    # after response.in_progress the response stalls STALL_S
    STEER_HOLD = "steer-hold"          # after response.in_progress the response waits (at most
                                       # STEER_WAIT_S) for the client's steers, so they find it running


class Exit(enum.StrEnum):
    """What the client's process should do in a scenario."""

    SUCCESS = "success"    # finish its turns and exit 0
    GIVE_UP = "give-up"    # end the request with an error the caller sees: exit non-zero


# --- the client clauses (cases/clauses.toml, section "client conformance") ---------------------
TEXT_JSON = "CLIENT-TEXT-JSON-FRAMES"
CREATE_FLAT = "CLIENT-CREATE-FLAT"
CREATE_NO_STREAM = "CLIENT-CREATE-NO-STREAM"
KEY_IN_HEADER = "CLIENT-KEY-IN-HEADER"
CHAIN = "CLIENT-CONTINUES-CHAIN"
NEW_INPUT_ONLY = "CLIENT-NEW-INPUT-ONLY"
TOOL_OUTPUT = "CLIENT-ANSWERS-TOOL-CALLS"
ONE_SOCKET = "CLIENT-REUSES-CONNECTION"
FINISHES = "CLIENT-FINISHES"
EVICTION = "CLIENT-EVICTION-RECOVERY"
RECONNECTS = "CLIENT-RECONNECTS"
RETRIES_SPACED = "CLIENT-RETRIES-BOUNDED"
ERROR_ENDS = "CLIENT-ERROR-ENDS-REQUEST"
FAILED_ENDS = "CLIENT-FAILED-ENDS-REQUEST"
UNKNOWN_EVENTS = "CLIENT-TOLERATES-UNKNOWN-EVENTS"
LARGE_FRAMES = "CLIENT-READS-LARGE-FRAMES"
WAITS_FOR_SLOW = "CLIENT-WAITS-FOR-SLOW-RESPONSE"
ONE_IN_FLIGHT = "CLIENT-ONE-REQUEST-IN-FLIGHT"
STORE_FALSE = "CLIENT-STORE-FALSE-FULL-CONTEXT"
IGNORES_ABANDONED = "CLIENT-IGNORES-ABANDONED-EVENTS"
NO_LOST_REQUEST = "CLIENT-NO-REQUEST-LOST-ON-CLOSE"
# judged by conformance.clientmode.lanes, in the scenarios a client plays only when it claims
# lanes or steering (--client-claims; the clauses require client_lanes / client_steering)
LANE_NAMES = "CLIENT-LANE-NAMES"
LANE_COUNT = "CLIENT-LANE-COUNT"
LANES_IN_FLIGHT = "CLIENT-LANES-IN-FLIGHT"
LANE_OWN_CHAIN = "CLIENT-LANE-OWN-CHAIN"
STEERS_ACTIVE = "CLIENT-STEERS-ACTIVE-RESPONSE"

# judged on every frame and upgrade of every scenario
EVERY_SCENARIO = (TEXT_JSON, CREATE_FLAT, CREATE_NO_STREAM, KEY_IN_HEADER)

DEFAULT_TURNS = 4
DEFAULT_DEADLINE_S = 8.0
REFUSED_UPGRADE_STATUS = 503
SLOW_FIRST_S = 3.0              # how late the first event of a slow response comes
IDLE_LIMIT_AFTER_S = 0.3        # how long after the terminal event the idle socket gets the limit error
PAUSE_S = "1.0"                 # CONFORMANCE_CLIENT_PAUSE_S where a scenario needs an idle socket
STALL_S = 1.5                   # how long a stalled response is silent after response.in_progress
ABANDONED_REQUEST = 2           # the request the abandoned scenario asks the client to abandon
LANES = 3                       # conversations at once, one named lane each, in the lanes scenario
LANE_TTFT_MS = 200.0            # time to first token there: a second lane's create meets a running one
LANE_WAIT_S = 1.0               # the first response there waits (at most this) for a second lane's create
STEERS = 2                      # steers the steering scenario asks for
STEERED_REQUEST = 2             # the request whose response the client steers (its answer is a message,
                                # so the steered response always gets a successor, §4.9 item 47)
STEER_TTFT_MS = 600.0           # time to first token there: every response runs long enough to steer
STEER_WAIT_S = 2.0              # how long the steered response waits for the steers at most
# the contract's switches a scenario may set (docs/clients.md "The contract")
ENV_PAUSE = "CONFORMANCE_CLIENT_PAUSE_S"
ENV_STORE = "CONFORMANCE_CLIENT_STORE"
ENV_ABANDON = "CONFORMANCE_CLIENT_ABANDON"
ENV_LANES = "CONFORMANCE_CLIENT_LANES"
ENV_STEER = "CONFORMANCE_CLIENT_STEER"
CONTRACT_SWITCHES = (ENV_PAUSE, ENV_STORE, ENV_ABANDON, ENV_LANES, ENV_STEER)


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    clauses: tuple[str, ...]                       # besides EVERY_SCENARIO
    acts: Mapping[int, Act] = field(default_factory=dict)   # request number (from 1) -> act
    every: Act | None = None                       # an act for every request
    exit: Exit = Exit.SUCCESS
    turns: int = DEFAULT_TURNS
    deadline_s: float = DEFAULT_DEADLINE_S
    server: Mapping[str, object] = field(default_factory=dict)   # ServerConfig overrides
    refuse_upgrades_after: int | None = None       # upgrades after this many answer 503
    env: Mapping[str, str] = field(default_factory=dict)     # contract switches for the client
    claim: str | None = None                       # played only for a client that claims it (--client-claims)

    def __post_init__(self) -> None:
        object.__setattr__(self, "acts", MappingProxyType(dict(self.acts)))
        object.__setattr__(self, "server", MappingProxyType(dict(self.server)))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))

    def act(self, request: int) -> Act | None:
        return self.acts.get(request, self.every)

    @property
    def all_clauses(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(EVERY_SCENARIO + self.clauses))

    @property
    def conversations(self) -> int:
        """Conversations the client holds at once (one per named lane; 1 without lanes)."""
        return int(self.env.get(ENV_LANES, "1"))

    @property
    def steers(self) -> int:
        """Steers the client is asked to send (0: none)."""
        return int(self.env.get(ENV_STEER, "0"))


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("tool-loop", "a plain conversation: every call answered, every turn continuing the last",
             (CHAIN, NEW_INPUT_ONLY, TOOL_OUTPUT, ONE_SOCKET, FINISHES)),
    Scenario("eviction", "the third request is answered previous_response_not_found once",
             (EVICTION,), acts={3: Act.NOT_FOUND}),
    Scenario("lifetime", "after the second response the lifetime error arrives and the socket closes",
             (RECONNECTS, NO_LOST_REQUEST), acts={2: Act.LIMIT_CLOSE}),
    Scenario("idle-close", "after the second response the server closes the idle socket",
             (RECONNECTS, NO_LOST_REQUEST), acts={2: Act.IDLE_CLOSE}),
    Scenario("close-mid-response", "the second response stops after its first events: the socket closes",
             (RECONNECTS, NO_LOST_REQUEST), acts={2: Act.CLOSE_MID}),
    Scenario("reconnect-refused", "the socket closes in the middle of the second response and every "
             "later upgrade is refused with 503", (RETRIES_SPACED,), acts={2: Act.CLOSE_MID},
             exit=Exit.GIVE_UP, refuse_upgrades_after=1),
    Scenario("top-level-error", "the second request is answered by a top-level error event (server_error)",
             (ERROR_ENDS,), acts={2: Act.TOP_ERROR}, exit=Exit.GIVE_UP),
    Scenario("response-failed", "the second response ends with response.failed",
             (FAILED_ENDS,), acts={2: Act.FAILED}, exit=Exit.GIVE_UP),
    Scenario("response-incomplete", "the second response ends with response.incomplete",
             (FAILED_ENDS,), acts={2: Act.INCOMPLETE}, exit=Exit.GIVE_UP),
    Scenario("unknown-events", "unknown server events and the control events of §3.4 between and "
             "inside every response", (UNKNOWN_EVENTS,), every=Act.EXTRA_EVENTS,
             server={"control_events": True}),
    Scenario("large-terminal", "the second response's terminal event is larger than 1 MiB",
             (LARGE_FRAMES,), acts={2: Act.LARGE_TERMINAL}),
    Scenario("idle-limit", "the client pauses between turns; while the socket idles after the second "
             "response, the lifetime error arrives unsolicited and the socket closes",
             (RECONNECTS, NO_LOST_REQUEST), acts={2: Act.IDLE_LIMIT}, env={ENV_PAUSE: PAUSE_S},
             deadline_s=DEFAULT_DEADLINE_S + (DEFAULT_TURNS - 1) * float(PAUSE_S)),   # the pauses are the client's wait
    Scenario("limit-answer", "the third request is answered by the lifetime error, then the socket "
             "closes (the other form of §4.6 item 38)", (RECONNECTS, NO_LOST_REQUEST), acts={3: Act.LIMIT_ANSWER}),
    Scenario("slow-first-token", f"the first event of the second response comes {SLOW_FIRST_S:g} s late",
             (WAITS_FOR_SLOW,), acts={2: Act.SLOW_FIRST}, deadline_s=DEFAULT_DEADLINE_S + SLOW_FIRST_S,
             server={"ttft_ms": 1.0}),     # paced: turns run beside the frame reader, which records on
    Scenario("busy-reject", "the server rejects a create that arrives while a response is in flight "
             "(busy_policy reject, response_already_in_flight 409)", (ONE_IN_FLIGHT,),
             server={"busy_policy": "reject", "ttft_ms": 20.0}),
    Scenario("store-false-reconnect", "the client runs with store=false; after the second response the "
             "server closes the idle socket, and the connection-local cache goes with it",
             (STORE_FALSE,), acts={2: Act.IDLE_CLOSE}, env={ENV_STORE: "false"}),
    Scenario("abandoned", f"the client abandons request {ABANDONED_REQUEST} after its first event "
             f"(CONFORMANCE_CLIENT_ABANDON) and sends it again; that response stalls {STALL_S:g} s, then its "
             "remaining events arrive before the next response's", (IGNORES_ABANDONED,),
             acts={ABANDONED_REQUEST: Act.STALL}, env={ENV_ABANDON: str(ABANDONED_REQUEST)},
             server={"ttft_ms": 1.0}),
    Scenario("lanes", f"the client holds {LANES} conversations at once on one connection, one named lane "
             "each (CONFORMANCE_CLIENT_LANES); played when the client claims lanes",
             (LANE_NAMES, LANE_COUNT, LANES_IN_FLIGHT, LANE_OWN_CHAIN), env={ENV_LANES: str(LANES)},
             server={"ttft_ms": LANE_TTFT_MS}, claim="lanes"),
    Scenario("steering", f"the client steers the response of request {STEERED_REQUEST} {STEERS} times "
             f"(CONFORMANCE_CLIENT_STEER); every first token comes {STEER_TTFT_MS / 1000:g} s late and the steered "
             f"response waits up to {STEER_WAIT_S:g} s for the steers; played when the client claims steering",
             (STEERS_ACTIVE,), acts={STEERED_REQUEST: Act.STEER_HOLD}, env={ENV_STEER: str(STEERS)},
             server={"steering": True, "ttft_ms": STEER_TTFT_MS}, deadline_s=DEFAULT_DEADLINE_S + 3.0,
             claim="steering"),
)

BY_NAME: Mapping[str, Scenario] = MappingProxyType({s.name: s for s in SCENARIOS})


def client_clauses() -> tuple[str, ...]:
    """Every client clause some scenario checks, in a stable order."""
    return tuple(dict.fromkeys(c for s in SCENARIOS for c in s.all_clauses))
