"""Raw text end to end: the front end in the model file, training it with the tagger,
paragraphs and offsets, and what `seqtag tag` writes from raw text (CoNLL-U the official
scorer accepts, JSON with offsets).  Small models trained here on tests/data's corpora."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import shared_dir
from seqtag import Tagger, cli, modelfile, rawtext, segment
from seqtag.corpus import iter_sentences
from seqtag.errors import ModelError
from seqtag.segment import RuleFrontEnd

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
FRENCH = DATA / "segment_fr.conllu"
SAMPLE = REPO / "data" / "sample.txt"
SCORER = shared_dir() / "tools" / "conll18_ud_eval.py"
# a front end and a tagger small enough to train in seconds
FRONTEND = {"dim": 8, "hidden": 16, "epochs": 40, "min_chars": 0, "crop": 64, "batch": 4,
            "lr": 0.02, "window": 48, "margin": 8}
NETWORK = {"epochs": 1, "hidden": 8, "word_dim": 8, "char_dim": 4, "char_hidden": 4,
           "layers": 1, "threads": 1}
FAST_FRONTEND = dict(FRONTEND, epochs=2)  # for the command line: what it does, not how well

runner = CliRunner()


def invoke(*args, input=None):
    return runner.invoke(cli.app, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def french(tmp_path_factory):
    """(tagger with a learned front end, its model file)."""
    tagger = Tagger.train_files(FRENCH, FRENCH, frontend_options=FRONTEND, **NETWORK)
    path = tmp_path_factory.mktemp("fr") / "fr.npz"
    tagger.save(path)
    return tagger, path


@pytest.fixture(scope="module")
def rules_model(tmp_path_factory):
    """A tagger trained on a slash corpus: the rules are its front end."""
    tagger = Tagger.train_files(SAMPLE, **NETWORK)
    path = tmp_path_factory.mktemp("rules") / "rules.npz"
    tagger.save(path)
    return path


def test_a_corpus_too_small_to_hold_out_dev_fails_before_the_front_end(tmp_path):
    """One sentence and no --dev: the error the tagger's run ends with comes before the
    front end is learned (it came after, a minute later on a bigger front end)."""
    corpus = tmp_path / "one.conllu"
    corpus.write_text("# text = The dog.\n1\tThe\tthe\tDET\t_\t_\t0\troot\t_\t_\n"
                      "2\tdog\tdog\tNOUN\t_\t_\t1\tdep\t_\tSpaceAfter=No\n"
                      "3\t.\t.\tPUNCT\t_\t_\t1\tdep\t_\t_\n\n", encoding="utf-8")
    result = invoke("train", corpus, "-o", tmp_path / "m.npz", "-q")
    assert result.exit_code == 1 and "front end" not in result.stderr
    assert result.stderr.endswith("seqtag: error: need at least 2 training sentences to hold "
                                  "some out as dev data; give --dev\n")
    assert not (tmp_path / "m.npz").exists()


def words(sentences):
    return [[w for t in s.tokens for w in t.word_forms] for s in sentences]


# ---------------------------------------------------------------- the model file


def test_a_learned_front_end_round_trips_through_the_model_file(french):
    tagger, path = french
    assert tagger.frontend.kind == "learned"
    with np.load(path, allow_pickle=False) as npz:
        names = set(npz.files)
    assert {"frontend.embedding", "frontend.output.weight"} <= names
    arrays, meta = modelfile.load_model(path)
    assert meta["frontend"]["kind"] == "learned"
    loaded = Tagger.load(path)
    assert loaded.frontend.kind == "learned"
    text = "L'association a changé les décors du théâtre. Le maire est allé au marché."
    assert loaded.frontend.segment(text) == tagger.frontend.segment(text)
    assert loaded.tag(text) == tagger.tag(text)
    # the tagger's own weights are all there, unchanged, and neither the front end's nor
    # the vocabulary's lists (model format 2) are in them
    assert "vocab.words" in names
    assert set(loaded.network.arrays()) == {k for k in names if not k.startswith(
        ("frontend.", "vocab.", "__meta__"))}
    half = path.with_name("half.npz")
    loaded.save(half, float16=True)
    assert Tagger.load(half).frontend.segment(text) == tagger.frontend.segment(text)


def test_a_model_without_front_end_tags_raw_text_with_the_rules(rules_model):
    tagger = Tagger.load(rules_model)
    assert tagger.frontend.kind == "rules"
    assert "frontend" not in modelfile.load_model(rules_model)[1]
    sentences = tagger.tag("The dog barked. It ran away!\n\nA new paragraph")
    assert [[w for w, _ in s] for s in sentences] == [
        ["The", "dog", "barked", "."], ["It", "ran", "away", "!"], ["A", "new", "paragraph"]]
    # the bundled model carries a front end learned from EWT train (bench/attach_frontend.py)
    assert Tagger.load().frontend.kind == "learned"


def _rewrite(path, out, arrays=None, meta=None):
    old_arrays, old_meta = modelfile.load_model(path)
    old_meta.pop("format_version"), old_meta.pop("array_dtypes")
    modelfile.save_model(out, old_arrays if arrays is None else arrays(old_arrays),
                         old_meta if meta is None else meta(old_meta))


@pytest.mark.parametrize("arrays, meta, message", [
    (lambda a: {k: v for k, v in a.items() if k != "frontend.output.bias"}, None,
     "front end arrays missing: output.bias"),
    (lambda a: dict(a, **{"frontend.embedding": a["frontend.embedding"][:3]}), None,
     "front end array embedding has shape"),
    (None, lambda m: dict(m, frontend=dict(m["frontend"], format=99)),
     "front end format 99 is not supported"),
    (None, lambda m: dict(m, frontend=[1, 2]), "the front end's is not a JSON object"),
    (None, lambda m: {k: v for k, v in m.items() if k != "frontend"},
     "has front end weights but no front end metadata"),
    (None, lambda m: dict(m, frontend={k: v for k, v in m["frontend"].items() if k != "chars"}),
     "front end metadata is broken (KeyError"),
])
def test_a_broken_front_end_is_a_model_error_naming_the_file(french, tmp_path, arrays, meta,
                                                             message):
    broken = tmp_path / "broken.npz"
    _rewrite(french[1], broken, arrays, meta)
    with pytest.raises(ModelError) as e:
        Tagger.load(broken)
    assert str(e.value).startswith(str(broken)) and message in str(e.value)
    assert "\n" not in str(e.value)


def test_info_says_which_front_end(french, rules_model):
    out = invoke("info", french[1]).stdout
    line = next(x for x in out.splitlines() if x.startswith("front end"))
    assert line.startswith("front end     learned: character BiGRU (hidden 16, ")
    assert "; dev F1 tokens " in line and f"({FRENCH})" in line
    info = json.loads(invoke("info", french[1], "--json").stdout)["frontend"]
    assert info["kind"] == "learned" and info["multiword_forms"] > 0
    assert set(info["training"]["dev"]) == {"tokens", "sentences", "multiword"}
    out = invoke("info", rules_model).stdout
    assert ("front end     rules (seqtag.tokenize and a punctuation sentence rule: the model "
            "learned no front end)") in out.splitlines()


# ---------------------------------------------------------------- training


def test_train_learns_the_front_end_from_text_lines_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(segment, "DEFAULTS", dict(segment.DEFAULTS, **FAST_FRONTEND))
    out = tmp_path / "m.npz"
    result = invoke("train", FRENCH, "--dev", FRENCH, "-o", out, "-q",
                    *[x for k, v in NETWORK.items() for x in (f"--{k.replace('_', '-')}", v)])
    assert result.exit_code == 0, result.output
    assert (f"front end: learning tokens, sentences and multiword tokens from the '# text' "
            f"lines of {FRENCH}, {FRENCH} picking its epoch") in result.stderr
    assert "front end epoch   2  loss" in result.stderr
    assert Tagger.load(out).frontend.kind == "learned"


@pytest.mark.parametrize("make, flags, reason", [
    (lambda p: p.write_text("The\tDET\ndog\tNOUN\n\nA\tDET\ncat\tNOUN\n"), (),
     "the corpus is tsv, which has no raw text: a front end is learned from CoNLL-U with "
     "'# text' lines and SpaceAfter=No"),
    (lambda p: p.write_text("1\tThe\t_\tDET\t_\t_\t_\t_\t_\t_\n\n1\tA\t_\tDET\t_\t_\t_\t_\t_\t_\n"),
     (), "the corpus has no '# text =' lines: no raw text to learn from"),
    (lambda p: p.write_text(FRENCH.read_text()), ("--no-frontend",), "not asked for"),
])
def test_train_without_raw_text_keeps_the_rules_and_says_so(tmp_path, make, flags, reason):
    corpus = tmp_path / "corpus"
    make(corpus)
    out = tmp_path / "m.npz"
    result = invoke("train", corpus, "-o", out, "-q", *flags,
                    *[x for k, v in NETWORK.items() for x in (f"--{k.replace('_', '-')}", v)])
    assert result.exit_code == 0, result.output
    assert f"front end: keeping the rules ({reason})" in result.stderr.splitlines()
    assert Tagger.load(out).frontend.kind == "rules"


def test_every_model_written_while_training_carries_the_front_end(tmp_path):
    saved = []
    Tagger.train_files(FRENCH, FRENCH, frontend_options=FAST_FRONTEND,
                       on_best=lambda t: saved.append(t.frontend.kind), **NETWORK)
    assert saved == ["learned"]


def test_a_resumed_run_ends_with_the_same_model(tmp_path):
    """--resume learns the front end again: its training is deterministic, so the resumed
    run's model is the uninterrupted run's."""
    options = dict(NETWORK, epochs=2, patience=5)
    whole = Tagger.train_files(FRENCH, FRENCH, frontend_options=FAST_FRONTEND, **options)
    checkpoint = tmp_path / "run.ckpt"
    Tagger.train_files(FRENCH, FRENCH, frontend_options=FAST_FRONTEND, checkpoint=checkpoint,
                       **dict(options, epochs=1))
    resumed = Tagger.train_files(FRENCH, FRENCH, frontend_options=FAST_FRONTEND,
                                 resume=checkpoint, **options)
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    whole.save(a)
    resumed.save(b)
    arrays_a, arrays_b = modelfile.load_model(a)[0], modelfile.load_model(b)[0]
    assert sorted(arrays_a) == sorted(arrays_b)
    assert all(np.array_equal(arrays_a[k], arrays_b[k]) for k in arrays_a)


def test_a_resumed_run_keeps_its_front_end_choice_and_float16(tmp_path):
    """--no-frontend and --float16 are the run's, kept by its checkpoint: resumed without
    them, the model had a learned front end and float32 weights, not the uninterrupted
    run's."""
    model = tmp_path / "m.npz"
    tiny = ["--hidden", "8", "--word-dim", "8", "--char-dim", "4", "--char-hidden", "4",
            "--layers", "1", "--threads", "1", "-q"]
    result = invoke("train", FRENCH, "--dev", FRENCH, "-o", model, "--epochs", "1",
                    "--no-frontend", "--float16", *tiny)
    assert result.exit_code == 0, result.output
    result = invoke("train", FRENCH, "--dev", FRENCH, "-o", model, "--epochs", "2",
                    "--resume", f"{model}.ckpt", *tiny)
    assert result.exit_code == 0, result.output
    assert "front end: keeping the rules (not asked for)" in result.stderr
    tagger = Tagger.load(model)
    assert tagger.frontend.kind == "rules" and len(tagger.meta["history"]) == 2
    with np.load(model) as arrays:
        assert arrays["rnn.weight_ih_l0"].dtype == np.float16
    from seqtag.train import resumed_flags
    assert resumed_flags(f"{model}.ckpt") == {"float16": True, "frontend": False}
    # given again, they are taken, and the checkpoint keeps them for the next resume
    result = invoke("train", FRENCH, "--dev", FRENCH, "-o", model, "--epochs", "3",
                    "--resume", f"{model}.ckpt", "--no-float16", *tiny)
    assert result.exit_code == 0, result.output
    assert resumed_flags(f"{model}.ckpt") == {"float16": False, "frontend": False}
    with np.load(model) as arrays:
        assert arrays["rnn.weight_ih_l0"].dtype == np.float32


