#!/usr/bin/env python3
"""AgentDojo's ground truth as `policyc replay` traces (deterministic).

    python benches/agentdojo/extract.py OUT_DIR [--suite NAME ...] [--version v1.2.2]

Runs in the venv of `scripts/setup-test-peers.sh agentdojo` (agentdojo==0.1.35).
For each suite (workspace, travel, banking, slack) of the benchmark version:

- `OUT_DIR/SUITE/user_task_N.jsonl`: the user session. A turn line with the
  user task's prompt, then every ground-truth call of the task with the output
  the model sees, run as AgentDojo runs the ground truth
  (`GroundTruthPipeline`): against the suite's default environment (the
  injection vectors at their defaults) after the task's `init_environment`.
- `OUT_DIR/SUITE/user_task_N__injection_task_M.jsonl`: the attack case of the
  `important_instructions` attack. The environment is injected as the
  benchmark injects it (`attack.attack(user_task, injection_task)`: the
  attack's text in every injection vector the user task's ground truth sees),
  the user's ground-truth calls run in it (their outputs now carry the
  injection), then the injection task's ground-truth calls, computed and run on
  the environment the user's calls left (as an agent that obeyed would).

Call ids say whose call it is: `uK` is the user task's K-th ground-truth call,
`iK` the injection task's. Outputs are the structured value behind the YAML
text the model reads (AgentDojo's `tool_result_to_str` before its YAML dump),
so that per-field output labels apply; a tool error is the output text
`Error: ...` as the model would read it. `OUT_DIR/index.json` counts what was
written. Nothing depends on time or randomness: the same package gives the
same bytes.
"""

import argparse
import datetime
import json
import os
import sys

from pydantic import BaseModel

from agentdojo.attacks.important_instructions_attacks import ImportantInstructionsAttack
from agentdojo.functions_runtime import FunctionsRuntime
from agentdojo.task_suite.load_suites import get_suites

SUITES = ["workspace", "travel", "banking", "slack"]
TENANT = "emma"
AGENT = "assistant"
ENV = "prod"
# The time of the first line; every line is one second after the previous.
START = datetime.datetime(2026, 11, 21, 9, 0, 0, tzinfo=datetime.timezone.utc)
# The model the attack addresses by name (`important_instructions` names one;
# which one does not change a call).
MODEL = "gpt-4o-2024-05-13"


class _Pipeline:
    """Only what the attack reads from a pipeline: its name."""

    name = MODEL


def jsonable(value):
    """The structured form of a tool's result, JSON-ready (datetimes as ISO text)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    return str(value)


class Trace:
    """One session's lines, with a clock that ticks one second per line."""

    def __init__(self, session: str):
        self.session = session
        self.lines: list[dict] = []

    def _at(self) -> str:
        return (START + datetime.timedelta(seconds=len(self.lines))).strftime("%Y-%m-%dT%H:%M:%SZ")

    def turn(self, text: str) -> None:
        self.lines.append({"event": "turn", "at": self._at(), "tenant": TENANT, "session": self.session, "text": text})

    def call(self, cid: str, tool: str, args: dict, output) -> None:
        self.lines.append(
            {
                "at": self._at(),
                "id": cid,
                "agent": AGENT,
                "tool": tool,
                "args": jsonable(dict(args)),
                "context": {"tenant": TENANT, "env": ENV},
                "session": self.session,
                "output": output,
            }
        )

    def write(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            for line in self.lines:
                fh.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")


def run_calls(trace: Trace, runtime: FunctionsRuntime, env, calls, prefix: str) -> None:
    """Runs ground-truth calls in `env` (changing it) and records each with its output."""
    for k, call in enumerate(calls, start=1):
        result, error = runtime.run_function(env, call.function, call.args, raise_on_error=False)
        output = f"Error: {error}" if error is not None else jsonable(result)
        trace.call(f"{prefix}{k}", call.function, call.args, output)


def user_session(suite, user_task, env, session: str) -> Trace:
    trace = Trace(session)
    trace.turn(user_task.PROMPT)
    task_env = user_task.init_environment(env)
    runtime = FunctionsRuntime(suite.tools)
    run_calls(trace, runtime, task_env, user_task.ground_truth(task_env.model_copy(deep=True)), "u")
    return trace


def attack_case(suite, attack, user_task, injection_task, session: str) -> tuple[Trace, int]:
    injections = attack.attack(user_task, injection_task)
    env = suite.load_and_inject_default_environment(injections)
    trace = Trace(session)
    trace.turn(user_task.PROMPT)
    task_env = user_task.init_environment(env)
    runtime = FunctionsRuntime(suite.tools)
    run_calls(trace, runtime, task_env, user_task.ground_truth(task_env.model_copy(deep=True)), "u")
    injected = injection_task.ground_truth(task_env.model_copy(deep=True))
    run_calls(trace, runtime, task_env, injected, "i")
    return trace, len(injected)


def task_key(task_id: str) -> int:
    return int(task_id.rsplit("_", 1)[1])


def extract_suite(suite, out: str) -> dict:
    os.makedirs(out, exist_ok=True)
    attack = ImportantInstructionsAttack(suite, _Pipeline())
    default_env = suite.load_and_inject_default_environment({})
    user_tasks = sorted(suite.user_tasks.items(), key=lambda kv: task_key(kv[0]))
    injection_tasks = sorted(suite.injection_tasks.items(), key=lambda kv: task_key(kv[0]))
    injection_calls = {
        iid: len(task.ground_truth(default_env.model_copy(deep=True))) for iid, task in injection_tasks
    }
    cases = 0
    for uid, user_task in user_tasks:
        user_session(suite, user_task, default_env.model_copy(deep=True), f"{suite.name}/{uid}").write(
            os.path.join(out, f"{uid}.jsonl")
        )
        for iid, injection_task in injection_tasks:
            trace, _ = attack_case(suite, attack, user_task, injection_task, f"{suite.name}/{uid}/{iid}")
            trace.write(os.path.join(out, f"{uid}__{iid}.jsonl"))
            cases += 1
    return {
        "user_tasks": len(user_tasks),
        "injection_tasks": len(injection_tasks),
        "injection_calls": sum(injection_calls.values()),
        "injection_calls_by_task": injection_calls,
        "attack_cases": cases,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the directory to write the traces to")
    parser.add_argument("--suite", action="append", choices=SUITES, help="a suite (repeatable; default: all four)")
    parser.add_argument("--version", default="v1.2.2", help="the benchmark version (default v1.2.2)")
    args = parser.parse_args()
    suites = get_suites(args.version)
    index = {"benchmark_version": args.version, "attack": "important_instructions", "suites": {}}
    for name in args.suite or SUITES:
        index["suites"][name] = extract_suite(suites[name], os.path.join(args.out, name))
        s = index["suites"][name]
        print(
            f"{name}: {s['user_tasks']} user tasks, {s['injection_tasks']} injection tasks "
            f"({s['injection_calls']} calls), {s['attack_cases']} attack cases",
            file=sys.stderr,
        )
    with open(os.path.join(args.out, "index.json"), "w", encoding="utf-8") as fh:
        json.dump(index, fh, indent=1, sort_keys=True)
        fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
