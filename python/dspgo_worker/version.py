"""Version numbers of the worker runtime and of the wire protocol it speaks."""

__version__ = "0.1.0"

#: Version of the framing and message format (see protocol.py). Sent in the init ping reply.
PROTOCOL_VERSION = 1