def test_a_sentence_longer_than_the_limit_is_tagged_in_pieces(monkeypatch):
    """Text without sentence ends made one sentence of every token (a 3,000,000-character
    line: 1.9 GB); past MAX_SENTENCE_TOKENS a sentence is cut into pieces of that many,
    every token kept in order with its offsets."""
    tagger = Tagger.load()
    text = " ".join(["the", "dog", "saw", "a", "cat", "in", "the", "old", "garden"] * 5)
    whole = tagger.tag_text(text)
    assert max(len(s.tokens) for s in whole) > 10
    monkeypatch.setattr(rawtext, "MAX_SENTENCE_TOKENS", 10)
    cut = tagger.tag_text(text)
    assert all(1 <= len(s.tokens) <= 10 for s in cut) and len(cut) > len(whole)
    assert [t.text for s in cut for t in s.tokens] == [t.text for s in whole for t in s.tokens]
    for s in cut:
        assert text[s.start:s.end] == s.text
        assert all(text[t.start:t.end] == t.text for t in s.tokens)
    source = io.StringIO(text + "\n", newline="")
    got = list(iter_sentences(source, "text", tagged=False, front_end=tagger.frontend))
    assert all(len(s.words) <= 10 for s in got) and sum(len(s.words) for s in got) == 45
    # one sentence a line stays one, however long: output lines match input lines
    source = io.StringIO(text + "\n", newline="")
    got = list(iter_sentences(source, "lines", tagged=False, front_end=tagger.frontend))
    assert [len(s.words) for s in got] == [45]


