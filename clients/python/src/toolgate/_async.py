"""The asyncio client: the blocking one's requests in a worker thread, so no
extra dependency; ``run`` may be a plain function or a coroutine function."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Union

from ._client import NO_OUTPUT, Held, Toolgate, output_of
from ._errors import ApprovalPending, PermissionDenied

AsyncRunner = Callable[[Dict[str, Any], Dict[str, Any]], Union[Any, Awaitable[Any]]]


class AsyncToolgate:
    """:class:`Toolgate` for asyncio code: the same methods, awaitable."""

    def __init__(self, url: str, key: str, *, timeout: float = 30.0) -> None:
        self.sync = Toolgate(url, key, timeout=timeout)

    async def decide(
        self,
        agent: str,
        tool: str,
        args: Mapping[str, Any],
        context: Mapping[str, Any],
        *,
        session: Optional[str] = None,
    ) -> Dict[str, Any]:
        """See :meth:`Toolgate.decide`."""
        return await asyncio.to_thread(self.sync.decide, agent, tool, args, context, session=session)

    async def user_turn(self, session: str, text: str, *, tenant: Optional[str] = None) -> Dict[str, Any]:
        """See :meth:`Toolgate.user_turn`."""
        return await asyncio.to_thread(self.sync.user_turn, session, text, tenant=tenant)

    async def session(self, session: str, *, tenant: Optional[str] = None) -> Dict[str, Any]:
        """See :meth:`Toolgate.session`."""
        return await asyncio.to_thread(self.sync.session, session, tenant=tenant)

    async def decide_many(self, requests: List[Mapping[str, Any]]) -> List[Dict[str, Any]]:
        """See :meth:`Toolgate.decide_many`."""
        return await asyncio.to_thread(self.sync.decide_many, requests)

    async def _run(
        self, answer: Mapping[str, Any], args: Dict[str, Any], run: AsyncRunner, session: Optional[str]
    ) -> Any:
        call_id, tenant = answer["call"], answer["tenant"]
        try:
            result = run(args, dict(answer.get("scope") or {}))
            if inspect.isawaitable(result):
                result = await result
        except BaseException as e:
            await asyncio.to_thread(self.sync.report, call_id, tenant, False, f"{type(e).__name__}: {e}"[:1000])
            raise
        output = NO_OUTPUT if session is None else output_of(result)
        await asyncio.to_thread(self.sync.report, call_id, tenant, True, output=output)
        return result

    async def call_tool(
        self,
        agent: str,
        tool: str,
        args: Mapping[str, Any],
        context: Mapping[str, Any],
        run: AsyncRunner,
        *,
        call_id: Optional[str] = None,
        session: Optional[str] = None,
    ) -> Any:
        """See :meth:`Toolgate.call_tool` (``session`` too: ``run``'s return value,
        awaited, is reported as the output)."""
        answer = await asyncio.to_thread(
            self.sync.authorize, agent, tool, args, context, call_id=call_id, session=session
        )
        if answer.get("outcome") == "allowed":
            return await self._run(answer, dict(args), run, session)
        if answer.get("outcome") == "pending":
            self.sync._held[answer["call"]] = Held(agent, tool, dict(args), dict(context), session)
            raise ApprovalPending(answer["call"], answer.get("approval") or {}, answer["tenant"], answer.get("reason") or "")
        raise PermissionDenied(answer.get("reason") or "denied", answer.get("rule"), answer.get("call"))

    async def wait_for_approval(self, call_id: str, timeout: float = 60.0, *, tenant: Optional[str] = None) -> str:
        """See :meth:`Toolgate.wait_for_approval`."""
        return await asyncio.to_thread(self.sync.wait_for_approval, call_id, timeout, tenant=tenant)

    async def execute_approved(
        self,
        call_id: str,
        run: AsyncRunner,
        *,
        token: Optional[str] = None,
        args: Optional[Mapping[str, Any]] = None,
        context: Optional[Mapping[str, Any]] = None,
        timeout: float = 60.0,
    ) -> Any:
        """See :meth:`Toolgate.execute_approved`."""
        held = self.sync._held.get(call_id)
        if args is None or context is None:
            if held is None:
                raise ValueError(f"call `{call_id}` was not held by this client: give `args` and `context`")
            args = held.args if args is None else args
            context = held.context if context is None else context
        if token is None:
            token = await self.wait_for_approval(call_id, timeout, tenant=context.get("tenant"))
        body = {"token": token, "args": dict(args), "context": dict(context)}
        answer = await asyncio.to_thread(self.sync.request, "POST", f"/v1/calls/{Toolgate._id(call_id)}/execute", body)
        self.sync._held.pop(call_id, None)
        if answer.get("outcome") != "allowed":
            raise PermissionDenied(answer.get("reason") or "denied", answer.get("rule"), call_id)
        return await self._run(answer, dict(args), run, held.session if held else None)
