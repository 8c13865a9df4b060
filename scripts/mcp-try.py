#!/usr/bin/env python3
"""A tiny interactive MCP client (the MCP Python SDK) for trying a server or
`policyc mcp-proxy` by hand, as docs/mcp.md's walkthrough does.

    python scripts/mcp-try.py -- COMMAND [ARGS...]

starts COMMAND as an MCP server over stdio, then reads one request per line:

    list                       the tools the server lists (names and classes)
    TOOL {"arg": "value"}      call TOOL with these JSON arguments
    quit                       (or end of input) stop

Each call prints the result's text and `isError`. Needs the `mcp` package
(`pip install mcp`, or the test venv: `bash scripts/setup-test-peers.sh python`).
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def run(command: list[str]) -> None:
    params = StdioServerParameters(command=command[0], args=command[1:])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            loop = asyncio.get_running_loop()
            while True:
                print("mcp> ", end="", flush=True)
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line or line.strip() == "quit":
                    return
                await one(session, line.strip())


async def one(session: ClientSession, line: str) -> None:
    if not line:
        return
    if line == "list":
        for tool in (await session.list_tools()).tools:
            print(f"  {tool.name}")
        return
    name, _, args = line.partition(" ")
    try:
        arguments = json.loads(args) if args.strip() else {}
    except json.JSONDecodeError as e:
        print(f"  arguments are not JSON: {e}")
        return
    result = await session.call_tool(name, arguments)
    for block in result.content:
        print("  " + getattr(block, "text", repr(block)).replace("\n", "\n  "))
    is_error = getattr(result, "is_error", None) or getattr(result, "isError", None)
    print(f"  (isError: {bool(is_error)})")


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    asyncio.run(run(argv))


if __name__ == "__main__":
    main()
