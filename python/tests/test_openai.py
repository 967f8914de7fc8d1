"""The openai provider and the native engine against a local OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import os
import queue
import socket
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

from dspgo_worker import http_async
from dspgo_worker.context import Context
from dspgo_worker.errors import WorkerError
from dspgo_worker.lmconfig import LMConfig, split_credentials
from dspgo_worker.openai_provider import OpenAIProvider
from dspgo_worker.redact import redact
from dspgo_worker.transport import parse_retry_after

from .helpers import WAIT, InProcessWorker, WorkerProcess
from .test_spec import spec_of

KEY_ENV = "DSPGO_TEST_LM_KEY"
SECRET = "sk-test-0123456789abcdefSECRET"


def chat(content) -> dict:
    """A chat completion body whose reply is ``content``."""
    return {"id": "c-1", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}


def sections(**fields) -> str:
    """A ChatAdapter-style reply with these sections."""
    return "".join(f"[[ ## {name} ## ]]\n{value}\n\n" for name, value in fields.items()) + "[[ ## completed ## ]]\n"


class FakeLM:
    """An OpenAI-compatible endpoint on 127.0.0.1 that answers from a script.

    ``push(status, body, headers, hang, mode)`` queues one answer; with none queued it
    answers 500. ``hang`` holds the answer until :meth:`reset` or :meth:`close`. ``mode``
    shapes the answer: ``chunked`` (chunked transfer encoding), ``close`` (says
    ``Connection: close`` and closes), ``drop`` (closes the connection after the answer
    without saying so, as a server whose keep-alive time-out passes does), ``sse``
    (server-sent events, as a ``"stream": true`` request gets them: ``body`` is the list of
    content pieces, each one event, then ``data: [DONE]``; an item that is bytes is sent
    as it is; with ``gate=i`` the answer waits after event ``i`` as ``hang`` does). ``requests``
    records each request (path, headers, JSON body, client port); ``received`` is
    signalled at each; ``connections`` lists the client ports of the accepted
    connections. One server serves a whole test class; :meth:`reset` starts each test
    afresh.
    """

    def __init__(self):
        self.script: queue.Queue = queue.Queue()
        self.requests: list[dict] = []
        self.connections: list[int] = []
        self.received = threading.Semaphore(0)
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep the test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
                fake.requests.append(
                    {"path": self.path, "headers": dict(self.headers.items()), "body": parsed, "port": self.client_address[1]}
                )
                release = fake.release
                try:
                    status, payload, headers, hang, mode, gate = fake.script.get_nowait()
                except queue.Empty:
                    status, payload, headers, hang, mode, gate = 500, {"error": {"message": "no scripted answer"}}, {}, False, None, None
                fake.received.release()
                if hang:
                    release.wait(WAIT)
                if mode == "sse":
                    self.send_events(status, payload, headers, gate, release)
                    return
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    if mode == "close":
                        self.send_header("Connection", "close")
                    if mode == "chunked":
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        half = len(data) // 2
                        for chunk in (data[:half], data[half:], b""):
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    else:
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                    self.wfile.flush()
                except OSError:
                    pass  # the client gave up (time-out tests)
                if mode == "drop":
                    self.close_connection = True

            def send_events(self, status, pieces, headers, gate, release):
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()

                    def chunk(data: bytes) -> None:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()

                    for i, piece in enumerate(pieces):
                        if isinstance(piece, bytes):
                            chunk(piece)
                        else:
                            event = {"id": "c-1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": piece}}]}
                            chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
                        if gate == i:
                            release.wait(WAIT)
                    chunk(b"data: [DONE]\n\n")
                    chunk(b"")
                except OSError:
                    pass  # the client gave up (cancel tests)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request, client_address):
                fake.connections.append(client_address[1])
                super().process_request(request, client_address)

            def handle_error(self, request, client_address):
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        """Release hung answers and forget the script and the requests."""
        self.release.set()
        self.release = threading.Event()
        self.script = queue.Queue()
        self.requests = []
        self.connections = []
        self.received = threading.Semaphore(0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def push(self, status=200, body=None, headers=None, hang=False, mode=None, gate=None) -> None:
        self.script.put((status, body if body is not None else chat("ok"), headers or {}, hang, mode, gate))

    def wait_request(self) -> None:
        if not self.received.acquire(timeout=WAIT):
            raise AssertionError("the fake LM received no request")

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(WAIT)


class ThreadRunner:
    """The part of a worker that ``ctx.run_sync`` uses (the proxy path runs ``urllib`` on
    a thread), for contexts made without a worker."""

    async def run_sync(self, ctx, fn):
        return await asyncio.get_running_loop().run_in_executor(None, fn)


class AsyncTestCase(unittest.TestCase):
    """Each test has its own event loop (:meth:`arun` runs a coroutine on it); its idle
    connections, executor and the loop itself are closed when the test ends."""

    def setUp(self):
        super().setUp()
        self.loop = asyncio.new_event_loop()
        self.addCleanup(self._close_loop)

    def _close_loop(self):
        async def close():
            http_async.close_idle()
            await asyncio.sleep(0)  # the aborted transports close their sockets

        self.loop.run_until_complete(close())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()

    def arun(self, coro):
        """Run ``coro`` on the test's loop; what it returns."""
        return self.loop.run_until_complete(coro)

    async def blocking(self, fn, *args):
        """``fn(*args)``, a blocking wait of the test's, on a thread."""
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


