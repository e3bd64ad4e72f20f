"""What is being tested: URL, auth, profile facts, limits and capabilities.

Implements the "Profiles and targets" part of ``docs/design.md`` and the
"Profiles / conformance/target.py" seam of ``docs/interfaces.md``; URL forms follow
``docs/spec.md`` §1.1 (SDK derivation: https→wss, http→ws, append ``/responses``,
keep the query) and auth §1.2 (``Authorization: Bearer <key>``).

A profile is TOML data (``conformance/profiles/*.toml`` or a vendor's ``--target-config``
file, which may ``extends = "<built-in name>"``; the built-in names are
``conformance/profile_names.py``). Cases read facts only through ``Target``, one way: a
capability with ``target.has(name)`` (or a ``requires`` mark), any other fact as an attribute
of ``target.profile`` (``target.profile.max_active``), never by dotted key
(tests/test_profile_keys.py). They never look at the URL to decide what a server supports.

The API key is a secret: it is kept out of ``repr``/``str`` of every object here and
``Target.redact(text)`` removes it from any text before it is shown or written.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from conformance.files import read_document
from conformance.profile_names import BUILTIN_PROFILES
from conformance.runcontext import RunContext

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"

REDACTED = "<redacted-key>"

# The schema of a profile: every table and key with its default (the openai profile's
# values, as docs/interfaces.md says) and, for strings with a closed set, the allowed values.
_DEFAULTS: dict[str, Any] = {
    "name": "",
    "description": "",
    "extends": "",
    # spec profiles (§4.0) the target claims; a clause whose `profiles` list shares none of
    # them does not apply (UNSUPPORTED)
    "spec_profiles": ["P-legacy", "P-lanes"],
    "target": {
        "default_model": "gpt-5.6",
        "auth_header": "Authorization",
        "keys_checked": True,
        # §4.5 item 35a: keys of more than one tenant (capability multi_tenant): tenant
        # isolation applies, and is judged with --other-tenant-key
        "multi_tenant": True,
    },
    "connection": {
        "lifetime_seconds": 3600.0,
        "limit_error_code": "websocket_connection_limit_reached",
        "max_frame_bytes": 0,
    },
    "concurrency": {
        "busy_policy": "queue",
        "busy_error_code": "",
        "max_active": 16,
        "max_named_lanes": 32,
    },
    "features": {
        "generate_false": True,
        "stream_field": "tolerated",
        "background_rejected": True,
        "compact_endpoint": True,
        "context_management": True,
        "http_endpoint": True,
        "lanes": False,
        "lanes_concurrent": False,
        "steering": False,
        "test_controls": False,
        "reference_engine": False,
    },
    "cache": {
        "store_true_hydrates": True,
        "zdr": False,
        "latest_only": False,
    },
    "errors": {
        "not_found_status": 400,
        # §4.10 item 51a: how a refused continuation may arrive: "error" (the error event of
        # §3.10) or "error_or_failed" (also response.failed with response.error.code)
        "not_found_as": "error",
        # the error.type names an invalid request may carry (§3.10; the Open Responses error
        # table names invalid_request)
        "invalid_request_types": ["invalid_request_error"],
    },
    # conformance/deadlines.py: idle deadlines of a turn (0 = the default: 60 s, --turn-timeout
    # wins) and, shorter, once its output is done (docs/nightly.md, "Deadlines")
    "deadlines": {
        "turn_timeout": 0.0,
        "idle_after_done": 10.0,
    },
    # §4.3 item 16a: what the monitor lets a stream leave out ("optional": INFO, not FAIL)
    "stream": {
        "setup_events": "optional",
        "terminal_output": "optional",
    },
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "concurrency.busy_policy": ("queue", "reject", "either"),
    "features.stream_field": ("tolerated", "rejected", "unspecified"),
    "errors.not_found_as": ("error", "error_or_failed"),
    "stream.setup_events": ("required", "optional"),
    "stream.terminal_output": ("required", "optional"),
}
_SPEC_PROFILES = ("P-legacy", "P-lanes", "P-steer", "P-open")
# tables of a --target-config file that say what to run, not what the server is: no part of the
# profile (or its hash); conformance.runconfig reads them
RUN_TABLES = ("client", "gateway")


class ProfileError(ValueError):
    """A profile file is unusable; the message names the file and the key."""

    def __init__(self, source: str, key: str, message: str):
        self.source, self.key = source, key
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")


class TargetError(ValueError):
    """A --target URL (or another target option) is unusable."""


def _portable_source(source: str) -> str:
    """Where a profile came from, without the local directory: a certificate gets published,
    and a path of the machine that ran it means nothing elsewhere (the profile's hash does)."""
    path = Path(source)
    if path.parent == PROFILES_DIR:
        return f"built-in:{path.stem}"
    return path.name if path.suffix == ".toml" else source


def builtin_profiles() -> list[str]:
    """The built-in profile names (conformance/profile_names.py; each has a file here)."""
    return sorted(BUILTIN_PROFILES)


def _deep_merge(base: dict, over: Mapping) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check(data: Mapping, schema: Mapping, source: str, prefix: str = "") -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise ProfileError(source, dotted, f"unknown key (known here: {known})")
        want = schema[key]
        if isinstance(want, dict):
            if not isinstance(value, Mapping):
                raise ProfileError(source, dotted, f"must be a table, got {type(value).__name__}")
            _check(value, want, source, dotted + ".")
        elif isinstance(want, bool):
            if not isinstance(value, bool):
                raise ProfileError(source, dotted, f"must be true or false, got {value!r}")
        elif isinstance(want, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ProfileError(source, dotted, f"must be a number, got {value!r}")
            if value < 0:
                raise ProfileError(source, dotted, f"must not be negative, got {value!r}")
        elif isinstance(want, str):
            if not isinstance(value, str):
                raise ProfileError(source, dotted, f"must be a string, got {value!r}")
            choices = _CHOICES.get(dotted)
            if choices and value not in choices:
                raise ProfileError(source, dotted, f"must be one of {', '.join(choices)}; got {value!r}")
        elif isinstance(want, list):
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise ProfileError(source, dotted, f"must be a list of strings, got {value!r}")
            if dotted == "spec_profiles":
                bad = [x for x in value if x not in _SPEC_PROFILES]
                if bad:
                    raise ProfileError(source, dotted, f"unknown spec profile(s) {bad}; known: {', '.join(_SPEC_PROFILES)}")


@dataclass(frozen=True)
class Profile:
    """Facts about a family of servers. ``data`` is the merged table tree (defaults filled)."""

    name: str
    data: dict = field(repr=False)
    source: str = ""

    def identity(self) -> dict[str, str]:
        """The profile's part of a target fingerprint: name, where it came from (no local
        directory: certificates get published), and a hash of its resolved facts."""
        return {"profile": self.name, "profile_source": _portable_source(self.source),
                "profile_sha256": hashlib.sha256(json.dumps(self.data, sort_keys=True).encode()).hexdigest()}

    def __getitem__(self, table: str) -> Any:
        return self.data[table]

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    # convenience accessors for the facts cases use most
    description = property(lambda self: self.data["description"])
    spec_profiles = property(lambda self: frozenset(self.data["spec_profiles"]))
    default_model = property(lambda self: self.data["target"]["default_model"])
    lifetime_seconds = property(lambda self: float(self.data["connection"]["lifetime_seconds"]))
    limit_error_code = property(lambda self: self.data["connection"]["limit_error_code"])
    # the largest client frame the target accepts; 0 = unknown (§1.4)
    max_frame_bytes = property(lambda self: int(self.data["connection"]["max_frame_bytes"]))
    busy_policy = property(lambda self: self.data["concurrency"]["busy_policy"])
    busy_error_code = property(lambda self: self.data["concurrency"]["busy_error_code"])
    max_active = property(lambda self: int(self.data["concurrency"]["max_active"]))
    max_named_lanes = property(lambda self: int(self.data["concurrency"]["max_named_lanes"]))
    features = property(lambda self: self.data["features"])
    cache = property(lambda self: self.data["cache"])
    not_found_status = property(lambda self: int(self.data["errors"]["not_found_status"]))
    # §4.10 item 51a: "error" or "error_or_failed" (response.failed with response.error.code too)
    not_found_as = property(lambda self: self.data["errors"]["not_found_as"])
    # §3.10: the error.type names of an invalid request the profile accepts
    invalid_request_types = property(lambda self: tuple(self.data["errors"]["invalid_request_types"]))
    stream = property(lambda self: self.data["stream"])
    # §4.3 item 16a: "required" or "optional"
    setup_events = property(lambda self: self.data["stream"]["setup_events"])
    terminal_output = property(lambda self: self.data["stream"]["terminal_output"])

    def monitor_options(self) -> dict[str, str]:
        """The leniencies of ``StreamMonitor`` (keyword arguments) this profile's ``[stream]`` gives;
        a P-open claim forbids frames after the terminal event outright (§4.3 item 15a)."""
        stream = self.data["stream"]
        return {"setup_events": stream["setup_events"], "terminal_output": stream["terminal_output"],
                "after_terminal": "forbidden" if "P-open" in self.spec_profiles else "discouraged"}

    def capabilities(self) -> frozenset[str]:
        """Capability names as docs/interfaces.md defines them (used by clause ``requires``)."""
        features, cache = self.data["features"], self.data["cache"]
        caps = {name for name in ("background_rejected", "compact_endpoint", "context_management",
                                  "generate_false", "lanes", "lanes_concurrent", "steering", "test_controls",
                                  "http_endpoint", "reference_engine") if features[name]}
        if self.busy_policy == "queue":
            caps.add("busy_policy_queue")
        elif self.busy_policy == "reject":
            caps.add("busy_policy_reject")
        if features["stream_field"] == "tolerated":
            caps.add("stream_field_tolerated")
        for fact in ("keys_checked", "multi_tenant"):
            if self.data["target"][fact]:
                caps.add(fact)
        if cache["latest_only"]:
            caps.add("cache_latest_only")
        if cache["zdr"]:
            caps.add("zdr")
        elif cache["store_true_hydrates"]:
            caps.add("store_true_hydrates")
        if features["http_endpoint"] and not cache["zdr"]:
            caps.add("stored_responses")    # GET/DELETE /responses/{id} have something to act on
        return frozenset(caps)


def _read_toml(path: Path) -> dict:
    # read_document's message starts with the path; ProfileError puts it back in front
    return read_document(path, "TOML", lambda msg: ProfileError(str(path), "", msg[len(str(path)) + 2:]))


def _resolve(raw: dict, source: str, seen: tuple[str, ...]) -> dict:
    _check(raw, _DEFAULTS, source)
    parent = raw.get("extends", "")
    if parent:
        if parent in seen:
            raise ProfileError(source, "extends", f"circular extends chain {' -> '.join(seen + (parent,))}")
        ppath = PROFILES_DIR / f"{parent}.toml"
        if not ppath.is_file():
            raise ProfileError(source, "extends", f"no built-in profile {parent!r} (built-in: {', '.join(builtin_profiles())})")
        base = _resolve(_read_toml(ppath), str(ppath), seen + (parent,))
    else:
        base = copy.deepcopy(_DEFAULTS)
    merged = _deep_merge(base, raw)
    # keep the nearest built-in ancestor's name (the embedded server maps it to its profile)
    merged["extends"] = parent or ""
    return merged


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a built-in profile by name, or a TOML file by path. Raises ``ProfileError``."""
    text = str(name_or_path)
    path = Path(text)
    if not (path.suffix == ".toml" or path.exists() or "/" in text):
        path = PROFILES_DIR / f"{text}.toml"
        if not path.is_file():
            raise ProfileError(f"--profile {text}", "", f"no such built-in profile (built-in: {', '.join(builtin_profiles())})")
    raw = {key: value for key, value in _read_toml(path).items() if key not in RUN_TABLES}
    if not raw.get("name"):
        raise ProfileError(str(path), "name", "missing (every profile needs a name)")
    data = _resolve(raw, str(path), (raw["name"],))
    return Profile(name=data["name"], data=data, source=str(path))


def profile_from_table(raw: Mapping, source: str = "<profile table>") -> Profile:
    """A profile from a table already in memory (checked like a file; ``extends`` works, and
    missing keys take the defaults). Raises ``ProfileError``."""
    data = _resolve(copy.deepcopy(dict(raw)), source, (str(raw.get("name", "")),))
    return Profile(name=data["name"], data=data, source=source)


def derive_urls(target: str) -> tuple[str, str | None, str]:
    """``--target`` → (ws_url, http_base_url, http_responses_url).

    A ws/wss URL is the socket URL itself. An http/https URL is an API base URL, from which
    the socket URL is derived the way the official SDKs do (§1.1): scheme https→wss,
    http→ws, ``/responses`` appended to the path, query kept. ``http_base_url`` is the HTTP
    API base (``…/v1``), None when the socket path does not end in ``/responses``;
    ``http_responses_url`` is the socket path over HTTP (for the same-path check).
    """
    parts = urlsplit(target.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss", "http", "https") or not parts.netloc:
        raise TargetError(
            f"--target {target!r}: expected a ws:// or wss:// endpoint URL "
            "(e.g. wss://api.openai.com/v1/responses) or an http(s) API base URL "
            "(e.g. https://api.openai.com/v1)")
    if parts.fragment:
        raise TargetError(f"--target {target!r}: a URL fragment (#...) is not allowed")
    _check_authority(target, parts)
    if scheme in ("http", "https"):
        ws_scheme = "wss" if scheme == "https" else "ws"
        path = parts.path.rstrip("/") + "/responses"
        ws_url = urlunsplit((ws_scheme, parts.netloc, path, parts.query, ""))
    else:
        ws_scheme, path = scheme, parts.path or "/"
        ws_url = urlunsplit((scheme, parts.netloc, path, parts.query, ""))
    http_scheme = "https" if ws_scheme == "wss" else "http"
    http_responses_url = urlunsplit((http_scheme, parts.netloc, path, parts.query, ""))
    http_base_url = None
    if path.rstrip("/").endswith("/responses"):
        base_path = path.rstrip("/")[: -len("/responses")]
        http_base_url = urlunsplit((http_scheme, parts.netloc, base_path, "", ""))
    return ws_url, http_base_url, http_responses_url


def _check_authority(target: str, parts: Any) -> None:
    """Host and port of a --target URL: a usage error before anything runs, not 90 ERROR cases."""
    if any(ch.isspace() or ord(ch) < 32 for ch in target.strip()):
        raise TargetError(f"--target {target!r}: a URL has no spaces or control characters (percent-encode them)")
    try:
        port = parts.port
    except ValueError:
        port_text = parts.netloc.rsplit("@", 1)[-1].rpartition(":")[2]
        raise TargetError(f"--target {target!r}: port {port_text!r} is not a number from 1 to 65535") from None
    if port == 0:
        raise TargetError(f"--target {target!r}: port 0 is not a port a server listens on")
    if not parts.hostname:
        raise TargetError(f"--target {target!r}: no host name (e.g. wss://api.openai.com/v1/responses)")


@dataclass(eq=False)
class Target:
    """The endpoint under test. The key is never part of ``repr``/``str``."""

    ws_url: str
    http_base_url: str | None
    profile: Profile
    model: str
    api_key: str = field(default="", repr=False)
    auth_header: str = "Authorization"
    http_responses_url: str | None = None
    max_output_tokens: int = 16
    turn_timeout: float = 60.0      # idle deadline of a turn: seconds since its last frame
    turn_cap: float = 0.0           # overall cap of one turn (0: five idle deadlines)
    idle_after_done: float = 0.0    # idle deadline once the output is done (0: turn_timeout; deadlines.py)
    strict: bool = False
    run_slow: bool = False
    is_embedded: bool = False
    capabilities: frozenset = field(default=frozenset())
    # the run's budget, liveness and usage meter every request to this target answers to
    run: RunContext = field(default_factory=RunContext, repr=False)

    def __post_init__(self) -> None:
        if not self.capabilities:
            self.capabilities = self.profile.capabilities()
        if self.http_responses_url is None:
            self.http_responses_url = derive_urls(self.ws_url)[2]

    # --- auth ------------------------------------------------------------------------
    @property
    def auth_value(self) -> str:
        """The auth header's value: ``Bearer <key>`` for Authorization, the bare key otherwise."""
        if not self.api_key:
            return ""
        if self.auth_header.lower() == "authorization":
            return f"Bearer {self.api_key}"
        return self.api_key

    def auth_headers(self) -> dict[str, str]:
        return {self.auth_header: self.auth_value} if self.api_key else {}

    def redact(self, text: str) -> str:
        """Remove the key (and the whole auth header value) from ``text``."""
        if not text or not self.api_key:
            return text
        return redact(text, self.api_key)

    # --- facts -----------------------------------------------------------------------
    def http_url(self, suffix: str = "/responses") -> str | None:
        """An HTTP URL under the API base (e.g. ``/responses/compact``), keeping the target's
        query (e.g. Azure's ``api-version``); None when the base is unknown."""
        if self.http_base_url is None:
            return None
        query = urlsplit(self.ws_url).query
        return self.http_base_url.rstrip("/") + suffix + (f"?{query}" if query else "")

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    @property
    def host(self) -> str:
        return urlsplit(self.ws_url).hostname or ""

    def fingerprint(self) -> dict[str, Any]:
        parts = urlsplit(self.ws_url)
        return {
            "ws_host": parts.netloc.rsplit("@", 1)[-1],
            "ws_path": parts.path,
            **self.profile.identity(),
            "model": self.model,
            "embedded": self.is_embedded,
            "auth_header": self.auth_header,
            "capabilities": sorted(self.capabilities),
        }

    def __repr__(self) -> str:
        return (f"Target(ws_url={self.ws_url!r}, profile={self.profile.name!r}, model={self.model!r}, "
                f"auth_header={self.auth_header!r}, api_key={'<set>' if self.api_key else '<none>'}, "
                f"embedded={self.is_embedded})")

    __str__ = __repr__


SHORT_KEY = 8


def redact(text: str, secret: str) -> str:
    """Replace every occurrence of ``secret`` (and of obvious partial echoes) in ``text``."""
    if not secret or not text:
        return text
    if len(secret) < SHORT_KEY:
        # a toy key ("k", "test") is no secret worth mangling every word for: hide it where it
        # stands alone, as a header value or a quoted string would show it
        return _echo_patterns(secret)[0].sub(REDACTED, text)
    out = text.replace(secret, REDACTED)
    # servers sometimes echo a truncated key ("Incorrect API key provided: sk-abc...xyz"):
    # hide long prefixes and suffixes of it as well, where they begin a token (a prefix) or
    # follow punctuation such as "..." or "***" (a suffix). Inside a token they are left
    # alone: a key ending in "0000000000" must not rewrite the response ids that end so too
    # (the harness chains turns with them).
    for pattern in _echo_patterns(secret):
        out = pattern.sub(REDACTED, out)
    return out


@functools.lru_cache(maxsize=16)
def _echo_patterns(secret: str) -> tuple[re.Pattern, ...]:
    """``redact``'s patterns for one key, compiled once (every frame of a run is redacted)."""
    if len(secret) < SHORT_KEY:
        return (re.compile(rf"(?<![A-Za-z0-9_-]){re.escape(secret)}(?![A-Za-z0-9_-])"),)
    if len(secret) < 12:
        return ()
    return tuple(re.compile(rf"{_NOT_AFTER_TOKEN}(?:{re.escape(secret[:n])}|{re.escape(secret[-n:])})")
                 for n in (len(secret) - 4, 16, 12, 8) if 8 <= n < len(secret))


_NOT_AFTER_TOKEN = r"(?<![A-Za-z0-9_-])"