# ---------------------------------------------------------------- raw text, offsets

HARD = [
    "Two paragraphs.\n\nThe second one, after a blank line.",
    "A paragraph\nspread over\nthree lines. Then another sentence",
    "no final punctuation at all",
    "?!... --- !!!",
    "Des emoji 😀👍🏽 et 👨‍👩‍👧 au milieu 🇫🇷 ! Ελληνικά κείμενα. Русский текст. 中文文本。",
    "Windows lines.\r\nSecond line.\r\n\r\nNew paragraph.\r\n",
    "Old Mac lines.\rSecond line.\r\rNew paragraph.\r",
    " ".join(["Une phrase assez longue du milieu de la ville."] * 200),
    "",
    "   \n\t\n",
]


@pytest.mark.parametrize("text", HARD, ids=range(len(HARD)))
@pytest.mark.parametrize("kind", ["learned", "rules"])
def test_raw_text_keeps_every_character_and_its_offsets(french, kind, text):
    tagger = french[0]
    if kind == "rules":
        tagger = Tagger(tagger.network, tagger.vocab, tagger.meta, RuleFrontEnd())
    sentences = tagger.tag_text(text)
    tokens = [t for s in sentences for t in s.tokens]
    assert "".join(t.text for t in tokens) == "".join(text.split())  # nothing lost or invented
    blank_lines = [p.offset for p in rawtext.text_paragraphs(text)]
    for s in sentences:
        assert text[s.start:s.end] == s.text
        assert len(s.tags) == len(s.words)
        assert "\n\n" not in s.text and "\n\r\n" not in s.text  # a blank line ends a sentence
        for t in s.tokens:
            assert text[t.start:t.end] == t.text
    # a sentence opening each paragraph, and only there
    assert [s.start for s in sentences if s.new_paragraph] == [
        next(s.start for s in sentences if s.start >= p) for p in blank_lines
        if any(s.start >= p for s in sentences)]


