"""Models of several CoNLL-U columns (UPOS, XPOS, FEATS, LEMMA) end to end: training
from the command line, a column that is all '_', tagging every column, choosing columns,
evaluating each, the library's analyze(), and a model file of one column made before
heads existed."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqtag import Tagger
from seqtag.errors import SeqtagError
from seqtag.corpus import iter_sentences, read_corpus

DATA = Path(__file__).resolve().parent / "data"
TINY = ["--epochs", "8", "--batch-size", "4", "--hidden", "16", "--word-dim", "16", "--char-dim", "8",
        "--char-hidden", "8", "--layers", "1", "--threads", "1", "--lr", "0.02",
        "--no-frontend", "-q"]

# (form, lemma, upos, feats); XPOS is '_' throughout, as in French Sequoia
WORDS = {
    "the": ("the", "DET", "Definite=Def|PronType=Art"),
    "a": ("a", "DET", "Definite=Ind|PronType=Art"),
    "dog": ("dog", "NOUN", "Number=Sing"), "dogs": ("dog", "NOUN", "Number=Plur"),
    "cat": ("cat", "NOUN", "Number=Sing"), "cats": ("cat", "NOUN", "Number=Plur"),
    "barked": ("bark", "VERB", "Tense=Past"), "barks": ("bark", "VERB", "Tense=Pres"),
    "sleeps": ("sleep", "VERB", "Tense=Pres"), "slept": ("sleep", "VERB", "Tense=Past"),
    "walked": ("walk", "VERB", "Tense=Past"), "walks": ("walk", "VERB", "Tense=Pres"),
    ".": (".", "PUNCT", "_"),
}
SENTENCES = [s.split() for s in [
    "the dog barked .", "a cat sleeps .", "the dogs walked .", "a dog walks .",
    "the cats slept .", "a cat barks .", "the cat walked .", "the dogs sleeps .",
    "a dog slept .", "the cats walks .", "a dogs barked .", "the cat sleeps .",
]]


def conllu(sentences, xpos="_"):
    out = []
    for n, words in enumerate(sentences, 1):
        out.append(f"# sent_id = s{n}")
        for i, w in enumerate(words, 1):
            lemma, upos, feats = WORDS[w]
            out.append(f"{i}\t{w}\t{lemma}\t{upos}\t{xpos}\t{feats}\t{0 if i == 1 else 1}\t"
                       f"{'root' if i == 1 else 'dep'}\t_\t_")
        out.append("")
    return "\n".join(out) + "\n"


def run(*args, input=None):
    env = {k: v for k, v in os.environ.items() if k != "SEQTAG_DEBUG"}
    p = subprocess.run([sys.executable, "-m", "seqtag", *map(str, args)], input=input,
                       capture_output=True, env=env, timeout=300)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "train.conllu"
    path.write_text(conllu(SENTENCES * 8), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(corpus):
    model = corpus.with_name("joint.npz")
    code, out, err = run("train", corpus, "--dev", corpus, "-o", model, *TINY)
    assert code == 0, err
    return model, err


def test_training_learns_the_filled_columns_and_skips_the_empty_one(trained):
    model, err = trained
    assert "columns: learning UPOS, FEATS, LEMMA; skipping XPOS (all '_')" in err
    tagger = Tagger.load(model)
    assert tagger.columns == ["upos", "feats", "lemma"] and tagger.tag_column == "upos"
    info = tagger.info()
    assert info["columns"] == ["upos", "feats", "lemma"]
    assert [h["kind"] for h in info["heads"]] == ["softmax", "softmax", "lemma"]
    assert tagger.meta["corpus"]["columns"] == ["upos", "feats", "lemma"]


def test_columns_option_restricts_and_a_column_all_underscore_alone_is_an_error(corpus):
    model = corpus.with_name("lemma_only.npz")
    code, _, err = run("train", corpus, "--dev", corpus, "-o", model, "--columns",
                       "lemma,upos", *TINY)
    assert code == 0, err
    assert Tagger.load(model).columns == ["upos", "lemma"]
    code, _, err = run("train", corpus, "-o", model, "--columns", "xpos", *TINY)
    assert code == 1
    assert err.splitlines()[-1] == (f"seqtag: error: {corpus}: nothing to learn: column XPOS "
                                    "is all '_'")
    code, _, err = run("train", corpus, "-o", model, "--columns", "upos,pos", *TINY)
    assert code == 2 and err.strip().endswith(
        "--columns must be a comma-separated list of distinct upos, xpos, feats, lemma, "
        "got 'upos,pos'")


def test_the_trained_model_learns_every_column(trained, corpus):
    tagger = Tagger.load(trained[0])
    gold = list(iter_sentences(corpus, "conllu", tagged=False))
    scores = tagger.evaluate(gold)
    assert set(scores["columns"]) == {"upos", "feats", "lemma"}
    assert scores["alltags"] is None  # no XPOS: no AllTags
    for column, s in scores["columns"].items():
        assert s["accuracy"] >= 0.9, column
    assert scores["accuracy"] == scores["columns"]["upos"]["accuracy"]
    words = tagger.analyze(["the", "dogs", "walked", "."])
    assert [(w.word, w.upos, w.xpos, w.lemma) for w in words] == [
        ("the", "DET", None, "the"), ("dogs", "NOUN", None, "dog"),
        ("walked", "VERB", None, "walk"), (".", "PUNCT", None, ".")]
    assert words[1].feats == "Number=Plur"
    assert tagger.tag(["the", "dogs"]) == [("the", "DET"), ("dogs", "NOUN")]
    best = tagger.predict_top_k([["cats"]], 2, "lemma")[0][0]
    assert best[0][0] == "cat" and 0 < best[0][1] <= 1
    with pytest.raises(Exception, match="this model does not predict xpos"):
        tagger.predict_columns([["a"]], ["xpos"])


def test_tag_conllu_fills_every_column_and_keeps_the_others(trained, corpus):
    code, out, err = run("tag", "-m", trained[0], "-i", corpus, "--format", "conllu")
    assert code == 0, err
    lines = [line.split("\t") for line in out.splitlines() if line and not line.startswith("#")]
    source = [line.split("\t") for line in corpus.read_text().splitlines()
              if line and not line.startswith("#")]
    assert len(lines) == len(source)
    right = sum(a[2:4] + a[5:6] == b[2:4] + b[5:6] for a, b in zip(lines, source))
    assert right >= 0.9 * len(source)
    # ID, FORM, XPOS (not predicted), HEAD, DEPREL, DEPS, MISC as they were
    assert [a[:2] + a[4:5] + a[6:] for a in lines] == [b[:2] + b[4:5] + b[6:] for b in source]


def test_tag_shows_the_columns_asked_for(trained):
    model = trained[0]
    code, out, _ = run("tag", "-m", model, "--input-format", "lines", "the dogs walked .")
    assert code == 0 and out == "the/DET dogs/NOUN walked/VERB ./PUNCT\n"
    code, out, _ = run("tag", "-m", model, "--input-format", "lines", "--columns",
                       "upos,lemma", "the dogs walked .")
    assert code == 0 and out == "the/DET/the dogs/NOUN/dog walked/VERB/walk ./PUNCT/.\n"
    code, out, _ = run("tag", "-m", model, "--input-format", "lines", "--format", "tsv",
                       "--columns", "lemma,feats", "dogs")
    assert code == 0 and out == "dogs\tdog\tNumber=Plur\n\n"
    code, out, _ = run("tag", "-m", model, "--input-format", "tokens", "--format", "json",
                       "--columns", "upos,lemma", "--top-k", "2", input=b"cats\n")
    token = json.loads(out)["tokens"][0]
    assert (token["word"], token["tag"], token["upos"], token["lemma"]) == (
        "cats", "NOUN", "NOUN", "cat")
    assert token["top"][0][0] == "NOUN" and token["top_lemma"][0][0] == "cat"
    code, _, err = run("tag", "-m", model, "--columns", "xpos", "dogs")
    assert code == 1 and err == ("seqtag: error: the model does not predict xpos; it "
                                 "predicts upos, feats, lemma\n")
    code, _, err = run("tag", "-m", model, "--columns", "upos,lemma", "--top-k", "2", "dogs")
    assert code == 1 and "cannot be written as text; choose json" in err


def test_evaluate_reports_each_column(trained, corpus):
    code, out, err = run("evaluate", trained[0], corpus)
    assert code == 0, err
    rows = {line.split()[0]: line.split()[1:4] for line in out.splitlines()[1:4]}
    assert list(rows) == ["UPOS", "FEATS", "LEMMA"]
    assert all(float(v.rstrip("%")) >= 90 for v in rows["LEMMA"][:2])


def test_evaluate_leaves_out_a_column_the_gold_file_leaves_all_blank(trained, corpus, tmp_path):
    """A gold file without FEATS (all '_', as many treebanks leave XPOS): FEATS is not
    scored (every word counted wrong, 0 %, before), nor AllTags; the rest as with it."""
    blank = tmp_path / "no_feats.conllu"
    blank.write_text("".join(
        "\t".join(line.split("\t")[:5] + ["_"] + line.split("\t")[6:]) if "\t" in line
        else line for line in corpus.read_text(encoding="utf-8").splitlines(True)),
        encoding="utf-8")
    code, out, err = run("evaluate", trained[0], blank)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[1:3]] == ["UPOS", "LEMMA"]
    assert lines[3] == f"not scored: FEATS (all '_' in {blank})"
    assert lines[1:3] == [line for line in run("evaluate", trained[0], corpus)[1].splitlines()
                          if line.split()[:1] in (["UPOS"], ["LEMMA"])]
    scores = Tagger.load(trained[0]).evaluate(read_corpus(blank, require_tags=False))
    assert scores["skipped"] == ["feats"] and set(scores["columns"]) == {"upos", "lemma"}


def test_evaluate_refuses_a_tag_column_the_model_does_not_predict(trained, corpus):
    """--tag-column xpos for a model learned from CoNLL-U without XPOS: its UPOS would be
    scored against the gold XPOS."""
    code, out, err = run("evaluate", trained[0], corpus, "--tag-column", "xpos")
    assert (code, out) == (1, "") and err == (
        f"seqtag: error: {trained[0]} predicts UPOS, FEATS, LEMMA, not XPOS\n")


def test_dev_accuracy_leaves_out_a_column_dev_has_no_gold_for(trained, corpus):
    """A dev file whose LEMMA is all '_' counted the lemma head at 0 %: the dev accuracy
    is the mean over the heads dev has gold for."""
    from seqtag.heads import encode_targets
    from seqtag.inference import _heads_accuracy
    tagger = Tagger.load(trained[0])
    sentences = read_corpus(corpus, require_tags=False)
    targets = encode_targets(tagger.vocab.heads, sentences)

    def accuracy(known):
        kept = [np.where(np.isin(np.arange(t.shape[1]), known), t, -1) for t in targets]
        return _heads_accuracy(tagger.network, tagger.vocab, sentences, kept)
    each = [accuracy([k]) for k in range(3)]  # upos, feats, lemma alone
    assert accuracy([0, 1, 2]) == pytest.approx(np.mean(each))
    assert accuracy([0, 1]) == pytest.approx(np.mean(each[:2]))
    assert each[2] > 0.5  # the lemma head is right on most of its own corpus


def test_evaluate_refuses_a_column_it_cannot_score(trained, corpus):
    """A column the model does not predict, or one the gold pairs do not hold, fell back
    to the tags silently (gold lemmas scored against UPOS: 0 %)."""
    tagger = Tagger.load(trained[0])
    for column in ("xpos", "no-such-column", "LEMMA", 5):
        with pytest.raises(SeqtagError, match=f"this model does not predict {column!r}; it "
                           "predicts upos, feats, lemma"):
            tagger.evaluate(read_corpus(corpus, require_tags=False), column=column)
    pairs = [list(zip(s.words, s.columns["lemma"]))
             for s in read_corpus(corpus, require_tags=False)]
    with pytest.raises(SeqtagError, match="scoring lemma needs gold sentences read from "
                       "CoNLL-U"):
        tagger.evaluate(pairs, column="lemma")
    scores = tagger.evaluate(read_corpus(corpus, require_tags=False), column="lemma")
    assert scores["accuracy"] == scores["columns"]["lemma"]["accuracy"]


@pytest.fixture(scope="module")
def lemma_only(corpus):
    model = corpus.with_name("lemma_alone.npz")
    code, _, err = run("train", corpus, "--dev", corpus, "-o", model, "--columns", "lemma",
                       *TINY)
    assert code == 0, err
    return model


def test_a_model_of_lemmas_alone_tags_lemmas_everywhere(lemma_only, corpus):
    """Its tags were its edit scripts (`["","","","",""]`) in tag(), the command line and
    NLTK, and its CoNLL-U output put them in the UPOS column."""
    tagger = Tagger.load(lemma_only)
    words = [["the", "dogs", "walked", "."], ["a", "cat", "sleeps", "."]]
    lemmas = tagger.predict_columns(words, ["lemma"])["lemma"]
    assert tagger.columns == ["lemma"] and tagger.predict(words) == lemmas
    assert lemmas == [["the", "dog", "walk", "."], ["a", "cat", "sleep", "."]]
    assert [[best[0][0] for best in s] for s in tagger.predict_top_k(words, 2)] == lemmas
    code, out, err = run("tag", "-m", lemma_only, "--format", "conllu", "--input-format",
                         "tokens", input=b"the\ndogs\nwalked\n.\n")
    assert code == 0, err
    rows = [line.split("\t") for line in out.splitlines() if line[:1].isdigit()]
    assert [(r[1], r[2], r[3]) for r in rows] == [("the", "the", "_"), ("dogs", "dog", "_"),
                                                  ("walked", "walk", "_"), (".", ".", "_")]
    code, out, err = run("tag", "-m", lemma_only, "the dogs walked .")
    assert (code, out) == (0, "the/the dogs/dog walked/walk ./.\n"), err
    code, out, err = run("evaluate", lemma_only, corpus)
    assert code == 0 and "LEMMA" in out and "100.00%" in out, out + err
    tsv = corpus.with_name("lemmas.tsv")  # word<TAB>lemma: the model's tags are lemmas
    tsv.write_text("the\tthe\ndogs\tdog\nwalked\twalk\n.\t.\n\n", encoding="utf-8")
    code, out, err = run("evaluate", lemma_only, tsv)
    assert code == 0 and re.search(r"^accuracy +100\.00%", out, re.M), out + err
    code, out, err = run("info", lemma_only)
    assert code == 0 and re.search(r"^tagset +\d+ edit scripts \(lemmas\)$", out, re.M), out


def test_a_corpus_from_standard_input_trains_as_its_file_does(trained, corpus):
    """`seqtag train -` reads standard input whole, as seqtag evaluate does: the same
    model as from the file, recorded as CoNLL-U (it was "auto": --tag-column xpos was then
    scored against the UPOS, and --columns refused: "- is auto")."""
    model = corpus.with_name("from_stdin.npz")
    code, _, err = run("train", "-", "--dev", corpus, "-o", model, *TINY,
                       input=corpus.read_bytes())
    assert code == 0, err
    assert "columns: learning UPOS, FEATS, LEMMA; skipping XPOS (all '_')" in err
    from_file, from_stdin = Tagger.load(trained[0]), Tagger.load(model)
    assert from_stdin.meta["corpus"]["format"] == "conllu"
    assert from_stdin.columns == from_file.columns
    for name, values in from_file.network.arrays().items():
        assert np.array_equal(values, from_stdin.network.arrays()[name]), name
    code, out, err = run("evaluate", model, corpus, "--tag-column", "xpos")
    assert (code, out) == (1, "") and err == (
        f"seqtag: error: {model} predicts UPOS, FEATS, LEMMA, not XPOS\n")
    code, _, err = run("train", "-", "--dev", corpus, "-o", model, "--columns", "lemma,upos",
                       *TINY, input=corpus.read_bytes())
    assert code == 0, err
    assert Tagger.load(model).columns == ["upos", "lemma"]


def test_a_model_of_one_column_made_before_heads_loads_and_tags_as_it_did():
    """tests/data/old_upos_model.npz was written by seqtag at commit 5ec44fa (UPOS only,
    no heads in its metadata); old_upos_model.tagged.conllu is that seqtag's output."""
    tagger = Tagger.load(DATA / "old_upos_model.npz")
    assert tagger.columns == ["upos"] and "heads" not in tagger.meta.get("vocab", {})
    code, out, err = run("tag", "-m", DATA / "old_upos_model.npz", "-i",
                         DATA / "segment_fr.conllu", "--format", "conllu")
    assert code == 0, err
    assert out == (DATA / "old_upos_model.tagged.conllu").read_text(encoding="utf-8")
    assert tagger.analyze(["Le", "chat"])[0].lemma is None


