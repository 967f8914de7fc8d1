"""The codec against the shared wire vectors, and the request field checks."""

import io
import unittest

from dspgo_worker.errors import WorkerError
from dspgo_worker.protocol import (
    ERROR_KINDS,
    FrameError,
    decode_message,
    encode_frame,
    error_response,
    parse_request,
    read_frame,
    success_response,
)

from .helpers import load_vectors


def decode_stream(raw: bytes, max_bytes: int) -> dict:
    """Read one frame from raw bytes and decode it, as the worker does."""
    body = read_frame(io.BytesIO(raw), max_bytes)
    if body is None:
        raise AssertionError("clean EOF, no frame")
    return decode_message(body)


class TrickleStream(io.RawIOBase):
    """Returns at most one byte per read; ``consumed`` counts the bytes handed out."""

    def __init__(self, data: bytes):
        self._data = data
        self.consumed = 0

    def readable(self):
        return True

    def read(self, n=-1):
        chunk = self._data[self.consumed : self.consumed + min(n, 1)]
        self.consumed += len(chunk)
        return chunk


class VectorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.doc = load_vectors()
        cls.max_bytes = cls.doc["max_frame_bytes"]

    def test_error_kinds_match(self):
        self.assertEqual(tuple(self.doc["error_kinds"]), ERROR_KINDS)

    def test_every_vector(self):
        vectors = self.doc["vectors"]
        self.assertGreater(len(vectors), 0)
        for vector in vectors:
            with self.subTest(vector["name"]):
                raw = bytes.fromhex(vector["frame_hex"])
                if "error" in vector:
                    with self.assertRaises(FrameError) as caught:
                        decode_stream(raw, self.max_bytes)
                    self.assertEqual(caught.exception.kind, vector["error"], caught.exception.message)
                    continue
                decoded = decode_stream(raw, self.max_bytes)
                if vector["name"] != "response_legacy_string_error":
                    self.assertEqual(decoded, vector["message"])
                if vector.get("canonical"):
                    self.assertEqual(encode_frame(vector["message"]).hex(), vector["frame_hex"])

    def test_canonical_responses_via_builders(self):
        """The response builders produce the canonical key order."""
        from dspgo_worker.protocol import call_cancel_message, call_message, chunk_message, with_chunks

        for vector in self.doc["vectors"]:
            if not vector.get("canonical") or vector["direction"] != "response":
                continue
            with self.subTest(vector["name"]):
                message = vector["message"]
                kind = message.get("kind")
                if kind == "chunk":
                    built = chunk_message(message["id"], message["seq"], message["data"])
                elif kind == "call":
                    built = call_message(message["id"], message["parent"], message["tool"], message["args"])
                elif kind == "cancel":
                    built = call_cancel_message(message["id"])
                elif kind is not None:
                    continue  # a kind the worker does not send
                elif message["success"]:
                    built = success_response(message["id"], message["result"])
                else:
                    built = error_response(message["id"], **message["error"])
                if kind is None and "chunks" in message:
                    with_chunks(built, message["chunks"])
                self.assertEqual(encode_frame(built).hex(), vector["frame_hex"])


class ReadFrameTest(unittest.TestCase):
    def test_clean_eof(self):
        self.assertIsNone(read_frame(io.BytesIO(b"")))

    def test_consecutive_frames_then_eof(self):
        stream = io.BytesIO(encode_frame({"id": 1}) + encode_frame({"id": 2}))
        self.assertEqual(decode_message(read_frame(stream))["id"], 1)
        self.assertEqual(decode_message(read_frame(stream))["id"], 2)
        self.assertIsNone(read_frame(stream))

    def test_short_reads(self):
        frame = encode_frame({"id": 3, "command": "ping", "args": {"x": "héllo"}})
        self.assertEqual(decode_message(read_frame(TrickleStream(frame)))["args"], {"x": "héllo"})

    def test_too_large_reads_no_body(self):
        stream = TrickleStream(b"\x00\x00\x10\x01" + b"x" * 5000)
        with self.assertRaises(FrameError) as caught:
            read_frame(stream, 4096)
        self.assertEqual(caught.exception.kind, "frame_too_large")
        self.assertEqual(stream.consumed, 4, "only the header may be read")

    def test_raw_json_hint(self):
        with self.assertRaises(FrameError) as caught:
            read_frame(io.BytesIO(b'{"id":1,"command":"ping"}'))
        self.assertIn("without the 4-byte length header", caught.exception.message)
        with self.assertRaises(FrameError) as caught:
            read_frame(io.BytesIO(b"\xff\xff\xff\xff"))
        self.assertNotIn("length header", caught.exception.message)

    def test_infinity_rejected_overflow_left_to_the_command(self):
        for body in (b'{"id":1,"x":Infinity}', b'{"id":1,"x":-Infinity}', b'{"id":1,"x":NaN}'):
            with self.subTest(body), self.assertRaises(FrameError) as caught:
                decode_message(body)
            self.assertEqual(caught.exception.kind, "invalid_json")
        # 1e400 is valid JSON (Go's codec sends it): the frame decodes, so its
        # id can be answered, and the command refuses the value itself.
        self.assertEqual(decode_message(b'{"id":1,"x":1e400}')["id"], 1)

    def test_lone_surrogate_encodes_as_replacement_char(self):
        message = decode_message(b'{"id":1,"result":"a\\ud800b \\ud83c\\udf89"}')
        self.assertEqual(encode_frame(message)[4:], '{"id":1,"result":"a\ufffdb \U0001f389"}'.encode("utf-8"))

    def test_encode_limit(self):
        with self.assertRaises(FrameError) as caught:
            encode_frame({"id": 1, "result": "x" * 100}, max_bytes=50)
        self.assertEqual(caught.exception.kind, "frame_too_large")
        with self.assertRaises(ValueError):
            encode_frame({"id": 1, "result": float("nan")})


class ParseRequestTest(unittest.TestCase):
    def test_defaults(self):
        request = parse_request({"id": 4, "command": "ping"})
        self.assertEqual((request.args, request.session, request.deadline_ms), ({}, None, None))

    def test_invalid_fields_name_the_field(self):
        cases = [
            ({"id": 1}, "command"),
            ({"id": 1, "command": 5}, "command"),
            ({"id": 1, "command": ""}, "command"),
            ({"id": 1, "command": "ping", "args": [1]}, "args"),
            ({"id": 1, "command": "ping", "session": 3}, "session"),
            ({"id": 1, "command": "ping", "deadline_ms": -1}, "deadline_ms"),
            ({"id": 1, "command": "ping", "deadline_ms": 1.5}, "deadline_ms"),
            ({"id": 1, "command": "ping", "deadline_ms": True}, "deadline_ms"),
        ]
        for message, field in cases:
            with self.subTest(message), self.assertRaises(WorkerError) as caught:
                parse_request(message)
            self.assertEqual(caught.exception.code, "invalid_argument")
            self.assertIn(f"'{field}'", caught.exception.message)

    def test_kind_is_reserved(self):
        with self.assertRaises(WorkerError) as caught:
            parse_request({"id": 1, "command": "ping", "kind": "chunk"})
        self.assertEqual(caught.exception.code, "unimplemented")


if __name__ == "__main__":
    unittest.main()