def test_the_french_front_end_expands_multiword_tokens(french):
    (sentence,) = french[0].tag_text("L'association a changé les décors du théâtre.")
    du = next(t for t in sentence.tokens if t.text == "du")
    assert du.words == ["de", "le"] and sentence.words[6:8] == ["de", "le"]
    assert [w for w, _ in sentence.pairs()] == sentence.words


def test_long_paragraphs_are_cut_at_a_line_end(monkeypatch):
    monkeypatch.setattr(rawtext, "SOFT_LIMIT", 25)  # cut after final punctuation
    monkeypatch.setattr(rawtext, "HARD_LIMIT", 40)  # cut at any line end
    text = ("First line here,\nsecond line.\nthird line here\n" + "x" * 20 + "\n") * 2
    paragraphs = list(rawtext.text_paragraphs(text))
    assert [p.new for p in paragraphs] == [True] + [False] * (len(paragraphs) - 1)
    assert [p.text for p in paragraphs][:2] == ["First line here,\nsecond line.",
                                                "third line here\n" + "x" * 20 + "\nFirst line here,"]
    for p in paragraphs:
        assert text[p.offset:p.offset + len(p.text)] == p.text
    assert "".join(p.text for p in paragraphs).replace("\n", "") == text.replace("\n", "")


def test_a_huge_line_is_cut_between_tokens(monkeypatch):
    """A file of one line (no line end at all) is cut too: into pieces of at most
    SOFT_LIMIT characters after a space or tab, so that paragraphs stay within the limits;
    every character is kept, at its offset, and no token is cut where a space was near."""
    monkeypatch.setattr(rawtext, "SOFT_LIMIT", 30)
    monkeypatch.setattr(rawtext, "HARD_LIMIT", 70)
    words = [("word%d" % k) * (1 + k % 3) for k in range(200)]
    text = "Start " + " ".join(words) + "\tend.\nNext line.\n"
    paragraphs = list(rawtext.text_paragraphs(text))
    assert len(paragraphs) > 5
    assert [p.new for p in paragraphs] == [True] + [False] * (len(paragraphs) - 1)
    for p in paragraphs:
        assert text[p.offset:p.offset + len(p.text)] == p.text
        assert len(p.text) <= 70 + 30
    ends = [p.offset + len(p.text) for p in paragraphs]
    gaps = [text[a:b.offset] for a, b in zip(ends, paragraphs[1:])] + [text[ends[-1]:]]
    assert paragraphs[0].offset == 0 and set("".join(gaps)) <= {"\n"}  # nothing lost
    tokens = {t for p in paragraphs for t in p.text.split()}
    assert set(text.split()) == tokens  # no token cut in two
    sentences = "Aa bb cc. Dd ee! " * 10  # cut after a sentence's end where there is one
    pieces = [t for _, t, _ in rawtext._long_lines_cut([(1, sentences, "")], 30)]
    assert "".join(pieces) == sentences
    assert all(p.rstrip()[-1] in ".!" for p in pieces) and max(map(len, pieces)) <= 30
    no_space = "y" * 75  # a line with no space: cut at the limit
    pieces = list(rawtext._long_lines_cut([(1, no_space, "\n")], 30))
    assert [len(t) for _, t, _ in pieces] == [30, 30, 15]
    assert [e for _, _, e in pieces] == [None, None, "\n"]  # None: the line goes on
    assert "".join(t for _, t, _ in pieces) == no_space


