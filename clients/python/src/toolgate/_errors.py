"""The exceptions a tool call can end in."""

from __future__ import annotations

from typing import Any, Mapping, Optional


class ToolgateError(Exception):
    """The gateway refused the request itself (an RFC 9457 problem), or could not be reached.

    ``status`` is the HTTP status (0 when there was no answer); ``code`` the
    problem's stable code; ``field`` the request field that is wrong, if one is.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: Optional[str] = None,
        field: Optional[str] = None,
        problem: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field
        self.problem: Mapping[str, Any] = problem or {}


class PermissionDenied(Exception):
    """The policy (or a kill switch, a budget) denied the call; the tool did not run."""

    def __init__(self, reason: str, rule: Optional[str] = None, call_id: Optional[str] = None) -> None:
        super().__init__(reason if rule is None else f"{reason} ({rule})")
        self.reason = reason
        self.rule = rule
        self.call_id = call_id


class ApprovalPending(Exception):
    """The call waits for human approval; the tool did not run.

    ``approval`` holds ``id``, ``args_digest``, ``group``, ``count`` and
    ``expires_at`` as the gateway returned them. Wait with
    :meth:`Toolgate.wait_for_approval`, then run it with :meth:`Toolgate.execute_approved`.
    """

    def __init__(self, call_id: str, approval: Mapping[str, Any], tenant: str = "", reason: str = "") -> None:
        super().__init__(f"call `{call_id}` waits for approval: {reason}".rstrip(": "))
        self.call_id = call_id
        self.approval = dict(approval)
        self.tenant = tenant
        self.reason = reason


class ApprovalRejected(PermissionDenied):
    """The held call was rejected, expired or cancelled (a kill switch)."""

    def __init__(self, call_id: str, state: str) -> None:
        super().__init__(f"call `{call_id}` was {state}", None, call_id)
        self.state = state


class ApprovalTimeout(TimeoutError):
    """The held call is still pending after the timeout."""

    def __init__(self, call_id: str, timeout: float) -> None:
        super().__init__(f"call `{call_id}` is still pending after {timeout:g}s")
        self.call_id = call_id
