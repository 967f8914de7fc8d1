"""Regenerates the request fixtures of lmtest's tests (run by hand, not by the tests).

Needs DSPy (the fixtures were made with DSPy 3.4.1) and a built lmtestd:

    bin="$(mktemp -d)/lmtestd"
    go build -o "$bin" ./internal/lmtest/lmtestd
    python internal/lmtest/testdata/capture.py "$bin"

Each fixture is {"name", "source", "body", "outputs"}: the request body exactly as
DSPy (or dspgo's native engine) sent it to lmtestd, and the outputs that DSPy (or
dspgo) parsed from lmtestd's reply (null for the intermediate ReAct steps). The Go
tests post each body again and check the reply against lmtest.Value.
"""

import json
import os
import pathlib
import subprocess
import sys
import urllib.request
from typing import Any, Literal, Optional

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "python"))

import dspy  # noqa: E402
import pydantic  # noqa: E402

from dspgo_worker.chat_format import build_messages, parse_reply  # noqa: E402
from dspgo_worker.react import TRAJECTORY, extract_spec, format_trajectory, step_spec  # noqa: E402
from dspgo_worker.spec import CompiledSpec  # noqa: E402


class Person(pydantic.BaseModel):
    name: str
    age: int


class AllTypes(dspy.Signature):
    """Answer with every type."""

    question: str = dspy.InputField()
    context: list[str] = dspy.InputField()
    answer: str = dspy.OutputField(desc="a short answer")
    n: int = dspy.OutputField()
    score: float = dspy.OutputField()
    ok: bool = dspy.OutputField()
    tags: list[str] = dspy.OutputField()
    counts: dict[str, int] = dspy.OutputField()
    choice: Literal["red", "green"] = dspy.OutputField()
    maybe: Optional[int] = dspy.OutputField()
    either: float | None = dspy.OutputField()
    pair: tuple[int, str] = dspy.OutputField()
    anything: Any = dspy.OutputField()
    grid: list[list[float]] = dspy.OutputField()
    person: Person = dspy.OutputField()