def test_lines_format_is_one_sentence_per_line(french):
    source = io.StringIO("Le chat dort. Le chien aussi.\n\nFin\n", newline="")
    sentences = list(iter_sentences(source, "lines", tagged=False, front_end=french[0].frontend))
    assert [s.raw.text for s in sentences] == ["Le chat dort. Le chien aussi.", "", "Fin"]
    assert [(s.raw.start, s.raw.end) for s in sentences] == [(0, 29), (30, 30), (31, 34)]


# ---------------------------------------------------------------- the command line


def test_json_offsets_are_offsets_in_the_file(french, tmp_path):
    text = "\ufeffLe chat dort.\r\nLe chien\r\naussi.\r\n\r\n\r\nDu pain 😀 du vin.\r\n"
    path = tmp_path / "in.txt"
    path.write_bytes(text.encode("utf-8"))
    result = invoke("tag", "-m", french[1], "-i", path, "--format", "json", "--top-k", "2")
    assert result.exit_code == 0, result.output
    content = open(path, encoding="utf-8-sig", newline="").read()
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert objects and all(content[o["start"]:o["end"]] == o["text"] for o in objects)
    tokens = [t for o in objects for t in o["tokens"]]
    assert "".join(t["text"] for t in tokens) == "".join(content.split())
    for t in tokens:
        assert content[t["start"]:t["end"]] == t["text"]
        assert all(len(w["top"]) == 1 and w["top"][0][0] == w["tag"] for w in t["words"])


def test_json_offsets_of_an_argument_count_its_byte_order_mark(french):
    """An argument is a string: its offsets count every character of it, a leading
    byte-order mark too, as Tagger.tag_text counts them (before: one less for each)."""
    text = "\ufeffLe chat dort. Du pain."
    result = invoke("tag", "-m", french[1], "--format", "json", text)
    assert result.exit_code == 0, result.output
    tokens = [t for line in result.stdout.splitlines() for t in json.loads(line)["tokens"]]
    assert [(t["start"], t["end"]) for t in tokens] == [
        (t.start, t.end) for s in french[0].tag_text(text) for t in s.tokens]
    assert tokens[0]["start"] == 1
    assert all(text[t["start"]:t["end"]] == t["text"] for t in tokens)


@pytest.mark.parametrize("text", [
    "Le chat dort\r\rLe chien aussi\rFin\r",                # old Mac line ends
    "Le chat dort\r\n\r\nLe chien aussi\r\nFin\r\n",        # Windows
    "Le chat dort\u2028\u2028Le chien aussi\x0cFin\n",      # not line ends: one paragraph
    "Le chat dort.\rLe chien aussi.\n\nFin du conte.\n",       # a lone \r inside a line
    "Le chat dort\r\r\nLe chien aussi\nFin\n",               # \r then \r\n: a blank line
])
def test_a_file_and_a_string_have_the_same_lines_and_offsets(french, tmp_path, text):
    """A lone \\r ends a line in a file as in a string (a blank line between two, a
    paragraph), and U+2028 or a form feed ends a line in neither; JSON offsets are offsets
    in the file as read with newline=''."""
    path = tmp_path / "in.txt"
    path.write_bytes(text.encode("utf-8"))
    result = invoke("tag", "-m", french[1], "-i", path, "--format", "json")
    assert result.exit_code == 0, result.output
    from_file = [(t["start"], t["end"]) for line in result.stdout.splitlines()
                 for t in json.loads(line)["tokens"]]
    from_string = [(t.start, t.end) for s in french[0].tag_text(text) for t in s.tokens]
    assert from_file == from_string
    paragraphs = [p.offset for p in rawtext.text_paragraphs(text)]
    assert len(paragraphs) == (1 if "\u2028" in text else 2)
    for start, end in from_file:
        assert not any(c in text[start:end] for c in "\r\n")
    # and each character once, where the string has it
    assert [text[a:b] for a, b in from_file] == [
        t.text for s in french[0].tag_text(text) for t in s.tokens]


