"""The OpenAI provider's HTTP client on asyncio (``http_async``): time limits, bodies,
kept-alive connections and what ends them, against scripted servers and the test LM
server."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
from unittest import mock

from dspgo_worker import http_async
from dspgo_worker.context import Context
from dspgo_worker.errors import WorkerError
from dspgo_worker.http_async import HTTPProtocolError, Limit
from dspgo_worker.lmconfig import LMConfig
from dspgo_worker.openai_provider import OpenAIProvider
from dspgo_worker.transport import Endpoint

from .helpers import WAIT
from .lmserver import LMServer
from .test_openai import AsyncTestCase

MESSAGES = [{"role": "user", "content": "hi"}]


class LimitTest(AsyncTestCase):
    def test_a_limit_reached_is_a_time_out(self):
        async def limited():
            started = time.monotonic()
            with self.assertRaises(TimeoutError):
                with Limit(time.monotonic() + 0.05):
                    await asyncio.sleep(WAIT)
            return time.monotonic() - started

        self.assertLess(self.arun(limited()), WAIT / 2)

    def test_a_limit_moved_later(self):
        async def moved():
            started = time.monotonic()
            with self.assertRaises(TimeoutError):
                with Limit(time.monotonic() + 0.01) as limit:
                    limit.end = time.monotonic() + 0.2
                    await asyncio.sleep(WAIT)
            return time.monotonic() - started

        elapsed = self.arun(moved())
        self.assertGreaterEqual(elapsed, 0.2)
        self.assertLess(elapsed, WAIT / 2)

    def test_a_cancel_from_elsewhere_passes_through(self):
        async def cancelled():
            async def limited():
                with Limit(time.monotonic() + WAIT):
                    await asyncio.sleep(WAIT)

            task = asyncio.ensure_future(limited())
            await asyncio.sleep(0)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task

        self.arun(asyncio.wait_for(cancelled(), WAIT))

    @unittest.skipIf(sys.version_info < (3, 11), "a task counts its cancellations from Python 3.11 on")
    def test_a_cancel_from_elsewhere_as_the_limit_fires_wins(self):
        fire = Limit._fire

        def fire_and_cancel(limit):
            fire(limit)
            limit._task.cancel()  # the request's cancellation, in the same turn of the loop

        async def both():
            with self.assertRaises(asyncio.CancelledError):
                with Limit(time.monotonic() + 0.01):
                    await asyncio.sleep(WAIT)

        with mock.patch.object(Limit, "_fire", fire_and_cancel):
            self.arun(asyncio.wait_for(both(), WAIT))

    def test_nothing_happens_within_the_limit(self):
        async def quick():
            with Limit(time.monotonic() + 0.05):
                await asyncio.sleep(0)
            await asyncio.sleep(0.1)  # past the limit, outside it: no cancellation
            return "done"

        self.assertEqual(self.arun(quick()), "done")


class ScriptedServer:
    """A server on 127.0.0.1 that answers the n-th request it reads with ``answers[n]``
    (raw bytes; None closes the connection instead), and closes a connection after an
    answer when ``close_after`` holds its index (once ``closing`` is set, when given).
    ``connections`` counts accepted ones."""

    def __init__(self, answers, close_after=(), closing=None, tls=None):
        self.answers = list(answers)
        self.close_after = set(close_after)
        self.closing = closing
        self.tls = tls  # the server's ssl.SSLContext, for https
        self.requests = 0
        self.connections = 0

    async def start(self):
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0, ssl=self.tls)
        port = self.server.sockets[0].getsockname()[1]
        return Endpoint(f"{'https' if self.tls else 'http'}://127.0.0.1:{port}/v1/chat/completions")

    async def serve(self, reader, writer):
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                await reader.readexactly(length)
                n = self.requests
                self.requests += 1
                answer = self.answers[n]
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
                if n in self.close_after:
                    if self.closing is not None:
                        await self.closing.wait()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self):
        # Python 3.12's wait_closed waits for every connection: the client's kept ones first.
        http_async.close_idle()
        self.server.close()
        await self.server.wait_closed()


def request(body: bytes = b"{}") -> tuple[bytes, bytes]:
    """A request's head and body."""
    return b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body), body