class NoDicts(dspy.Signature):
    """Structured outputs refuse open mappings, so no dict here."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()
    n: int = dspy.OutputField()
    score: float = dspy.OutputField()
    tags: list[str] = dspy.OutputField()
    choice: Literal["red", "green"] = dspy.OutputField()
    person: Person = dspy.OutputField()


def weather(city: str, days: int = 1) -> str:
    """Get the weather in a city."""
    return f"sunny in {city} for {days} days"


def plain(value):
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def main(lmtestd: str) -> None:
    proc = subprocess.Popen([lmtestd], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    url = json.loads(proc.stdout.readline())["url"]
    base = url.rsplit("/v1", 1)[0]

    def requests():
        return json.load(urllib.request.urlopen(base + "/_test/requests"))

    def reset():
        urllib.request.urlopen(urllib.request.Request(base + "/_test/reset", method="POST", data=b""))

    fixtures = []

    def keep(name, source, body, outputs):
        fixtures.append({"name": name, "source": source, "body": json.loads(body) if isinstance(body, str) else body, "outputs": outputs})

    def dspy_run(name, module, lm, adapter, **inputs):
        reset()
        with dspy.context(lm=lm, adapter=adapter):
            pred = module(**inputs)
        outputs = {k: plain(v) for k, v in pred.items() if k != "trajectory"}
        bodies = [r["body"] for r in requests()]
        if len(bodies) == 1:
            keep(name, "dspy " + dspy.__version__, bodies[0], outputs)
        else:
            for i, body in enumerate(bodies):
                keep(f"{name}_{i}", "dspy " + dspy.__version__, body, outputs if i == len(bodies) - 1 else None)

    auto = dspy.LM("openai/test-model", api_base=url, api_key="sk-test", cache=False, temperature=0.5, max_tokens=1000)
    compat = dspy.LM("openai/test-model", api_base=url, api_key="sk-test", cache=False, engine="litellm")
    schema_lm = dspy.LM("openai/gpt-4o-mini", api_base=url, api_key="sk-test", cache=False, engine="litellm")
    inputs = {"question": "What is Go?", "context": ["Go is a language.", "It has goroutines."]}
    dspy_run("dspy_chat", dspy.Predict(AllTypes), auto, dspy.ChatAdapter(), **inputs)
    dspy_run("dspy_json", dspy.Predict(AllTypes), auto, dspy.JSONAdapter(), **inputs)
    dspy_run("dspy_json_object", dspy.Predict(AllTypes), compat, dspy.JSONAdapter(), **inputs)
    dspy_run("dspy_json_schema", dspy.Predict(NoDicts), schema_lm, dspy.JSONAdapter(), question="What is Go?")
    dspy_run("dspy_cot", dspy.ChainOfThought("question -> answer: int, why: list[str]"), auto, dspy.ChatAdapter(), question="x")
    dspy_run("dspy_react", dspy.ReAct("question -> answer, confidence: float", tools=[weather], max_iters=4), auto, dspy.ChatAdapter(), question="Weather in Paris?")
    dspy_run("dspy_react_json", dspy.ReAct("question -> answer", tools=[weather], max_iters=4), auto, dspy.JSONAdapter(), question="Weather in Paris?")

    def post(messages):
        body = {"model": "test-model", "messages": messages, "temperature": 0.0}
        request = urllib.request.Request(url + "/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        return body, json.load(urllib.request.urlopen(request))["choices"][0]["message"]["content"]

    spec = CompiledSpec({"signature": {"inputs": [{"name": "question", "type": "str"}], "outputs": [
        {"name": "answer", "type": "str", "description": "a short answer"}, {"name": "n", "type": "int"},
        {"name": "score", "type": "float"}, {"name": "ok", "type": "bool"}, {"name": "tags", "type": "list[str]"},
        {"name": "counts", "type": "dict[str, int]"}, {"name": "choice", "type": "Literal['red', 'green']"},
        {"name": "grid", "type": "list[list[float]]"}]}, "kind": "chain_of_thought"})
    body, reply = post(build_messages(spec, {"question": "What is Go?"}))
    keep("native_chat", "dspgo native engine", body, parse_reply(spec, reply))

    react = CompiledSpec({"signature": {"inputs": [{"name": "question", "type": "str"}], "outputs": [{"name": "answer", "type": "str"}]}, "kind": "react"})
    tools = [
        {"name": "weather", "description": "Get the weather", "schema": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}},
        {"name": "clock", "description": "", "schema": {"type": "object", "properties": {}}},
    ]
    # The native engine's react loop (react.react_loop): its steps, then its extraction.
    step = step_spec(react, tools)
    trajectory = {}
    for i in range(2):
        body, reply = post(build_messages(step, {"question": "Weather?", TRAJECTORY: format_trajectory(trajectory)}))
        chosen = parse_reply(step, reply)
        keep(f"native_react_{i}", "dspgo native engine", body, None)
        trajectory.update({f"thought_{i}": chosen["next_thought"], f"tool_name_{i}": chosen["next_tool_name"],
                           f"tool_args_{i}": chosen["next_tool_args"], f"observation_{i}": "sunny" if i == 0 else "Completed."})
    extract = extract_spec(react)
    body, reply = post(build_messages(extract, {"question": "Weather?", TRAJECTORY: format_trajectory(trajectory)}))
    keep("native_react_extract", "dspgo native engine", body, parse_reply(extract, reply))

    proc.stdin.close()
    proc.wait(timeout=10)
    for f in fixtures:
        (HERE / (f["name"] + ".json")).write_text(json.dumps(f, indent=1, ensure_ascii=False) + "\n")
        print("wrote", f["name"])


if __name__ == "__main__":
    main(sys.argv[1])
