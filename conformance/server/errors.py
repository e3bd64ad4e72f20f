"""Errors and their envelopes (spec §3.10 for WebSocket, OpenAI's HTTP error body otherwise).

``ApiError`` is raised by the pure parts (validation, state) and rendered by the I/O layer:
on a socket as the ``ResponseWsError`` event ``{type:"error", status, error:{type, code,
message, param}}``, over HTTP as ``{"error": {message, type, param, code}}`` with the status.
"""

from __future__ import annotations

from .defects import Flags

INVALID_REQUEST = "invalid_request_error"


class ApiError(Exception):
    """A request-level failure with its HTTP-equivalent status."""

    __slots__ = ("status", "type", "code", "message", "param", "evicts", "misalignment")

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        param: str | None = None,
        type: str = INVALID_REQUEST,
        evicts: bool = True,
        misalignment: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.code = code
        self.message = message
        self.param = param
        # whether this failure, answering a continuation, evicts the referenced id
        self.evicts = evicts
        self.misalignment = misalignment  # error.misalignment of a safety block (§3.10)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"ApiError({self.status}, {self.code!r}, {self.message!r}, param={self.param!r})"


def bad_request(code: str | None, message: str, param: str | None = None) -> ApiError:
    return ApiError(400, code, message, param)


def previous_not_found(response_id: str, flags: Flags) -> ApiError:
    code = "response_not_found" if flags.renamed_not_found_code else "previous_response_not_found"
    status = 404 if flags.not_found_status_404 else 400
    return ApiError(
        status, code, f"Previous response with id '{response_id}' not found.",
        "previous_response_id", evicts=False,
    )


def connection_limit(phrase: str) -> ApiError:
    return ApiError(
        400,
        "websocket_connection_limit_reached",
        f"Responses websocket connection limit reached ({phrase}). "
        "Create a new websocket connection to continue.",
        None,
        evicts=False,
    )


def misalignment_blocked(trigger: str) -> ApiError:
    """The safety block of §3.10 (update 2026-11-30): 403, invalid_request_error,
    ``misalignment_policy_violation``, with the ``error.misalignment`` object."""
    return ApiError(
        403, "misalignment_policy_violation",
        "This request was blocked by misalignment monitoring (the reference server's "
        f"{trigger} trigger).", None,
        misalignment={
            "error_type": "other",
            "detailed_explanation": f"The {trigger} trigger asked the reference server to block this turn.",
            "steer": {"message": "Do not retry this request automatically."},
        },
    )


def ws_error_event(err: ApiError, flags: Flags, stream_id: str | None = None,
                   omit_param: bool = False, request_scoped: bool = True) -> dict:
    """The WebSocket error event for ``err`` (flat legacy shape under the flat-error-shape
    defect; no ``error.type`` or no request-level ``status`` under error-without-type and
    error-without-status; the field's shapes of §3.10 under error-detail-body,
    error-message-only and error-status-code-instead).  ``request_scoped`` is False for the
    connection's lifetime error."""
    if flags.flat_error_shape:
        event = {"type": "error", "code": err.code, "message": err.message, "param": err.param}
    elif flags.error_detail_body and request_scoped:
        event = {"type": "error", "status": err.status, "detail": err.message}
    elif flags.error_message_only and err.code == "previous_response_not_found":
        # the ChatGPT/Codex backend's stale-anchor error (§3.10): no code, no param
        event = {"type": "error", "status": err.status,
                 "error": {"type": err.type, "message": "Invalid `previous_response_id`."}}
    else:
        payload = {"type": err.type, "code": err.code, "message": err.message}
        if not (omit_param and err.param is None):
            payload["param"] = err.param
        if err.misalignment is not None:
            payload["misalignment"] = err.misalignment
        event = {"type": "error", "status": err.status, "error": payload}
        if flags.error_without_type:
            del payload["type"]
        if flags.error_without_status and request_scoped:
            del event["status"]
        if flags.error_status_code_instead and request_scoped:
            event["status_code"] = event.pop("status")
    if stream_id is not None:
        event["stream_id"] = stream_id
    return event


def http_error_body(err: ApiError) -> dict:
    body = {"message": err.message, "type": err.type, "param": err.param, "code": err.code}
    if err.misalignment is not None:
        body["misalignment"] = err.misalignment
    return {"error": body}
