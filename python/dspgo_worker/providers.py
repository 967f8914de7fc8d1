"""The providers of a configuration: ``dummy`` (deterministic, offline) and ``openai``
(:mod:`~dspgo_worker.openai_provider`)."""

from __future__ import annotations

from functools import lru_cache

from .lmconfig import LMConfig
from .openai_provider import OpenAIProvider

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from .context import Context


class DummyProvider:
    """The deterministic offline model: outputs come from :func:`~dspgo_worker.dummy.dummy_outputs`."""

    name = "dummy"

    def __init__(self, config: LMConfig) -> None:
        self.config = config

    async def verify(self, ctx: Context) -> None:
        """Nothing to check."""


@lru_cache(maxsize=32)
def make_provider(config: LMConfig) -> OpenAIProvider | DummyProvider:
    """The provider object of a configuration (one per configuration: providers keep no
    state of their requests)."""
    if config.provider == "openai":
        return OpenAIProvider(config)
    return DummyProvider(config)
