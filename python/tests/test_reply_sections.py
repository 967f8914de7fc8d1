"""How the native engine finds a reply's ``[[ ## field ## ]]`` sections
(:func:`~dspgo_worker.chat_format.split_sections`) and streams them
(:class:`~dspgo_worker.chunks.ReplyStreamer`): the rules of DSPy 3.4.1's
``ChatAdapter.parse``, unit by unit; the streamer against ``split_sections`` over the
corpus of ``tests/reply_corpus.py``, cut into pieces every way; and, where dspy imports,
``split_sections`` against ``ChatAdapter.parse`` itself over the same corpus
(:class:`AgainstDSPyTest`, skipped on the bare interpreter and required in the dspy run,
:func:`~tests.lmserver.require_dspy`)."""

from __future__ import annotations

import gc
import random
import re
import sys
import time
import unittest
from typing import Any, Callable

from dspgo_worker.chat_format import (
    LINE_BREAK,
    LINE_SPACE,
    OutputError,
    find_json_object,
    parse_json_reply,
    parse_reply,
    split_sections,
)
from dspgo_worker.chunks import ReplyStreamer
from dspgo_worker.spec import CompiledSpec

from .lmserver import require_dspy
from .reply_corpus import OUTPUTS, corpus, random_cuts
from .test_spec import spec_of

SPEC = CompiledSpec(spec_of([("q", "")], [(name, "") for name in OUTPUTS]))
#: What a linear time test allows ``run``'s time to grow by when its input grows fourfold
#: (about 4 when linear, 16 when quadratic): generous, as timings vary.
MAX_GROWTH = 8


def growth(run: Callable[[Any], Any], make: Callable[[int], Any], n: int) -> tuple[float, Any]:
    """How many times longer ``run(make(4 * n))`` takes than ``run(make(n))``, and what the
    last run returned. Each time is the least of 3 runs, in this thread's CPU time (which
    other processes change less than they change the clock's), with the cyclic garbage
    collector off: its passes come with the number of objects made, not with the work
    measured, and made a fourfold reply of many small pieces look superlinear."""
    times = []
    gc.collect()
    gc.disable()
    try:
        for size in (n, 4 * n):
            arg = make(size)
            best = float("inf")
            for _ in range(3):
                start = time.thread_time()
                result = run(arg)
                best = min(best, time.thread_time() - start)
            times.append(best)
    finally:
        gc.enable()
    return times[1] / max(times[0], 1e-9), result


def streamed(pieces: list[str], outputs: dict[str, str], compiled: CompiledSpec = SPEC) -> tuple[dict[str, str], list[str]]:
    """Each field's deltas joined, and the fields in the order of their deltas."""
    streamer = ReplyStreamer(compiled)
    deltas = []
    for piece in pieces:
        deltas += streamer.feed(piece)
    deltas += streamer.finish(outputs)
    joined: dict[str, str] = {}
    for name, delta in deltas:
        joined[name] = joined.get(name, "") + delta
    return joined, [name for name, _ in deltas]


