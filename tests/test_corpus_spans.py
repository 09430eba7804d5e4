"""The span corpus formats: CoNLL-2003 columns (conll), Universal NER (iob2) and named
columns (columns): reading, detection, IOB1 -> IOB2, and one-line errors with file:line."""

import pytest

from seqtag.corpus import detect_format, read_corpus
from seqtag.errors import CorpusError

CONLL03 = """-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O
. . O O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER
"""

UNER = """# sent_id = a-1
# text = Tampa Bay is here
1\tTampa\tB-LOC\t-\tstephen
2\tBay\tI-LOC\t-\tstephen
3\tis\tO\t-\t-
4\there\tO\t-\t-

# sent_id = a-2
1\tHi\tO\t-\t-
"""


def write(tmp_path, text, name="corpus.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path, **kwargs):
    with pytest.raises(CorpusError) as e:
        read_corpus(path, **kwargs)
    return str(e.value)


def test_conll03_is_detected_and_read_with_iob1_made_iob2(tmp_path):
    path = write(tmp_path, CONLL03)
    assert detect_format(path) == "conll"
    a, b = read_corpus(path)
    assert (a.words, a.tags, a.line) == (["EU", "rejects", "German", "call", "."],
                                         ["B-ORG", "O", "B-MISC", "O", "O"], 3)
    assert (b.words, b.tags, b.line) == (["Peter", "Blackburn"], ["B-PER", "I-PER"], 9)
    tabbed = write(tmp_path, CONLL03.replace(" ", "\t"), "tabbed.txt")
    assert [s.tags for s in read_corpus(tabbed)] == [a.tags, b.tags]


def test_uner_is_detected_and_read(tmp_path):
    path = write(tmp_path, UNER)
    assert detect_format(path) == "iob2"
    a, b = read_corpus(path)
    assert (a.words, a.tags, a.line) == (["Tampa", "Bay", "is", "here"],
                                         ["B-LOC", "I-LOC", "O", "O"], 3)
    assert (b.words, b.tags, b.line) == (["Hi"], ["O"], 9)


def test_uner_test_split(uner_dir):
    sentences = read_corpus(uner_dir / "en_ewt-ud-test.iob2")
    assert len(sentences) == 2077
    assert sum(t.startswith("B-") for s in sentences for t in s.tags) == 1088


def test_named_columns(tmp_path):
    path = write(tmp_path, "# a comment\n1 The DT B-NP\n2 dog NN I-NP\n\n1 Hi UH B-INTJ\n")
    a, b = read_corpus(path, word_column=2, tag_column=4)
    assert (a.words, a.tags, a.line, b.words, b.tags) == (
        ["The", "dog"], ["B-NP", "I-NP"], 2, ["Hi"], ["B-INTJ"])
    (c, _) = read_corpus(path, tag_column="3", word_column=2)
    assert c.tags == ["DT", "NN"]


@pytest.mark.parametrize("format, text, line, message", [
    ("conll", "EU NNP I-ORG\nrejects\n", 2,
     "expected at least 2 columns (word first, tag last), found 1"),
    ("conll", "EU NNP I-\n", 1, "tag 'I-' has no type after 'I-'"),
    ("conll", "EU NNP U-ORG\n", 1, "tag 'U-ORG' is in no known span scheme: expected O or "
     "B-, I-, E-, S- followed by a type (IOB1, IOB2 or IOBES)"),
    ("iob2", "# c\n1\tEU\tB-ORG\t-\n2\tsays\n", 3, "expected at least 3 columns "
     "(id, token, tag), found 2"),
    ("iob2", "1\tEU\tB-\t-\n", 1, "tag 'B-' has no type after 'B-'"),
    ("iob2", "1\tEU\tPER\t-\n", 1, "tag 'PER' is in no known span scheme: expected O or "
     "B-, I-, E-, S- followed by a type (IOB1, IOB2 or IOBES)"),
    ("iob2", "x\tEU\tO\t-\n", 1, "bad token id 'x': expected an integer"),
    ("columns", "1 EU B-ORG\n2 says\n", 2, "expected at least 3 columns (the word in column "
     "2, the tag in column 3), found 2"),
    ("columns", "1 EU I-\n", 1, "tag 'I-' has no type after 'I-'"),
])
def test_broken_input_gives_one_line_with_file_and_line(tmp_path, format, text, line, message):
    path = write(tmp_path, text)
    kwargs = {"word_column": 2, "tag_column": 3} if format == "columns" else {"format": format}
    assert error_of(path, **kwargs) == f"{path}:{line}: {message}"


def test_detected_format_is_named_in_errors(tmp_path):
    path = write(tmp_path, CONLL03 + "Bad NNP I-\n")
    assert error_of(path) == (f"{path}:11: tag 'I-' has no type after 'I-' (format detected "
                              "as conll; use --format to choose another)")


def test_column_options_are_checked(tmp_path):
    path = write(tmp_path, "a b\n")
    assert error_of(path, format="columns") == (
        "the columns format needs the tag column's number (--tag-column N)")
    assert error_of(path, tag_column=2, word_column=2) == (
        "the word and the tag cannot both be column 2")
    assert error_of(path, tag_column=0) == "the tag column must be a number >= 1, got 0"
    assert error_of(path, format="tsv", tag_column=2) == (
        "--word-column and a numbered --tag-column read the columns format, not 'tsv'")
