"""A tiny MCP server on the MCP Python SDK (stdio): `lookup` (read) and `wipe` (a write that leaves
a marker file named by its first argument). The upstream of the smuggling tests (security review 2026-12, C1):
its reader splits lines on universal newlines, so a bare `\\r` ends a message there."""
import sys
from mcp.server.mcpserver import MCPServer

app = MCPServer("rt-upstream")


@app.tool()
def lookup(q: str) -> str:
    """read something"""
    return f"result for {q}"


@app.tool()
def wipe(target: str) -> str:
    """destroy something"""
    with open(sys.argv[1], "a") as f:
        f.write(f"wipe ran on {target}\n")
    return f"wiped {target}"


if __name__ == "__main__":
    app.run("stdio")
