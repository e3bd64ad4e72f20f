"""The second tenant of tenant isolation (docs/spec.md §4.5 item 35a).

Where the suite gets the key of another tenant (``--other-tenant-key`` or
``$CONFORMANCE_OTHER_TENANT_KEY``; the embedded server gets a fixed one of its own), the
embedded server's key list that puts it in a tenant of its own, and redaction of every key the
run holds.  No I/O; plugin.py only calls these.
"""

from __future__ import annotations

import os

import pytest

from conformance.target import redact

ENV = "CONFORMANCE_OTHER_TENANT_KEY"
EMBEDDED_OTHER_KEY = "sk-conformance-other-tenant-0000"  # the embedded server's second tenant
EMBEDDED_OTHER_TENANT = "other-tenant"
# why a tenant-isolation case did not run (its clauses then read UNTESTED with this reason)
NEEDS_KEY = (f"needs --other-tenant-key (or ${ENV}): a key of another tenant of the target, "
             "to test tenant isolation")


def other_tenant_key(option: str | None, first: str, *, embedded: bool, environ=os.environ) -> str:
    """The declared other tenant's key; "" when there is none (isolation then UNTESTED).
    The first key again is a usage error: it would make every isolation check a false FAIL."""
    key = (option or environ.get(ENV, "") or "").strip()
    if key and key == first:
        raise pytest.UsageError("--other-tenant-key: must differ from the API key "
                                "(the key of another tenant)")
    if not key and embedded:
        return EMBEDDED_OTHER_KEY
    return key


def embedded_api_keys(first: str, other: str) -> tuple[str, ...]:
    """The embedded server's ``api_keys``: the first key is its own tenant, the other key
    belongs to a tenant of its own (``KEY:TENANT``, conformance/server/config.py)."""
    return (first, f"{other}:{EMBEDDED_OTHER_TENANT}") if other else (first,)


def redact_keys(text: str, *keys: str) -> str:
    """``text`` with every given key removed (``conformance.target.redact`` for each)."""
    for key in keys:
        if key:
            text = redact(text, key)
    return text
