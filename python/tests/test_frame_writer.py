"""FrameWriter: frames queued behind a write in progress, written together, never mixed."""

import os
import threading
import time
import unittest

from dspgo_worker.protocol import FrameWriter, decode_message, encode_frame, read_frame


class FrameWriterTest(unittest.TestCase):
    def setUp(self):
        self.r, self.w = os.pipe()
        self.addCleanup(self._close)

    def _close(self):
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _read_all(self, out):
        """Read the pipe until EOF into ``out`` (a list of decoded messages)."""
        with os.fdopen(os.dup(self.r), "rb") as stream:
            while True:
                body = read_frame(stream)
                if body is None:
                    return
                out.append(decode_message(body))

    def test_writers_behind_a_blocked_write_queue_and_return(self):
        # The first frame is larger than the pipe's buffer: its write blocks until the
        # reader starts, and every other write meanwhile is queued, not blocked.
        writer = FrameWriter(self.w)
        big = encode_frame({"id": 0, "pad": "x" * (1 << 20)})
        first = threading.Thread(target=writer.write, args=(big,))
        first.start()
        deadline = time.monotonic() + 10
        while not writer._writing:  # the first write is under way
            self.assertLess(time.monotonic(), deadline, "the first write never started")
            time.sleep(0.001)
        results = []
        threads = [
            threading.Thread(target=lambda i=i: results.append(writer.write(encode_frame({"id": i}))))
            for i in range(1, 51)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
            self.assertFalse(t.is_alive(), "a write waited behind the blocked one")
        self.assertEqual(results, [True] * 50)
        self.assertTrue(first.is_alive(), "the first write is still blocked (nothing read yet)")
        got = []
        reader = threading.Thread(target=self._read_all, args=(got,))
        reader.start()
        first.join(10)
        writer.close(10)
        os.close(self.w)
        reader.join(10)
        self.assertEqual(got[0]["id"], 0)
        self.assertEqual(len(got[0]["pad"]), 1 << 20)
        self.assertEqual(sorted(m["id"] for m in got[1:]), list(range(1, 51)))

    def test_many_threads_frames_whole_and_in_order_per_thread(self):
        writer = FrameWriter(self.w, max_queued=4096)  # small: writers also wait for room
        got = []
        reader = threading.Thread(target=self._read_all, args=(got,))
        reader.start()

        def produce(t):
            for seq in range(200):
                self.assertTrue(writer.write(encode_frame({"id": t, "seq": seq, "pad": "y" * (seq % 7 * 100)})))

        producers = [threading.Thread(target=produce, args=(t,)) for t in range(8)]
        for p in producers:
            p.start()
        for p in producers:
            p.join(30)
        writer.close(10)
        os.close(self.w)
        reader.join(10)
        self.assertEqual(len(got), 8 * 200)
        for t in range(8):
            self.assertEqual([m["seq"] for m in got if m["id"] == t], list(range(200)))

    def test_close_writes_what_is_queued_then_drops(self):
        writer = FrameWriter(self.w)
        self.assertTrue(writer.write(encode_frame({"id": 1})))
        writer.close(1)
        self.assertFalse(writer.write(encode_frame({"id": 2})))
        os.close(self.w)
        got = []
        self._read_all(got)
        self.assertEqual([m["id"] for m in got], [1])

    def test_write_error_drops_further_writes(self):
        os.close(self.r)
        writer = FrameWriter(self.w)
        with self.assertLogs("dspgo_worker.protocol", "ERROR"):
            self.assertFalse(writer.write(encode_frame({"id": 1})))  # EPIPE (Python ignores SIGPIPE)
        self.assertFalse(writer.write(encode_frame({"id": 2})))
        writer.close(0)


if __name__ == "__main__":
    unittest.main()
