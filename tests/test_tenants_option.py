"""The other tenant's key (conformance/tenants.py, spec §4.5 item 35a): where it comes from,
the embedded server's key list, and redaction of both keys."""

from __future__ import annotations

import pytest

from conformance import tenants as TN
from conformance.server.config import parse_api_keys


def test_option_then_environment_then_embedded_default():
    env = {TN.ENV: "sk-env-other-1234567890"}
    assert TN.other_tenant_key("sk-opt-other", "sk-first", embedded=False, environ=env) == "sk-opt-other"
    assert TN.other_tenant_key(None, "sk-first", embedded=False, environ=env) == "sk-env-other-1234567890"
    assert TN.other_tenant_key(None, "sk-first", embedded=False, environ={}) == ""
    assert TN.other_tenant_key(None, "sk-first", embedded=True, environ={}) == TN.EMBEDDED_OTHER_KEY


def test_the_first_key_again_is_a_usage_error():
    with pytest.raises(pytest.UsageError, match="must differ"):
        TN.other_tenant_key("sk-same", "sk-same", embedded=False, environ={})


def test_embedded_keys_put_the_other_key_in_another_tenant():
    tenants = parse_api_keys(TN.embedded_api_keys("sk-first", "sk-second"))
    assert tenants["sk-first"] != tenants["sk-second"]
    assert TN.embedded_api_keys("sk-first", "") == ("sk-first",)


def test_both_keys_are_redacted():
    first, other = "sk-first-SENTINEL-aaaaaaaa", "sk-other-SENTINEL-bbbbbbbb"
    out = TN.redact_keys(f"Bearer {first} then Bearer {other}", first, other, "")
    assert first not in out and other not in out
