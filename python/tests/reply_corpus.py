"""Replies in DSPy's ChatAdapter format for the tests of how a reply's sections are read
(``tests/test_reply_sections.py``): hand-written edge cases, and replies generated from a
seeded random mix of the same pieces (headers well and badly spelt, at a line's start,
indented or inside a line, text after a header, line ends of every kind, white space,
duplicate sections, sections after ``completed``)."""

from __future__ import annotations

import random

#: The output fields of the replies (all ``str``).
OUTPUTS = ("a", "b", "c")

EDGE_CASES = [
    "",
    "no header at all",
    '{"a": "json", "b": "reply", "c": "x"}',
    "[[ ## a ## ]]\nA\n\n[[ ## b ## ]]\nB\n\n[[ ## c ## ]]\nC\n\n[[ ## completed ## ]]\n",
    # text before the first header belongs to no field
    "Sure, here it is.\n[[ ## a ## ]]\nA",
    # headers inside a line are text
    "[[ ## a ## ]]\nA [[ ## b ## ]] still A\nx [[ ## c ## ]]",
    "intro [[ ## a ## ]] text",
    # text after a header on its line
    "[[ ## a ## ]] A on the header's line  \n  and more  \n",
    "[[ ## a ## ]]A\n[[ ## b ## ]]   \n\n  B  ",
    "[[ ## a ## ]][[ ## b ## ]]\n[[ ## c ## ]] [[ ## a ## ]]",
    # line ends of every kind
    "[[ ## a ## ]]\r\nA1\r\nA2\r\n[[ ## b ## ]]\rB1\rB2\r[[ ## c ## ]]\u2028C1\u2029C2",
    "[[ ## a ## ]]\vA\f[[ ## b ## ]]\x1cB\x1d[[ ## c ## ]]\x1eC\x85x",
    "[[ ## a ## ]]\r\r\n\n\rA\r\n\r\n",
    "x\r[[ ## a ## ]]\r\n\rA",
    # indented headers (DSPy's section then starts with the header's last characters)
    "  [[ ## a ## ]]\nA\n\t[[ ## b ## ]] B\n\u3000[[ ## c ## ]]\nC",
    " " * 20 + "[[ ## a ## ]] A",
    "\x1f[[ ## a ## ]]\n\xa0[[ ## b ## ]]x",
    # other spellings are no header
    "[[##a##]]\nA\n[[ ## a ##]]\n[[ ##a## ]]\n[[  ## a ## ]]\n[[ ## a  ## ]]\n[ [ ## a ## ]]\n[[ ## a b ## ]]\n[[ ## ## ]]",
    "[[ ## a ## ]\n[[ ## a ##\n[[ ## a\n[[ ##\n[[\n[",
    "[[ ## a ## ]]\nA\n[[ ## b-c ## ]]\nstill A\n[[ ## b.c ## ]]\n",
    # duplicate sections: the first counts
    "[[ ## a ## ]]\nfirst\n[[ ## a ## ]]\nsecond\n[[ ## b ## ]]\nB\n[[ ## b ## ]] again",
    # sections after completed
    "[[ ## a ## ]]\nA\n[[ ## completed ## ]]\n[[ ## b ## ]]\nB\n[[ ## a ## ]]\nnot A",
    "[[ ## completed ## ]]\n[[ ## c ## ]]\nC",
    # empty sections and white space
    "[[ ## a ## ]]\n[[ ## b ## ]]\n\n\n[[ ## c ## ]]   \n \t \n",
    "[[ ## a ## ]]\n \u00a0A\u3000 \n\u2003",
    "[[ ## a ## ]]\n\n  two\n\n  lines  \n\n",
    # sections of other names end the one above
    "[[ ## a ## ]]\nA\n[[ ## other ## ]]\nO\n[[ ## b ## ]]\nB\n[[ ## x_1 ## ]]\n[[ ## c ## ]]\nC\n[[ ## é ## ]]\nE",
    # brackets that may look like a header's start
    "[[ ## a ## ]]\n[[1, 2], [3]]\n[[ ## b ## ]]\n[\n[[\n[[ #\n[[ ## b",
]

#: The pieces of the generated replies.
_NAMES = ("a", "b", "c", "a", "b", "c", "completed", "other", "b_2")
_BAD_HEADERS = (
    "[[##{}##]]",
    "[[ ##{}## ]]",
    "[[  ## {} ## ]]",
    "[[ ## {} ##]]",
    "[[ ## {} ## ]",
    "[[ ## {}",
    "[[ ## ",
    "[[",
    "[",
    "[[ ## {} x ## ]]",
    "[[\t## {} ## ]]",
)
_TEXTS = (
    "hello",
    "two words",
    "x",
    "",
    "  ",
    "\t",
    "[1, 2]",
    "[[1]]",
    "]]",
    "##",
    " ## ]]",
    "é",
    "\u00a0",
    "\u3000",
    "\x1f",
    "text",
    "end  ",
)
_BREAKS = ("\n", "\n", "\n", "\n\n", "\r\n", "\r\n", "\r", "\u2028", "\u2029", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85")
_INDENTS = ("", "", "", "", " ", "  ", "\t", "\u00a0", "\u3000", "\x1f", " " * 15)


def _header(rng: random.Random) -> str:
    name = rng.choice(_NAMES)
    if rng.random() < 0.75:
        return f"[[ ## {name} ## ]]"
    return rng.choice(_BAD_HEADERS).format(name)


def generated_reply(rng: random.Random) -> str:
    """A reply of random lines: headers (mostly well spelt, mostly not indented, some with
    text after them or before them) and lines of text, with line ends of every kind."""
    parts = []
    for _ in range(rng.randint(0, 12)):
        roll = rng.random()
        if roll < 0.45:
            line = rng.choice(_INDENTS) + _header(rng)
            if rng.random() < 0.3:
                line += rng.choice(("", " ", "  ")) + rng.choice(_TEXTS)
        elif roll < 0.55:
            line = rng.choice(_TEXTS) + rng.choice(("", " ")) + _header(rng) + rng.choice(_TEXTS)
        else:
            line = rng.choice(_INDENTS) + " ".join(rng.choice(_TEXTS) for _ in range(rng.randint(0, 3)))
        parts.append(line)
        if rng.random() < 0.9:
            parts.append(rng.choice(_BREAKS))
    return "".join(parts)


def corpus(n: int = 3000, seed: int = 20260) -> list[str]:
    """The edge cases, then ``n`` generated replies."""
    rng = random.Random(seed)
    return [*EDGE_CASES, *(generated_reply(rng) for _ in range(n))]


def random_cuts(text: str, rng: random.Random) -> list[str]:
    """``text`` cut into pieces of random lengths (some empty)."""
    pieces = []
    i = 0
    while i < len(text):
        size = rng.choice((0, 1, 1, 2, 3, 5, 8, 20))
        pieces.append(text[i : i + size])
        i += size
    return pieces
