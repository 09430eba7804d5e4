import io
import json
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqtag.corpus import (
    Sentence,
    detect_format,
    format_conllu,
    format_json,
    format_sentence,
    format_text,
    format_tsv,
    iter_sentences,
    read_corpus,
)
from seqtag.errors import CorpusError


def conllu(*rows):
    """CoNLL-U text from rows whose 10 fields are separated by spaces (comments kept as is)."""
    return "".join((row if row.startswith("#") or not row else "\t".join(row.split())) + "\n" for row in rows)


# Sentence 1 has a multiword token (2-3), sentence 2 an empty node (1.1).
CONLLU = conllu(
    "# sent_id = 1",
    "# text = I don't know.",
    "1 I I PRON PRP _ 4 nsubj _ _",
    "2-3 don't _ _ _ _ _ _ _ _",
    "2 do do AUX VBP _ 4 aux _ _",
    "3 n't not PART RB _ 4 advmod _ _",
    "4 know know VERB VB _ 0 root _ SpaceAfter=No",
    "5 . . PUNCT . _ 4 punct _ _",
    "",
    "# sent_id = 2",
    "1 Go go VERB VB _ 0 root _ _",
    "1.1 went go VERB VBD _ _ _ 0:root CopyOf=1",
    "2 home home ADV RB _ 1 advmod _ _",
    "",
)
TSV = "The\tDET\ndog\tNOUN\n\nIt  PRON\nbarks   VERB\n"
SLASH = "The/DET dog/NOUN\n1/2/NUM of/ADP it/PRON\n"