class SectionRulesTest(unittest.TestCase):
    """split_sections, rule by rule (the examples' results are DSPy's)."""

    def test_line_ends_and_white_space_are_str_splitlines_and_strip(self):
        breaks = "".join(chr(c) for c in range(sys.maxunicode + 1) if len(f"a{chr(c)}b".splitlines()) == 2)
        self.assertEqual(breaks, "\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029")
        self.assertEqual([m.group() for m in LINE_BREAK.finditer("\r\n\r\r\n\n" + breaks)], ["\r\n", "\r", "\r\n", "\n", *breaks])
        space = re.compile(LINE_SPACE)
        line_space = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace() and chr(c) not in breaks)
        self.assertEqual("".join(space.findall("".join(map(chr, range(sys.maxunicode + 1))))), line_space)

    def test_a_header_starts_a_line(self):
        self.assertEqual(split_sections("[[ ## a ## ]]\nA [[ ## b ## ]] B\nx [[ ## c ## ]]"), {"a": "A [[ ## b ## ]] B\nx [[ ## c ## ]]"})
        self.assertEqual(split_sections("intro [[ ## a ## ]] A"), {})
        self.assertEqual(split_sections("intro\n[[ ## a ## ]] A"), {"a": "A"}, "text before the first header is no field's")

    def test_only_single_spaces(self):
        for header in ("[[##a##]]", "[[ ##a## ]]", "[[  ## a ## ]]", "[[ ## a ##]]", "[[ ## a ## ]", "[[\t## a ## ]]", "[[ ## a b ## ]]", "[[ ## ## ]]"):
            with self.subTest(header=header):
                self.assertEqual(split_sections(f"[[ ## b ## ]]\nB\n{header}\nstill B"), {"b": f"B\n{header}\nstill B"})

    def test_the_rest_of_a_header_line(self):
        self.assertEqual(split_sections("[[ ## a ## ]]  one  \n  two  \n"), {"a": "one\n  two"})
        self.assertEqual(split_sections("[[ ## a ## ]]one\n[[ ## b ## ]]   \n\n  B"), {"a": "one", "b": "B"})
        self.assertEqual(split_sections("[[ ## a ## ]][[ ## b ## ]]"), {"a": "[[ ## b ## ]]"})

    def test_an_indented_header_keeps_its_last_characters(self):
        # DSPy cuts the rest of the line from the unstripped line at the header's length.
        self.assertEqual(split_sections("  [[ ## a ## ]]\nA"), {"a": "]]\nA"})
        self.assertEqual(split_sections("\t[[ ## a ## ]] A"), {"a": "] A"})
        self.assertEqual(split_sections(" " * 20 + "[[ ## a ## ]] A"), {"a": "[[ ## a ## ]] A"})
        self.assertEqual(split_sections("\u3000[[ ## a ## ]]\n\n"), {"a": "]"})

    def test_line_ends_of_every_kind(self):
        self.assertEqual(split_sections("[[ ## a ## ]]\r\nA1\r\nA2\r\n[[ ## b ## ]]\rB1\rB2\r"), {"a": "A1\nA2", "b": "B1\nB2"})
        reply = "[[ ## a ## ]]\u2028A1\u2029A2\x85[[ ## b ## ]]\vB1\fB2\x1c[[ ## c ## ]]\x1dC1\x1eC2"
        self.assertEqual(split_sections(reply), {"a": "A1\nA2", "b": "B1\nB2", "c": "C1\nC2"})
        self.assertEqual(split_sections("[[ ## a ## ]]\n\r\n\rA\r\r\n"), {"a": "A"})

    def test_first_of_each_name_and_completed_is_a_name(self):
        reply = "[[ ## a ## ]]\nfirst\n[[ ## a ## ]]\nsecond\n[[ ## completed ## ]]\n[[ ## b ## ]]\nB\n[[ ## other ## ]]\nO"
        self.assertEqual(split_sections(reply), {"a": "first", "completed": "", "b": "B", "other": "O"})

    def test_empty_sections_and_unicode_white_space(self):
        self.assertEqual(split_sections("[[ ## a ## ]]\n[[ ## b ## ]]\n \u00a0\u3000\u2003\x1f\t\n"), {"a": "", "b": ""})
        self.assertEqual(split_sections("[[ ## a ## ]]\n\u00a0A\x1fB\u3000\n"), {"a": "A\x1fB"})

    def test_huge_replies_take_linear_time(self):
        """Replies that a search could read again and again (header fragments, lines of
        them, long runs of white space or of one line end, headers inside lines or after
        white space) take time that grows as their length does."""
        makers = {
            "header fragments": lambda n: "[[ ## " * (n // 6),
            "lines of them": lambda n: "[[ ## \n" * (n // 7),
            "line ends before them": lambda n: "\n[[ ##" * (n // 6),
            "spaces": lambda n: " " * n + "x",
            "a long name": lambda n: "[[ ## " + "a" * n,
            "line ends": lambda n: "[[ ## a ## ]]\n" + "\r" * n,
            "headers": lambda n: "[[ ## a ## ]]\n" * (n // 14),
            "spaces before a header": lambda n: " " * n + "[[ ## a ## ]]",
            "headers inside a line": lambda n: "x" + " [[ ## a ## ]]" * (n // 14),
        }
        for what, make in makers.items():
            with self.subTest(reply=what):
                ratio, sections = growth(split_sections, make, 250_000)
                self.assertLessEqual(len(sections), 1)
                self.assertLess(ratio, MAX_GROWTH, "four times the reply, more than twice four times the time")

    def test_parse_reply_reads_json_only_without_a_header(self):
        compiled = CompiledSpec(spec_of([("q", "")], [("a", ""), ("n", "int")]))
        self.assertEqual(parse_reply(compiled, '{"a": "[[ ## a ## ]]", "n": 2}'), {"a": "[[ ## a ## ]]", "n": 2})
        self.assertEqual(parse_reply(compiled, '```json\n{"a": "x", "n": 1}\n```'), {"a": "x", "n": 1})
        self.assertEqual(parse_reply(compiled, "[[ ## n ## ]]\n3\n[[ ## completed ## ]]\n[[ ## a ## ]] late"), {"a": "late", "n": 3})
        with self.assertRaises(OutputError) as caught:
            parse_reply(compiled, '[[ ## completed ## ]]\n{"a": "x", "n": 1}')
        self.assertIn('output "a" is missing', caught.exception.message)
        # A misspelt header is no header line: the object after it is found, as JSONAdapter finds it.
        self.assertEqual(parse_reply(compiled, '[[##a##]]\n{"a": "x", "n": 1}'), {"a": "x", "n": 1})
        with self.assertRaises(OutputError):
            parse_reply(compiled, '[[##a##]]\n"a": "x", "n": 1')


class StreamerRulesTest(unittest.TestCase):
    """ReplyStreamer: what it hands on, and when."""

    def test_a_header_only_at_a_line_start(self):
        streamer = ReplyStreamer(SPEC)
        self.assertEqual(streamer.feed("[[ ## a ## ]]\nA [[ ## b ## ]] B"), [("a", "A [[ ## b ## ]] B")], "not held: inside a line")
        self.assertEqual(streamer.feed("\n  [[ ## b"), [], "held: the line's start may be a header")
        self.assertEqual(streamer.feed("-c ## ]]"), [("a", "\n  [[ ## b-c ## ]]")])
        self.assertEqual(streamer.feed("\n[[ ## b ## ]]"), [])
        self.assertEqual(streamer.feed(" B\n"), [("b", "B")])
        self.assertEqual(streamer.finish({"c": "C"}), [("c", "C")])

    def test_line_ends_become_newlines(self):
        streamer = ReplyStreamer(SPEC)
        self.assertEqual(streamer.feed("[[ ## a ## ]]\r\nA\r"), [("a", "A")], "the line end is held: it may end the section")
        self.assertEqual(streamer.feed("\nB\r"), [("a", "\nB")], "\\r\\n cut between the pieces is one line end")
        self.assertEqual(streamer.feed("C\u2028D\x85"), [("a", "\nC\nD")])
        self.assertEqual(streamer.feed("\r[[ ## b ## ]]\rB"), [("b", "B")])
        self.assertEqual(streamer.finish({"c": "C"}), [("c", "C")])

    def test_text_is_handed_on_as_it_arrives(self):
        streamer = ReplyStreamer(SPEC)
        self.assertEqual(streamer.feed("Sure.\n[[ ## a ## ]]  one "), [("a", "one")])
        self.assertEqual(streamer.feed(" two [ ["), [("a", "  two [ [")], "a bracket inside a line is not held")
        self.assertEqual(streamer.feed("  \n"), [], "trailing white space is held")
        self.assertEqual(streamer.feed("  [x"), [("a", "\n  [x")])
        self.assertEqual(streamer.finish({"b": "B", "c": "C"}), [("b", "B"), ("c", "C")])

    def test_the_header_line_is_stripped(self):
        joined, _ = streamed(list("[[ ## a ## ]]  one  \n  two  \n"), {"b": "", "c": ""})
        self.assertEqual(joined["a"], "one\n  two")
        joined, _ = streamed(["  [[ ## a ## ]]", " A  ", "\n"], {"b": "", "c": ""})
        self.assertEqual(joined["a"], "]] A", "an indented header keeps its last characters, as in DSPy")

    def test_sections_after_completed(self):
        reply = "[[ ## a ## ]]\nA\n[[ ## completed ## ]]\ndone\n[[ ## c ## ]]\nC\n[[ ## b ## ]]\nB\n[[ ## a ## ]]\nnot A"
        for pieces in ([reply], list(reply)):
            joined, names = streamed(pieces, {})
            self.assertEqual(joined, {"a": "A", "b": "B", "c": "C"})
            self.assertEqual(list(dict.fromkeys(names)), ["a", "b", "c"])

    def test_a_header_the_reply_ends_in(self):
        joined, _ = streamed(["[[ ## a ## ]]\nA\n[[ ## b ## ]]"], {"c": "C"})
        self.assertEqual(joined, {"a": "A", "b": "", "c": "C"})
        joined, _ = streamed(["[[ ## a ## ]]\nA\n[[ ## b ## ]"], {"b": "missing", "c": "C"})
        self.assertEqual(joined, {"a": "A\n[[ ## b ## ]", "b": "missing", "c": "C"})

    def test_huge_replies_take_linear_time(self):
        """Replies of held text (header fragments, line ends, white space, a long name) take
        time that grows as their length does, whole or in pieces, and give split_sections's
        text."""
        makers = {
            "lines of header fragments": lambda n: "[[ ## a ## ]]\n" + "[[ ## \n" * (n // 7),
            "line ends": lambda n: "[[ ## a ## ]]\n" + "\r" * n + "x",
            "spaces": lambda n: "[[ ## a ## ]]\n" + " " * n + "x",
            "a long name": lambda n: "[[ ## " + "a" * n,
        }
        for what, make in makers.items():
            for size in (0, 4096, 7):  # 0: whole
                with self.subTest(reply=what, size=size):

                    def pieces(n: int, make: Callable[[int], str] = make, size: int = size) -> list[str]:
                        reply = make(n)
                        step = size or len(reply)
                        return [reply[i : i + step] for i in range(0, len(reply), step)]

                    ratio, joined = growth(lambda pieces: streamed(pieces, dict.fromkeys(OUTPUTS, ""))[0], pieces, 30_000)
                    self.assertEqual(joined["a"], split_sections(make(4 * 30_000)).get("a", ""))
                    self.assertLess(ratio, MAX_GROWTH, "four times the reply, more than twice four times the time")

    def test_the_corpus_cut_every_way(self):
        """Each field's deltas are split_sections's text, however the reply is cut; a field
        without a section is the outputs' value, after the others."""
        rng = random.Random(7)
        for reply in corpus():
            sections = split_sections(reply)
            want = {name: sections.get(name, f"<no {name}>") for name in OUTPUTS}
            for pieces in (random_cuts(reply, rng), random_cuts(reply, rng), list(reply), [reply]):
                joined, names = streamed(pieces, want)
                if joined != want:
                    self.fail(f"reply {reply!r} cut as {pieces!r}: deltas {joined!r}, sections {want!r}")
                self.assertEqual(names, sorted(names, key=OUTPUTS.index), "one field after the other")


class AgainstDSPyTest(unittest.TestCase):
    """split_sections against DSPy 3.4.1's ChatAdapter.parse, over the corpus."""

    def setUp(self):
        require_dspy(self)

    def test_the_corpus(self):
        import dspy
        from dspy.adapters.chat_adapter import ChatAdapter
        from dspy.utils.exceptions import AdapterParseError

        adapter = ChatAdapter()
        # One signature of all the outputs, and one of each alone (so that a field is
        # compared even where another is missing); "completed" and "other" are names too.
        whole = dspy.Signature("q -> " + ", ".join(OUTPUTS))
        single = {name: dspy.Signature(f"q -> {name}") for name in (*OUTPUTS, "completed", "other")}
        compared = found = 0
        for reply in corpus():
            ours = split_sections(reply)
            try:
                theirs = adapter.parse(whole, reply)
            except AdapterParseError:
                self.assertFalse(all(name in ours for name in OUTPUTS), f"DSPy misses a field of {reply!r}; ours: {ours!r}")
            else:
                self.assertEqual({name: ours.get(name) for name in OUTPUTS}, theirs, f"reply {reply!r}")
                found += 1
            for name, signature in single.items():
                try:
                    text = adapter.parse(signature, reply)[name]
                except AdapterParseError:
                    text = None
                self.assertEqual(ours.get(name), text, f"field {name} of {reply!r}")
                compared += 1
        self.assertGreater(found, 100, "replies with every output")
        self.assertEqual(compared, len(corpus()) * len(single))


#: Replies to JSONAdapter's prompt for "q -> a, n: int" in the forms an LM commonly
#: gives, the outputs they hold (None: no outputs), as DSPy 3.4.1's JSONAdapter reads them.
JSON_REPLIES = [
    ('{"a": "x", "n": 2}', {"a": "x", "n": 2}),
    ('  {"n": "3", "a": "x", "other": [1]}\n', {"a": "x", "n": 3}),
    ('```json\n{"a": "x", "n": 2}\n```', {"a": "x", "n": 2}),
    ('```\n{"a": "x", "n": 2}\n```', {"a": "x", "n": 2}),
    ('Here it is:\n```json\n{"a": "x", "n": 2}\n```\nHope it helps {.', {"a": "x", "n": 2}),
    ('{"a": "x", "n": 2} and some text after it', {"a": "x", "n": 2}),
    ('{"a": "{not} [[ ## n ## ]]", "n": 2}', {"a": "{not} [[ ## n ## ]]", "n": 2}),
    ('[{"a": "x", "n": 2}]', {"a": "x", "n": 2}),
    ('{"a": "x"} then {"n": 2}', None),
    ('{"a": "x", "n": {"v": 2}}', None),
    ('{"a": "x"}', None),
    ('{"a": "x", "n": "two"}', None),
    ("no JSON here", None),
    ('"just a string"', None),
]


class JSONReplyTest(unittest.TestCase):
    """parse_json_reply, JSONAdapter's reading of a reply, and find_json_object."""

    COMPILED = CompiledSpec(spec_of([("q", "")], [("a", ""), ("n", "int")]))

    def ours(self, reply: str) -> Any:
        try:
            return parse_json_reply(self.COMPILED, reply)
        except OutputError:
            return None

    def test_the_common_forms(self):
        for reply, want in JSON_REPLIES:
            with self.subTest(reply=reply):
                self.assertEqual(self.ours(reply), want)

    def test_find_json_object(self):
        self.assertEqual(find_json_object('x {"a": {"b": [1, "}"]}} y'), {"a": {"b": [1, "}"]}})
        self.assertEqual(find_json_object('{broken {"a": 1}'), {"a": 1}, "the first object that is valid JSON")
        self.assertEqual(find_json_object("{}"), {})
        for text in ("", "[1, 2]", "{'a': 1}", '{"a": 1,}', '{"a": 1', "{" * 100_000):
            self.assertIsNone(find_json_object(text), text[:20])

    def test_errors_name_the_field(self):
        with self.assertRaises(OutputError) as caught:
            parse_json_reply(self.COMPILED, "no JSON here")
        self.assertEqual(caught.exception.message, 'output "a" is missing in the LM\'s JSON reply (it holds no JSON object)')
        with self.assertRaises(OutputError) as caught:
            parse_json_reply(self.COMPILED, '{"a": "x"}')
        self.assertEqual(caught.exception.message, 'output "n" is missing in the LM\'s JSON reply')
        with self.assertRaises(OutputError) as caught:
            parse_json_reply(self.COMPILED, "")
        self.assertEqual(caught.exception.message, "the LM's reply is empty")

    def test_against_dspy(self):
        """The same outputs as DSPy 3.4.1's JSONAdapter.parse, or an error where it fails."""
        require_dspy(self)
        import dspy
        from dspy.utils.exceptions import AdapterParseError

        adapter = dspy.JSONAdapter()
        signature = dspy.Signature("q -> a: str, n: int")
        for reply, want in JSON_REPLIES:
            with self.subTest(reply=reply):
                try:
                    theirs = adapter.parse(signature, reply)
                except AdapterParseError:
                    theirs = None
                self.assertEqual(theirs, want)
                self.assertEqual(self.ours(reply), theirs)
