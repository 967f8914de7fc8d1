"""The command registry and argument validation (in process, on private registries)."""

import json
import os
import select
import threading
import unittest

from dspgo_worker import Arg, WorkerError, default_registry
from dspgo_worker.protocol import FrameWriter, decode_message, encode_frame, read_frame
from dspgo_worker.registry import Registry
from dspgo_worker.worker import Worker, WorkerConfig

from .helpers import WAIT


def handler(args, ctx):
    return args


class RegistryTest(unittest.TestCase):
    def setUp(self):
        self.registry = Registry()
        self.registry.command(
            "cmd",
            args={
                "name": Arg("str", required=True),
                "count": Arg("int", default=3),
                "ratio": Arg("float"),
                "flag": Arg("bool", default=False),
                "opts": Arg("object", default={}),
                "items": Arg("array"),
                "anything": Arg("any"),
            },
        )(handler)
        self.cmd = self.registry.table()["cmd"]

    def invalid(self, args):
        with self.assertRaises(WorkerError) as caught:
            self.cmd.validate(args)
        self.assertEqual(caught.exception.code, "invalid_argument")
        return caught.exception.message

    def test_defaults_filled(self):
        args = self.cmd.validate({"name": "x"})
        self.assertEqual(
            args,
            {"name": "x", "count": 3, "ratio": None, "flag": False, "opts": {}, "items": None, "anything": None},
        )
        args["opts"]["mutated"] = True
        self.assertEqual(self.cmd.validate({"name": "x"})["opts"], {}, "defaults are copied")

    def test_type_rules(self):
        args = self.cmd.validate({"name": "x", "ratio": 2, "anything": None, "items": [1]})
        self.assertIsInstance(args["ratio"], float)
        self.assertIn("'count'", self.invalid({"name": "x", "count": True}))
        self.assertIn("'count'", self.invalid({"name": "x", "count": 1.5}))
        self.assertIn("'ratio'", self.invalid({"name": "x", "ratio": "1"}))
        self.assertIn("'flag'", self.invalid({"name": "x", "flag": 1}))
        self.assertIn("'opts'", self.invalid({"name": "x", "opts": []}))
        self.assertIn("'items'", self.invalid({"name": "x", "items": {}}))
        for huge in (json.loads("1e400"), float("-inf"), float("nan"), 10**400):
            self.assertIn("argument 'ratio' is out of range", self.invalid({"name": "x", "ratio": huge}), huge)

    def test_missing_and_unknown(self):
        self.assertIn("'name'", self.invalid({}))
        self.assertIn("'name'", self.invalid({"name": None}))
        self.assertIn("'bogus'", self.invalid({"name": "x", "bogus": 1}))

    def test_not_strict_passes_extra_args(self):
        self.registry.command("loose", args={"a": Arg("int", default=1)}, strict=False)(handler)
        self.assertEqual(self.registry.table()["loose"].validate({"b": 2}), {"b": 2, "a": 1})

    def test_no_schema_passes_everything(self):
        self.registry.command("raw")(handler)
        self.assertEqual(self.registry.table()["raw"].validate({"z": [1]}), {"z": [1]})

    def test_duplicate_name_raises(self):
        with self.assertRaises(ValueError):
            self.registry.command("cmd")(handler)

    def test_bad_definitions(self):
        with self.assertRaises(ValueError):
            Arg("string")
        with self.assertRaises(ValueError):
            Arg("int", required=True, default=1)
        with self.assertRaises(ValueError):
            Arg("int", default="1")
        with self.assertRaises(ValueError):
            WorkerError("bogus_code", "x")

    def test_diagnostics_filtered(self):
        self.registry.command("diag", diagnostics=True)(handler)
        self.assertNotIn("diag", self.registry.table())
        self.assertIn("diag", self.registry.table(diagnostics=True))

    def test_default_registry_builtins(self):
        table = default_registry.table()
        for name in ("ping", "describe", "cancel", "shutdown"):
            self.assertTrue(table[name].inline, name)
        self.assertNotIn("echo", table)
        self.assertIn("echo", default_registry.table(diagnostics=True))


class InProcessWorkerTest(unittest.TestCase):
    def test_worker_on_private_registry_over_pipes(self):
        """A Worker needs no process-wide state: a private registry and two pipes suffice."""
        registry = Registry()
        registry.command("double", args={"n": Arg("int", required=True)})(lambda args, ctx: args["n"] * 2)
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        with open(to_worker_r, "rb") as reader, open(from_worker_r, "rb", buffering=0) as responses:
            worker = Worker(WorkerConfig(worker_id="inproc"), reader, FrameWriter(from_worker_w), registry)
            self.assertEqual(sorted(worker.commands), ["double"])
            status = []
            thread = threading.Thread(target=lambda: status.append(worker.serve()), daemon=True)
            thread.start()
            os.write(to_worker_w, encode_frame({"id": 1, "command": "double", "args": {"n": 21}}))
            os.write(to_worker_w, encode_frame({"id": 2, "command": "ping"}))
            replies = {}
            for _ in range(2):  # both answered before EOF, which would cancel a queued request
                self.assertTrue(select.select([responses], [], [], WAIT)[0], "no response in time")
                message = decode_message(read_frame(responses))
                replies[message["id"]] = message
            os.close(to_worker_w)
            thread.join(WAIT)
            os.close(from_worker_w)
            self.assertIsNone(read_frame(responses), "nothing more after the two replies")
        self.assertEqual(status, [0])
        self.assertEqual(replies[1]["result"], 42)
        self.assertEqual(replies[2]["error"]["code"], "unimplemented")


if __name__ == "__main__":
    unittest.main()
