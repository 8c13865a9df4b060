"""The blocking client, on the standard library's ``urllib`` only."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, TypeVar

from ._errors import ApprovalPending, ApprovalRejected, ApprovalTimeout, PermissionDenied, ToolgateError

T = TypeVar("T")
Json = Any
#: ``run(args, scope)``: executes the tool with credentials for ``scope`` only.
Runner = Callable[[Dict[str, Any], Dict[str, Any]], T]


@dataclass(frozen=True)
class Held:
    """What a held call was asked with, kept to execute it once approved."""

    agent: str
    tool: str
    args: Dict[str, Any]
    context: Dict[str, Any]
    session: Optional[str] = None


class _Absent:
    """No output to report (a call outside a session)."""


#: ``report``'s default: no ``output`` is sent.
NO_OUTPUT: Any = _Absent()


def output_of(value: Any) -> Json:
    """What ``call_tool`` reports as a tool's output: ``value`` itself when it
    is JSON-serialisable (strictly: no NaN or infinity), else ``str(value)``.
    The gateway observes it in the call's session (keyed digests only)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return str(value)
    return value


def _problem_error(status: int, body: bytes) -> ToolgateError:
    try:
        doc = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict):
        text = body.decode("utf-8", "replace").strip()
        return ToolgateError(f"the gateway answered {status}: {text}".rstrip(": "), status=status)
    message = f"{status} {doc.get('title', 'error')}: {doc.get('detail', '')}"
    if doc.get("field"):
        message += f" (field `{doc['field']}`)"
    return ToolgateError(message, status=status, code=doc.get("code"), field=doc.get("field"), problem=doc)


