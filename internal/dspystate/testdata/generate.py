"""Writes this folder's files with the real DSPy (the version python/requirements-dspy.lock
pins), for the Go tests of internal/dspystate, which then run without Python:

* predict.json, chain_of_thought.json, react.json, predict_default.json: programs saved
  by ``module.save(path)`` (their state, as JSON); the Go tests load them;
* react_optimized.json: a ReAct whose step predictor's instructions an optimizer rewrote,
  with the demos BootstrapFewShot sets on its steps and its extraction;
* python_rules.json: what Python and DSPy give for the rules dspystate implements in Go
  (DSPy's infer_prefix, inspect.cleandoc, repr of JSON values, dspy.ReAct's step
  instructions).

Run from the repository's root: .venv/bin/python internal/dspystate/testdata/generate.py
and review the diff before committing. With a directory as its argument, it writes there
instead (the Go tests check that the committed files are what the pinned DSPy writes).
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy  # noqa: E402

HERE = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent


class QA(dspy.Signature):
    """Answer the question from the context."""

    question: str = dspy.InputField(desc="the question to answer")
    context: list[str] = dspy.InputField()
    answer: str = dspy.OutputField(desc="a short answer")
    confidence: float = dspy.OutputField()


DEMOS = [
    dspy.Example(question="Who wrote it?", context=["Ann wrote it.", "Bob read it."], answer="Ann", confidence=1.0)
    .with_inputs("question", "context"),
    dspy.Example(question="When?", context=[], answer="In 1999", confidence=0.25, augmented=True)
    .with_inputs("question", "context"),
]


#: The step instructions of react_optimized.json, as an optimizer rewrites them.
STEP_INSTRUCTIONS = ("You are a careful research agent. Search for the question's key terms first, then finish\n"
                     "as soon as the context answers it.")


#: A trajectory of react_optimized.json's demos, as dspy.ReAct writes one.
TRAJECTORY = ("[[ ## thought_0 ## ]]\nSearch first.\n\n[[ ## tool_name_0 ## ]]\nsearch\n\n"
              "[[ ## tool_args_0 ## ]]\n{\"query\": \"author\", \"limit\": 1}\n\n[[ ## observation_0 ## ]]\nAnn wrote it.")


def search(query: str, limit: int = 3) -> str:
    """Searches the web."""
    return query


def save(module, name: str) -> None:
    module.save(str(HERE / name))


def programs() -> None:
    predict = dspy.Predict(QA)
    predict.demos = list(DEMOS)
    save(predict, "predict.json")

    cot = dspy.ChainOfThought(QA)
    with_reasoning = DEMOS[0].copy(reasoning="The context says Ann wrote it.")
    cot.predict.demos = [with_reasoning, DEMOS[1]]
    save(cot, "chain_of_thought.json")

    react = dspy.ReAct(QA, tools=[search], max_iters=3)
    react.extract.predict.demos = list(DEMOS)
    react.react.demos = list(DEMOS)  # as LabeledFewShot sets them: no step fields, never shown
    save(react, "react.json")

    optimized = dspy.ReAct(QA, tools=[search], max_iters=3)
    # What an optimizer such as MIPROv2 or COPRO writes for the step predictor.
    optimized.react.signature = optimized.react.signature.with_instructions(STEP_INSTRUCTIONS)
    # What BootstrapFewShot puts on each predictor: steps of the loops it ran (a first
    # step's trajectory is empty), and extractions with their trajectory and reasoning;
    # LabeledFewShot's example (no step fields) on the steps is never shown.
    optimized.react.demos = [
        dspy.Example(question="Who wrote it?", context=["Ann wrote it."], trajectory="", next_thought="Search first.",
                     next_tool_name="search", next_tool_args={"query": "author", "limit": 1}, augmented=True)
        .with_inputs("question", "context", "trajectory"),
        dspy.Example(question="Who wrote it?", context=["Ann wrote it."], trajectory=TRAJECTORY, next_thought="Done.",
                     next_tool_name="finish", next_tool_args={}, augmented=True)
        .with_inputs("question", "context", "trajectory"),
        DEMOS[1],
    ]
    optimized.extract.predict.demos = [
        DEMOS[0].copy(trajectory=TRAJECTORY, reasoning="The search names Ann.", augmented=True),
        DEMOS[1],
    ]
    save(optimized, "react_optimized.json")

    save(dspy.Predict("question, context: list[str] -> answer"), "predict_default.json")


def rules() -> dict:
    names = ["question", "context_list", "camelCaseText", "HTMLParser", "text2number", "x", "a_b_c", "ID", "userID",
             "_private", "v2_api", "next_tool_args", "XMLHttpRequest2", "abcDEF",
             # names of other letters: Python's full case mappings (ß, ǰ, İ, Greek), its final
             # sigma, its Unicode \d (٣), and words of no case
             "réponse", "antwort_ü", "émile_zola", "Größe", "ÉCOLE_normale", "答え", "Ответ_2", "straße", "ßeta", "ǰx",
             "ΐota", "ὐx_ᾳ", "İstanbul", "xİ", "ΛΟΓΟΣ", "λΟΓΟΣ", "οΣ_σΣ", "ΣΑ", "aΣ1", "x٣y", "名前_x", "ǅx", "ᾈx"]
    docs = ["Answer.", "  Answer.\n\n", "\n\nFirst line.\n    indented\n      more\n", "a\tb\n\tc", "line\n  x\n\n  y  \n\n",
            "", "   ", "Unicode — 日本\n\u3000\u3000deep", "x\n\x1cy"]
    texts = [json.dumps({"q": {"type": "string"}, "n": {"type": "integer", "default": 3}}),
             json.dumps({"s": ["it's", 'say "hi"', "both ' and \"", "back\\slash", "tab\t nl\n cr\r", "\x00\x1f\x7f",
                               "é 日本 \xa0 \u2028 \U0001F600"]}, ensure_ascii=False),
             "[1, 1.0, -0.0, 1E16, 1.5e-07, 0.1, 123456789012345678901234567890, true, false, null, 1e400, -0, 2.50]",
             "{}", "[]", '{"a": {}, "b": [[]]}']

    def react_instructions(instructions, tools):
        sig = dspy.Signature("question, context: list[str] -> answer, confidence: float", instructions)
        return dspy.ReAct(sig, tools=tools).react.signature.instructions

    async def lookup(**kwargs):
        return kwargs

    def tool(name, desc, properties):
        return dspy.Tool(lookup, name=name, desc=desc, args=properties)

    react = [
        {"instructions": "Answer the question.", "tools": []},
        {"instructions": None, "tools": [
            {"name": "search", "description": "Searches the web.\nTwo lines.", "schema": {"type": "object", "properties": {"q": {"type": "string"}, "k": {"type": "integer"}}}},
            {"name": "noargs", "description": "", "schema": {}}]},
        {"instructions": "Use tools.", "tools": [
            {"name": "finish", "description": "mine", "schema": {}},
            {"name": "z", "description": "last", "schema": {"properties": {"é": {"enum": ["a'b", 1.0]}}}}]},
    ]
    for case in react:
        made = [tool(t["name"], t["description"], t["schema"].get("properties", {})) for t in case["tools"]]
        case["want"] = react_instructions(case["instructions"], made)
    return {
        "about": "What Python 3.11 and DSPy give for the rules internal/dspystate implements in Go. Written by generate.py.",
        "infer_prefix": {n: dspy.signatures.signature.infer_prefix(n) for n in names},
        "cleandoc": [[d, inspect.cleandoc(d)] for d in docs],
        "repr": [[text, repr(json.loads(text))] for text in texts],
        "react_instructions": react,
    }


if __name__ == "__main__":
    programs()
    with open(HERE / "python_rules.json", "w", encoding="utf-8") as f:
        json.dump(rules(), f, ensure_ascii=False, indent=2)
        f.write("\n")
