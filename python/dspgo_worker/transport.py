"""Where and how the OpenAI provider sends its requests: endpoints parsed once
(:class:`Endpoint`), whether the environment's proxy applies (:func:`proxied`: then
``urllib`` sends the request), and the answers that are retried (:class:`Retryable`,
:func:`parse_retry_after`). The connections themselves are :mod:`~dspgo_worker.http_async`'s.

``urllib.request`` is imported only when a proxy variable is set, ``email.utils`` only for
a ``Retry-After`` date.
"""

from __future__ import annotations

import math
import os
import time

from .errors import WorkerError
from .lmconfig import safe_url


class Retryable(Exception):
    """A 429 or 5xx answer: retried, else turned into ``final``."""

    def __init__(self, final: WorkerError, retry_after: float | None) -> None:
        super().__init__(final.message)
        self.final = final
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        import email.utils  # only for the date form

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:  # (on Python 3.9; typeshed knows the later versions)
            return None  # type: ignore[unreachable]
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)



def proxied(scheme: str, host: str) -> bool:
    """True when ``urllib`` would send a request for ``host`` (``host[:port]``) through an
    environment proxy."""
    environ = os.environ
    if not (environ.get(scheme + "_proxy") or environ.get(scheme.upper() + "_PROXY")):
        return False
    import urllib.request  # only when a proxy variable is set

    return bool(urllib.request.getproxies().get(scheme)) and not urllib.request.proxy_bypass(host)


class Endpoint:
    """Where the completions go: ``url`` (for requests), ``shown`` (for messages, without
    credentials), and for the direct path ``scheme``, ``host``, ``port`` and ``selector``
    (``direct`` is False when only ``urllib`` can serve the URL)."""

    __slots__ = ("url", "shown", "direct", "scheme", "host", "port", "netloc", "selector", "key", "host_header")

    def __init__(self, url: str) -> None:
        from urllib.parse import urlsplit

        self.url = url
        self.shown = safe_url(url)
        self.direct = False
        try:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            host = parts.hostname
            port = parts.port
        except ValueError:
            return
        if scheme not in ("http", "https") or not host or "@" in parts.netloc:
            return
        default_port = 443 if scheme == "https" else 80
        header_host = host
        if not host.isascii():
            try:
                header_host = host.encode("idna").decode("ascii")
            except UnicodeError:
                return
        if ":" in header_host:  # an IPv6 address
            header_host = f"[{header_host.split('%', 1)[0]}]"
        self.scheme = scheme
        self.host = host
        self.netloc = parts.netloc
        self.port = port or default_port
        self.selector = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        if any(c <= " " or c == "\x7f" for c in self.selector):
            return  # urllib's business (and its errors)
        self.key = (scheme, host, self.port)
        self.host_header = header_host if self.port == default_port else f"{header_host}:{self.port}"
        self.direct = True


def time_left(end: float) -> float:
    """Seconds until ``end``; raises ``TimeoutError`` when none are left."""
    left = end - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left
