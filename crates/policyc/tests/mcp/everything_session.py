"""One MCP session through `policyc mcp-proxy` with the reference "everything"
server upstream (over stdio or Streamable HTTP), the MCP Python SDK as the client.

Run by crates/policyc/tests/it/mcp_proxy.rs; prints what it saw as one JSON
object on its last line of standard output.
"""

import asyncio
import json
import sys

import mcp_types as types
from mcp import Client, StdioServerParameters

cfg = json.loads(sys.argv[1])


def seen(result):
    text = "".join(getattr(c, "text", "") for c in result.content)
    return {"is_error": bool(result.is_error), "text": text, "structured": result.structured_content}


async def session(out):
    asked = []

    async def elicit(context, params):
        # The user reads what the proxy asks and approves it.
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": True})

    server = StdioServerParameters(command=cfg["policyc"], args=cfg["proxy_args"])
    async with Client(server, elicitation_callback=elicit) as client:
        out["protocol"] = client.protocol_version
        out["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
        out["echo"] = seen(await client.call_tool("echo", {"message": "hi"}))
        out["sum"] = seen(await client.call_tool("get-sum", {"a": 2, "b": 3}))
        out["structured"] = seen(await client.call_tool("get-structured-content", {"location": "Chicago"}))
        out["toggle"] = seen(await client.call_tool("toggle-simulated-logging", {}))
        out["hidden"] = seen(await client.call_tool("get-tiny-image", {}))
        if cfg.get("env"):
            out["env"] = seen(await client.call_tool("get-env", {}))
        out["user_approved"] = seen(await client.call_tool("toggle-subscriber-updates", {}))
        out["asked"] = asked
        out["resources"] = len((await client.list_resources()).resources)
        out["prompts"] = sorted(p.name for p in (await client.list_prompts()).prompts)


def main():
    out = {}
    asyncio.run(session(out))
    print(json.dumps(out, default=str))


main()