class HTTPClientTest(AsyncTestCase):
    def exchange(self, answers, close_after=(), reads=None, sends=None):
        """Send ``sends`` requests (default: one per answer) through the client; each
        answer's ``(status, headers, body, reusable)``, or the exception it raised; and
        the server."""
        server = ScriptedServer(answers, close_after)

        async def run():
            endpoint = await server.start()
            out = []
            try:
                for _ in range(len(answers) if sends is None else sends):
                    try:
                        conn, response = await http_async.exchange(endpoint, *request())
                        try:
                            body = await response.read(reads or 1 << 20)
                        except BaseException:
                            conn.abort()
                            raise
                        out.append((response.status, response.headers, body, response.reusable))
                        http_async.release(endpoint.key, conn, response)
                    except (HTTPProtocolError, OSError) as exc:
                        out.append(exc)
            finally:
                await server.stop()
            return out

        return self.arun(asyncio.wait_for(run(), WAIT)), server

    def test_bodies_of_every_kind(self):
        answers = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Twice: a\r\nx-twice: b\r\n\r\nhello",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
        ]
        out, server = self.exchange(answers, close_after={4})
        self.assertEqual(out[0], (200, {"content-length": "5", "x-twice": "a, b"}, b"hello", True))
        self.assertEqual(out[1][0::2], (200, b"abcdefg"))
        self.assertTrue(out[1][3])
        self.assertEqual((out[2][0], out[2][2], out[2][3]), (204, b"", True))
        self.assertEqual((out[3][0], out[3][3]), (404, True))
        self.assertEqual((out[4][0], out[4][2], out[4][3]), (200, b"until the end", False))
        self.assertEqual(server.connections, 1, "one connection until the answer without a length")

    def test_connection_close_and_http_1_0(self):
        answers = [
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na",
            b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nb",
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nc",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nd",
        ]
        out, server = self.exchange(answers, close_after={0, 1})
        self.assertEqual([(body, reusable) for _, _, body, reusable in out], [(b"a", False), (b"b", False), (b"c", True), (b"d", True)])
        self.assertEqual(server.connections, 3)

    def test_a_body_not_read_whole_is_not_kept(self):
        out, server = self.exchange([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"], reads=4)
        self.assertEqual([(body, reusable) for _, _, body, reusable in out], [(b"0123", False), (b"ok", True)])
        self.assertEqual(server.connections, 2)

    def test_malformed_answers(self):
        answers = [
            b"SMTP ready\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        ]
        out, _ = self.exchange(answers, close_after={4})
        for i, outcome in enumerate(out):
            with self.subTest(answer=answers[i]):
                self.assertIsInstance(outcome, HTTPProtocolError)

    def test_a_server_closing_a_kept_connection_as_a_request_arrives(self):
        # The second request goes out on the kept connection, which the server closes
        # without an answer: it is sent once more, on a new connection.
        ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        out, server = self.exchange([ok, None, ok], sends=2)
        self.assertEqual([o[2] for o in out], [b"ok", b"ok"])
        self.assertEqual((server.requests, server.connections), (3, 2))

    def test_a_fresh_connection_closed_without_an_answer_is_an_error(self):
        out, server = self.exchange([None])
        self.assertIsInstance(out[0], HTTPProtocolError)
        self.assertEqual((server.requests, server.connections), (1, 1), "sent once")

    def test_idle_connections_are_capped(self):
        ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        server = ScriptedServer([ok] * 6)

        async def run():
            endpoint = await server.start()
            try:
                opened = [await http_async.exchange(endpoint, *request()) for _ in range(6)]
                for conn, response in opened:
                    self.assertEqual(await response.read(100), b"ok")
                    http_async.release(endpoint.key, conn, response)
                idle = http_async.idle(endpoint.key)
                self.assertEqual([c for c, _ in opened[-4:]], idle, "the latest kept, the oldest closed")
                self.assertTrue(all(conn.writer.transport.is_closing() for conn, _ in opened[:2]))
            finally:
                await server.stop()

        with mock.patch.object(http_async, "MAX_IDLE", 4):
            self.arun(asyncio.wait_for(run(), WAIT))
        self.assertEqual(server.connections, 6)


    def test_an_idle_connection_the_server_closed_is_dropped_when_another_comes_back(self):
        ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        server = ScriptedServer([ok] * 3, close_after={0})
        async def run():
            server.closing = asyncio.Event()
            endpoint = await server.start()
            try:
                first = await http_async.exchange(endpoint, *request())
                second = await http_async.exchange(endpoint, *request())
                for conn, response in (first, second):
                    self.assertEqual(await response.read(100), b"ok")
                    http_async.release(endpoint.key, conn, response)
                self.assertEqual(http_async.idle(endpoint.key), [first[0], second[0]])
                server.closing.set()
                self.assertEqual(await asyncio.wait_for(first[0].reader.read(1), WAIT), b"", "the server closed the first")
                conn, response = await http_async.exchange(endpoint, *request())
                self.assertIs(conn, second[0], "the most recently used one")
                self.assertEqual(await response.read(100), b"ok")
                http_async.release(endpoint.key, conn, response)
                self.assertEqual(http_async.idle(endpoint.key), [second[0]])
                self.assertTrue(first[0].writer.transport.is_closing())
            finally:
                await server.stop()

        self.arun(asyncio.wait_for(run(), WAIT))


class TLSTest(AsyncTestCase):
    """https: the connection is verified, kept and reused, and replaced once the server
    closes it."""

    def setUp(self):
        super().setUp()
        if shutil.which("openssl") is None:
            self.skipTest("no openssl command to make a test certificate")
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        self.cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", self.cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True, timeout=WAIT,
        )
        self.server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_tls.load_cert_chain(self.cert, key)

    def test_https_keeps_and_replaces_connections(self):
        ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        server = ScriptedServer([ok] * 3, close_after={1}, tls=self.server_tls)
        trusting = http_async.ssl_context()  # the default one: the test's certificate is unknown to it
        self.assertEqual(trusting.verify_mode, ssl.CERT_REQUIRED)

        async def run():
            server.closing = asyncio.Event()
            client = ssl.create_default_context(cafile=self.cert)
            endpoint = await server.start()
            try:
                with mock.patch.object(http_async, "_ssl_context", client):
                    for _ in range(2):
                        conn, response = await http_async.exchange(endpoint, *request())
                        self.assertEqual(await response.read(100), b"ok")
                        http_async.release(endpoint.key, conn, response)
                    (kept,) = http_async.idle(endpoint.key)
                    server.closing.set()
                    self.assertEqual(await asyncio.wait_for(kept.reader.read(1), WAIT), b"", "the server closed it")
                    conn, response = await http_async.exchange(endpoint, *request())
                    self.assertIsNot(conn, kept)
                    self.assertEqual(await response.read(100), b"ok")
                    http_async.release(endpoint.key, conn, response)
                http_async.close_idle()  # a new connection, with the default context:
                with self.assertRaises(http_async.Unreachable) as caught:  # verified against the system's authorities
                    await http_async.exchange(endpoint, *request())
                self.assertIn("CERTIFICATE_VERIFY_FAILED", str(caught.exception))
            finally:
                await server.stop()

        self.arun(asyncio.wait_for(run(), WAIT))
        self.assertEqual((server.connections, server.requests), (2, 3), "the first served two requests")


class LMServerTest(AsyncTestCase):
    """Against the test LM server: cancels it sees, connections it drops, and many
    requests at once."""

    def setUp(self):
        super().setUp()
        self.lm = LMServer(self)

    def provider(self, model="test-model", **fields) -> OpenAIProvider:
        return OpenAIProvider(LMConfig(provider="openai", model=model, base_url=self.lm.url, **fields))

    async def complete(self, provider, text="hi"):
        return await provider.complete([{"role": "user", "content": text}], Context(1, "execute_program"))

    def test_cancel_mid_request_closes_the_connection(self):
        slow = self.provider("test-model+latency=30s")
        quick = self.provider()

        async def run():
            await self.complete(quick)
            (kept,) = http_async.idle(quick.endpoint.key)
            task = asyncio.ensure_future(self.complete(slow))
            await asyncio.get_running_loop().run_in_executor(None, lambda: self.lm.wait(requests=2))
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            self.assertTrue(kept.writer.transport.is_closing(), "the cancelled exchange's connection is closed")
            self.assertEqual(http_async.idle(quick.endpoint.key), [], "and not kept")
            await asyncio.get_running_loop().run_in_executor(None, lambda: self.lm.wait(canceled=1))
            self.assertIn("test reply", await self.complete(quick))

        self.arun(asyncio.wait_for(run(), WAIT))
        requests = self.lm.requests()
        self.assertEqual(len(requests), 3)

    def test_a_dropped_request_is_sent_once_more_then_fails(self):
        quick = self.provider()
        dropping = self.provider("test-model+drop")

        async def run():
            await self.complete(quick)  # leaves a kept connection
            with self.assertRaises(WorkerError) as caught:
                await self.complete(dropping)
            return caught.exception

        error = self.arun(asyncio.wait_for(run(), WAIT))
        self.assertEqual(error.code, "unavailable")
        self.assertEqual([r["model"] for r in self.lm.requests()], ["test-model", "test-model+drop", "test-model+drop"],
                         "sent again once, on a new connection, after the kept one was dropped")

    def test_many_requests_at_once(self):
        provider = self.provider("test-model+latency=200ms")
        n = 400

        async def run():
            started = time.monotonic()
            replies = await asyncio.gather(*(self.complete(provider, f"question {i}") for i in range(n)))
            elapsed = time.monotonic() - started
            return replies, elapsed, len(http_async.idle(provider.endpoint.key))

        with mock.patch.object(http_async, "MAX_IDLE", 16):
            replies, elapsed, idle = self.arun(asyncio.wait_for(run(), WAIT))
        self.assertEqual(len(replies), n)
        self.assertTrue(all("test reply" in r for r in replies))
        self.assertLess(elapsed, WAIT / 2, "in flight together, not one after the other")
        self.assertEqual(idle, 16, "at most MAX_IDLE kept")
        self.assertEqual(len(self.lm.requests()), n)


if __name__ == "__main__":
    unittest.main()
