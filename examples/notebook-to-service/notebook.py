# %% [markdown]
# # Ticket triage: optimized in DSPy, served from Go
#
# The data scientist's side of docs/dspy.md's walkthrough, as a notebook in
# the percent format (Jupytext, VS Code and PyCharm open it as cells; Python
# runs it as a script). It builds a DSPy program, optimizes it with
# BootstrapFewShot on a labelled trainset, scores it before and after, and
# saves it with `module.save`, which writes the program's state as JSON: the
# file the Go service (main.go, beside this one) loads and runs.
#
# The model is any OpenAI-compatible endpoint:
#   LM_MODEL         the model, as dspy.LM names it (default openai/gpt-4o-mini)
#   OPENAI_BASE_URL  the endpoint (default: OpenAI's)
#   OPENAI_API_KEY   its key
#   PROGRAM_PATH     where to save the program (default program.json)

# %%
import os
from typing import Literal

import dspy

lm = dspy.LM(
    os.environ.get("LM_MODEL", "openai/gpt-4o-mini"),
    api_base=os.environ.get("OPENAI_BASE_URL") or None,
    api_key=os.environ.get("OPENAI_API_KEY"),
    temperature=0.0,
)
dspy.configure(lm=lm)


# %% [markdown]
# ## The program
#
# A class-based signature: the docstring is the instructions, each field has
# a type and a description. The Go service states the same fields as a
# signature string (`SIGNATURE` in main.go), because a saved program records
# its fields' descriptions but not their names' types.

# %%
class Triage(dspy.Signature):
    """Route a customer's support ticket to the team that can resolve it."""

    ticket: str = dspy.InputField(desc="the customer's message, as written")
    team: Literal["billing", "engineering", "accounts"] = dspy.OutputField(desc="the team that takes the ticket")
    priority: int = dspy.OutputField(desc="1 (urgent) to 3 (routine)")


program = dspy.ChainOfThought(Triage)

# %% [markdown]
# ## Data and metric

# %%
tickets = [
    ("I was charged twice for my March invoice.", "billing", 2),
    ("The export button crashes the app.", "engineering", 1),
    ("Please change the email address on my account.", "accounts", 3),
    ("My invoice was charged twice this month.", "billing", 2),
    ("The app crashes after export.", "engineering", 1),
    ("Change the email address of my account, please.", "accounts", 3),
    ("I was charged twice, where is my invoice?", "billing", 2),
    ("The app crashes whenever I export.", "engineering", 1),
    ("How do I change the email on my account?", "accounts", 3),
]
examples = [dspy.Example(ticket=t, team=team, priority=p).with_inputs("ticket") for t, team, p in tickets]
trainset, devset = examples[:6], examples[6:]


def right_team(example: dspy.Example, prediction: dspy.Prediction, trace: object = None) -> bool:
    """The metric: the ticket went to the right team."""
    return bool(prediction.team == example.team)


evaluate = dspy.Evaluate(devset=devset, metric=right_team, num_threads=1)
print("score before:", evaluate(program).score)

# %% [markdown]
# ## Optimize
#
# BootstrapFewShot runs the program on the trainset and keeps, as demos, the
# traces the metric accepts, filling up with labelled examples.

# %%
optimizer = dspy.BootstrapFewShot(metric=right_team, max_bootstrapped_demos=3, max_labeled_demos=6)
optimized = optimizer.compile(program, trainset=trainset)
print("score after:", evaluate(optimized).score)

# %% [markdown]
# ## Save for the Go service

# %%
path = os.environ.get("PROGRAM_PATH", "program.json")
optimized.save(path)
print("saved", path, "with", len(optimized.predict.demos), "demos")