class Toolgate:
    """A connection to a Toolgate gateway with a ``service`` key.

    ``call_tool`` is the whole protocol: authorise (``POST /v1/calls``), run the
    tool only when allowed, report its result (``POST /v1/calls/{id}/result``).
    """

    def __init__(self, url: str, key: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self._held: Dict[str, Held] = {}

    # -- HTTP ---------------------------------------------------------------

    def request(
        self, method: str, path: str, body: Optional[Json] = None, *, timeout: Optional[float] = None
    ) -> Json:
        """One request; the answer's JSON, or :class:`ToolgateError` for an error status."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("authorization", f"Bearer {self.key}")
        req.add_header("accept", "application/json")
        if data is not None:
            req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise _problem_error(e.code, e.read()) from None
        except (urllib.error.URLError, OSError) as e:
            raise ToolgateError(f"cannot reach the gateway at `{self.url}`: {e}") from None
        return json.loads(raw.decode("utf-8")) if raw else None

    @staticmethod
    def _q(**params: Optional[str]) -> str:
        given = {k: v for k, v in params.items() if v is not None}
        return "?" + urllib.parse.urlencode(given) if given else ""

    @staticmethod
    def _id(call_id: str) -> str:
        return urllib.parse.quote(call_id, safe="")

    # -- sessions -------------------------------------------------------------

    def user_turn(self, session: str, text: str, *, tenant: Optional[str] = None) -> Dict[str, Any]:
        """``POST /v1/sessions/{session}/turns``: records what the user said (the
        user's own words, never model output) so that later calls of the session
        may pass ``x from user``. ``tenant`` is needed when the key has several.
        Returns ``{tenant, session, chars}``; a closed session raises
        :class:`ToolgateError` with ``code`` ``session_gone`` (start a new one)."""
        body: Dict[str, Any] = {"text": text}
        if tenant is not None:
            body["tenant"] = tenant
        return self.request("POST", f"/v1/sessions/{self._id(session)}/turns", body)

    def session(self, session: str, *, tenant: Optional[str] = None) -> Dict[str, Any]:
        """``GET /v1/sessions/{session}``: ``{tenant, session, tainted, turns,
        observations, endorsed, calls: {tool: n}}``, never a value."""
        return self.request("GET", f"/v1/sessions/{self._id(session)}{self._q(tenant=tenant)}")

    # -- decisions ------------------------------------------------------------

    def decide(
        self,
        agent: str,
        tool: str,
        args: Mapping[str, Any],
        context: Mapping[str, Any],
        *,
        session: Optional[str] = None,
    ) -> Dict[str, Any]:
        """A pure decision (nothing journaled, no budget charged): the ``policyc eval`` JSON.

        With ``session``, decided against that session as it is now (nothing in it changes)."""
        body: Dict[str, Any] = {"agent": agent, "tool": tool, "args": dict(args), "context": dict(context)}
        if session is not None:
            body["session"] = session
        return self.request("POST", "/v1/decide", body)

    def decide_many(self, requests: List[Mapping[str, Any]]) -> List[Dict[str, Any]]:
        """Pure decisions for several requests (each ``{agent, tool, args, context}``)."""
        return self.request("POST", "/v1/decide", [dict(r) for r in requests])

    # -- calls ----------------------------------------------------------------

    def authorize(
        self,
        agent: str,
        tool: str,
        args: Mapping[str, Any],
        context: Mapping[str, Any],
        *,
        call_id: Optional[str] = None,
        session: Optional[str] = None,
    ) -> Dict[str, Any]:
        """``POST /v1/calls``: the gateway's answer (``outcome`` allowed, denied or pending)."""
        body: Dict[str, Any] = {"agent": agent, "tool": tool, "args": dict(args), "context": dict(context)}
        if call_id is not None:
            body["id"] = call_id
        if session is not None:
            body["session"] = session
        return self.request("POST", "/v1/calls", body)

    def report(
        self, call_id: str, tenant: str, ok: bool, error: Optional[str] = None, *, output: Any = NO_OUTPUT
    ) -> None:
        """``POST /v1/calls/{id}/result``: journals an allowed call's result; ``output``
        (any JSON) is what the tool returned, observed in the call's session.

        An output the gateway refuses as too large (413) is reported without it,
        which the gateway treats as unknown (the session is tainted unless the
        tool's whole output is labelled trusted): the lease is never left open."""
        body: Dict[str, Any] = {"ok": ok}
        if error is not None:
            body["error"] = error
        path = f"/v1/calls/{self._id(call_id)}/result{self._q(tenant=tenant)}"
        if isinstance(output, _Absent):
            self.request("POST", path, body)
            return
        try:
            self.request("POST", path, dict(body, output=output))
        except ToolgateError as e:
            if e.status != 413:
                raise
            self.request("POST", path, body)

    def _run(self, answer: Mapping[str, Any], args: Dict[str, Any], run: Runner[T], session: Optional[str]) -> T:
        """Runs an allowed call once and reports its result, also when ``run`` raises;
        in a session, ``run``'s return value is reported as the output (:func:`output_of`)."""
        call_id, tenant = answer["call"], answer["tenant"]
        try:
            result = run(args, dict(answer.get("scope") or {}))
        except BaseException as e:
            self.report(call_id, tenant, False, f"{type(e).__name__}: {e}"[:1000])
            raise
        self.report(call_id, tenant, True, output=NO_OUTPUT if session is None else output_of(result))
        return result

    def call_tool(
        self,
        agent: str,
        tool: str,
        args: Mapping[str, Any],
        context: Mapping[str, Any],
        run: Runner[T],
        *,
        call_id: Optional[str] = None,
        session: Optional[str] = None,
    ) -> T:
        """Asks the gateway, runs ``run(args, scope)`` only when allowed, reports the result.

        ``session`` (the host's id for the user's conversation, never model
        output) puts the call in that session: provenance conditions read it,
        and ``run``'s return value is reported as the tool's output by itself,
        as JSON when it is JSON-serialisable, else as ``str()`` of it
        (:func:`output_of`), so what the agent reads is observed. Without a
        session no output is sent.

        Raises :class:`PermissionDenied` (the tool did not run) or
        :class:`ApprovalPending` (it waits for a human; see :meth:`execute_approved`).
        """
        answer = self.authorize(agent, tool, args, context, call_id=call_id, session=session)
        outcome = answer.get("outcome")
        if outcome == "allowed":
            return self._run(answer, dict(args), run, session)
        if outcome == "pending":
            self._held[answer["call"]] = Held(agent, tool, dict(args), dict(context), session)
            raise ApprovalPending(answer["call"], answer.get("approval") or {}, answer["tenant"], answer.get("reason") or "")
        raise PermissionDenied(answer.get("reason") or "denied", answer.get("rule"), answer.get("call"))

    # -- approvals ------------------------------------------------------------

    def call_state(self, call_id: str, tenant: Optional[str] = None, wait: Optional[float] = None) -> Dict[str, Any]:
        """``GET /v1/calls/{id}``: ``{call, tenant, state, token?}``; ``wait`` long-polls while pending."""
        tenant = tenant or (self._held[call_id].context.get("tenant") if call_id in self._held else None)
        wait_q = None if wait is None else f"{max(0, int(wait * 1000))}ms"
        timeout = self.timeout + (wait or 0)
        return self.request("GET", f"/v1/calls/{self._id(call_id)}{self._q(tenant=tenant, wait=wait_q)}", timeout=timeout)

    def wait_for_approval(self, call_id: str, timeout: float = 60.0, *, tenant: Optional[str] = None) -> str:
        """Waits until a held call is decided; returns its single-use token once approved.

        Raises :class:`ApprovalRejected` (rejected, expired, cancelled) or
        :class:`ApprovalTimeout` (still pending after ``timeout`` seconds).
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            state = self.call_state(call_id, tenant, wait=max(0.0, min(left, 30.0)))
            if state["state"] == "approved" and state.get("token"):
                return str(state["token"])
            if state["state"] != "pending":
                raise ApprovalRejected(call_id, state["state"])
            if time.monotonic() >= deadline:
                raise ApprovalTimeout(call_id, timeout)

    def execute_approved(
        self,
        call_id: str,
        run: Runner[T],
        *,
        token: Optional[str] = None,
        args: Optional[Mapping[str, Any]] = None,
        context: Optional[Mapping[str, Any]] = None,
        timeout: float = 60.0,
    ) -> T:
        """Runs an approved call: waits for the approval unless ``token`` is given, then
        ``POST /v1/calls/{id}/execute`` (bound to the same arguments and context,
        single-use, kill-switch checked), runs ``run(args, scope)`` and reports the result.

        ``args`` and ``context`` default to those of the :meth:`call_tool` that was held;
        a call held in a session runs there, and ``run``'s return value is reported as
        its output, as :meth:`call_tool` does.
        """
        held = self._held.get(call_id)
        if args is None or context is None:
            if held is None:
                raise ValueError(f"call `{call_id}` was not held by this client: give `args` and `context`")
            args = held.args if args is None else args
            context = held.context if context is None else context
        if token is None:
            token = self.wait_for_approval(call_id, timeout, tenant=context.get("tenant"))
        body = {"token": token, "args": dict(args), "context": dict(context)}
        answer = self.request("POST", f"/v1/calls/{self._id(call_id)}/execute", body)
        self._held.pop(call_id, None)
        if answer.get("outcome") != "allowed":
            raise PermissionDenied(answer.get("reason") or "denied", answer.get("rule"), call_id)
        return self._run(answer, dict(args), run, held.session if held else None)


__all__ = ["Held", "NO_OUTPUT", "Runner", "Toolgate", "output_of"]