def write(tmp_path, content, name="corpus.txt"):
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def error_of(path, **kwargs):
    with pytest.raises(CorpusError) as info:
        read_corpus(path, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------- readers


def test_conllu_words_tags_and_raw_lines(tmp_path):
    first, second = read_corpus(write(tmp_path, CONLLU))
    assert first.words == ["I", "do", "n't", "know", "."]
    assert first.tags == ["PRON", "AUX", "PART", "VERB", "PUNCT"]
    assert first.line == 1
    assert first.conllu == CONLLU.split("\n")[:8]
    assert second.words == ["Go", "home"]
    assert second.tags == ["VERB", "ADV"]
    assert second.line == 10
    assert "1.1\twent\tgo\tVERB\tVBD\t_\t_\t_\t0:root\tCopyOf=1" in second.conllu


def test_conllu_xpos_column(tmp_path):
    first, second = read_corpus(write(tmp_path, CONLLU), tag_column="xpos")
    assert first.tags == ["PRP", "VBP", "RB", "VB", "."]
    assert second.tags == ["VB", "RB"]


def test_conllu_missing_tag_is_named(tmp_path):
    path = write(tmp_path, CONLLU.replace("home\tADV\tRB", "home\tADV\t_"))
    assert error_of(path, format="conllu", tag_column="xpos") == (
        f"{path}:13: token has no XPOS tag ('_' in column 5)"
    )
    bad_upos = write(tmp_path, conllu("1 a a _ X _ 0 root _ _"), "upos.conllu")
    assert error_of(bad_upos, format="conllu") == f"{bad_upos}:1: token has no UPOS tag ('_' in column 4)"


def test_conllu_untagged_reading_keeps_missing_tags_as_none(tmp_path):
    path = write(tmp_path, conllu("1 a a _ X _ 0 root _ _"))
    (sentence,) = iter_sentences(path, "conllu", tagged=False)
    assert sentence.words == ["a"] and sentence.tags is None


def test_conllu_wrong_column_count(tmp_path):
    line = "2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_"
    path = write(tmp_path, CONLLU.replace(line, line[:-2]))
    assert error_of(path, format="conllu") == f"{path}:5: expected 10 tab-separated columns, found 9"


def test_conllu_bad_id(tmp_path):
    path = write(tmp_path, conllu("1 a a X X _ 0 root _ _", "two b b X X _ 1 dep _ _"))
    assert error_of(path, format="conllu") == (
        f"{path}:2: bad token ID 'two': expected an integer, a range like 1-2 or a decimal like 1.1"
    )


def test_tsv_tabs_spaces_and_blank_lines(tmp_path):
    path = write(tmp_path, "\n\n" + TSV.replace("\n\n", "\n\n\n\n") + "\n\n")
    a, b = read_corpus(path, format="tsv")
    assert (a.words, a.tags, a.line) == (["The", "dog"], ["DET", "NOUN"], 3)
    assert (b.words, b.tags, b.line) == (["It", "barks"], ["PRON", "VERB"], 8)


def test_tsv_tab_separated_word_may_contain_spaces(tmp_path):
    (sentence,) = read_corpus(write(tmp_path, "New York\tPROPN\n"))
    assert sentence.words == ["New York"] and sentence.tags == ["PROPN"]


@pytest.mark.parametrize(
    "line, message",
    [
        ("dog", "expected 2 columns (word and tag), found 1"),
        ("dog\t", "missing tag after the word"),
        ("\tNOUN", "missing word before the tag"),
        ("big dog NOUN", "expected 2 columns (word and tag), found 3"),
    ],
)
def test_tsv_errors(tmp_path, line, message):
    path = write(tmp_path, f"The\tDET\n{line}\n")
    assert error_of(path, format="tsv") == f"{path}:2: {message}"


def test_slash_tag_is_after_last_slash(tmp_path):
    a, b = read_corpus(write(tmp_path, SLASH))
    assert (a.words, a.tags, a.line) == (["The", "dog"], ["DET", "NOUN"], 1)
    assert (b.words, b.tags, b.line) == (["1/2", "of", "it"], ["NUM", "ADP", "PRON"], 2)


@pytest.mark.parametrize(
    "token, message",
    [
        ("dog", "token 'dog' has no '/TAG'"),
        ("/NOUN", "token '/NOUN' has an empty word before its last '/'"),
        ("dog/", "token 'dog/' has an empty tag after its last '/'"),
    ],
)
def test_slash_errors(tmp_path, token, message):
    path = write(tmp_path, f"The/DET cat/NOUN\n\nThe/DET {token}\n")
    assert error_of(path, format="slash") == f"{path}:3: {message}"


def test_lines_format_keeps_empty_lines_aligned(tmp_path):
    path = write(tmp_path, "I can't go. Me\n\nHi!\n")
    sentences = list(iter_sentences(path, "lines", tagged=False))
    assert [s.words for s in sentences] == [["I", "ca", "n't", "go", ".", "Me"], [], ["Hi", "!"]]
    assert [s.line for s in sentences] == [1, 2, 3]
    assert all(s.tags is None for s in sentences)
    assert [(s.raw.start, s.raw.end) for s in sentences] == [(0, 14), (15, 15), (16, 19)]


def test_text_format_is_paragraphs_split_into_sentences(tmp_path):
    path = write(tmp_path, "I can't go. Me\nneither!\n\n\nHi\n")
    sentences = list(iter_sentences(path, "text", tagged=False))
    assert [s.words for s in sentences] == [["I", "ca", "n't", "go", "."], ["Me", "neither", "!"],
                                            ["Hi"]]
    assert [s.new_paragraph for s in sentences] == [True, False, True]
    assert [s.raw.text for s in sentences] == ["I can't go.", "Me\nneither!", "Hi"]
    assert [s.line for s in sentences] == [1, 1, 5]


def test_tokens_format(tmp_path):
    path = write(tmp_path, "The\ndog\n\n\nIt\n")
    a, b = iter_sentences(path, "tokens", tagged=False)
    assert (a.words, a.tags, a.line, b.words, b.line) == (["The", "dog"], None, 1, ["It"], 5)


def test_untagged_format_refused_for_a_tagged_corpus(tmp_path):
    path = write(tmp_path, "The dog\n")
    assert error_of(path, format="text") == (
        f"{path}: format 'text' carries no tags; a tagged corpus must be one of conllu, tsv, "
        "slash, iob2, conll, columns"
    )


def test_bad_options():
    expected = (r"^unknown format 'csv'; choose one of conllu, tsv, slash, iob2, conll, columns, "
                r"text, lines, tokens$")
    with pytest.raises(CorpusError, match=expected):
        read_corpus(io.StringIO(TSV), format="csv")
    with pytest.raises(CorpusError, match=r"^tag column must be 'upos', 'xpos' or a column number, "
                       r"not 'pos'$"):
        read_corpus(io.StringIO(TSV), tag_column="pos")


# ---------------------------------------------------------------- files and encodings


def test_missing_file_and_directory(tmp_path):
    assert error_of(tmp_path / "nope.conllu") == f"{tmp_path / 'nope.conllu'}: no such file"
    assert error_of(tmp_path) == f"{tmp_path}: is a directory, not a file"


@pytest.mark.parametrize(
    "content, format",
    [
        ("", None),
        ("", "tsv"),
        ("\n\n  \n", None),
        ("\n\n  \n", "slash"),
        ("# just a comment\n\n# another\n", None),
        ("# just a comment\n\n# another\n", "conllu"),  # only CoNLL-U has comments
    ],
)
def test_no_sentences(tmp_path, content, format):
    path = write(tmp_path, content)
    assert error_of(path, format=format) == f"{path}: no sentences found"


def test_invalid_utf8_names_the_line(tmp_path):
    path = write(tmp_path, b"The\tDET\n\nca\xfe\tNOUN\n")
    assert error_of(path) == (
        f"{path}:3: not valid utf-8: byte 0xfe at byte 3 of the line; "
        "use --encoding if the file is in another encoding"
    )
    (sentence, second) = read_corpus(path, encoding="latin-1")
    assert second.words == ["caþ"]


@pytest.mark.parametrize("content", [CONLLU, TSV, SLASH])
def test_bom_and_crlf_are_accepted(tmp_path, content):
    plain = read_corpus(write(tmp_path, content, "plain.txt"))
    crlf = content.replace("\n", "\r\n").encode()
    windows = read_corpus(write(tmp_path, b"\xef\xbb\xbf" + crlf, "win.txt"))
    assert [(s.words, s.tags, s.line) for s in windows] == [(s.words, s.tags, s.line) for s in plain]
    assert windows[0].conllu == plain[0].conllu


@pytest.mark.parametrize("content", [CONLLU.rstrip("\n"), TSV.rstrip("\n"), SLASH.rstrip("\n")])
def test_last_sentence_without_final_newline(tmp_path, content):
    assert len(read_corpus(write(tmp_path, content))) == 2


def test_long_sentence_and_long_token(tmp_path):
    words = [f"w{i}" for i in range(4999)] + ["x" * 1000]
    as_tsv = "".join(f"{w}\tX\n" for w in words)
    as_slash = " ".join(f"{w}/X" for w in words) + "\n"
    as_conllu = "".join(f"{i}\t{w}\t_\tX\t_\t_\t_\t_\t_\t_\n" for i, w in enumerate(words, 1))
    for content in (as_tsv, as_slash, as_conllu):
        (sentence,) = read_corpus(write(tmp_path, content))
        assert sentence.words == words and sentence.tags == ["X"] * 5000


def test_any_script(tmp_path):
    (sentence,) = read_corpus(write(tmp_path, "東京\tPROPN\nへ\tADP\nПривет\tINTJ\n"))
    assert sentence.words == ["東京", "へ", "Привет"]


# ---------------------------------------------------------------- streaming


def test_streams_from_string_and_bytes_io():
    assert [s.words for s in iter_sentences(io.StringIO(TSV), "tsv")] == [["The", "dog"], ["It", "barks"]]
    assert [s.tags for s in iter_sentences(io.BytesIO(SLASH.encode()), None)] == [
        ["DET", "NOUN"],
        ["NUM", "ADP", "PRON"],
    ]
    with pytest.raises(CorpusError, match=r"^<stream>:3: expected 2 columns"):
        list(iter_sentences(io.StringIO("a\tX\n\nb\n"), "tsv"))


def test_reading_is_lazy():
    consumed = []

    def endless():
        for i in range(1, 10**9):
            consumed.append(i)
            yield f"w{i}\tX\n"
            if i % 3 == 0:
                yield "\n"

    first = next(iter_sentences(endless(), "tsv"))
    assert first.words == ["w1", "w2", "w3"] and len(consumed) <= 4
    consumed.clear()
    first = next(iter_sentences(endless(), None))  # detection reads ahead a bounded amount
    assert first.words == ["w1", "w2", "w3"] and len(consumed) <= 60


def test_stdin_is_read_as_bytes_and_named(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a/X\n\xff/X\n"), encoding="utf-8"))
    with pytest.raises(CorpusError) as info:
        list(iter_sentences("-", None))
    assert str(info.value).startswith("<stdin>:2: not valid utf-8: byte 0xff at byte 1 of the line")


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize(
    "content, tagged, expected",
    [
        (CONLLU, True, "conllu"),
        (CONLLU, False, "conllu"),
        (TSV, True, "tsv"),
        ("dog  NOUN\ncat NOUN\n", True, "tsv"),
        (SLASH, True, "slash"),
        ("Hi/UH there/RB\n", True, "slash"),  # two word/TAG tokens fit tsv too: no tab, so slash
        ("a/b\tc/d\n", True, "tsv"),  # same tie with a tab: tsv
        ("The\ndog\n\nIt\nbarks\n", False, "tokens"),
        ("Hello\nworld\n", False, "text"),  # one token per line but no blank line
        ("Thanks!\n\nBye.\n", False, "text"),  # paragraphs of one word: no sentence of two
        ("Thanks!\n\nBye.\nNow\n", False, "tokens"),
        ("The dog barks.\nIt is late.\n", False, "text"),
        ("\n\n", False, "text"),
        ("#hashtag\n", False, "text"),
    ],
)
def test_detect_format(tmp_path, content, tagged, expected):
    assert detect_format(write(tmp_path, content), tagged=tagged) == expected
    assert detect_format(content.splitlines(keepends=True), tagged=tagged) == expected


def test_detect_format_majority_wins():
    lines = ["a\tX\n"] * 10 + ["b/X c/Y d/Z\n"]
    assert detect_format(lines) == "tsv"


def test_undetectable_tagged_file(tmp_path):
    path = write(tmp_path, "\n# note\nsome plain words here\n")
    assert error_of(path) == (
        f"{path}:3: cannot tell the format of this file from this line; use --format conllu, tsv, "
            "slash, iob2, conll or columns"
    )


def test_mixed_formats_name_the_first_misfit_line(tmp_path):
    path = write(tmp_path, "The\tDET\ndog\tNOUN\n\nA/DET cat/NOUN sat/VERB\n")
    assert error_of(path) == (
        f"{path}:4: expected 2 columns (word and tag), found 3 "
        "(format detected as tsv; use --format to choose another)"
    )
    path = write(tmp_path, CONLLU + "\nThe\tDET\n", "mixed.conllu")
    assert error_of(path) == (
        f"{path}:16: expected 10 tab-separated columns, found 2 "
        "(format detected as conllu; use --format to choose another)"
    )


# ---------------------------------------------------------------- writers


def test_format_text_and_tsv():
    words, tags = ["The", "dog", "1/2"], ["DET", "NOUN", "NUM"]
    assert format_text(words, tags) == "The/DET dog/NOUN 1/2/NUM\n"
    assert format_tsv(words, tags) == "The\tDET\ndog\tNOUN\n1/2\tNUM\n\n"
    assert format_text([], []) == "\n"


def test_writers_round_trip_through_readers():
    words, tags = ["The", "1/2", "dog"], ["DET", "NUM", "NOUN"]
    (back,) = iter_sentences(io.StringIO(format_text(words, tags)), "slash")
    assert (back.words, back.tags) == (words, tags)
    (back,) = iter_sentences(io.StringIO(format_tsv(words, tags)), "tsv")
    assert (back.words, back.tags) == (words, tags)


def test_format_conllu_replaces_only_the_tag_column():
    first, second = iter_sentences(io.StringIO(CONLLU), "conllu")
    assert format_conllu(first, ["a", "b", "c", "d", "e"]) == conllu(
        "# sent_id = 1",
        "# text = I don't know.",
        "1 I I a PRP _ 4 nsubj _ _",
        "2-3 don't _ _ _ _ _ _ _ _",
        "2 do do b VBP _ 4 aux _ _",
        "3 n't not c RB _ 4 advmod _ _",
        "4 know know d VB _ 0 root _ SpaceAfter=No",
        "5 . . e . _ 4 punct _ _",
        "",
    )
    assert format_conllu(second, ["x", "y"], "xpos") == conllu(
        "# sent_id = 2",
        "1 Go go VERB x _ 0 root _ _",
        "1.1 went go VERB VBD _ _ _ 0:root CopyOf=1",
        "2 home home ADV y _ 1 advmod _ _",
        "",
    )
    assert "".join(format_conllu(s, s.tags) for s in (first, second)) == CONLLU


def test_format_conllu_from_plain_input():
    sentence = Sentence(["The", "dog"])
    assert format_conllu(sentence, ["DET", "NOUN"]) == (
        "1\tThe\t_\tDET\t_\t_\t_\t_\t_\t_\n2\tdog\t_\tNOUN\t_\t_\t_\t_\t_\t_\n\n"
    )
    assert format_conllu(sentence, ["DT", "NN"], "xpos") == (
        "1\tThe\t_\t_\tDT\t_\t_\t_\t_\t_\n2\tdog\t_\t_\tNN\t_\t_\t_\t_\t_\n\n"
    )
    assert format_conllu(Sentence([]), []) == ""
    with pytest.raises(ValueError):
        format_conllu(sentence, ["DET"])


def test_format_json():
    assert format_json(["The", "café"], ["DET", "NOUN"]) == (
        '{"tokens":[{"word":"The","tag":"DET"},{"word":"café","tag":"NOUN"}]}\n'
    )
    np = pytest.importorskip("numpy")
    topk = [[("DET", np.float32(0.875)), ("PRON", 0.125)], [("NOUN", 1.0)]]
    line = format_json(["The", "dog"], ["DET", "NOUN"], topk)
    assert line == (
        '{"tokens":[{"word":"The","tag":"DET","top":[["DET",0.875],["PRON",0.125]]},'
        '{"word":"dog","tag":"NOUN","top":[["NOUN",1.0]]}]}\n'
    )
    assert json.loads(line)["tokens"][1]["top"] == [["NOUN", 1.0]]


def test_format_sentence_dispatches():
    sentence = Sentence(["Hi"])
    assert format_sentence("text", sentence, ["INTJ"]) == "Hi/INTJ\n"
    assert format_sentence("tsv", sentence, ["INTJ"]) == "Hi\tINTJ\n\n"
    assert format_sentence("conllu", sentence, ["INTJ"]).startswith("1\tHi\t_\tINTJ\t")
    assert format_sentence("json", sentence, ["INTJ"]) == '{"tokens":[{"word":"Hi","tag":"INTJ"}]}\n'
    with pytest.raises(CorpusError, match="unknown output format 'xml'"):
        format_sentence("xml", sentence, ["INTJ"])


def test_format_sentence_writes_the_k_best_tags_in_every_topk_format():
    sentence = Sentence(["The", "dog"])
    tags = ["DET", "NOUN"]
    topk = [[("DET", 0.9714), ("PRON", 0.0211)], [("NOUN", 0.99999), ("VERB", 0.00001)]]
    assert format_sentence("text", sentence, tags, topk) == (
        "The/DET/0.971|PRON/0.021 dog/NOUN/1.000|VERB/0.000\n")
    assert format_sentence("tsv", sentence, tags, topk) == (
        "The\tDET\t0.971\tPRON\t0.021\ndog\tNOUN\t1.000\tVERB\t0.000\n\n")
    assert json.loads(format_sentence("json", sentence, tags, topk))["tokens"][0] == {
        "word": "The", "tag": "DET", "top": [["DET", 0.9714], ["PRON", 0.0211]]}
    assert format_sentence("text", Sentence([]), [], []) == "\n"
    with pytest.raises(CorpusError, match=r"^tag probabilities \(top-k\) cannot be written as "
                       r"conllu; choose one of text, tsv, json$"):
        format_sentence("conllu", sentence, tags, topk)


# ---------------------------------------------------------------- real data


def test_ud_english_ewt_dev(ewt_dir):
    sentences = read_corpus(ewt_dir / "en_ewt-ud-dev.conllu")
    assert len(sentences) == 2001
    assert sum(len(s) for s in sentences) == 25147  # integer-ID tokens (no ranges, no empty nodes)
    assert all(s.tags is not None and len(s.tags) == len(s.words) for s in sentences)


# ---------------------------------------------------------------- robustness

PIECES = [b"\t", b" ", b"/", b"_", b"#", b"\n", b"\r\n", b"-", b".", b"1", b"x", b"\t_"]
PIECES += [b"\xff", b"\xc3", b"\xef\xbb\xbf"]  # bad UTF-8, a lone lead byte, a BOM


def mutate(text, edits):
    lines = text.encode().split(b"\n")
    for where, op, piece in edits:
        i = where % len(lines)
        line = lines[i]
        at = where % (len(line) + 1)
        if op == "insert":
            lines[i] = line[:at] + piece + line[at:]
        elif op == "delete":
            lines[i] = line[:at] + line[at + 1 :]
        elif op == "duplicate":
            lines.insert(i, line)
        elif len(lines) > 1:
            del lines[i]
    return b"\n".join(lines)


def check_read(data, **kwargs):
    try:
        sentences = read_corpus(io.BytesIO(data), **kwargs)
    except CorpusError:
        return
    for s in sentences:
        assert s.words and len(s.tags) == len(s.words)
        format_conllu(s, s.tags)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from([None, "conllu", "tsv", "slash", "conll", "iob2"]))
def test_random_bytes_parse_or_raise_corpus_error(data, format):
    check_read(data, format=format)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([CONLLU, TSV, SLASH]),
    st.lists(
        st.tuples(
            st.integers(0, 10_000),
            st.sampled_from(["insert", "delete", "duplicate", "drop"]),
            st.sampled_from(PIECES),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([None, "conllu", "tsv", "slash"]),
    st.sampled_from(["upos", "xpos"]),
)
def test_mutated_corpora_parse_or_raise_corpus_error(text, edits, format, tag_column):
    check_read(mutate(text, edits), format=format, tag_column=tag_column)
