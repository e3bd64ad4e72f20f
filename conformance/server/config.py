"""Configuration of the reference server and its profiles (spec §5, vendor differences).

``ServerConfig`` is the public seam (docs/interfaces.md).  ``Settings`` is what the running
server reads: the config resolved once against its profile and defects, so that no request
handler has to look anything up by name.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from ..profile_names import SERVER_PROFILES
from .defects import Flags, resolve_flags


class BusyPolicy(enum.StrEnum):
    QUEUE = "queue"
    REJECT = "reject"


class TerminalOutput(enum.StrEnum):
    """What ``response.output`` of a WebSocket terminal event holds (spec §3.6; the SDK fills
    in a missing, null or empty one, §4.3 item 16a)."""
    FULL = "full"
    EMPTY = "empty"      # []
    NULL = "null"        # null (not valid under the schemas)
    MISSING = "missing"  # no "output" key (not valid under the schemas)


DEFAULT_LIFETIME_S = 3600.0
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    lifetime_s: float = DEFAULT_LIFETIME_S
    busy_policy: BusyPolicy = BusyPolicy.QUEUE
    generate_false: bool = True
    # body fields a response.create may not carry at all (P-open); others are tolerated
    rejected_fields: tuple[str, ...] = ()
    store_true_hydrates: bool = True
    lanes: bool = True  # stream_id lanes (P-lanes, §4.4 items 20-23a)
    # every error carries a string code (the Open Responses WebSocketErrorEvent, spec §5.1);
    # OpenAI sends code null for some validation errors
    error_code_required: bool = False


# the facts of each server profile; which profiles exist is conformance/profile_names.py
_DEFINED: tuple[Profile, ...] = (
    Profile(
        "openai",
        "api.openai.com today: queue busy creates, 60-minute lifetime, generate:false warm-up, "
        "stream tolerated, store=true ids hydrate across connections",
    ),
    Profile(
        "xai",
        "like openai without lanes (stream_id is an unsupported parameter), with a 25-minute "
        "connection lifetime",
        lifetime_s=1500.0,
        lanes=False,
    ),
    Profile(
        "open-responses",
        "Open Responses 2026-04-24 WebSocket transport: stream, stream_options, background and "
        "generate are rejected with a 400 error; no lanes; every error has a string code",
        generate_false=False,
        lanes=False,
        rejected_fields=("stream", "stream_options", "background", "generate"),
        error_code_required=True,
    ),
)


def _by_name(names: tuple[str, ...]) -> dict[str, Profile]:
    defined = {profile.name: profile for profile in _DEFINED}
    missing, unlisted = set(names) - set(defined), set(defined) - set(names)
    assert not missing and not unlisted, f"server profiles out of step: {missing or unlisted}"
    return {name: defined[name] for name in names}


PROFILES: dict[str, Profile] = _by_name(SERVER_PROFILES)


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 0
    api_keys: tuple[str, ...] = ()  # empty: any non-empty bearer key is accepted
    profile: str = "openai"
    lifetime_s: float | None = None  # None: the profile's (3600 s; 1500 s for xai)
    test_controls: bool = False
    defects: tuple[str, ...] = ()
    store_path: str | None = None
    zdr: bool = False
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    log_level: str = "WARNING"
    busy_policy: str | None = None  # None: the profile's ("queue" for every built-in profile)
    busy_error_code: str = "response_already_in_flight"
    busy_error_status: int = 409
    # streaming variations the official SDK tolerates (spec §4.3 item 16a; WebSocket only)
    omit_setup_events: bool = False  # no output_item.added / content_part.added / summary part added
    terminal_output: str = "full"  # "full", "empty" ([]), "null" or "missing"
    control_events: bool = False  # ping, codex.rate_limits, response.metadata, codex.keepalive between responses
    # simulated model latency (0 = none): time to first token and streaming rate of deltas
    ttft_ms: float = 0.0
    tokens_per_second: float = 0.0
    lanes: bool | None = None  # None: the profile's (openai yes; xai and open-responses no)
    # processing cost per uncached input token (0 = none): a full-history HTTP turn costs more
    # than a WebSocket continuation whose history is in the connection cache (perf cases)
    per_token_us: float = 0.0
    # response.steer (P-steer, §4.9): model-specific in production, so off unless asked for
    steering: bool = False
    # client mode (conformance.clientmode.stage): sees every upgrade and frame and may answer
    # or reshape them for a scenario; None: the server behaves as usual
    scenario_hook: object | None = None

    def resolve(self) -> "Settings":
        return Settings.from_config(self)


def lifetime_phrase(seconds: float) -> str:
    """'60 minutes', '25 minutes', '1.5 seconds' — the duration named in the limit message."""
    if seconds >= 60 and float(seconds / 60).is_integer():
        minutes = int(seconds // 60)
        return f"{minutes} minute" + ("" if minutes == 1 else "s")
    if float(seconds).is_integer():
        whole = int(seconds)
        return f"{whole} second" + ("" if whole == 1 else "s")
    return f"{seconds:g} seconds"


def _non_negative(value, name: str) -> float:
    try:
        number = float(value or 0)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}") from None
    if not number >= 0 or math.isinf(number):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return number


def parse_api_keys(entries) -> dict[str, str]:
    """``KEY[:TENANT]`` entries -> {key: tenant} (spec §4.5 item 35a); a key without a
    tenant is its own tenant.  A key is everything before the first ``:``."""
    tenants: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, str):
            raise ValueError(f"api key must be a string, got {entry!r}")
        key, colon, tenant = entry.partition(":")
        key, tenant = key.strip(), tenant.strip()
        if not key:
            raise ValueError("api key must not be empty (form KEY or KEY:TENANT)")
        if colon and not tenant:
            raise ValueError("api key has an empty tenant after ':' (form KEY or KEY:TENANT)")
        if key in tenants and tenants[key] != (tenant or key):
            raise ValueError("api key given twice with different tenants")
        tenants[key] = tenant or key
    return tenants


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    api_keys: frozenset[str]
    profile: Profile
    lifetime_s: float
    test_controls: bool
    store_path: str | None
    zdr: bool
    max_frame_bytes: int
    log_level: str
    busy_policy: BusyPolicy
    busy_error_code: str
    busy_error_status: int
    defects: tuple[str, ...]
    flags: Flags = field(default_factory=Flags)
    omit_setup_events: bool = False
    terminal_output: TerminalOutput = TerminalOutput.FULL
    control_events: bool = False
    ttft_s: float = 0.0
    tokens_per_second: float = 0.0
    per_token_s: float = 0.0
    steering: bool = False
    lanes: bool = True
    # key -> tenant (spec §4.5 item 35a): keys of one tenant share stored responses
    tenants: dict = field(default_factory=dict, hash=False)

    def tenant_of(self, key: str) -> str:
        """The owner of what ``key`` stores: its tenant, or the key itself."""
        return self.tenants.get(key, key)

    @property
    def store_true_hydrates(self) -> bool:
        return self.profile.store_true_hydrates and not self.zdr

    @classmethod
    def from_config(cls, config: ServerConfig) -> "Settings":
        if config.profile not in PROFILES:
            raise ValueError(
                f"unknown profile {config.profile!r}; known: {', '.join(sorted(PROFILES))}"
            )
        profile = PROFILES[config.profile]
        flags = resolve_flags(config.defects)
        try:
            lifetime = profile.lifetime_s if config.lifetime_s is None else float(config.lifetime_s)
        except (TypeError, ValueError):
            raise ValueError(f"lifetime must be a positive number of seconds, got {config.lifetime_s!r}") from None
        if not (lifetime > 0) or math.isinf(lifetime) or math.isnan(lifetime):
            raise ValueError(f"lifetime must be a positive number of seconds, got {config.lifetime_s!r}")
        if config.max_frame_bytes <= 0:
            raise ValueError("max_frame_bytes must be positive")
        try:
            terminal_output = TerminalOutput(config.terminal_output or "full")
        except ValueError:
            raise ValueError(f"terminal_output must be one of {', '.join(TerminalOutput)}, "
                             f"got {config.terminal_output!r}") from None
        ttft_s = _non_negative(config.ttft_ms, "ttft_ms") / 1000.0
        tps = _non_negative(config.tokens_per_second, "tokens_per_second")
        per_token_s = _non_negative(config.per_token_us, "per_token_us") / 1e6
        policy = BusyPolicy(config.busy_policy) if config.busy_policy else profile.busy_policy
        if flags.reject_when_busy:
            policy = BusyPolicy.REJECT
        tenants = parse_api_keys(config.api_keys or ())
        return cls(
            tenants=tenants,
            host=config.host,
            port=int(config.port),
            api_keys=frozenset(tenants),
            profile=profile,
            lifetime_s=lifetime,
            test_controls=bool(config.test_controls),
            store_path=config.store_path,
            zdr=bool(config.zdr),
            max_frame_bytes=int(config.max_frame_bytes),
            log_level=str(config.log_level or "WARNING").upper(),
            busy_policy=policy,
            busy_error_code=config.busy_error_code,
            busy_error_status=int(config.busy_error_status),
            defects=tuple(config.defects or ()),
            flags=flags,
            omit_setup_events=bool(config.omit_setup_events),
            terminal_output=terminal_output,
            control_events=bool(config.control_events),
            ttft_s=ttft_s,
            tokens_per_second=tps,
            per_token_s=per_token_s,
            steering=bool(config.steering),
            lanes=profile.lanes if config.lanes is None else bool(config.lanes),
        )
