"""The commands of a run in the --target-config file (conformance/runconfig.py, docs/clients.md
"Config file"): each key of its [client] and [gateway] tables sets its option, the command line
wins, the tables stay out of the profile, and each bad input is one usage error naming the file
and the key."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from conformance import options, runconfig
from conformance.clientmode import ownsuite, scenarios, upstreamplay
from conformance.target import ProfileError, load_profile

ROOT = Path(__file__).resolve().parent.parent
PROFILE = 'name = "acme"\nextends = "reference"\n'


def _file(tmp_path: Path, tables: str, name: str = "acme.toml") -> Path:
    path = tmp_path / name
    path.write_text(PROFILE + tables)
    return path


def _settings(tmp_path: Path, tables: str, **line) -> options.Settings:
    """build_settings with the file and the command-line options ``line`` (pytest's dest names)."""
    given = {"target_config": str(_file(tmp_path, tables)), "no_report": True, "max_output_tokens": 16,
             "preflight_timeout": 10.0, **line}
    config = SimpleNamespace(getoption=lambda name: given.get(name), option=SimpleNamespace(),
                             getini=lambda name: False, rootpath=ROOT)
    return options.build_settings(config)


@pytest.mark.parametrize("tables, read, value", [
    ('[client]\ncommand = "python my_client.py"\n', lambda s: s.client_command, "python my_client.py"),
    ('[client]\ntest_command = "npm test"\n', lambda s: s.client_test_command, "npm test"),
    ('[client]\ntest_command = "npm test"\ntest_scenario = "eviction"\n',
     lambda s: s.client_test_scenario.name, "eviction"),
    ('[client]\ncommand = "python c.py"\nclaims = "steering,lanes"\n', lambda s: s.claimed,
     frozenset({"client_lanes", "client_steering"})),
    ('[gateway]\ncommand = "./my-gateway --port 1"\n', lambda s: s.gateway.command, "./my-gateway --port 1"),
    ('[gateway]\ncommand = "./my-gateway"\nstart_timeout = 45\n', lambda s: s.gateway.start_timeout, 45.0),
    ('[gateway]\ncommand = "./gw"\nupstream_scenario = "large-terminal"\n',
     lambda s: s.gateway.upstream_scenario.name, "large-terminal"),
], ids=["client.command", "client.test_command", "client.test_scenario", "client.claims", "gateway.command",
        "gateway.start_timeout", "gateway.upstream_scenario"])
def test_each_key_sets_its_option(tmp_path, tables, read, value):
    assert read(_settings(tmp_path, tables)) == value


def test_without_the_tables_nothing_changes(tmp_path):
    settings = _settings(tmp_path, "")
    assert (settings.client_command, settings.client_test_command, settings.client_test_scenario,
            settings.gateway) == (None, None, None, None)
    assert not settings.client_mode


def test_a_client_command_in_the_file_switches_to_client_mode(tmp_path):
    settings = _settings(tmp_path, '[client]\ncommand = "python my_client.py"\n')
    assert settings.client_mode and settings.target_url is None
    assert {clause.side for clause in settings.registry.clauses.values()} == {"client"}


@pytest.mark.parametrize("tables, line, read, value", [
    ('[client]\ncommand = "python file.py"\n', {"client_command": "python line.py"},
     lambda s: s.client_command, "python line.py"),
    ('[client]\ntest_command = "make file"\n', {"client_test_command": "make line"},
     lambda s: s.client_test_command, "make line"),
    ('[client]\ntest_command = "x"\ntest_scenario = "eviction"\n', {"client_test_scenario": "lifetime"},
     lambda s: s.client_test_scenario.name, "lifetime"),
    ('[gateway]\ncommand = "./file-gw"\n', {"gateway_command": "./line-gw"}, lambda s: s.gateway.command,
     "./line-gw"),
    ('[gateway]\ncommand = "./gw"\nstart_timeout = 45\n', {"gateway_start_timeout": 5.0},
     lambda s: s.gateway.start_timeout, 5.0),
    ('[gateway]\ncommand = "./gw"\nupstream_scenario = "large-terminal"\n',
     {"gateway_upstream_scenario": "unknown-events"}, lambda s: s.gateway.upstream_scenario.name, "unknown-events"),
], ids=["client.command", "client.test_command", "client.test_scenario", "gateway.command",
        "gateway.start_timeout", "gateway.upstream_scenario"])
def test_the_command_line_wins_key_by_key(tmp_path, tables, line, read, value):
    assert read(_settings(tmp_path, tables, **line)) == value


def test_the_file_fills_what_the_command_line_leaves_out(tmp_path):
    settings = _settings(tmp_path, '[client]\ntest_command = "make test"\ntest_scenario = "eviction"\n',
                         client_command="python line.py")
    assert (settings.client_command, settings.client_test_command, settings.client_test_scenario.name) \
        == ("python line.py", "make test", "eviction")


def test_the_tables_are_no_part_of_the_profile(tmp_path):
    """They say what runs, not what the server is: the profile, its hash in the fingerprint
    and its capabilities are those of the file without them."""
    bare = load_profile(_file(tmp_path, "", "bare.toml"))
    full = load_profile(_file(tmp_path, '[client]\ncommand = "x"\n[gateway]\ncommand = "y"\nstart_timeout = 3\n'))
    assert full.data == bare.data and full.identity()["profile_sha256"] == bare.identity()["profile_sha256"]
    assert "client" not in full.data and "gateway" not in full.data


@pytest.mark.parametrize("tables, fragment", [
    ('[client]\ncommand = 3\n', "client.command: must be a string, got 3"),
    ('[client]\ntest_command = ["npm", "test"]\n', "client.test_command: must be a string"),
    ('[client]\ntest_command = "x"\ntest_scenario = 2\n', "client.test_scenario: must be a string"),
    ('[gateway]\ncommand = true\n', "gateway.command: must be a string, got True"),
    ('[gateway]\ncommand = "gw"\nstart_timeout = "20"\n', "gateway.start_timeout: must be a number of seconds"),
    ('[gateway]\ncommand = "gw"\nstart_timeout = true\n', "gateway.start_timeout: must be a number of seconds"),
    ('[gateway]\ncommand = "gw"\nstart_timeout = 0\n', "gateway.start_timeout: must be positive"),
    ('client = "python c.py"\n', "client: must be a table, got str"),
    ('gateway = 1\n', "gateway: must be a table, got int"),
    ('[client]\ncomand = "x"\n', "client.comand: unknown key (known here: command, test_command, test_scenario, "
                                 "claims)"),
    ('[gateway]\nstart_timeout_s = 3\n',
     "gateway.start_timeout_s: unknown key (known here: command, start_timeout, upstream_scenario)"),
    ('[gateway]\ncommand = "gw"\nupstream_scenario = 1\n', "gateway.upstream_scenario: must be a string"),
    ('[client]\ncommand = ""\n', "client.command: empty: give the command to run"),
    ('[client]\ntest_command = "   "\n', "client.test_command: empty: give the command to run"),
    ('[gateway]\ncommand = ""\n', "gateway.command: empty: give the command to run"),
    ('[client]\ntest_command = "x"\ntest_scenario = " "\n', "client.test_scenario: empty: give a name"),
    ('[client]\ncommand = "python \'c.py"\n', "client.command: \"python 'c.py\": No closing quotation"),
], ids=lambda value: value if "\n" not in value else None)
def test_bad_input_names_the_file_and_the_key(tmp_path, tables, fragment):
    with pytest.raises(pytest.UsageError) as caught:
        _settings(tmp_path, tables)
    message = str(caught.value)
    assert message.startswith("--target-config: ") and f"acme.toml: {fragment}" in message, message
    assert "\n" not in message


@pytest.mark.parametrize("tables, line, fragment", [
    ('[gateway]\nstart_timeout = 5\n', {}, "gateway.start_timeout in {file} needs --gateway-command"),
    ('[client]\ntest_scenario = "eviction"\n', {},
     "client.test_scenario in {file} needs --client-test-command (or test_command in the [client] table"),
    ('[client]\ntest_command = "x"\ntest_scenario = "nope"\n', {},
     "client.test_scenario in {file} 'nope': no such scenario; choose one of eviction, lifetime"),
    ('[client]\ntest_command = "x"\ntest_scenario = "top-level-error"\n', {},
     "client.test_scenario in {file} 'top-level-error': its client must give up (exit non-zero)"),
    ('[client]\ncommand = "x"\n[gateway]\ncommand = "y"\n', {},
     "gateway.command in {file} judges a gateway; it does not take client.command in {file}"),
    ('[client]\ntest_command = "x"\n', {"gateway_command": "gw"},
     "--gateway-command judges a gateway; it does not take client.test_command in {file}"),
    ('[client]\ncommand = "x"\n', {"target": "ws://127.0.0.1:9/v1/responses"},
     "client.command in {file} judges a client against the reference server; it does not take --target"),
    ('[gateway]\ncommand = "gw"\n', {"api_key": "sk-mine"},
     "gateway.command in {file} generates the key the gateway and its upstream share"),
    ('[gateway]\nupstream_scenario = "large-terminal"\n', {},
     "gateway.upstream_scenario in {file} needs --gateway-command"),
    ('[gateway]\ncommand = "gw"\nupstream_scenario = "lifetime"\n', {},
     "gateway.upstream_scenario in {file} 'lifetime': the upstream closes the socket"),
], ids=["timeout-without-gateway", "scenario-without-tests", "unknown-scenario", "give-up-scenario",
        "client-and-gateway", "line-gateway-file-tests", "client-with-target", "gateway-with-key",
        "upstream-scenario-without-gateway", "upstream-scenario-not-playable"])
def test_a_conflict_names_where_each_value_came_from(tmp_path, tables, line, fragment):
    with pytest.raises(pytest.UsageError) as caught:
        _settings(tmp_path, tables, **line)
    assert fragment.format(file=tmp_path / "acme.toml") in str(caught.value), str(caught.value)


def test_an_unknown_scenario_on_the_command_line_lists_the_scenarios(tmp_path):
    with pytest.raises(pytest.UsageError) as caught:
        _settings(tmp_path, "", client_test_command="npm test", client_test_scenario="evicton")
    message = str(caught.value)
    assert message.startswith("--client-test-scenario 'evicton': no such scenario; choose one of ")
    assert message.endswith(", ".join(ownsuite.SCENARIOS))
    assert "tool-loop" not in ownsuite.SCENARIOS and "top-level-error" not in ownsuite.SCENARIOS


@pytest.mark.parametrize("name, why", [
    ("idle-close", "the upstream closes the socket; a relay passes the close on"),
    ("response-failed", "which a correct gateway passes on"),
    ("tool-loop", "it is the upstream behaving normally: leave the option out"),
    ("abandoned", "the server cases follow no client contract"),
    ("lage-terminal", "no such scenario"),
])
def test_an_upstream_scenario_a_gateway_cannot_absorb_is_refused_with_the_playable_ones(tmp_path, name, why):
    with pytest.raises(pytest.UsageError) as caught:
        _settings(tmp_path, "", gateway_command="gw", gateway_upstream_scenario=name)
    message = str(caught.value)
    assert message.startswith(f"--gateway-upstream-scenario {name!r}: ") and why in message, message
    assert all(f"{playable} (" in message for playable in upstreamplay.PLAYABLE), message


def test_every_scenario_is_playable_upstream_or_says_why_not():
    assert set(upstreamplay.PLAYABLE) | set(upstreamplay.REFUSED) == set(scenarios.BY_NAME)
    assert not set(upstreamplay.PLAYABLE) & set(upstreamplay.REFUSED)
    assert {"unknown-events", "large-terminal", "slow-first-token"} <= set(upstreamplay.PLAYABLE)


def test_every_key_names_a_declared_option():
    """Each key maps to an option the plugin declares, under its flag."""
    declared = {}

    class Group:
        def addoption(self, flag, **kwargs):
            declared[kwargs.get("dest") or flag.lstrip("-").replace("-", "_")] = flag

    options.add_options(Group())
    for table in runconfig.KEYS.values():
        for key in table.values():
            assert declared[key.dest] == key.flag


def test_a_run_stops_at_a_bad_key_with_one_line(pytester: pytest.Pytester):
    pytester.mkdir("cases")
    cfg = pytester.path / "acme.toml"
    cfg.write_text(PROFILE + '[client]\ncommand = ""\n')
    result = pytester.runpytest("-p", "no:cacheprovider", "--no-report", "--target-config", str(cfg), "cases")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "acme.toml: client.command: empty" in err and "Traceback" not in err


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ProfileError, match="nowhere.toml: file not found"):
        runconfig.load(tmp_path / "nowhere.toml")


def test_claims_in_the_file_are_checked_like_the_option(tmp_path):
    """A bad claim, or a claim without a client command, names the file's key."""
    with pytest.raises(pytest.UsageError, match=r"client.claims in .*acme.toml: unknown claim\(s\) 'teleport'"):
        _settings(tmp_path, '[client]\ncommand = "python c.py"\nclaims = "teleport"\n')
    with pytest.raises(pytest.UsageError, match="give --client-command too"):
        _settings(tmp_path, '[client]\ntest_command = "npm test"\nclaims = "lanes"\n')
    assert _settings(tmp_path, '[client]\ncommand = "python c.py"\nclaims = "lanes"\n',
                     client_claims="steering").client_claims == ("steering",)     # the command line wins


@pytest.mark.parametrize("name, claim", [("lanes", "lanes"), ("steering", "steering")])
def test_own_tests_are_not_played_a_claimed_scenario(name, claim):
    """Lanes and steering are played only for a --client-command that claims them."""
    assert name not in ownsuite.SCENARIOS
    with pytest.raises(pytest.UsageError, match=f"only for --client-command with --client-claims {claim}"):
        options._validate_client_test_scenario(name, "--client-test-scenario", "npm test")
