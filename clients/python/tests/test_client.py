"""The client against a real `policyc serve`: the seed's `call_tool` flow end
to end, denial, approval from another process, kill switch mid-run, async."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, Dict, List

import pytest

from toolgate import (
    ApprovalPending,
    ApprovalRejected,
    AsyncToolgate,
    PermissionDenied,
    Toolgate,
    ToolgateError,
)

CTX = {"tenant": "acme", "env": "prod", "account_id": "A1"}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def test_allowed_call_runs_once_with_its_scope_and_its_result_is_journaled(server: Any) -> None:
    gate = Toolgate(server.url, server.service)
    seen: List[Any] = []

    def search(args: Dict[str, Any], scope: Dict[str, Any]) -> str:
        seen.append((args, scope))
        return "3 articles"

    call_id = new_id("read")
    assert gate.call_tool("support-bot", "kb.read", {"q": "refund"}, CTX, run=search, call_id=call_id) == "3 articles"
    assert seen == [({"q": "refund"}, {"tenant": "acme", "env": "prod"})]
    kinds = [r["kind"] for r in server.audit(call=call_id)]
    assert kinds[0] == "decision" and "execution" in kinds, kinds
    assert gate.call_state(call_id, "acme")["state"] == "executed"


def test_the_scope_of_a_scoped_write_reaches_the_tool(server: Any) -> None:
    gate = Toolgate(server.url, server.service)
    scopes: List[Dict[str, Any]] = []
    args = {"account_id": "A1", "ticket_id": "T-1"}
    dev = dict(CTX, env="dev")  # auto-approved in dev, 10 per hour
    gate.call_tool("support-bot", "ticket.close", args, dev, run=lambda a, s: scopes.append(s))
    assert scopes == [{"tenant": "acme", "env": "dev"}]


def test_a_failing_tool_is_reported_and_its_error_raised(server: Any) -> None:
    gate = Toolgate(server.url, server.service)

    def broken(args: Dict[str, Any], scope: Dict[str, Any]) -> None:
        raise RuntimeError("kb is down")

    call_id = new_id("fail")
    with pytest.raises(RuntimeError, match="kb is down"):
        gate.call_tool("support-bot", "kb.read", {}, CTX, run=broken, call_id=call_id)
    assert gate.call_state(call_id, "acme")["state"] == "failed"
    results = [r for r in server.audit(call=call_id) if r["kind"] == "execution"]
    assert "kb is down" in str(results), results


def test_denied_calls_raise_and_never_run(server: Any) -> None:
    gate = Toolgate(server.url, server.service)
    ran: List[Any] = []
    with pytest.raises(PermissionDenied) as denied:
        gate.call_tool("support-bot", "db.write", {}, CTX, run=lambda a, s: ran.append(a))
    assert denied.value.reason == "support agents never touch the database"
    assert denied.value.rule and denied.value.rule.startswith("policies/support-desk.policy:")
    assert ran == []


def test_another_tenant_is_refused_by_the_gateway(server: Any) -> None:
    gate = Toolgate(server.url, server.service)
    with pytest.raises(ToolgateError) as refused:
        gate.call_tool("support-bot", "kb.read", {}, dict(CTX, tenant="globex"), run=lambda a, s: None)
    assert refused.value.status == 403


def test_decide_is_a_pure_decision(server: Any) -> None:
    gate = Toolgate(server.url, server.service)
    one = gate.decide("support-bot", "kb.read", {}, CTX)
    assert one["decision"] == "allow", one
    many = gate.decide_many(
        [
            {"agent": "support-bot", "tool": "db.write", "args": {}, "context": CTX},
            {"agent": "browser", "tool": "search.read", "args": {}, "context": CTX},
        ]
    )
    assert [d["decision"] for d in many] == ["deny", "allow"], many


def test_a_held_call_runs_after_policyc_approves_it_from_another_process(server: Any) -> None:
    gate = Toolgate(server.url, server.service)
    args = {"account_id": "A1", "ticket_id": "T-9"}
    ran: List[Any] = []
    call_id = new_id("held")
    with pytest.raises(ApprovalPending) as held:
        gate.call_tool("support-bot", "ticket.close", args, CTX, run=lambda a, s: ran.append(a), call_id=call_id)
    assert held.value.call_id == call_id
    assert held.value.approval["group"] == "support-leads" and held.value.approval["args_digest"]
    assert ran == []

    shown = server.policyc(server.approver, "approvals", "show", call_id)
    assert held.value.approval["args_digest"] in shown.stdout, shown
    digest = json.loads(server.policyc(server.approver, "approvals", "show", call_id, "--json").stdout)["hold_digest"]
    approved = server.policyc(server.approver, "approvals", "approve", call_id, "--digest", digest[:12], "--reason", "duplicate")
    assert approved.returncode == 0, approved.stderr

    token = gate.wait_for_approval(call_id, timeout=10)
    assert gate.execute_approved(call_id, lambda a, s: ran.append((a, s)) or "closed", token=token) == "closed"
    assert ran == [(args, {"tenant": "acme", "env": "prod"})]
    # The token is single-use.
    with pytest.raises(ToolgateError):
        gate.execute_approved(call_id, lambda a, s: ran.append(a), token=token, args=args, context=CTX)
    assert len(ran) == 1


def test_a_rejected_call_never_runs(server: Any) -> None:
    gate = Toolgate(server.url, server.service)
    call_id = new_id("rej")
    with pytest.raises(ApprovalPending):
        gate.call_tool("support-bot", "ticket.close", {"account_id": "A1", "ticket_id": "T-8"}, CTX, run=lambda a, s: None, call_id=call_id)
    assert server.policyc(server.approver, "approvals", "reject", call_id, "--reason", "no").returncode == 0
    with pytest.raises(ApprovalRejected) as rejected:
        gate.execute_approved(call_id, lambda a, s: None, timeout=10)
    assert rejected.value.state == "rejected"


def test_the_kill_switch_stops_a_running_loop(server: Any) -> None:
    gate = Toolgate(server.url, server.service)
    done: List[int] = []
    stopped: List[str] = []
    dev = dict(CTX, env="dev")  # ticket.close is auto-approved in dev, 10 per hour
    try:
        for i in range(8):
            if i == 3:
                out = server.policyc(server.operator, "kill-switch", "engage", "--tenant", "acme", "--agent", "support-bot", "--reason", "runaway")
                assert out.returncode == 0, out.stderr
            try:
                gate.call_tool("support-bot", "ticket.close", {"account_id": "A1", "ticket_id": f"T-{i}"}, dev, run=lambda a, s: done.append(1))
            except PermissionDenied as e:
                stopped.append(e.reason)
        assert len(done) == 3 and len(stopped) == 5, (done, stopped)
        assert all("kill switch" in r for r in stopped), stopped
        # Reads go on: the switch stops writes unless --all-tools.
        assert gate.call_tool("support-bot", "kb.read", {}, CTX, run=lambda a, s: "ok") == "ok"
    finally:
        server.policyc(server.operator, "kill-switch", "release", "--tenant", "acme", "--agent", "support-bot", "--reason", "over")


def test_the_async_client_has_the_same_flow(server: Any) -> None:
    gate = AsyncToolgate(server.url, server.service)

    async def fetch(args: Dict[str, Any], scope: Dict[str, Any]) -> str:
        await asyncio.sleep(0)
        return "fetched"

    async def main() -> None:
        assert await gate.call_tool("support-bot", "kb.read", {}, CTX, run=fetch) == "fetched"
        with pytest.raises(PermissionDenied):
            await gate.call_tool("support-bot", "db.write", {}, CTX, run=fetch)
        assert (await gate.decide("support-bot", "kb.read", {}, CTX))["decision"] == "allow"
        call_id = new_id("async")
        with pytest.raises(ApprovalPending):
            await gate.call_tool("support-bot", "ticket.close", {"account_id": "A1", "ticket_id": "T-7"}, CTX, run=fetch, call_id=call_id)
        shown = await asyncio.to_thread(server.policyc, server.approver, "approvals", "show", call_id, "--json")
        digest = json.loads(shown.stdout)["hold_digest"]
        out = await asyncio.to_thread(server.policyc, server.approver, "approvals", "approve", call_id, "--digest", digest, "--reason", "ok")
        assert out.returncode == 0, out.stderr
        assert await gate.execute_approved(call_id, fetch, timeout=10) == "fetched"

    asyncio.run(main())
