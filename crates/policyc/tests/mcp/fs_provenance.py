"""A prompt injection through a file, with the MCP Python SDK as the client of `policyc mcp-proxy`.

Run by crates/policyc/tests/it/mcp_proxy.rs with the test venv's python. The configuration comes as
one JSON argument. The script plays the host and the agent: it starts the proxy over stdio (its
stderr to `cfg["log"]`), reads the Toolgate session id the proxy printed there, records the user's
turn through the proxy's admin API (as the host application would), then does what an injected
agent does: reads a file whose text names another path, and writes there, then where the user
asked. It prints what it saw as one JSON object on its last line of standard output.
"""

import asyncio
import json
import os
import re
import sys
import urllib.request

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

cfg = json.loads(sys.argv[1])


def admin(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(cfg["admin_url"] + path, data=data, method=method)
    req.add_header("authorization", "Bearer " + cfg["service"])
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return {"status": resp.status, "body": json.loads(resp.read() or b"null")}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read().decode()}


def seen(result):
    text = "".join(getattr(c, "text", "") for c in result.content)
    return {"is_error": bool(result.is_error), "text": text, "structured": result.structured_content}


def printed_session():
    # Printed at start, before the proxy answered `initialize`.
    with open(cfg["log"]) as log:
        found = re.search(r"toolgate: session (s_[0-9a-f]+) ", log.read())
    return found.group(1) if found else None


async def session(out):
    server = StdioServerParameters(command=cfg["policyc"], args=cfg["proxy_args"])
    with open(cfg["log"], "w") as log:
        async with Client(stdio_client(server, errlog=log)) as client:
            sid = printed_session()
            out["session"] = sid
            out["turn"] = admin("POST", f"/v1/sessions/{sid}/turns", {"text": cfg["turn"]})
            call = client.call_tool
            out["read"] = seen(await call("read_text_file", {"path": cfg["notes"]}))
            out["evil"] = seen(await call("write_file", {"path": cfg["evil"], "content": "pwned"}))
            out["report"] = seen(await call("write_file", {"path": cfg["report"], "content": "summary"}))
            out["summary"] = admin("GET", f"/v1/sessions/{sid}")
    with open(cfg["log"]) as log:
        out["log"] = log.read()


def main():
    out = {}
    asyncio.run(session(out))
    print(json.dumps(out, default=str))


main()