def test_a_resumed_run_of_several_columns_ends_with_the_same_model(corpus, tmp_path):
    import numpy as np
    tiny = ["--hidden", "8", "--word-dim", "8", "--char-dim", "4", "--char-hidden", "4",
            "--layers", "1", "--threads", "1", "--batch-size", "8", "--no-frontend", "-q"]
    whole, part = tmp_path / "whole.npz", tmp_path / "part.npz"
    assert run("train", corpus, "-o", whole, "--epochs", "3", *tiny)[0] == 0
    assert run("train", corpus, "-o", part, "--epochs", "2", *tiny)[0] == 0
    code, _, err = run("train", corpus, "-o", part, "--epochs", "3", "--resume",
                       f"{part}.ckpt", *tiny)
    assert code == 0, err
    with np.load(whole) as a, np.load(part) as b:
        assert a.files == b.files
        for name in a.files:
            if name != "__meta__.json":
                np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert Tagger.load(part).columns == ["upos", "feats", "lemma"]


def test_a_run_made_with_columns_resumes_without_them(corpus, tmp_path):
    """--columns is the checkpoint's when not given again (the resumed run asked for the
    corpus's every column and was refused: "cannot resume with columns ..."), and a
    checkpoint's refusals come before anything is learned."""
    tiny = ["--hidden", "8", "--word-dim", "8", "--char-dim", "4", "--char-hidden", "4",
            "--layers", "1", "--threads", "1", "--batch-size", "8", "--no-frontend", "-q"]
    whole, part = tmp_path / "whole.npz", tmp_path / "part.npz"
    assert run("train", corpus, "-o", whole, "--epochs", "3", "--columns", "upos,lemma",
               *tiny)[0] == 0
    assert run("train", corpus, "-o", part, "--epochs", "2", "--columns", "upos,lemma",
               *tiny)[0] == 0
    code, _, err = run("train", corpus, "-o", part, "--epochs", "3", "--resume",
                       f"{part}.ckpt", *tiny)
    assert code == 0, err
    assert Tagger.load(part).columns == ["upos", "lemma"]
    with np.load(whole) as a, np.load(part) as b:
        for name in a.files:
            if name != "__meta__.json":
                np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    code, _, err = run("train", corpus, "-o", part, "--epochs", "3", "--resume",
                       f"{part}.ckpt", "--hidden", "16", *tiny[2:])
    assert code == 1 and err.splitlines()[-1] == (
        f"seqtag: error: cannot resume with hidden 16: the run in {part}.ckpt has 8")
    assert not any(line.startswith(("read ", "columns:")) for line in err.splitlines())


