"""A small rule-based tokenizer close to the UD English EWT conventions.

The tokenizer only ever cuts whitespace-separated chunks into pieces, so the
tokens joined without spaces are exactly the input with its whitespace removed:
it never drops or invents a character, and it never raises.
"""

import re

__all__ = ["tokenize"]

# Em dashes, double hyphens and ellipses separate words even without spaces.
_INNER_SPLIT = re.compile(r"(--+|—|\.\.\.+|…)")

# URLs and e-mail addresses keep their inner punctuation and are never split
# at clitics (only punctuation around them is split off).
_URL = re.compile(r"[a-z][a-z0-9+.-]*://|(?:^|\W)www\.|\w@\w", re.IGNORECASE)

# One leading piece: an opening bracket or quote, an apostrophe that does not
# start a clitic ('s) or a year ('90s), a run of periods that is not a decimal
# point (.5), a run of other punctuation, or a currency sign before a number.
_LEAD = re.compile(
    r"""[(\[{“‘«"`]"""
    r"""|['’](?!(?:s|m|d|ll|re|ve)\b|[0-9])"""
    r"""|\.+(?![0-9])"""
    r"""|[,;:!?¿¡]+"""
    r"""|[$£€¥](?=[0-9])""",
    re.IGNORECASE,
)

# Closing brackets and quotes are split off one at a time, like EWT does
# (a final apostrophe is the plural possessive: "dogs'" -> "dogs" "'").
_CLOSERS = frozenset(")]}”’»\"'`")
_PUNCT_RUNS = (",;:", ".!?")

# EWT clitics: "don't" -> "do" "n't", "can't" -> "ca" "n't", "I'm" -> "I" "'m".
_CLITIC = re.compile(r"(.+?)(n['’]t|['’](?:s|m|d|ll|re|ve))", re.IGNORECASE | re.DOTALL)
_CANNOT = re.compile(r"(can)(not)", re.IGNORECASE)

# A trailing period stays on "U.S.", "e.g." and single capital initials
# ("J. Smith"), but not on "I.", which far more often ends a sentence.
_KEEPS_PERIOD = re.compile(r"(?:[A-Za-z]\.){2,}|[A-HJ-Z]\.")
_ABBREVIATIONS = frozenset(
    "mr. mrs. ms. dr. st. vs. etc. inc. jr. sr. co. corp. ltd. prof.".split()
)


def tokenize(text: str) -> list[str]:
    """Split raw text into tokens, e.g. "I can't go." -> I ca n't go ."""
    tokens = []
    for chunk in text.split():
        if _URL.search(chunk):
            tokens.extend(_split_chunk(chunk, url=True))
            continue
        for piece in _INNER_SPLIT.split(chunk):
            if piece:
                tokens.extend(_split_chunk(piece, url=False))
    return tokens


def _split_chunk(chunk, url):
    """Split one whitespace-free chunk into leading punctuation, core, clitics, trailing punctuation."""
    tokens = []
    start = 0
    while True:
        m = _LEAD.match(chunk, start)
        if not m or m.end() == len(chunk):
            break
        tokens.append(m.group())
        start = m.end()

    core = chunk[start:]
    end = len(core)
    tail = []
    while end > 1:
        n = _trailing_punct(core, end)
        if n == 0 or n == end:
            break
        piece = core[end - n : end]
        if piece == "." and _keeps_period(core[:end]):
            break
        tail.append(piece)
        end -= n
    core = core[:end]

    tokens.extend([core] if url else _split_clitics(core))
    tokens.extend(reversed(tail))
    return tokens


def _trailing_punct(core, end):
    """How many characters at core[:end]'s end form one trailing punctuation token (0 if none)."""
    last = core[end - 1]
    if last in _CLOSERS:
        return 1
    if last == "%" and core[end - 2] in "0123456789":
        return 1
    for group in _PUNCT_RUNS:
        if last in group:
            n = 1
            while n < end and core[end - 1 - n] in group:
                n += 1
            return n
    return 0


def _keeps_period(word):
    return word.lower() in _ABBREVIATIONS or _KEEPS_PERIOD.fullmatch(word) is not None


def _split_clitics(word):
    """Peel clitics off the end, repeatedly: "shouldn't've" -> should n't 've."""
    clitics = []
    while True:
        m = _CLITIC.fullmatch(word) or _CANNOT.fullmatch(word)
        if not m:
            break
        word = m.group(1)
        clitics.append(m.group(2))
    return [word] + clitics[::-1]
