"""The program kinds, and the output chain_of_thought adds (docs/protocol.md)."""

#: The program kinds.
KIND_PREDICT = "predict"
KIND_CHAIN_OF_THOUGHT = "chain_of_thought"
#: A ReAct loop (tools on the host) before the outputs; its outputs are the declared ones.
KIND_REACT = "react"
KINDS = (KIND_PREDICT, KIND_CHAIN_OF_THOUGHT, KIND_REACT)
#: The output chain_of_thought adds before the declared ones.
REASONING_FIELD = "reasoning"
