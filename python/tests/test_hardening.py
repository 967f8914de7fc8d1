"""Frames a worker must answer although it cannot decode them: bytes that are not UTF-8 with
a readable id, and results of calls to the host that break the protocol."""

import struct
import unittest

from dspgo_worker.protocol import FrameError, decode_message, recover_message

from .helpers import WorkerProcess, vector_bytes

#: Sequences that are not UTF-8: a stray continuation byte, a lead byte alone, a truncated
#: sequence, an overlong form, an encoded surrogate, a code point beyond U+10FFFF.
BAD = [b"\xff", b"\x80", b"\xc3", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


class RecoverTest(unittest.TestCase):
    def test_recover_message(self):
        body = b'{"id":7,"command":"p\xffing"}'
        with self.assertRaises(FrameError) as caught:
            decode_message(body)
        self.assertEqual(caught.exception.kind, "invalid_utf8")
        self.assertEqual(recover_message(body)["id"], 7)
        for body in (b'{"id":7,"command":\xff}', b'{"\xff":7}', b'{"id":"\xff"}', b'["\xff"]', b"\xff"):
            with self.subTest(body=body):
                self.assertIsNone(recover_message(body))


class AnsweredTest(unittest.TestCase):
    def setUp(self):
        self.worker = WorkerProcess(self, "--diagnostics")

    def test_bad_utf8_with_a_readable_id_is_answered(self):
        """Every frame whose id can be read gets an answer: invalid_argument, at once."""
        bodies = []
        for bad in BAD:
            bodies += [
                b'{"id":%d,"command":"echo","args":{"value":"a' + bad + b'"}}',
                b'{"id":%d,"command":"echo","args":{"' + bad + b'":1}}',
                b'{"command":"ec' + bad + b'ho","id":%d}',
            ]
        self.assertEqual(len(bodies), 21)
        for n, body in enumerate(bodies):
            request_id = 1000 + n
            with self.subTest(body=body):
                self.worker.send_raw(frame(body % request_id))
                reply = self.worker.response(request_id)
                self.assertFalse(reply["success"], reply)
                self.assertEqual(reply["error"]["code"], "invalid_argument")
                self.assertIn("UTF-8", reply["error"]["message"])
        # The shared vector, whose id (1) is readable, is answered too.
        self.worker.send_raw(vector_bytes("invalid_utf8"))
        self.assertEqual(self.worker.response(1)["error"]["code"], "invalid_argument")
        self.assertTrue(self.worker.request("ping")["success"], "the stream carries on")

    def test_a_streamed_request_is_answered_with_its_count(self):
        self.worker.send_raw(frame(b'{"id":900,"command":"stream_count","args":{"n":"\xff"},"stream":4}'))
        reply = self.worker.response(900)
        self.assertEqual(reply["error"]["code"], "invalid_argument")
        self.assertEqual(reply["chunks"], 0)

    def test_bad_bytes_outside_strings_are_dropped(self):
        self.worker.send_raw(frame(b'{"id":901,"command":\xff}'))
        request_id = self.worker.call("ping")
        reply = self.worker.recv()  # the very next frame is the ping's answer
        self.assertEqual(reply["id"], request_id)

    def _call_pending(self) -> tuple[int, int]:
        """Start a call_tool request; returns its id and the id of its call to the host."""
        request_id = self.worker.call("call_tool", {"tool": "t"})
        self.worker.wait_until(lambda: self.worker.calls, what="the call to the host")
        return request_id, self.worker.calls.pop()["id"]

    def test_a_result_with_bad_utf8_fails_the_call(self):
        request_id, call_id = self._call_pending()
        self.worker.send_raw(frame(b'{"id":%d,"kind":"result","success":true,"result":"\xff"}' % call_id))
        reply = self.worker.response(request_id)
        self.assertFalse(reply["success"])
        self.assertEqual(reply["error"]["code"], "invalid_argument")
        self.assertIn("UTF-8", reply["error"]["message"])

    def test_a_result_with_success_and_an_error_fails_the_call(self):
        request_id, call_id = self._call_pending()
        self.worker.send({"id": call_id, "kind": "result", "success": True, "result": 1, "error": {"code": "internal", "message": "x"}})
        reply = self.worker.response(request_id)
        self.assertFalse(reply["success"])
        self.assertIn("success true and an error", reply["error"]["message"])


if __name__ == "__main__":
    unittest.main()