class LMTestCase(AsyncTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.lm = FakeLM()
        cls.addClassCleanup(cls.lm.close)

    def setUp(self):
        super().setUp()
        patcher = mock.patch.dict(os.environ, {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
        patcher.start()
        self.addCleanup(patcher.stop)
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", KEY_ENV):
            os.environ.pop(name, None)
        self.lm.reset()
        self.addCleanup(self.lm.reset)


class ProviderHelpers:
    """For LMTestCases: a provider of the fake LM, and calls to it."""

    def provider(self, **fields) -> OpenAIProvider:
        config = LMConfig(**{"provider": "openai", "model": "test-model", "base_url": self.lm.url, "api_key_env": KEY_ENV, **fields})
        provider = OpenAIProvider(config)
        provider.backoff_base = 0.001
        return provider

    async def acomplete(self, provider=None, ctx=None) -> str:
        provider = provider or self.provider()
        return await provider.complete([{"role": "user", "content": "hi"}], ctx or Context(1, "execute_program", worker=ThreadRunner()))

    def complete(self, provider=None, ctx=None) -> str:
        return self.arun(self.acomplete(provider, ctx))

    def assert_code(self, code: str, provider=None, ctx=None) -> WorkerError:
        with self.assertRaises(WorkerError) as caught:
            self.complete(provider, ctx)
        self.assertEqual(caught.exception.code, code, caught.exception.message)
        return caught.exception

    def idle(self, provider) -> list:
        """The test loop's idle connections to the provider's endpoint."""

        async def idle():
            return list(http_async.idle(provider.endpoint.key))

        return self.arun(idle())


class OpenAIProviderTest(ProviderHelpers, LMTestCase):
    """The provider in-process: request shape, retries, error mapping."""

    def test_request_shape_with_key(self):
        os.environ[KEY_ENV] = SECRET
        self.lm.push(body=chat("hello"))
        self.assertEqual(self.complete(self.provider(temperature=0.5, max_tokens=64)), "hello")
        (request,) = self.lm.requests
        self.assertEqual(request["path"], "/v1/chat/completions")
        self.assertEqual(request["headers"]["Authorization"], f"Bearer {SECRET}")
        self.assertEqual(request["headers"]["Content-Type"], "application/json")
        self.assertEqual(
            request["body"], {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5, "max_tokens": 64}
        )

    def test_no_key_sends_no_authorization(self):
        self.lm.push(body=chat("hello"))
        self.assertEqual(self.complete(), "hello")
        self.assertNotIn("Authorization", self.lm.requests[0]["headers"])
        self.assertEqual(set(self.lm.requests[0]["body"]), {"model", "messages"}, "defaults are left to the server")

    def test_429_honours_retry_after(self):
        provider = self.provider()
        provider.backoff_base = 30.0  # Retry-After, not the backoff, decides the wait
        self.lm.push(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"})
        self.lm.push(body=chat("after the wait"))
        started = time.monotonic()
        self.assertEqual(self.complete(provider), "after the wait")
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 0.95)
        self.assertLess(elapsed, 5)
        self.assertEqual(len(self.lm.requests), 2)

    def test_429_after_retries_is_resource_exhausted(self):
        for _ in range(4):
            self.lm.push(429, {"error": {"message": "rate limited"}})
        error = self.assert_code("resource_exhausted")
        self.assertIn("429", error.message)
        self.assertEqual(len(self.lm.requests), 4, "one request and three retries")

    def test_retry_after_past_the_deadline_is_not_waited(self):
        self.lm.push(429, {"error": {"message": "rate limited"}}, {"Retry-After": "30"})
        ctx = Context(1, "execute_program", deadline=time.monotonic() + 2)
        started = time.monotonic()
        error = self.assert_code("resource_exhausted", ctx=ctx)
        self.assertLess(time.monotonic() - started, 1.5)
        self.assertIn("deadline", error.message)
        self.assertEqual(len(self.lm.requests), 1)

    def test_retry_after_over_the_cap_is_not_waited(self):
        self.lm.push(503, {"error": {"message": "maintenance"}}, {"Retry-After": "120"})
        error = self.assert_code("unavailable")
        self.assertIn("over 60 s", error.message)
        self.assertEqual(len(self.lm.requests), 1)

    def test_retry_after_forms(self):
        self.assertEqual(parse_retry_after("3"), 3.0)
        self.assertEqual(parse_retry_after(" 0.5 "), 0.5)
        self.assertEqual(parse_retry_after("-4"), 0.0)
        self.assertIsNone(parse_retry_after("soon"))
        self.assertIsNone(parse_retry_after(None))
        self.assertIsNone(parse_retry_after("nan"))
        future = email.utils.formatdate(time.time() + 30, usegmt=True)
        self.assertTrue(25 < parse_retry_after(future) <= 30)

    def test_cancel_stops_the_retries(self):
        self.lm.push(429, {"error": {"message": "rate limited"}}, {"Retry-After": "30"})
        ctx = Context(1, "execute_program")

        async def scenario():
            task = asyncio.ensure_future(self.acomplete(ctx=ctx))
            await self.blocking(self.lm.wait_request)
            ctx.cancel("stop")  # the wait before the retry ends at once
            with self.assertRaises(WorkerError) as caught:
                await task
            return caught.exception

        error = self.arun(asyncio.wait_for(scenario(), WAIT))
        self.assertEqual((error.code, error.message), ("canceled", "stop"))
        self.assertEqual(len(self.lm.requests), 1)

    def test_500_then_success(self):
        self.lm.push(500, {"error": {"message": "boom"}})
        self.lm.push(503, b"unavailable")
        self.lm.push(body=chat("recovered"))
        self.assertEqual(self.complete(), "recovered")
        self.assertEqual(len(self.lm.requests), 3)

    def test_5xx_after_retries_is_unavailable(self):
        for _ in range(4):
            self.lm.push(502, {"error": {"message": "bad gateway"}})
        error = self.assert_code("unavailable")
        self.assertIn("502", error.message)
        self.assertIn("bad gateway", error.message)
        self.assertEqual(len(self.lm.requests), 4)

    def test_slow_reply_past_the_timeout(self):
        self.lm.push(body=chat("too late"), hang=True)
        started = time.monotonic()
        error = self.assert_code("deadline_exceeded", self.provider(timeout_ms=200))
        self.assertLess(time.monotonic() - started, 3)
        self.assertIn("0.2 s", error.message)

    def test_request_deadline_bounds_the_call(self):
        self.lm.push(body=chat("too late"), hang=True)
        ctx = Context(1, "execute_program", deadline=time.monotonic() + 0.2)
        started = time.monotonic()
        self.assert_code("deadline_exceeded", ctx=ctx)
        self.assertLess(time.monotonic() - started, 3)

    def test_malformed_bodies_are_internal(self):
        for body in (b"not json", {"choices": []}, {"choices": [{"message": {"content": None}}]}, {"error": "x"}):
            with self.subTest(body=body):
                self.lm.push(200, body)
                self.assert_code("internal")

    def test_client_errors_are_not_retried(self):
        os.environ[KEY_ENV] = SECRET
        cases = [
            (401, "failed_precondition"),
            (403, "failed_precondition"),
            (404, "not_found"),
            (400, "invalid_argument"),
            (422, "invalid_argument"),
        ]
        for status, code in cases:
            with self.subTest(status=status):
                self.lm.requests.clear()
                # Servers echo the key in errors (OpenAI shows part of it): it must not come back.
                self.lm.push(status, {"error": {"message": f"Incorrect API key provided: {SECRET} ({SECRET[:3]}...{SECRET[-16:]})"}})
                error = self.assert_code(code)
                self.assertIn(str(status), error.message)
                self.assertNotIn(SECRET, error.message)
                self.assertNotIn(SECRET[-16:], error.message)
                self.assertEqual(len(self.lm.requests), 1)

    def test_a_refusal_without_a_key_says_where_the_key_comes_from(self):
        self.lm.push(401, {"error": {"message": "missing key"}})
        with mock.patch.dict(os.environ, {KEY_ENV: ""}):
            error = self.assert_code("failed_precondition")
        self.assertIn(f"${KEY_ENV} is unset or empty in the worker's environment", error.message)
        self.assertIn("add it to python.pass_env", error.message)

    def test_unreachable_endpoint_is_unavailable(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        provider = self.provider(base_url=f"http://127.0.0.1:{port}/v1")
        self.assert_code("unavailable", provider)

    def test_a_bad_base_url_is_invalid_argument_not_unavailable(self):
        # configure_lm refuses these; a configuration made otherwise gets the same answer
        # from the request, which sends nothing: a fault of the configuration, not retried.
        for base_url, problem in (
            ("http://[::1", "has an IPv6 address without its closing ']'"),
            ("http://127.0.0.1:abc/v1", "has a port that is not a number from 1 to 65535"),
            ("http://user:S3CR3T@127.0.0.1:99999/v1", "has a port that is not a number from 1 to 65535"),
            ("http://127.0.0.1:9/v\u00e9", "holds a non-ASCII character"),
            ("ftp://127.0.0.1/v1", "is not an http or https URL"),
        ):
            for proxy in ("", self.lm.url.rsplit("/", 1)[0]):
                with self.subTest(base_url=base_url, proxy=proxy), mock.patch.dict(os.environ, {"http_proxy": proxy, "NO_PROXY": ""}):
                    error = self.assert_code("invalid_argument", self.provider(base_url=base_url))
                    self.assertIn("base_url " + problem, error.message)
                    self.assertNotIn("3CR3", error.message)
                    self.assertEqual(self.lm.requests, [])

    def test_urllib_refusing_a_url_is_invalid_argument(self):
        # What is left to urllib and http.client (the proxy path, credentials in the URL):
        # the URL errors they raise as the request is made or sent, a ValueError or
        # http.client.InvalidURL, are the configuration's, never internal or unavailable,
        # and their texts, which may quote the URL's credentials, show none.
        ctx = Context(1, "execute_program", worker=ThreadRunner())
        for base_url, detail in (
            ("http://[::1", "Invalid IPv6 URL"),
            ("http://127.0.0.1:abc/v1", "nonnumeric port: 'abc'"),
            ("http://user:S3CR3T@127.0.0.1:abc/v1", "nonnumeric port: 'abc'"),
        ):
            with self.subTest(base_url=base_url):
                provider = self.provider(base_url=base_url)
                with self.assertRaises(WorkerError) as caught:
                    provider._post_urllib(b"{}", ctx, time.monotonic() + WAIT)
                error = caught.exception
                self.assertEqual(error.code, "invalid_argument", error.message)
                self.assertIn(detail, error.message)
                self.assertTrue(error.message.endswith("(check base_url)"), error.message)
                self.assertNotIn("3CR3", error.message)
                self.assertNotIn("3%3ACR", error.message)
        self.assertEqual(self.lm.requests, [])

    def test_credentials_in_the_base_url_are_basic_authorization(self):
        """A base URL's credentials (percent-decoded) are sent as HTTP Basic authorization
        to the host without them, when no API key is set; a key is sent instead when set."""
        host = self.lm.url.split("://", 1)[1]
        for key, want in ((None, "Basic " + base64.b64encode(b"us:er:S3:CR3T").decode()), ("sk-key", "Bearer sk-key")):
            with self.subTest(key=key), mock.patch.dict(os.environ, {KEY_ENV: key} if key else {}, clear=False):
                if key is None:
                    os.environ.pop(KEY_ENV, None)
                self.lm.requests.clear()
                self.lm.push(body=chat("hello"))
                self.assertEqual(self.complete(self.provider(base_url=f"http://us%3Aer:S3%3ACR3T@{host}")), "hello")
                (request,) = self.lm.requests
                self.assertEqual(request["headers"].get("Authorization"), want)
                self.assertEqual(request["path"], "/v1/chat/completions")
        self.assertEqual(split_credentials("https://h.example/v1"), ("https://h.example/v1", ""))
        self.assertEqual(split_credentials("https://tok@h.example/v1/a@b"), ("https://h.example/v1/a@b", base64.b64encode(b"tok:").decode()))

    def test_redact(self):
        self.assertEqual(redact("key sk-abc", "sk-abc"), "key [REDACTED]")
        self.assertNotIn("0123456789ab", redact("partial 0123456789abcd", SECRET))
        self.assertEqual(redact("text", None), "text")


class ConnectionReuseTest(ProviderHelpers, LMTestCase):
    """Kept-alive connections: reused, replaced when the server drops them, never reused
    after a failed or cancelled exchange."""

    def test_one_connection_serves_many_requests(self):
        for i in range(5):
            self.lm.push(body=chat(f"reply {i}"))
        provider = self.provider()
        self.assertEqual([self.complete(provider) for _ in range(5)], [f"reply {i}" for i in range(5)])
        self.assertEqual(len(self.lm.requests), 5)
        self.assertEqual(len(self.lm.connections), 1, "every request on the first connection")
        self.assertEqual({r["port"] for r in self.lm.requests}, set(self.lm.connections))
        self.assertEqual(self.lm.requests[0]["headers"].get("Connection"), None, "no Connection: close")

    def test_concurrent_requests_open_their_own_connections_then_reuse_them(self):
        for i in range(3):
            self.lm.push(body=chat(f"held {i}"), hang=True)
        provider = self.provider()

        async def three_at_once():
            calls = asyncio.gather(*(self.acomplete(provider) for _ in range(3)))
            for _ in range(3):
                await self.blocking(self.lm.wait_request)
            self.lm.release.set()
            return await calls

        self.assertEqual(sorted(self.arun(three_at_once())), ["held 0", "held 1", "held 2"])
        self.assertEqual(len(self.lm.connections), 3, "one connection per request in flight")
        self.assertEqual(len(self.idle(provider)), 3)
        for i in range(3):
            self.lm.push(body=chat(f"after {i}"))
        self.assertEqual([self.complete(provider) for _ in range(3)], ["after 0", "after 1", "after 2"])
        self.assertEqual(len(self.lm.connections), 3, "the idle ones serve the next requests")
        self.assertEqual(len({r["port"] for r in self.lm.requests[3:]}), 1, "the most recently used one")

    def wait_closed_by_server(self, provider) -> None:
        """Wait until the server has closed its end of the one idle connection (its
        reader reaches the end of the stream)."""

        async def closed():
            (conn,) = http_async.idle(provider.endpoint.key)
            self.assertEqual(await asyncio.wait_for(conn.reader.read(1), WAIT), b"")

        self.arun(closed())

    def test_a_dropped_kept_connection_is_replaced_and_the_request_sent_again(self):
        # The server closes the connection after its answer without saying so; the next
        # request is sent on it anyway (as when the server closes it just as the request
        # goes out), fails before any byte of an answer, and is sent on a new one.
        self.lm.push(body=chat("first"), mode="drop")
        self.lm.push(body=chat("second"))
        provider = self.provider()
        self.assertEqual(self.complete(provider), "first")
        self.wait_closed_by_server(provider)
        with mock.patch.object(http_async.Connection, "usable", lambda conn: True):
            self.assertEqual(self.complete(provider), "second")
        self.assertEqual(len(self.lm.connections), 2)
        self.assertEqual(len(self.lm.requests), 2, "the request reached the server once")

    def test_an_idle_connection_closed_by_the_server_is_not_used(self):
        self.lm.push(body=chat("first"), mode="drop")
        self.lm.push(body=chat("second"))
        provider = self.provider()
        self.assertEqual(self.complete(provider), "first")
        self.wait_closed_by_server(provider)
        self.assertEqual(self.complete(provider), "second")
        self.assertEqual(len(self.lm.connections), 2)
        self.assertEqual(len(self.lm.requests), 2)

    def test_a_dropped_fresh_connection_is_not_retried(self):
        # Only a reused connection may have been closed while idle: on a new one, the server
        # closing without an answer is an error (5xx-like: unavailable), sent once.
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(4)
            port = listener.getsockname()[1]
            accepted = []

            def serve():
                for _ in range(2):
                    try:
                        conn, _ = listener.accept()
                    except OSError:
                        return
                    accepted.append(conn)
                    conn.recv(65536)
                    conn.close()

            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            provider = self.provider(base_url=f"http://127.0.0.1:{port}/v1")
            provider.max_retries = 0
            error = self.assert_code("unavailable", provider)
            self.assertIn("127.0.0.1", error.message)
            self.assertEqual(len(accepted), 1, "no second connection for a fresh one")

    def test_chunked_and_closing_answers(self):
        self.lm.push(body=chat("chunked"), mode="chunked")
        self.lm.push(body=chat("after chunked"))
        self.lm.push(body=chat("closing"), mode="close")
        self.lm.push(body=chat("after closing"))
        provider = self.provider()
        self.assertEqual([self.complete(provider) for _ in range(4)], ["chunked", "after chunked", "closing", "after closing"])
        self.assertEqual(len(self.lm.connections), 2, "a new connection only after Connection: close")

    def test_error_answers_keep_the_connection(self):
        self.lm.push(404, {"error": {"message": "no such model"}})
        self.lm.push(body=chat("fine"))
        provider = self.provider()
        self.assert_code("not_found", provider)
        self.assertEqual(self.complete(provider), "fine")
        self.assertEqual(len(self.lm.connections), 1)

    def test_no_reuse_after_a_time_out(self):
        self.lm.push(body=chat("too late"), hang=True)
        self.assert_code("deadline_exceeded", self.provider(timeout_ms=200))
        self.lm.reset()
        self.lm.push(body=chat("fresh"))
        self.assertEqual(self.complete(), "fresh")
        self.assertEqual(len(self.lm.connections), 1, "a new connection (the timed-out one is closed)")

    def test_cancel_during_the_exchange(self):
        # Cancelling the request cancels its task wherever it waits: the connection it was
        # using is closed (the server sees its client go), never kept, and the next request
        # opens a new one.
        self.lm.push(body=chat("first"))
        self.lm.push(body=chat("late"), hang=True)
        self.lm.push(body=chat("next"))
        provider = self.provider()
        self.assertEqual(self.complete(provider), "first")

        async def cancelled():
            task = asyncio.ensure_future(self.acomplete(provider))
            await self.blocking(self.lm.wait_request)
            await self.blocking(self.lm.wait_request)
            task.cancel()
            started = time.monotonic()
            with self.assertRaises(asyncio.CancelledError):
                await task
            return time.monotonic() - started

        self.assertLess(self.arun(cancelled()), 1)
        self.assertEqual(self.idle(provider), [], "the cancelled exchange's connection is not kept")
        self.assertEqual(self.complete(provider), "next")
        self.assertEqual(len(self.lm.connections), 2, "the first one, then a new one after the cancel")
        self.assertEqual(self.lm.requests[1]["port"], self.lm.requests[0]["port"], "the cancelled request reused the first")
        self.assertNotEqual(self.lm.requests[2]["port"], self.lm.requests[1]["port"])

    def test_the_worker_reuses_connections(self):
        worker = InProcessWorker(self)
        worker.ok("configure_lm", {"provider": "openai", "model": "m", "base_url": self.lm.url, "engine": "native"})
        spec = spec_of([("q", "")], [("a", "")])
        for i in range(12):
            self.lm.push(body=chat(sections(a=f"answer {i}")))
        for i in range(12):
            self.assertEqual(worker.ok("execute_program", {"spec": spec, "inputs": {"q": "?"}})["outputs"], {"a": f"answer {i}"})
        self.assertEqual(len(self.lm.requests), 12)
        self.assertEqual(len(self.lm.connections), 1, "one connection serves the sequential requests")

    def test_proxy_from_the_environment_is_used(self):
        # As urllib does: http_proxy applies to hosts outside no_proxy.
        os.environ["http_proxy"] = self.lm.url.rsplit("/", 1)[0]
        self.lm.push(body=chat("via the proxy"))
        provider = self.provider(base_url="http://lm.example.invalid/v1")
        self.assertEqual(self.complete(provider), "via the proxy")
        self.assertEqual(self.lm.requests[0]["path"], "http://lm.example.invalid/v1/chat/completions")
        del os.environ["http_proxy"]
        self.lm.push(body=chat("direct"))
        self.assertEqual(self.complete(self.provider()), "direct")
        self.assertEqual(self.lm.requests[1]["path"], "/v1/chat/completions")

    def test_key_with_line_breaks_is_refused(self):
        os.environ[KEY_ENV] = "sk-abc\r\nX-Injected: 1"
        error = self.assert_code("invalid_argument")
        self.assertNotIn("sk-abc", error.message)
        self.assertEqual(self.lm.requests, [])


class ContextCancelTest(unittest.TestCase):
    def test_on_cancel(self):
        ctx = Context(1, "x")
        seen = []
        remove = ctx.on_cancel(lambda: seen.append("a"))
        ctx.on_cancel(lambda: seen.append("b"))
        remove()
        ctx.cancel()
        ctx.cancel()
        self.assertEqual(seen, ["b"])
        ctx.on_cancel(lambda: seen.append("late"))
        self.assertEqual(seen, ["b", "late"], "called at once once cancelled")


class NativeEngineTest(LMTestCase):
    """The native engine through the command set, in-process."""

    TYPED = spec_of(
        [("question", ""), ("n", "int")],
        [("s", ""), ("i", "int"), ("f", "float"), ("b", "bool"), ("l", "list[int]"), ("d", "dict[str, float]"), ("lit", "Literal['red', 'green']")],
        instructions="Answer carefully.",
    )

    def setUp(self):
        super().setUp()
        self.w = InProcessWorker(self)
        self.w.ok("configure_lm", {"provider": "openai", "model": "m1", "base_url": self.lm.url, "api_key_env": KEY_ENV, "engine": "native", "temperature": 0})

    def execute(self, spec, inputs):
        return self.w.request("execute_program", {"spec": spec, "inputs": inputs})

    def test_typed_outputs(self):
        self.lm.push(body=chat(sections(s="a sentence", i="42", f="0.9", b="yes", l="[1, 2, 3]", d='{"x": 1, "y": 0.5}', lit="'green'")))
        reply = self.execute(self.TYPED, {"question": "What?", "n": 3})
        self.assertTrue(reply["success"], reply)
        outputs = reply["result"]["outputs"]
        self.assertEqual(outputs, {"s": "a sentence", "i": 42, "f": 0.9, "b": True, "l": [1, 2, 3], "d": {"x": 1.0, "y": 0.5}, "lit": "green"})
        self.assertEqual([type(outputs[k]) for k in ("i", "f", "b", "l", "d")], [int, float, bool, list, dict])
        self.assertEqual(list(outputs), ["s", "i", "f", "b", "l", "d", "lit"])

        body = self.lm.requests[0]["body"]
        self.assertEqual((body["model"], body["temperature"]), ("m1", 0))
        system, user = body["messages"]
        self.assertEqual((system["role"], user["role"]), ("system", "user"))
        for text in ("`question` (str)", "`n` (int)", "`l` (list[int])", "`lit` (Literal['red', 'green'])", "[[ ## d ## ]]", "[[ ## completed ## ]]", "Answer carefully."):
            self.assertIn(text, system["content"])
        self.assertIn("[[ ## question ## ]]\nWhat?", user["content"])
        self.assertIn("[[ ## n ## ]]\n3", user["content"])
        self.assertIn("`[[ ## s ## ]]`, then `[[ ## i ## ]]`", user["content"])

    def test_chain_of_thought_asks_for_reasoning_first(self):
        spec = spec_of([("question", "")], [("answer", "int")], kind="chain_of_thought")
        self.lm.push(body=chat(sections(reasoning="Two and two.", answer="4")))
        reply = self.execute(spec, {"question": "2+2?"})
        self.assertEqual(reply["result"]["outputs"], {"reasoning": "Two and two.", "answer": 4})
        self.assertEqual(list(reply["result"]["outputs"]), ["reasoning", "answer"])
        user = self.lm.requests[0]["body"]["messages"][1]["content"]
        self.assertIn("starting with the field `[[ ## reasoning ## ]]`, then `[[ ## answer ## ]]`", user)

    def test_a_reply_that_does_not_parse_is_asked_again_in_json(self):
        """As DSPy 3.4.1's ChatAdapter falls back to JSONAdapter: a reply without the
        sections (a JSON one too) is followed by JSONAdapter's request, the same request
        but for its messages, whose reply is read as a JSON object (in a code fence, text
        around it); the usage is both calls'."""
        spec = spec_of([("q", "")], [("a", ""), ("n", "int")])
        self.lm.push(body={**chat('{"a": "first", "n": 1}'), "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}})
        self.lm.push(body={**chat('Here it is:\n```json\n{"a": "x", "n": 2, "other": 3}\n```\nHope it helps {.'),
                           "usage": {"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24}})
        result = self.execute(spec, {"q": "?"})["result"]
        self.assertEqual(result["outputs"], {"a": "x", "n": 2})
        self.assertEqual(result["usage"], {"prompt_tokens": 30, "completion_tokens": 6, "total_tokens": 36})
        first, second = (r["body"] for r in self.lm.requests)
        self.assertEqual({k: v for k, v in first.items() if k != "messages"}, {k: v for k, v in second.items() if k != "messages"})
        system, user = second["messages"]
        self.assertIn('Outputs will be a JSON object with the following fields.\n\n{\n  "a": "{a}",\n  "n": "{n}', system["content"])
        self.assertEqual(user["content"], "[[ ## q ## ]]\n?\n\nRespond with a JSON object in the following order of fields: `a`, then `n` (must be formatted as a valid Python int).")

    def test_the_json_request_asks_for_the_response_format_dspy_asks_for(self):
        """JSONAdapter's request has the response_format DSPy 3.4.1 sends for the model (its
        catalog's): structured outputs, JSON mode without a response schema or for a dict
        output, none for a model the catalog does not know (m1); the first request none."""
        spec = spec_of([("q", "")], [("a", ""), ("n", "int")])
        strict = {"type": "json_schema", "json_schema": {"name": "DSPyProgramOutputs", "schema": {
            "additionalProperties": False, "properties": {"a": {"title": "A", "type": "string"}, "n": {"title": "N", "type": "integer"}},
            "required": ["a", "n"], "title": "DSPyProgramOutputs", "type": "object"}, "strict": True}}
        cases = [("gpt-4o-mini", spec, strict), ("gpt-3.5-turbo", spec, {"type": "json_object"}),
                 ("gpt-4o-mini", spec_of([("q", "")], [("d", "dict[str, int]")]), {"type": "json_object"}), ("m1", spec, None)]
        for model, program, want in cases:
            with self.subTest(model=model, want=want):
                self.lm.reset()
                self.w.ok("configure_lm", {"provider": "openai", "model": model, "base_url": self.lm.url, "engine": "native"})
                self.lm.push(body=chat("no sections"))
                self.lm.push(body=chat('{"a": "x", "n": 2, "d": {}}'))
                self.assertTrue(self.execute(program, {"q": "?"})["success"])
                first, second = (r["body"] for r in self.lm.requests)
                self.assertNotIn("response_format", first)
                self.assertEqual(second.get("response_format"), want)

    def test_a_second_reply_that_does_not_parse_names_the_field(self):
        """When JSONAdapter's reply does not parse either, the error names the field in
        both replies; a streamed reply is not asked again (DSPy does not fall back after
        stream output)."""
        spec = spec_of([("q", "")], [("a", ""), ("n", "int")])
        self.lm.push(body=chat(sections(a="x", n="many")))
        self.lm.push(body=chat('{"a": "x"} and {"n": 2}'))
        error = self.execute(spec, {"q": "?"})["error"]
        self.assertEqual((error["code"], error["type"]), ("internal", "OutputError"))
        self.assertEqual(error["message"], 'output n: expected int, got string "many"; asked again for JSON, as DSPy\'s JSONAdapter asks: '
                                           'output "n" is missing in the LM\'s JSON reply')
        self.assertEqual(len(self.lm.requests), 2)
        self.lm.push(body=chat("no sections"))
        self.lm.push(body=chat("nor JSON"))
        error = self.execute(spec, {"q": "?"})["error"]
        self.assertEqual(error["message"], 'output "a" is missing in the LM\'s reply (no [[ ## a ## ]] section); asked again for JSON, as '
                                           'DSPy\'s JSONAdapter asks: output "a" is missing in the LM\'s JSON reply (it holds no JSON object)')
        self.lm.reset()
        self.lm.push(body=["no ", "sections"], mode="sse")
        self.w.auto_credit = 16
        reply = self.w.request("execute_program", {"spec": spec, "inputs": {"q": "?"}}, stream=16)
        self.assertEqual(reply["error"]["message"], 'output "a" is missing in the LM\'s reply (no [[ ## a ## ]] section)')
        self.assertEqual(len(self.lm.requests), 1)

    def test_the_second_request_keeps_to_the_deadline(self):
        """JSONAdapter's request is one more of the run's: the run's deadline ends it."""
        spec = spec_of([("q", "")], [("a", "")])
        self.lm.push(body=chat("no sections"))
        self.lm.push(hang=True)
        started = time.monotonic()
        error = self.w.request("execute_program", {"spec": spec, "inputs": {"q": "?"}}, deadline_ms=500)["error"]
        self.assertEqual(error["code"], "deadline_exceeded", error["message"])
        self.assertLess(time.monotonic() - started, WAIT)
        self.assertEqual(len(self.lm.requests), 2)
        self.assertIn("Respond with a JSON object", self.lm.requests[1]["body"]["messages"][-1]["content"])

    def test_missing_output_names_it(self):
        self.lm.push(body=chat(sections(s="x", i="1", b="no", l="[]", d="{}", lit="red")))
        self.lm.push(body=chat("{}"))  # JSONAdapter's request, which DSPy's ChatAdapter falls back to
        error = self.execute(self.TYPED, {"question": "?", "n": 1})["error"]
        self.assertEqual(error["code"], "internal")
        self.assertEqual(error["type"], "OutputError")
        self.assertIn('output "f" is missing', error["message"])

    def test_unconvertible_output_names_it(self):
        self.lm.push(body=chat(sections(s="x", i="many", f="1", b="no", l="[]", d="{}", lit="red")))
        self.lm.push(body=chat("{}"))  # JSONAdapter's request, which DSPy's ChatAdapter falls back to
        error = self.execute(self.TYPED, {"question": "?", "n": 1})["error"]
        self.assertEqual(error["code"], "internal")
        self.assertIn("output i: expected int", error["message"])

    def test_lm_errors_reach_the_host(self):
        self.lm.push(404, {"error": {"message": "model m1 does not exist"}})
        error = self.execute(self.TYPED, {"question": "?", "n": 1})["error"]
        self.assertEqual(error["code"], "not_found")
        self.assertIn("model m1 does not exist", error["message"])

    def test_configure_makes_no_call_unless_verify(self):
        self.assertEqual(self.lm.requests, [], "configure_lm in setUp made no request")
        args = {"provider": "openai", "model": "m2", "base_url": self.lm.url, "engine": "native"}
        self.lm.push(body=chat("OK"))
        self.assertEqual(self.w.ok("configure_lm", {**args, "verify": True}), {"provider": "openai", "model": "m2", "engine": "native"})
        self.assertEqual(len(self.lm.requests), 1)
        self.assertEqual(self.lm.requests[0]["body"]["model"], "m2")
        self.lm.push(401, {"error": {"message": "invalid key"}})
        error = self.w.error("configure_lm", {**args, "model": "m3", "verify": True})
        self.assertEqual(error["code"], "failed_precondition")
        self.assertEqual(self.w.ok("get_stats")["lm"], {"provider": "openai", "model": "m2"}, "a failed verify changes nothing")


class OpenAIProcessTest(LMTestCase):
    """Through a real worker process: the key never shows, cancellation is prompt."""

    def test_key_never_appears(self):
        os.environ[KEY_ENV] = SECRET
        worker = WorkerProcess(self, "--log-level", "debug")
        base = {"provider": "openai", "model": "m", "base_url": self.lm.url, "api_key_env": KEY_ENV, "engine": "native"}
        leak = {"error": {"message": f"Incorrect API key provided: {SECRET}"}}
        self.lm.push(401, leak)
        replies = [worker.request("configure_lm", {**base, "verify": True})]
        self.assertEqual(replies[0]["error"]["code"], "failed_precondition")
        replies.append(worker.request("configure_lm", base))
        self.assertTrue(replies[-1]["success"])
        spec = spec_of([("q", "")], [("a", "")])
        self.lm.push(500, leak)
        self.lm.push(body=chat(sections(a="fine")))
        replies.append(worker.request("execute_program", {"spec": spec, "inputs": {"q": "?"}}))
        self.assertTrue(replies[-1]["success"], replies[-1])
        self.lm.push(403, leak)
        replies.append(worker.request("execute_program", {"spec": spec, "inputs": {"q": "?"}}))
        self.assertEqual(replies[-1]["error"]["code"], "failed_precondition")
        replies.append(worker.request("get_stats"))
        replies.append(worker.request("describe"))
        self.assertEqual(self.lm.requests[0]["headers"]["Authorization"], f"Bearer {SECRET}", "the key was used")
        worker.request("shutdown")
        self.assertEqual(worker.wait_exit(), 0)
        stderr = worker.stderr_text()
        self.assertIn("LM request failed, retrying", stderr)
        for text in [stderr, *(json.dumps(r) for r in replies)]:
            self.assertNotIn(SECRET, text)
            self.assertNotIn(SECRET[6:18], text)

    def test_http_client_loaded_on_first_use_without_urllib(self):
        from .test_imports import bare_modules

        worker = WorkerProcess(self, "--diagnostics")
        worker.request("configure_lm", {"provider": "openai", "model": "m", "base_url": self.lm.url, "engine": "native"})
        before = set(worker.request("modules")["result"]["modules"])
        self.lm.push(body=chat(sections(a="x")))
        reply = worker.request("execute_program", {"spec": spec_of([("q", "")], [("a", "")]), "inputs": {"q": "?"}})
        self.assertTrue(reply["success"], reply)
        after = set(worker.request("modules")["result"]["modules"])
        bare = bare_modules()
        self.assertNotIn("dspgo_worker.http_async", before, "configure_lm makes no request")
        self.assertIn("dspgo_worker.http_async", after)
        if "http.client" not in bare:
            self.assertNotIn("http.client", after, "the HTTP client is the package's own")
        if "urllib.request" not in bare:
            self.assertNotIn("urllib.request", after, "urllib is only for proxies")

    def test_cancel_during_a_request(self):
        worker = WorkerProcess(self)
        worker.request("configure_lm", {"provider": "openai", "model": "m", "base_url": self.lm.url, "engine": "native"})
        self.lm.push(body=chat("late"), hang=True)
        request_id = worker.call("execute_program", {"spec": spec_of([("q", "")], [("a", "")]), "inputs": {"q": "?"}})
        self.lm.wait_request()
        started = time.monotonic()
        self.assertEqual(worker.request("cancel", {"id": request_id})["result"]["state"], "running")
        self.assertEqual(worker.response(request_id)["error"]["code"], "canceled")
        self.assertLess(time.monotonic() - started, 2)


if __name__ == "__main__":
    unittest.main()
