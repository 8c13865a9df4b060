"""A real `policyc serve` for the whole test session: binary from `POLICYC`
(else target/debug/policyc), an ephemeral loopback port, a temporary data
directory, keys made with `policyc keys add`; stopped at the end."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[3]


def policyc_bin() -> str:
    path = os.environ.get("POLICYC") or str(REPO / "target" / "debug" / "policyc")
    if not Path(path).is_file():
        pytest.exit(f"no policyc binary at `{path}`: run `cargo build -p policyc` or set POLICYC", returncode=2)
    return path


def add_key(data: Path, name: str, role: str, *flags: str) -> str:
    out = subprocess.run(
        [policyc_bin(), "keys", "add", name, "--role", role, *flags, "--data", str(data)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


@dataclass
class Server:
    url: str
    service: str
    approver: str
    operator: str
    other_tenant: str

    def policyc(self, key: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`policyc ARGS` in another process, with `key` in TOOLGATE_KEY."""
        env = dict(os.environ, TOOLGATE_URL=self.url, TOOLGATE_KEY=key)
        return subprocess.run([policyc_bin(), *args], env=env, capture_output=True, text=True, timeout=60)

    def audit(self, **query: str) -> List[Dict[str, Any]]:
        """Journal records (operator key)."""
        q = "&".join(f"{k}={v}" for k, v in query.items())
        req = urllib.request.Request(f"{self.url}/v1/audit?{q}")
        req.add_header("authorization", f"Bearer {self.operator}")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return [json.loads(line) for line in resp.read().decode().splitlines() if line.strip()]


@contextlib.contextmanager
def serve(policy: str) -> Iterator[Server]:
    """`policyc serve --policy POLICY` (a path from the repository's root) over
    a fresh data directory with a service key for `acme`, one for `globex`, an
    approver and an operator."""
    with tempfile.TemporaryDirectory(prefix="toolgate-py-") as tmp:
        data = Path(tmp)
        service = add_key(data, "svc", "service", "--tenants", "acme")
        other = add_key(data, "svc-globex", "service", "--tenants", "globex")
        approver = add_key(data, "kim", "approver", "--groups", "support-leads")
        operator = add_key(data, "ops", "operator")
        proc = subprocess.Popen(
            [policyc_bin(), "serve", "--policy", policy, "--data", str(data), "--listen", "127.0.0.1:0"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        url: Optional[str] = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("toolgate: listening on "):
                url = line.split("listening on ", 1)[1].strip()
                break
        if url is None:
            proc.kill()
            pytest.exit("policyc serve exited before listening", returncode=2)
        drain = threading.Thread(target=lambda: [None for _ in proc.stdout or []], daemon=True)
        drain.start()
        try:
            yield Server(url, service, approver, operator, other)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    with serve("policies/support-desk.policy") as s:
        yield s


@pytest.fixture(scope="session")
def assistant_server() -> Iterator[Server]:
    """A server over tests/assistant.policy: provenance and session conditions."""
    with serve("clients/python/tests/assistant.policy") as s:
        yield s
