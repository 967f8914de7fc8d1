"""The program kinds, and the output chain_of_thought adds (docs/protocol.md)."""

#: The program kinds.
KIND_PREDICT = "predict"
KIND_CHAIN_OF_THOUGHT = "chain_of_thought"
#: A ReAct loop (tools on the host) before the outputs; its outputs are the declared ones.
KIND_REACT = "react"
#: A custom dspy.Module registered under ``spec.module`` (:mod:`~dspgo_worker.modules`).
KIND_MODULE = "module"
KINDS = (KIND_PREDICT, KIND_CHAIN_OF_THOUGHT, KIND_REACT, KIND_MODULE)
#: The output chain_of_thought adds before the declared ones.
REASONING_FIELD = "reasoning"
