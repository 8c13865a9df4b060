"""Toolgate's Python client: ask the gateway (`policyc serve`) before every
tool call, run the tool only when allowed, report the result.

    gate = Toolgate("http://127.0.0.1:8181", key)
    result = gate.call_tool("support-bot", "kb.read", {"q": "refund"},
                            {"tenant": "acme", "env": "prod"}, run=search_kb)
"""

from ._async import AsyncToolgate
from ._client import Toolgate, output_of
from ._errors import (
    ApprovalPending,
    ApprovalRejected,
    ApprovalTimeout,
    PermissionDenied,
    ToolgateError,
)

__all__ = [
    "ApprovalPending",
    "ApprovalRejected",
    "ApprovalTimeout",
    "AsyncToolgate",
    "PermissionDenied",
    "Toolgate",
    "ToolgateError",
    "output_of",
]
