"""Self-tests of conformance/target.py: URL derivation, profiles, secrecy of the key."""

from __future__ import annotations

import pytest

from conformance.target import (PROFILES_DIR, ProfileError, Target, TargetError, builtin_profiles,
                                derive_urls, load_profile, redact)

KEY = "sk-proj-VERYSECRET-abcdefghijklmnop"


@pytest.mark.parametrize("given, ws, base", [
    ("wss://api.openai.com/v1/responses", "wss://api.openai.com/v1/responses", "https://api.openai.com/v1"),
    ("https://api.openai.com/v1", "wss://api.openai.com/v1/responses", "https://api.openai.com/v1"),
    ("https://api.openai.com/v1/", "wss://api.openai.com/v1/responses", "https://api.openai.com/v1"),
    ("http://127.0.0.1:8000/v1", "ws://127.0.0.1:8000/v1/responses", "http://127.0.0.1:8000/v1"),
    ("https://r.openai.azure.com/openai/v1?api-version=preview",
     "wss://r.openai.azure.com/openai/v1/responses?api-version=preview", "https://r.openai.azure.com/openai/v1"),
    ("wss://api.phaseo.app/v1/responses/ws", "wss://api.phaseo.app/v1/responses/ws", None),
])
def test_derive_urls(given, ws, base):
    got_ws, got_base, http_same = derive_urls(given)
    assert (got_ws, got_base) == (ws, base)
    assert http_same.split("://", 1)[1] == ws.split("://", 1)[1]


@pytest.mark.parametrize("bad", ["api.openai.com/v1", "ftp://x/v1", "wss://", "https://h/v1#frag", ""])
def test_bad_target_urls(bad):
    with pytest.raises(TargetError):
        derive_urls(bad)


def test_every_builtin_profile_loads():
    names = builtin_profiles()
    assert {"openai", "openai-2026-02", "xai", "open-responses", "reference"} <= set(names)
    for name in names:
        p = load_profile(name)
        assert p.name == name and p.description
        assert p.lifetime_seconds > 0
        assert p.default_model


def test_the_profile_list_names_the_profile_files():
    """conformance/profile_names.py is the one list of built-in profiles: it names exactly the
    TOML files (each file's `name` its own), the server plays each with a profile it has, and
    the --profile help is built from it."""
    from conformance.plugin import pytest_addoption
    from conformance.profile_names import BUILTIN_PROFILES, SERVER_PROFILES
    from conformance.server.config import PROFILES as SERVER_BEHAVIOURS

    files = {path.stem for path in PROFILES_DIR.glob("*.toml")}
    assert files == set(BUILTIN_PROFILES)
    assert all(load_profile(name).name == name for name in files)
    assert list(SERVER_BEHAVIOURS) == list(SERVER_PROFILES)
    assert set(BUILTIN_PROFILES.values()) == set(SERVER_PROFILES)
    help_texts = []

    class Recorder:  # stands in for pytest's parser and its groups
        def __getattr__(self, name):
            return self.call

        def call(self, *names, **kwargs):
            if "--profile" in names:
                help_texts.append(kwargs["help"])
            return self

    pytest_addoption(Recorder())
    assert help_texts and all(name in help_texts[0] for name in BUILTIN_PROFILES)


def test_profile_facts_and_capabilities():
    openai, launch, xai, open_, ref = (load_profile(n) for n in
                                       ("openai", "openai-2026-02", "xai", "open-responses", "reference"))
    assert "lanes" in openai.capabilities() and "lanes" not in launch.capabilities()
    assert "steering" not in launch.capabilities()
    assert xai.lifetime_seconds == 1500 and "generate_false" in xai.capabilities()
    assert "lanes" not in xai.capabilities()
    assert "generate_false" not in open_.capabilities()
    assert "stream_field_tolerated" not in open_.capabilities()
    assert not {"busy_policy_queue", "busy_policy_reject"} & open_.capabilities()
    assert open_.spec_profiles == {"P-open"}
    assert "test_controls" in ref.capabilities() and "test_controls" not in openai.capabilities()
    assert {"busy_policy_queue", "store_true_hydrates", "stream_field_tolerated"} <= openai.capabilities()
    # cache depth (§5 table): latest only for OpenAI (both eras), xAI and the reference server
    assert all("cache_latest_only" in p.capabilities() for p in (openai, launch, xai, ref))
    assert "cache_latest_only" not in open_.capabilities()


def test_frame_limit_facts():
    from conformance.server.config import DEFAULT_MAX_FRAME_BYTES

    assert load_profile("openai").max_frame_bytes == 0          # not documented: unknown
    # the reference profile states what the embedded server enforces
    assert load_profile("reference").max_frame_bytes == DEFAULT_MAX_FRAME_BYTES


def test_zdr_removes_hydration(tmp_path):
    f = tmp_path / "zdr.toml"
    f.write_text('name = "acme-zdr"\nextends = "openai"\n[cache]\nzdr = true\n')
    caps = load_profile(f).capabilities()
    assert "zdr" in caps and "store_true_hydrates" not in caps
    assert "lanes" in caps   # inherited


