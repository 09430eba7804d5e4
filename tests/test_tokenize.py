import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtag.tokenize import tokenize

CASES = [
    ("", []),
    ("   \t\n ", []),
    ("The dog barks.", ["The", "dog", "barks", "."]),
    # EWT clitics
    ("I don't know", ["I", "do", "n't", "know"]),
    ("can't won't", ["ca", "n't", "wo", "n't"]),
    ("DON'T", ["DO", "N'T"]),
    ("I'm sure it's fine", ["I", "'m", "sure", "it", "'s", "fine"]),
    ("we'll they've I'd you're", ["we", "'ll", "they", "'ve", "I", "'d", "you", "'re"]),
    ("shouldn't've", ["should", "n't", "'ve"]),
    ("don’t it’s", ["do", "n’t", "it", "’s"]),
    ("John's dog", ["John", "'s", "dog"]),
    ("the dogs' bones", ["the", "dogs", "'", "bones"]),
    ("cannot", ["can", "not"]),
    ("'s", ["'s"]),
    # punctuation around words
    ('"Hello," she said (quietly).', ['"', "Hello", ",", '"', "she", "said", "(", "quietly", ")", "."]),
    ("'Hi' from the '90s", ["'", "Hi", "'", "from", "the", "'90s"]),
    ("Really?!", ["Really", "?!"]),
    ("wait...what--really", ["wait", "...", "what", "--", "really"]),
    ("Well; no: yes", ["Well", ";", "no", ":", "yes"]),
    ("...", ["..."]),
    ("[a]", ["[", "a", "]"]),
    # abbreviations and initials keep their period
    ("Mr. Smith and Dr. Who", ["Mr.", "Smith", "and", "Dr.", "Who"]),
    ("The U.S. economy, e.g. jobs.", ["The", "U.S.", "economy", ",", "e.g.", "jobs", "."]),
    ("George W. Bush", ["George", "W.", "Bush"]),
    ("so do I.", ["so", "do", "I", "."]),
    ("apples, pears etc.)", ["apples", ",", "pears", "etc.", ")"]),
    ("Acme Inc. and Sons", ["Acme", "Inc.", "and", "Sons"]),
    # numbers
    ("Pi is 3.14, not 1,000 or 10:30!", ["Pi", "is", "3.14", ",", "not", "1,000", "or", "10:30", "!"]),
    ("It costs $5.00 or 5%.", ["It", "costs", "$", "5.00", "or", "5", "%", "."]),
    ("about .5 of it", ["about", ".5", "of", "it"]),
    # URLs and e-mail addresses
    ("See http://example.com/a?b=c.", ["See", "http://example.com/a?b=c", "."]),
    ("(www.example.com)", ["(", "www.example.com", ")"]),
    ("mail john.doe@example.com, now", ["mail", "john.doe@example.com", ",", "now"]),
    ("http://x.org/it's--fine", ["http://x.org/it's--fine"]),
    # hyphenated words stay whole
    ("a well-known state-of-the-art tool", ["a", "well-known", "state-of-the-art", "tool"]),
    # any script
    ("Привет, мир!", ["Привет", ",", "мир", "!"]),
    ("「東京」", ["「東京」"]),
]


@pytest.mark.parametrize("text, expected", CASES)
def test_tokenize_table(text, expected):
    assert tokenize(text) == expected


def test_long_token_is_kept_whole():
    word = "x" * 1000
    assert tokenize(f"({word}).") == ["(", word, ")", "."]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_tokenize_never_drops_or_invents_characters(text):
    tokens = tokenize(text)
    assert "".join(tokens) == "".join(text.split())
    assert all(token and not any(c.isspace() for c in token) for token in tokens)


PIECES = ["don't", "'s", "U.S.", "(", ")", ".", ",", "'", '"', "...", "a", "3.5", "$", "%", "-"]
PIECES += ["http://", "@", "n't", "’", "www.", "--", "…"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
def test_tokenize_punctuation_soup_round_trips(text):
    assert "".join(tokenize(text)) == text