@pytest.mark.parametrize("text, lines", [
    ("Le chat dort.\rLe chien aussi.\nFin.\n", ["Le chat dort.", "Le chien aussi.", "Fin."]),
    ("Le chat dort\r\r\nLe chien aussi\n", ["Le chat dort", "", "Le chien aussi"]),
    ("Un\r\nDeux\rTrois", ["Un", "Deux", "Trois"]),
])
def test_lines_input_keeps_one_output_line_per_input_line(french, tmp_path, text, lines):
    """--input-format lines: a line of text output per line of the file, whatever ends it
    (\\n, \\r\\n or a lone \\r), an empty one for an empty line, each line's words once."""
    path = tmp_path / "in.txt"
    path.write_bytes(text.encode("utf-8"))
    result = invoke("tag", "-m", french[1], "-i", path, "--input-format", "lines")
    assert result.exit_code == 0, result.output
    got = ["".join(w.rsplit("/", 1)[0] for w in line.split())
           for line in result.stdout.split("\n")[:-1]]
    assert got == [line.replace(" ", "") for line in lines]


def test_text_and_tsv_show_syntactic_words(french):
    text = invoke("tag", "-m", french[1], "du théâtre.").stdout
    assert text.startswith("de/X le/X théâtre/X")
    tsv = invoke("tag", "-m", french[1], "--format", "tsv", "du théâtre.").stdout
    assert tsv.startswith("de\tX\nle\tX\nthéâtre\tX\n")


def test_conllu_from_raw_text(french):
    out = invoke("tag", "-m", french[1], "--format", "conllu",
                 "L'association a changé les décors du théâtre. Le maire est venu.",
                 "Fin du texte").stdout
    blocks = [b.split("\n") for b in out.rstrip("\n").split("\n\n")]
    assert [b[0] for b in blocks] == ["# newpar", "# sent_id = 2", "# newpar"]
    assert [b[1 if b[0] == "# newpar" else 0] for b in blocks] == [
        "# sent_id = 1", "# sent_id = 2", "# sent_id = 3"]
    first = blocks[0]
    assert first[2] == "# text = L'association a changé les décors du théâtre."
    rows = [line.split("\t") for line in first[3:]]
    assert rows[0][:2] == ["1", "L'"] and rows[0][9] == "SpaceAfter=No"
    ranges = [r for r in rows if "-" in r[0]]
    assert ranges == [["7-8", "du", "_", "_", "_", "_", "_", "_", "_", "_"]]
    after = rows.index(ranges[0])
    assert [r[:2] for r in rows[after + 1:after + 3]] == [["7", "de"], ["8", "le"]]