@pytest.mark.parametrize("column", ["lemma", "feats"])
def test_a_model_of_one_other_column_is_scored_on_it(corpus, column):
    """--columns lemma (or feats) alone: training picks its epochs by that column's dev
    accuracy and evaluate reports it (both compared the UPOS with the head's labels: 0 %
    every epoch, the first epoch kept)."""
    model = corpus.with_name(f"{column}.npz")
    code, out, err = run("train", corpus, "--dev", corpus, "-o", model, "--columns", column,
                         *TINY)
    assert code == 0, err
    dev = [float(line.split("dev")[1].split("%")[0]) for line in err.splitlines()
           if line.startswith("epoch")]
    assert max(dev) > 80
    code, out, err = run("evaluate", model, corpus)
    assert code == 0, err
    line = next(row for row in out.splitlines() if row.startswith(column.upper()))
    assert float(line.split()[1].rstrip("%")) > 80


def test_evaluate_reads_standard_input_whole(trained, corpus):
    """`seqtag evaluate MODEL -` of a model of several columns: the same scores as of the
    file (the lines read to detect the format were lost to the scoring)."""
    model, _ = trained
    from_file = run("evaluate", model, corpus)
    from_stdin = run("evaluate", model, "-", input=corpus.read_bytes())
    assert from_file[0] == from_stdin[0] == 0
    assert from_stdin[1] == from_file[1] and "tokens" in from_file[1]


def test_evaluate_tag_column_chooses_the_detailed_column(tmp_path):
    """--tag-column xpos on a model of several columns: the per-tag detail is XPOS's (it
    was UPOS's under any --tag-column)."""
    corpus = tmp_path / "x.conllu"
    corpus.write_text(conllu(SENTENCES * 8, xpos="XP"), encoding="utf-8")
    model = tmp_path / "m.npz"
    code, _, err = run("train", corpus, "--dev", corpus, "-o", model, *TINY)
    assert code == 0, err
    code, out, err = run("evaluate", model, corpus, "--tag-column", "xpos")
    assert code == 0, err
    detail = out.split("\n\n", 1)[1]
    assert detail.startswith("XPOS:\naccuracy      100.00%")
    assert "\nXP " in detail and "\nNOUN " not in detail
    code, out, _ = run("evaluate", model, corpus)
    assert out.split("\n\n", 1)[1].startswith("UPOS:\n") and "\nNOUN " in out