@pytest.mark.parametrize("text, key", [
    ('name = "x"\n[features]\nlanes = "yes"\n', "features.lanes"),
    ('name = "x"\n[features]\nlanez = true\n', "features.lanez"),
    ('name = "x"\n[concurrency]\nbusy_policy = "drop"\n', "concurrency.busy_policy"),
    ('name = "x"\n[connection]\nlifetime_seconds = -1\n', "connection.lifetime_seconds"),
    ('name = "x"\nextends = "nonesuch"\n', "extends"),
    ('name = "x"\nspec_profiles = ["P-weird"]\n', "spec_profiles"),
    ('[features]\nlanes = true\n', "name"),
    ('name = "x"\ncache = 3\n', "cache"),
    ('name = "x"\n[stream]\nsetup_events = "sometimes"\n', "stream.setup_events"),
])
def test_bad_profile_names_file_and_key(tmp_path, text, key):
    f = tmp_path / "vendor.toml"
    f.write_text(text)
    with pytest.raises(ProfileError) as info:
        load_profile(f)
    assert str(f) in str(info.value) and key in str(info.value)


def test_unparsable_and_missing_profile(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text("name = \n")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(f)
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "absent.toml")
    with pytest.raises(ProfileError, match="built-in"):
        load_profile("no-such-profile")


def test_key_kept_secret():
    t = Target(ws_url="wss://api.example/v1/responses", http_base_url=None, profile=load_profile("openai"),
               model="m", api_key=KEY)
    assert KEY not in repr(t) and KEY not in str(t) and KEY not in str(t.fingerprint())
    assert t.auth_headers() == {"Authorization": f"Bearer {KEY}"}
    assert KEY not in t.redact(f"Incorrect API key provided: {KEY}")
    assert KEY[:16] not in t.redact(f"key {KEY[:16]}...")   # truncated echo
    gw = Target(ws_url="wss://gw/v1/responses", http_base_url=None, profile=load_profile("openai"),
                model="m", api_key=KEY, auth_header="api-key")
    assert gw.auth_headers() == {"api-key": KEY}
    assert redact("nothing here", KEY) == "nothing here"


def test_http_url_keeps_query():
    ws, base, _ = derive_urls("https://r.example/openai/v1?api-version=2")
    t = Target(ws_url=ws, http_base_url=base, profile=load_profile("openai"), model="m")
    assert t.http_url("/responses/compact") == "https://r.example/openai/v1/responses/compact?api-version=2"


def test_short_key_redacted_only_where_it_stands_alone():
    from conformance.target import redact
    text = 'Authorization: Bearer k; max_output_tokens=16; {"key": "k"}'
    out = redact(text, "k")
    assert "max_output_tokens" in out and "Bearer <redacted-key>" in out and '"<redacted-key>"' in out
    long_key = "sk-conformance-0123456789abcdef"
    assert long_key not in redact(f"tokens {long_key}tail", long_key)


def test_partial_key_echoes_hidden_but_ids_kept():
    """A truncated echo of the key is hidden; an id that merely ends like the key is not
    rewritten (the harness continues from it)."""
    from conformance.target import redact
    key = "sk-test-key-0000000000"
    echo = "Incorrect API key provided: sk-test-key-00...0000000000. Find your key."
    out = redact(echo, key)
    assert "sk-test-key-00" not in out and "...0000000000" not in out
    ids = '{"id": "resp_7f3a0000000000", "previous_response_id": "resp_ab0000000000"}'
    assert redact(ids, key) == ids
    assert redact(f"key={key}", key) == "key=<redacted-key>"


@pytest.mark.parametrize("name, value", [("openai", "optional"), ("openai-2026-02", "optional"), ("xai", "optional"),
                                         ("open-responses", "required"), ("reference", "required")])
def test_stream_leniencies(name, value):
    """§4.3 item 16a: [stream] keys, handed to the monitor as they are; §4.3 item 15a: a P-open
    claim forbids frames after the terminal event."""
    p = load_profile(name)
    after = "forbidden" if name == "open-responses" else "discouraged"
    assert p.monitor_options() == {"setup_events": value, "terminal_output": value, "after_terminal": after}
    from conformance.monitor import StreamMonitor
    assert StreamMonitor(False, **p.monitor_options()).lenient.setup_events is (value == "optional")


def test_fingerprint_names_no_local_directory(tmp_path):
    """A published certificate carries no path of the machine that ran it."""
    vendor = tmp_path / "acme.toml"
    vendor.write_text('name = "acme"\nextends = "openai"\n')
    from conformance.target import _portable_source, load_profile
    assert _portable_source(load_profile("openai").source) == "built-in:openai"
    assert _portable_source(load_profile(vendor).source) == "acme.toml"
    assert str(tmp_path) not in _portable_source(load_profile(vendor).source)
