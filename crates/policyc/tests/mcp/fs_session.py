"""One MCP session through `policyc mcp-proxy` with the MCP Python SDK as the client.

Run by crates/policyc/tests/it/mcp_proxy.rs with the test venv's python. The
configuration comes as one JSON argument; the script drives the session
(calling `policyc approvals` and `policyc kill-switch` against the proxy's
admin API in the middle of it) and prints what it saw as one JSON object on
its last line of standard output. The Rust test asserts on it, on the files
on disk and on the journal.
"""

import asyncio
import json
import os
import subprocess
import sys

from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

cfg = json.loads(sys.argv[1])
root = cfg["root"]


def policyc(key, *args):
    env = {**os.environ, "TOOLGATE_KEY": key, "TOOLGATE_URL": cfg["admin_url"]}
    done = subprocess.run([cfg["policyc"], *args], env=env, capture_output=True, text=True)
    return {"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def seen(result):
    text = "".join(getattr(c, "text", "") for c in result.content)
    return {"is_error": bool(result.is_error), "text": text, "structured": result.structured_content}


def pending_id(result):
    text = seen(result)["text"]
    start = text.index("Pending call id: `") + len("Pending call id: `")
    return text[start : text.index("`", start)]


async def session(out):
    if "url" in cfg:
        # Streamable HTTP: the proxy is already listening; a service key authenticates.
        http = create_mcp_http_client(headers={"Authorization": "Bearer " + cfg["service"]})
        server = streamable_http_client(cfg["url"], http_client=http)
    else:
        server = StdioServerParameters(command=cfg["policyc"], args=cfg["proxy_args"])
    async with Client(server) as client:
        out["protocol"] = client.protocol_version
        out["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
        call = client.call_tool
        out["read"] = seen(await call("read_text_file", {"path": root + "a.txt"}))
        out["many"] = seen(await call("read_multiple_files", {"paths": [root + "a.txt", root + "b.txt"]}))
        out["many_escape"] = seen(await call("read_multiple_files", {"paths": [root + "a.txt", cfg["secret"]]}))
        out["climb"] = seen(await call("read_text_file", {"path": root + "../secret.txt"}))
        out["move"] = seen(await call("move_file", {"source": root + "a.txt", "destination": root + "moved.txt"}))
        write = {"path": root + "new.txt", "content": "approved text"}
        first = await call("write_file", write)
        out["write_pending"] = seen(first)
        out["write_again_before_approval"] = seen(await call("write_file", write))
        out["written_before_approval"] = os.path.exists(write["path"])
        call_id = pending_id(first)
        shown = policyc(cfg["approver"], "approvals", "show", call_id, "--tenant", cfg["tenant"], "--json")
        digest = json.loads(shown["stdout"])["hold_digest"]
        out["approve"] = policyc(cfg["approver"], "approvals", "approve", call_id, "--tenant", cfg["tenant"],
                                 "--digest", digest, "--reason", "test")
        out["write_approved"] = seen(await call("write_file", write))
        out["write_after_run"] = seen(await call("write_file", write))
        out["kill"] = policyc(cfg["operator"], "kill-switch", "engage", "--reason", "stop writes")
        out["write_killed"] = seen(await call("write_file", {"path": root + "late.txt", "content": "x"}))
        out["read_killed"] = seen(await call("read_text_file", {"path": root + "a.txt"}))
        out["late_written"] = os.path.exists(root + "late.txt")


def main():
    out = {}
    asyncio.run(session(out))
    print(json.dumps(out, default=str))


main()