def test_conllu_output_is_accepted_by_the_official_scorer(french, tmp_path):
    if not SCORER.is_file():
        pytest.skip(f"the official scorer is not at {SCORER}; set SEQTAG_SHARED")
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from common import fill_dummy_tree, raw_text
    finally:
        sys.path.remove(str(REPO / "bench"))
    raw = tmp_path / "raw.txt"
    raw.write_text(raw_text(FRENCH.read_text(encoding="utf-8")), encoding="utf-8")
    result = invoke("tag", "-m", french[1], "-i", raw, "--format", "conllu")
    assert result.exit_code == 0, result.output
    assert "SpaceAfter=No" in result.stdout and "# text = " in result.stdout
    system = tmp_path / "system.conllu"
    system.write_text(fill_dummy_tree(result.stdout), encoding="utf-8")
    p = subprocess.run([sys.executable, str(SCORER), "-v", str(FRENCH), str(system)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    scores = {line.split("|")[0].strip(): float(line.split("|")[3])
              for line in p.stdout.splitlines()[2:] if line.count("|") >= 3}
    assert scores["Words"] > 90 and scores["Sentences"] > 80 and scores["UPOS"] > 90


def test_a_bad_line_in_raw_text_comes_after_the_sentences_before_it(french, tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("Le chat dort.\n\nLe chien aussi.\n".encode() + b"\xff\n")
    # (given: detecting the format would read the bad line before tagging anything)
    result = invoke("tag", "-m", french[1], "-i", path, "--batch-size", "1", "--input-format",
                    "text")
    assert result.exit_code == 1
    assert result.stdout.count("\n") == 2  # both sentences before the bad line
    assert f"{path}:4: not valid utf-8" in result.stderr


def test_tag_in_a_subprocess_reads_stdin_as_raw_text(french):
    p = subprocess.run([sys.executable, "-m", "seqtag", "tag", "-m", str(french[1]),
                        "--format", "json"], input="Le chat.\nLe chien.\n".encode(),
                       capture_output=True, env={**os.environ, "SEQTAG_DEBUG": ""}, timeout=120)
    assert p.returncode == 0, p.stderr
    assert [json.loads(x)["start"] for x in p.stdout.decode().splitlines()] == [0, 9]


@pytest.mark.parametrize("threads", [1, 2])
def test_paragraphs_in_many_batches_are_segmented_as_in_one(french, threads):
    """rawtext.segment reads a batch ahead (a learned front end scores it on the second
    thread while the caller tags the one before): small batches give what one batch gives,
    in order, and a bad line still comes after the sentences of the paragraphs before it."""
    tagger = Tagger.load(french[1], threads=threads)
    texts = [line[len("# text = "):].strip() for line in FRENCH.read_text("utf-8").splitlines()
             if line.startswith("# text = ")][:40]
    text = "\n\n".join(" ".join(texts[k:k + 3]) for k in range(0, len(texts), 3))

    def run(batch_chars, fail_after=None):
        got = []

        def items():
            for k, p in enumerate(rawtext.text_paragraphs(text)):
                if k == fail_after:
                    raise rawtext.SeqtagError("bad line")
                yield p
        try:
            for p, sentences in rawtext.segment(items(), tagger.frontend,
                                                batch_chars=batch_chars):
                got.append((p.offset, [(s.start, s.end, words([s])[0]) for s in sentences]))
        except rawtext.SeqtagError as e:
            got.append(str(e))
        return got

    whole = run(10**9)
    assert len(whole) == 10 and all(sentences for _, sentences in whole)
    for batch_chars in (1, 150, 400):
        assert run(batch_chars) == whole, batch_chars
        assert run(batch_chars, fail_after=7) == whole[:7] + ["bad line"], batch_chars


def test_reading_ahead_uses_the_second_thread_and_cancels_what_is_left(french, monkeypatch):
    """With two threads the learned front end's scores of the next batch go to the second
    thread (rawtext.segment reads a batch ahead); a caller that stops early leaves nothing
    queued there (the next batch's call is cancelled); an error other than a bad line
    while reading comes after the sentences of the batches before it."""
    from seqtag import runtime
    tagger = Tagger.load(french[1], threads=2)
    text = "\n\n".join(f"Le chat numéro {k} dort. Il fait beau." for k in range(30))
    jobs = []
    run_beside = runtime.run_beside

    def recording(fn, *args):
        job = run_beside(fn, *args)
        if getattr(fn, "__name__", "") == "_score":
            jobs.append(job)
        return job

    monkeypatch.setattr(runtime, "run_beside", recording)
    whole = [p.offset for p, _ in rawtext.segment(rawtext.text_paragraphs(text),
                                                  tagger.frontend, batch_chars=200)]
    assert len(whole) == 30 and len(jobs) >= 5  # a job per batch of about 200 characters

    jobs.clear()
    gate, started = runtime.threading.Event(), runtime.threading.Event()
    runtime.second_thread().submit(lambda: (started.set(), gate.wait(10)))
    assert started.wait(10)  # the second thread is busy: the jobs queue behind
    found = rawtext.segment(rawtext.text_paragraphs(text), tagger.frontend, batch_chars=200)
    next(found)  # the first batch (run by this thread), the second one queued
    found.close()
    gate.set()
    assert len(jobs) == 2
    with pytest.raises(runtime.CancelledError):
        jobs[1].result(10)

    def failing():
        for k, p in enumerate(rawtext.text_paragraphs(text)):
            if k == 20:
                raise OSError("the disk went away")
            yield p
    got = []
    with pytest.raises(OSError, match="the disk went away"):
        for p, _ in rawtext.segment(failing(), tagger.frontend, batch_chars=200):
            got.append(p.offset)
    # the batches before the failed one (six paragraphs of 36-37 characters each make
    # 200), none of the failed one's (paragraphs 18 to 20)
    assert got == whole[:18]


@pytest.mark.parametrize("input_format", [None, "text", "lines"])
def test_a_bad_byte_comes_after_the_sentences_before_it(french, tmp_path, input_format):
    """Also where the format is detected (the default): the lines read ahead to detect it
    must not take the good sentences before a line that cannot be decoded with them."""
    path = tmp_path / "bad.txt"
    path.write_bytes(b"Le chat dort.\nLe chien aussi.\n\nUn \xff mauvais.\nFin.\n")
    args = ["--input-format", input_format] if input_format else []
    result = invoke("tag", "-m", french[1], "-i", path, *args)
    assert result.exit_code == 1
    words = ["".join(w.rsplit("/", 1)[0] for w in line.split())
             for line in result.stdout.splitlines()]
    assert "".join(words) == "Lechatdort.Lechienaussi."
    assert result.stderr == (f"seqtag: error: {path}:4: not valid utf-8: byte 0xff at byte 4 "
                             "of the line; use --encoding if the file is in another encoding\n")


def test_a_read_error_names_the_input_and_its_line():
    class Failing:  # a file whose second read fails (an I/O error, a lost mount)
        name = "lost.txt"

        def __iter__(self):
            yield b"Le chat dort.\n"
            raise OSError(5, "Input/output error")

    sentences = iter_sentences(Failing(), "text", tagged=False, front_end=RuleFrontEnd())
    with pytest.raises(Exception, match=r"lost.txt:2: cannot read: Input/output error"):
        list(sentences)


def test_sent_ids_count_the_sentences_written(french, tmp_path):
    """--input-format lines --format conllu: an empty line writes no sentence and takes no
    number (1, 2, 3, ... as documented), across chunks too."""
    path = tmp_path / "in.txt"
    path.write_text("Le chat dort.\n\n\nLe chien aussi.\nFin.\n\n" * 3, encoding="utf-8")
    for batch in ("1", "4", "256"):
        result = invoke("tag", "-m", french[1], "-i", path, "--input-format", "lines",
                        "--format", "conllu", "--batch-size", batch)
        assert result.exit_code == 0, result.output
        ids = [line for line in result.stdout.splitlines() if line.startswith("# sent_id")]
        assert ids == [f"# sent_id = {k}" for k in range(1, 10)]


@pytest.mark.skipif(os.name != "posix", reason="arguments as bytes: POSIX only")
def test_an_argument_that_is_not_utf8_is_one_error_line():
    """The bytes of an argument that are not UTF-8 reach Python as lone surrogates: one
    error line naming the argument and the byte (before: exit 0, or a traceback where the
    output is strict UTF-8)."""
    for env_extra in ({}, {"PYTHONIOENCODING": "utf-8"}):
        result = subprocess.run([sys.executable, "-m", "seqtag", "tag", b"Good.", b"Bad \xff byte."],
                                capture_output=True, env={**os.environ, **env_extra})
        assert result.returncode == 1
        assert result.stdout == b""
        assert result.stderr == (b"seqtag: error: argument 2: not valid UTF-8: byte 0xff at "
                                 b"character 5\n")


@pytest.mark.parametrize("text", [
    "Vive 🇫🇷!", "Drapeaux 🇫🇷🇩🇪🇮🇹 ici.", "L'Écosse 🏴\U000E0067\U000E0062\U000E0073\U000E0063"
    "\U000E0074\U000E007F gagne.", "Trois 🇫🇷🇩🇪🇮 impair."])
def test_a_flag_is_never_cut(french, text):
    """A country's flag is a pair of regional indicators and a flag like Scotland's a black
    flag and tag characters: no token ends inside one (a token could start at the second
    indicator of a pair before)."""
    regional = lambda c: 0x1F1E6 <= ord(c) <= 0x1F1FF  # noqa: E731
    starts = []
    for s in french[0].tag_text(text):
        for t in s.tokens:
            starts.append(t.start)
            assert not (0xE0020 <= ord(t.text[0]) <= 0xE007F)
    for start in starts:  # a token starting with an indicator starts a pair
        if regional(text[start]):
            run = len(text[:start]) - len(text[:start].rstrip("".join(
                chr(c) for c in range(0x1F1E6, 0x1F200))))
            assert run % 2 == 0


def test_a_leading_byte_order_mark_is_in_no_token(french):
    """As in a file (where it is not read), a string's leading byte-order mark belongs to
    no token; the offsets still count it, so text[start:end] is each token."""
    text = "\ufeffLe chat dort.\nFin."
    sentences = french[0].tag_text(text)
    tokens = [t for s in sentences for t in s.tokens]
    assert tokens[0].text == "Le" and tokens[0].start == 1
    assert all(text[t.start:t.end] == t.text and "\ufeff" not in t.text for t in tokens)
    assert [text[s.start:s.end] for s in sentences] == [s.text for s in sentences]
    assert french[0].tag(text)[0][0][0] == "Le"


def test_spaces_inside_a_long_line_are_no_paragraph_end(monkeypatch):
    """A long line cut into pieces: a piece of spaces is not a blank line (it ended the
    paragraph in the middle of the line), while a long line of spaces alone still is."""
    monkeypatch.setattr(rawtext, "SOFT_LIMIT", 30)
    text = "Hello world" + " " * 100 + "next words here\n" + "more of the same.\n"
    paragraphs = list(rawtext.text_paragraphs(text))
    assert [p.new for p in paragraphs] == [True] + [False] * (len(paragraphs) - 1)
    blank = "a b\n" + " " * 100 + "\nc d\n"
    assert [(p.text, p.new) for p in rawtext.text_paragraphs(blank)] == [
        ("a b", True), ("c d", True)]


def test_a_bad_byte_after_comments_only_is_the_error(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"# a comment\n\n\xff\tNOUN\n")
    with pytest.raises(Exception, match=r"bad.txt:3: not valid utf-8: byte 0xff"):
        list(iter_sentences(path))
