"""The Python half of the Go tests of saved DSPy programs (dspy_program_test.go).

Run with the interpreter of the dspy test environment and one argument, a JSON job:

    {"spec": dspgo spec, "tools": [tool], "steps": [{"mode": "save" | "load", "path": file}]}

For each step it builds the module dspgo's dspy engine runs the spec with (dspy.Predict,
dspy.ChainOfThought or dspy.ReAct, tools as the engine makes them), then

* save: sets the spec's demos (and a react spec's step demos) on it as the engine does
  and calls module.save(path);
* load: calls module.load(path) on it (without demos) and then module.save(path);

and prints, one line per step, the module's dump_state() as JSON (keys sorted, floats as
floats), so that Go can compare two modules' states.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from dspgo_worker.dspy_engine import ENGINE, import_dspy  # noqa: E402
from dspgo_worker.kinds import KIND_REACT  # noqa: E402
from dspgo_worker.spec import CompiledSpec  # noqa: E402


def main() -> None:
    job = json.loads(sys.argv[1])
    dspy = import_dspy()
    spec = dict(job["spec"])
    demos = spec.pop("demos", None)
    step_demos = spec.pop("step_demos", None)
    for step in job["steps"]:
        compiled = CompiledSpec(spec)
        if compiled.kind == KIND_REACT:
            module = ENGINE.react_module(dspy, compiled, ENGINE.tools(dspy, job.get("tools") or [], None, []))
        else:
            module = ENGINE.module(dspy, compiled)
        if step["mode"] == "save":
            if demos or step_demos:
                ENGINE.set_demos(dspy, CompiledSpec({**spec, "demos": demos, "step_demos": step_demos}), module)
            module.save(step["path"])
        else:
            module.load(step["path"])
            module.save(step["path"])
        print(json.dumps(module.dump_state(), sort_keys=True, ensure_ascii=False))


if __name__ == "__main__":
    main()
