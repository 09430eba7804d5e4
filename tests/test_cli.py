"""The `seqtag` command end to end: in process through typer's CliRunner, and as a real
`python -m seqtag` subprocess.  One tiny model is trained once per module (a second or so)."""

import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqtag import cli
from seqtag.corpus import Sentence
from seqtag.tokenize import tokenize

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample.txt"
BUNDLED = REPO / "seqtag" / "models" / "en_ewt_upos.npz"
TINY = ["--epochs", "2", "--hidden", "16", "--word-dim", "16", "--char-dim", "8",
        "--char-hidden", "8", "--layers", "1", "--threads", "1"]

CONLLU = """\
# sent_id = a1
# text = I can't go.
1\tI\tI\t_\t_\t_\t0\troot\t_\t_
2-3\tcan't\t_\t_\t_\t_\t_\t_\t_\t_
2\tca\tcan\t_\t_\t_\t4\taux\t_\t_
3\tn't\tnot\t_\t_\t_\t4\tadvmod\t_\t_
4\tgo\tgo\t_\t_\t_\t0\troot\t_\tSpaceAfter=No
5\t.\t.\t_\t_\t_\t4\tpunct\t_\t_

# sent_id = a2
1\tDogs\tdog\t_\t_\t_\t2\tnsubj\t_\t_
2\tbark\tbark\t_\t_\t_\t0\troot\t_\t_

"""

runner = CliRunner()


def run(*args, input=None, env=None):
    """`python -m seqtag ARGS` in a subprocess: (exit status, stdout, stderr)."""
    full_env = {k: v for k, v in os.environ.items() if k != "SEQTAG_DEBUG"}
    full_env.update(env or {})
    p = subprocess.run([sys.executable, "-m", "seqtag", *map(str, args)], input=input,
                       capture_output=True, env=full_env, timeout=120)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8")


def invoke(*args, input=None):
    return runner.invoke(cli.app, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train the tiny model through the real entry point; (model path, stdout, stderr)."""
    model = tmp_path_factory.mktemp("model") / "tiny.npz"
    code, out, err = run("train", SAMPLE, "-o", model, *TINY)
    assert code == 0, err
    return model, out, err


@pytest.fixture(scope="module")
def model(trained):
    return trained[0]


@pytest.fixture(scope="module")
def tagset(model):
    from seqtag import Tagger

    return set(Tagger.load(model).tagset)


def parse_text_lines(out):
    """word/TAG lines -> [[(word, tag), ...] per line]."""
    return [[tuple(tok.rsplit("/", 1)) for tok in line.split()] for line in out.split("\n")[:-1]]


def assert_tagged(pairs, words, tagset):
    assert [w for w, _ in pairs] == words
    assert all(t in tagset for _, t in pairs)


# ---------------------------------------------------------------- version, help


def test_version():
    from seqtag.runtime import build_description, compute_description
    expected = (f"seqtag 0.1.0\ncompute: {compute_description()}\n"
                f"build: {build_description()}\n")
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == expected
    assert run("--version")[:2] == (0, expected)


def test_version_names_the_compute_path(monkeypatch):
    from seqtag import runtime
    library = runtime.blas().name  # NumPy's BLAS, found
    assert library.startswith(("OpenBLAS (", "MKL (", "BLIS (", "FlexiBLAS (", "Accelerate ("))
    monkeypatch.setattr(runtime, "fused_step_available", lambda: True)
    monkeypatch.delenv("SEQTAG_FUSED_STEP", raising=False)
    for isa, shown in [("avx512", "AVX-512"), ("avx2", "AVX2")]:
        monkeypatch.setattr(runtime, "fused_step_isa", lambda isa=isa: isa)
        assert invoke("--version").stdout.splitlines()[1] == (
            f"compute: fused {shown} LSTM and GRU steps + {library}")
    monkeypatch.setattr(runtime, "fused_step_isa", lambda: None)
    monkeypatch.setenv("SEQTAG_FUSED_STEP", "0")
    assert invoke("--version").stdout.splitlines()[1] == (
        f"compute: {library} only (SEQTAG_FUSED_STEP=0)")
    monkeypatch.delenv("SEQTAG_FUSED_STEP")
    runtime.set_fused_step(False)
    try:
        assert invoke("--version").stdout.splitlines()[1] == (
            f"compute: {library} only (fused steps switched off)")
    finally:
        runtime.set_fused_step(None)
    monkeypatch.setattr(runtime, "fused_step_available", lambda: False)
    assert invoke("--version").stdout.splitlines()[1] == (
        f"compute: {library} only (no AVX2 or AVX-512 on this CPU or build)")


def test_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("train", "tag", "evaluate", "info"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M)


def test_help_shows_the_library_defaults():
    # the options are generated from seqtag.config (tests/test_config.py checks each one);
    # here, that --help reads as documented
    out = invoke("train", "--help").stdout
    lines = " ".join(out.split()).replace("\\[", "[")  # typer 0.20 writes \[default: ...]
    for text in ("--hidden INTEGER Hidden units per direction. [default: (128)]",
                 "--lr NUMBER Learning rate. [default: (0.002 with adam, 0.1 with sgd)]",
                 "--max-time NUMBER Stop after the epoch running when this many seconds have "
                 "passed. [default: (no limit)]",
                 "only --epochs, --patience, --max-time and --threads may change"):
        assert text in lines, text


# ---------------------------------------------------------------- train


def test_train_reports_epochs_and_result(trained):
    model, out, err = trained
    assert model.is_file()
    assert re.fullmatch(rf"model written to {re.escape(str(model))} \(dev accuracy "
                        r"\d+\.\d\d%, epoch [12] of 2; output layer softmax\)\n", out)
    epochs = [line for line in err.splitlines() if line.startswith("epoch")]
    assert len(epochs) == 2
    assert re.match(r"epoch +1  loss \d+\.\d{4}  train +\d+\.\d\d%  dev +\d+\.\d\d%  +"
                    r"\d+\.\ds  \*$", epochs[0])  # the first epoch is always the best so far
    assert "\r" not in err  # no progress bar when stderr is not a terminal
    assert "holding out 10%" in err


def test_train_in_process_with_dev_and_float16(tmp_path):
    out = tmp_path / "m16.npz"
    result = invoke("train", SAMPLE, "--dev", SAMPLE, "-o", out, "--float16", "--quiet",
                    "--cell", "gru", "--format", "slash", *TINY)
    assert result.exit_code == 0, result.output
    assert out.is_file()
    assert "read 229 dev sentences" in result.stderr
    info = json.loads(invoke("info", out, "--json").stdout)
    assert info["network"]["cell"] == "gru"
    assert info["corpus"]["dev_file"] == str(SAMPLE)
    assert info["corpus"]["dev_held_out"] is False
    assert info["corpus"]["sentences"] == 229


# ---------------------------------------------------------------- tag


def test_tag_arguments_are_paragraphs_split_into_sentences(model, tagset):
    arguments = ["The dog ate the apple.", "", "I can't swim! Me neither"]
    result = invoke("tag", "-m", model, *arguments)
    assert result.exit_code == 0, result.output
    lines = parse_text_lines(result.stdout)
    sentences = ["The dog ate the apple.", "I can't swim!", "Me neither"]  # "" has nothing
    assert len(lines) == 3
    for pairs, text in zip(lines, sentences):
        assert_tagged(pairs, tokenize(text), tagset)
    assert [w for w, _ in lines[1]] == ["I", "ca", "n't", "swim", "!"]
    # --input-format lines: each argument is one sentence, never split
    lines = parse_text_lines(invoke("tag", "-m", model, "--input-format", "lines",
                                    *arguments).stdout)
    assert [[w for w, _ in p] for p in lines] == [
        tokenize("The dog ate the apple."), tokenize("I can't swim! Me neither")]


@pytest.mark.parametrize("input_format, expected", [
    # raw text: paragraphs end at blank lines, sentences are found within them
    ("text", ["The cat slept on the mat.", "A bird sang .", "Stop!", "Go"]),
    # a sentence per line, empty lines kept so the output lines match the input's
    ("lines", ["", "The cat slept on the mat.", "", "", "A bird sang .", "Stop! Go", ""]),
])
def test_tag_file_and_stdin_text(model, tagset, tmp_path, input_format, expected):
    text = "\nThe cat slept on the mat.\n\n\nA bird sang .\nStop! Go\n\n"
    path = tmp_path / "in.txt"
    path.write_text(text)
    given = () if input_format == "text" else ("--input-format", input_format)
    outputs = [invoke("tag", "-m", model, "-i", path, *given).stdout,
               invoke("tag", "-m", model, *given, input=text).stdout,
               invoke("tag", "-m", model, "-i", "-", "--batch-size", "2", *given,
                      input=text).stdout,
               run("tag", "-m", model, *given, input=text.encode())[1],
               run("tag", "-m", model, "-i", path, "--batch-size", "1", *given)[1]]
    for out in outputs:
        lines = parse_text_lines(out)
        assert len(lines) == len(expected)
        for pairs, line in zip(lines, expected):
            assert_tagged(pairs, tokenize(line), tagset)
    assert len(set(outputs)) == 1  # chunking does not change the tags


def test_tag_two_files_in_order(model, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("One line here .\n")
    b.write_text("Two\nlines .\n")
    result = invoke("tag", "-m", model, "-i", a, "-i", b, "--input-format", "text")
    assert [[w for w, _ in p] for p in parse_text_lines(result.stdout)] == \
        [["One", "line", "here", "."], ["Two", "lines", "."]]  # a paragraph spans lines
    result = invoke("tag", "-m", model, "-i", a, "-i", b, "--input-format", "lines")
    assert [[w for w, _ in p] for p in parse_text_lines(result.stdout)] == \
        [["One", "line", "here", "."], ["Two"], ["lines", "."]]


def test_tag_tokens_input(model, tagset):
    result = invoke("tag", "-m", model, "--format", "tsv", input="New\nYork\n\nis\nbig\n")
    assert result.exit_code == 0, result.output
    blocks = result.stdout.split("\n\n")
    assert blocks[-1] == ""
    rows = [[line.split("\t") for line in block.split("\n")] for block in blocks[:-1]]
    assert [[r[0] for r in b] for b in rows] == [["New", "York"], ["is", "big"]]
    assert all(len(r) == 2 and r[1] in tagset for b in rows for r in b)


def test_tag_tsv_and_json(model, tagset):
    tsv = invoke("tag", "-m", model, "--format", "tsv", "The dog ate the apple.").stdout
    lines = tsv.split("\n")
    assert lines[-2:] == ["", ""]  # the sentence ends with a blank line
    rows = [line.split("\t") for line in lines[:-2]]
    assert [r[0] for r in rows] == tokenize("The dog ate the apple.")
    assert all(len(r) == 2 and r[1] in tagset for r in rows)

    out = invoke("tag", "-m", model, "--format", "json", "A dog barked.", "").stdout
    objects = [json.loads(line) for line in out.splitlines()]
    assert len(objects) == 1  # an empty argument has nothing to tag
    assert {k: objects[0][k] for k in ("text", "start", "end")} == {
        "text": "A dog barked.", "start": 0, "end": 13}
    tokens = objects[0]["tokens"]
    assert [(t["text"], t["start"], t["end"]) for t in tokens] == [
        ("A", 0, 1), ("dog", 2, 5), ("barked", 6, 12), (".", 12, 13)]
    assert all(len(t["words"]) == 1 and t["words"][0]["word"] == t["text"] for t in tokens)
    assert all(set(w) == {"word", "tag"} and w["tag"] in tagset
               for t in tokens for w in t["words"])
    # pre-tokenized input keeps the plain shape
    out = invoke("tag", "-m", model, "--format", "json", input="A\ndog\n\n").stdout
    assert [t["word"] for t in json.loads(out)["tokens"]] == ["A", "dog"]


def test_tag_text_as_conllu(model, tagset):
    out = invoke("tag", "-m", model, "--format", "conllu", "Dogs bark.").stdout
    assert out.endswith("\n\n")
    lines = out[:-2].split("\n")
    assert lines[:3] == ["# newpar", "# sent_id = 1", "# text = Dogs bark."]
    rows = [line.split("\t") for line in lines[3:]]
    assert [r[:2] for r in rows] == [["1", "Dogs"], ["2", "bark"], ["3", "."]]
    assert [r[9] for r in rows] == ["_", "SpaceAfter=No", "_"]
    assert all(len(r) == 10 and r[3] in tagset and r[2] == "_" and r[4:9] == ["_"] * 5
               for r in rows)


def test_conllu_round_trip(model, tagset, tmp_path):
    path = tmp_path / "in.conllu"
    path.write_text(CONLLU)
    for out in (invoke("tag", "-m", model, "-i", path, "--format", "conllu").stdout,
                run("tag", "-m", model, "--format", "conllu", input=CONLLU.encode())[1]):
        got, want = out.split("\n"), CONLLU.split("\n")
        assert len(got) == len(want)
        for g, w in zip(got, want):
            if not w or w.startswith("#") or not w.split("\t")[0].isdigit():
                assert g == w  # comments, blank lines and the 2-3 multiword line unchanged
            else:
                gf, wf = g.split("\t"), w.split("\t")
                assert gf[3] in tagset
                assert gf[:3] + gf[4:] == wf[:3] + wf[4:]
    # CoNLL-U input, text output: the words of the integer-ID lines
    lines = parse_text_lines(invoke("tag", "-m", model, "-i", path).stdout)
    assert [[w for w, _ in p] for p in lines] == [["I", "ca", "n't", "go", "."], ["Dogs", "bark"]]


def test_top_k(model, tagset):
    plain = parse_text_lines(invoke("tag", "-m", model, "The dog ate.").stdout)[0]
    out = invoke("tag", "-m", model, "--top-k", "3", "The dog ate.").stdout
    tokens = out.rstrip("\n").split(" ")
    assert len(tokens) == len(plain)
    for token, (word, tag) in zip(tokens, plain):
        m = re.fullmatch(r"(.+?)/((?:[^/|]+/[01]\.\d{3}\|?){3})", token)
        assert m and m.group(1) == word
        alternatives = [a.split("/") for a in m.group(2).split("|")]
        assert alternatives[0][0] == tag  # the best tag is the tag
        probs = [float(p) for _, p in alternatives]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.01
        assert len({t for t, _ in alternatives}) == 3 and {t for t, _ in alternatives} <= tagset

    obj = json.loads(invoke("tag", "-m", model, "--format", "json", "--top-k", "2",
                            "The dog ate.").stdout)
    for token, (word, tag) in zip(obj["tokens"], plain, strict=True):
        (only,) = token["words"]
        assert only["word"] == word and only["tag"] == tag
        assert len(only["top"]) == 2 and only["top"][0][0] == tag

    tsv = invoke("tag", "-m", model, "--format", "tsv", "--top-k", "2", "The dog ate.").stdout
    rows = [line.split("\t") for line in tsv.split("\n")[:-2]]
    assert all(len(r) == 5 and r[1] in tagset and 0 <= float(r[2]) <= 1 for r in rows)


def test_tag_streams_in_chunks(model):
    """The library part of `seqtag tag`: no more than one chunk is read ahead of the output."""
    from seqtag import Tagger
    from seqtag.stream import tag_stream

    tagger = Tagger.load(model)
    out = io.StringIO()
    read = []

    def sentences():
        for i in range(10):
            # when sentence i is read, all chunks before its own are written already
            assert out.getvalue().count("\n") == (i // 4) * 4
            read.append(i)
            yield Sentence(["word", str(i)])

    assert tag_stream(tagger, sentences(), out, batch_size=4) == (10, 20)
    assert len(read) == 10 and out.getvalue().count("\n") == 10


@pytest.mark.skipif(not BUNDLED.exists(), reason="bundled model not built yet")
def test_bundled_model():
    result = invoke("tag", "The dog ate the apple")
    assert result.exit_code == 0, result.output
    assert result.stdout == "The/DET dog/NOUN ate/VERB the/DET apple/NOUN\n"


# ---------------------------------------------------------------- evaluate, info


def test_evaluate(model, tagset):
    result = invoke("evaluate", model, SAMPLE)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"^accuracy +\d+\.\d\d% +\(1,516 tokens\)$", out, re.M)
    assert re.search(r"^seen words +\d+\.\d\d% +\(\d[\d,]* tokens\)$", out, re.M)
    assert re.search(r"^unseen words +(\d+\.\d\d%|-) +\(\d[\d,]* tokens\)$", out, re.M)
    assert re.search(r"^tag +precision +recall +f1 +support$", out, re.M)
    assert re.search(r"^NOUN +\d+\.\d\d% +\d+\.\d\d% +\d+\.\d\d% +313$", out, re.M)

    scores = json.loads(invoke("evaluate", model, SAMPLE, "--json").stdout)
    assert set(scores) == {"tokens", "accuracy", "seen_tokens", "seen_accuracy", "unseen_tokens",
                           "unseen_accuracy", "per_tag", "confusions"}
    assert scores["tokens"] == 1516 == scores["seen_tokens"] + scores["unseen_tokens"]
    assert set(scores["per_tag"]["DET"]) == {"precision", "recall", "f1", "support"}
    assert all(set(c) == {"gold", "predicted", "count"} for c in scores["confusions"])
    code, out, _ = run("evaluate", model, SAMPLE, "--json", "--format", "slash")
    assert code == 0 and json.loads(out)["tokens"] == 1516


def test_info(model, tagset):
    result = invoke("info", model)
    assert result.exit_code == 0, result.output
    fields = dict(re.match(r"(\w*) +(.*)", line).groups() for line in result.stdout.splitlines())
    assert fields["model"] == str(model)
    assert set(fields["tagset"].split(": ")[1].split()) == tagset
    assert fields["architecture"].startswith("lstm, 1 layer, hidden 16, word dim 16, char dim 8")
    assert re.fullmatch(r"[\d,]+", fields["parameters"])
    assert fields["corpus"] == f"{SAMPLE} (slash)"
    assert " train " in fields["command"] and str(SAMPLE) in fields["command"]
    assert re.match(r"dev accuracy \d+\.\d\d% at epoch [12] of 2", fields["scores"])
    assert fields["version"].startswith("seqtag 0.1.0, model format ")

    info = json.loads(invoke("info", model, "--json").stdout)
    assert info["path"] == str(model) and set(info["tagset"]) == tagset
    assert info["network"]["hidden"] == 16 and info["network"]["layers"] == 1
    assert info["corpus"]["file"] == str(SAMPLE)
    assert info["corpus"]["format"] == "slash" and info["corpus"]["tag_column"] == "upos"
    assert info["corpus"]["command"].endswith(" ".join(TINY))
    assert info["scores"]["epochs_run"] == 2
    assert info["seqtag_version"] == "0.1.0" and info["parameters"] > 0


# ---------------------------------------------------------------- errors


def one_error_line(err):
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("seqtag: error: ")
    return lines[0]


def test_missing_corpus(tmp_path):
    missing = tmp_path / "no-such-corpus.txt"
    code, out, err = run("train", missing, "-o", tmp_path / "m.npz")
    assert code == 1 and out == ""
    assert str(missing) in one_error_line(err)
    result = invoke("train", missing, "-o", tmp_path / "m.npz")
    assert result.exit_code == 1 and str(missing) in one_error_line(result.stderr)


def test_missing_output_directory_fails_before_training(tmp_path):
    result = invoke("train", SAMPLE, "-o", tmp_path / "nope" / "m.npz", *TINY)
    assert result.exit_code == 1
    assert "does not exist" in one_error_line(result.stderr)


def test_train_never_writes_over_its_corpus(tmp_path):
    """The model or checkpoint path naming the training or dev corpus (or a link to it)
    is refused before anything is written; so is an output that names no file."""
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(SAMPLE.read_bytes())
    os.symlink(corpus, tmp_path / "link.npz")
    for args, message in (
            (["-o", corpus], f"the model {corpus} would replace the training corpus {corpus}"),
            (["-o", tmp_path / "link.npz"], f"the model {tmp_path / 'link.npz'} would replace "
                                            f"the training corpus {corpus}"),
            (["--dev", corpus, "-o", tmp_path / "m.npz", "--checkpoint", corpus],
             f"the checkpoint {corpus} would replace the training corpus {corpus}"),
            (["-o", ""], "--output .: give a file name for the model"),
            (["-o", tmp_path], f"--output {tmp_path}: give a file name for the model")):
        result = invoke("train", corpus, *args, *TINY)
        assert result.exit_code == 1, result.output
        assert one_error_line(result.stderr) == f"seqtag: error: {message}; give another path" \
            if "replace" in message else one_error_line(result.stderr) == f"seqtag: error: {message}"
    assert corpus.read_bytes() == SAMPLE.read_bytes()


def test_train_never_writes_one_of_its_files_over_another(tmp_path):
    """Every output (model, checkpoint, picture) against every input (corpora, vectors,
    the checkpoint resumed) and every other output: refused before anything is written
    (a vectors file became a zip, a resumed checkpoint a model, a checkpoint a PNG)."""
    corpus, vectors = tmp_path / "c.txt", tmp_path / "vec.txt"
    corpus.write_bytes(SAMPLE.read_bytes())
    vectors.write_text("the 0.1 0.2\ndog 0.3 0.4\n", encoding="utf-8")
    resumed = tmp_path / "run.ckpt"
    resumed.write_bytes(b"not really a checkpoint")
    picture, model = tmp_path / "p.png", tmp_path / "m.npz"
    for args, message in (
            (["-o", model, "--embeddings", vectors, "--checkpoint", vectors],
             f"the checkpoint {vectors} would replace the vectors file {vectors}"),
            (["-o", vectors, "--embeddings", vectors],
             f"the model {vectors} would replace the vectors file {vectors}"),
            (["-o", resumed, "--resume", resumed],
             f"the model {resumed} would replace the checkpoint resumed {resumed}"),
            (["-o", model, "--plot", picture, "--checkpoint", picture],
             f"the picture {picture} would replace the checkpoint {picture}"),
            (["-o", picture, "--plot", picture],
             f"the picture {picture} would replace the model {picture}"),
            (["-o", model, "--plot", resumed, "--resume", resumed],
             f"the picture {resumed} would replace the checkpoint resumed {resumed}")):
        if "--plot" in args:
            pytest.importorskip("matplotlib")
        result = invoke("train", corpus, *args, *TINY)
        assert result.exit_code == 1, result.output
        assert one_error_line(result.stderr) == f"seqtag: error: {message}; give another path"
    assert vectors.read_text(encoding="utf-8") == "the 0.1 0.2\ndog 0.3 0.4\n"
    assert resumed.read_bytes() == b"not really a checkpoint" and not model.exists()


def test_conllu_with_a_byte_order_mark_reads_for_the_front_end(tmp_path):
    """The front end's reader of '# text' lines skips a leading byte-order mark, as the
    tagger's reader does (the first line was taken for a token line of 1 column)."""
    from seqtag.segment import _read_conllu_sentences
    corpus = tmp_path / "bom.conllu"
    corpus.write_bytes(b"\xef\xbb\xbf" + CONLLU.encode("utf-8"))
    plain = tmp_path / "plain.conllu"
    plain.write_bytes(CONLLU.encode("utf-8"))
    read = _read_conllu_sentences(corpus)
    from seqtag.tagger import _has_text_lines
    bom_first = tmp_path / "bom_text.conllu"  # its `# text` line first, after the mark
    bom_first.write_bytes(b"\xef\xbb\xbf" + CONLLU.split("\n", 1)[1].encode("utf-8"))
    assert _has_text_lines(corpus) and _has_text_lines(bom_first)
    assert [s.text for s in read] == ["I can't go.", None]
    assert [(s.text, s.tokens) for s in read] == [
        (s.text, s.tokens) for s in _read_conllu_sentences(plain)]


def test_an_empty_form_in_conllu_is_an_error_line(tmp_path):
    corpus = tmp_path / "empty.conllu"
    corpus.write_text(CONLLU.replace("1\tDogs\tdog", "1\t\tdog"), encoding="utf-8")
    result = invoke("train", corpus, "-o", tmp_path / "m.npz", *TINY, "--no-frontend")
    assert result.exit_code == 1
    assert one_error_line(result.stderr).startswith(
        f"seqtag: error: {corpus}:11: empty FORM (column 2)")


def test_an_empty_field_of_a_model_column_is_read_as_no_value(tmp_path):
    """CoNLL-U writes '_' for no value; an empty LEMMA was learned as a value of its own
    (and a column empty throughout crashed with a traceback). Read as '_' by every reader:
    tagging and evaluating such a file still work."""
    from seqtag.corpus import read_corpus
    corpus = tmp_path / "empty.conllu"
    corpus.write_text(CONLLU.replace("1\tDogs\tdog", "1\tDogs\t"), encoding="utf-8")
    sentences = read_corpus(corpus, require_tags=False)
    assert sentences[1].columns["lemma"] == ["_", "bark"]
    result = invoke("train", corpus, "-o", tmp_path / "m.npz", *TINY, "--no-frontend")
    assert result.exit_code == 0, result.output
    result = invoke("tag", "-m", tmp_path / "m.npz", "-i", corpus, "--format", "conllu")
    assert result.exit_code == 0, result.output


def test_a_column_filled_only_in_the_held_out_sentences_is_one_error_line(tmp_path):
    """The column check sees the whole corpus, the heads only what is left after dev is
    held out: a column with values only there was a ValueError traceback."""
    from seqtag.train import split_dev
    rows = "1\tThe\t{}\tDET\t_\t_\t2\tdet\t_\t_\n2\tdog\t{}\tNOUN\t_\t_\t0\troot\t_\t_\n\n"
    held = split_dev(list(range(10)), 0.1, 0)[1]  # the sentence seed 0 holds out
    assert len(held) == 1
    corpus = tmp_path / "lemmas.conllu"
    corpus.write_text("".join(rows.format("the", "dog") if k in held else rows.format("_", "_")
                              for k in range(10)), encoding="utf-8")
    result = invoke("train", corpus, "-o", tmp_path / "m.npz", *TINY, "--no-frontend",
                    "--dev-fraction", "0.1", "--seed", "0")
    assert result.exit_code == 1 and not (tmp_path / "m.npz").exists()
    assert "Traceback" not in result.stderr and result.stderr.splitlines()[-1] == (
        "seqtag: error: column LEMMA has no value in the training sentences (only in "
        "those held out as dev data: give --dev)")


def test_sentences_whose_text_does_not_match_their_tokens_are_counted(tmp_path):
    """Their text is rebuilt from the tokens for the front end: said, with how many (the
    count was kept but never shown)."""
    corpus = tmp_path / "c.conllu"
    first = CONLLU.split("\n\n")[0] + "\n\n"  # the sentence with its `# text`
    corpus.write_text(first.replace("# text = I can't go.", "# text = I cannot go.") * 3,
                      encoding="utf-8")
    result = invoke("train", corpus, "-o", tmp_path / "m.npz", *TINY)
    assert result.exit_code == 0, result.output
    assert ("front end: 3 sentences of the corpus had no '# text' or one that does not "
            "match its tokens: learned from the text its tokens and SpaceAfter=No make"
            ) in result.stderr
    from seqtag import Tagger
    assert Tagger.load(tmp_path / "m.npz").meta["frontend_training"]["rebuilt"] == 3
    corpus.write_text(first * 3, encoding="utf-8")
    result = invoke("train", corpus, "-o", tmp_path / "m.npz", *TINY)
    assert result.exit_code == 0 and "front end learned" in result.stderr
    assert "does not match" not in result.stderr


def test_info_names_what_the_tags_are(tmp_path):
    """A span model's tags and a word/TAG model's were called UPOS; a lemma model's edit
    scripts were listed as its tagset; a span model's dev span F1 was left out."""
    spans = tmp_path / "ner.iob2"
    spans.write_text("1\tJohn\tB-PER\n2\tlives\tO\n3\tin\tO\n4\tParis\tB-LOC\n\n" * 6,
                     encoding="utf-8")
    for corpus, model, extra in ((spans, "ner.npz", []), (SAMPLE, "slash.npz", [])):
        result = invoke("train", corpus, "-o", tmp_path / model, *TINY, *extra)
        assert result.exit_code == 0, result.output
    lines = {m: dict((line[:14].strip(), line[14:]) for line in
                     invoke("info", tmp_path / m).stdout.splitlines())
             for m in ("ner.npz", "slash.npz")}
    assert lines["ner.npz"]["columns"] == "span tags (IOB2)"
    assert ", span F1 " in lines["ner.npz"]["scores"]
    assert lines["slash.npz"]["columns"] == "tags"
    assert "span F1" not in lines["slash.npz"]["scores"]


def test_a_dev_file_or_an_output_layer_that_cannot_fit_is_said_before_the_front_end(tmp_path):
    """A CoNLL-U corpus with a word/TAG dev file ("dev sentence 1 has no CoNLL-U
    columns", naming no file) and --output-layer crf with several columns were refused
    only after the front end was learned (a minute or two on EWT)."""
    corpus = tmp_path / "c.conllu"
    corpus.write_text(CONLLU.replace("\t_\t_\t_\t", "\tX\t_\t_\t") * 3, encoding="utf-8")
    result = invoke("train", corpus, "--dev", SAMPLE, "-o", tmp_path / "m.npz", *TINY)
    assert result.exit_code == 1 and "front end" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"seqtag: error: {SAMPLE}: the dev corpus is slash, the training corpus CoNLL-U: "
        "give a CoNLL-U dev file (or --format)")
    result = invoke("train", corpus, "-o", tmp_path / "m.npz", "--output-layer", "crf", *TINY)
    assert result.exit_code == 1 and "front end" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "seqtag: error: a CRF output layer is for a model of one column, not 2 columns: "
        "give --columns one column, or --output-layer softmax")
    # LEMMA alone: its edit scripts are no tags for a CRF (a ValueError traceback before)
    result = invoke("train", corpus, "-o", tmp_path / "m.npz", "--output-layer", "crf",
                    "--columns", "lemma", *TINY)
    assert result.exit_code == 1 and "front end" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "seqtag: error: a CRF output layer is for tags (UPOS, XPOS, FEATS or span tags), not "
        "LEMMA's edit scripts: give --output-layer softmax")


def test_a_network_too_big_for_memory_is_one_error_line(tmp_path):
    """--hidden 10^8 asks for hundreds of GB: a MemoryError traceback before."""
    code, _, err = run("train", SAMPLE, "-o", tmp_path / "m.npz", "--hidden", "100000000",
                       "--epochs", "1", "--threads", "1")
    assert code == 1 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("seqtag: error: not enough memory: Unable to allocate")
    assert not (tmp_path / "m.npz").exists()


def test_max_time_shorter_than_the_setup_still_trains_one_epoch(tmp_path):
    """--max-time stops after the epoch running: one at least (a deadline already past
    before the first epoch left no model to write, an AttributeError traceback)."""
    corpus = tmp_path / "c.conllu"
    corpus.write_text(CONLLU * 3, encoding="utf-8")
    result = invoke("train", corpus, "-o", tmp_path / "m.npz", *TINY, "--no-frontend",
                    "--max-time", "1e-9")
    assert result.exit_code == 0, result.output
    assert "epoch 1 of" in result.output
    from seqtag import Tagger
    assert len(Tagger.load(tmp_path / "m.npz").meta["history"]) == 1


def test_an_output_folder_that_cannot_be_written_fails_before_training(tmp_path,
                                                                       monkeypatch):
    # (a read-only mount; as root a chmod does not stop a write, so access() is faked)
    real_access = os.access
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False
                        if Path(path) == tmp_path / "ro" else real_access(path, mode))
    (tmp_path / "ro").mkdir()
    result = invoke("train", SAMPLE, "-o", tmp_path / "ro" / "m.npz", *TINY)
    assert result.exit_code == 1
    assert one_error_line(result.stderr) == (f"seqtag: error: cannot write model "
                                             f"{tmp_path / 'ro' / 'm.npz'}: directory "
                                             f"{tmp_path / 'ro'} is not writable")
    assert "epoch" not in result.stderr


def test_bad_model_file(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model at all\n")
    code, out, err = run("tag", "-m", bad, "hello")
    assert code == 1 and out == ""
    assert str(bad) in one_error_line(err)
    for args in (["info", bad], ["evaluate", bad, SAMPLE], ["tag", "-m", tmp_path / "x.npz", "a"]):
        result = invoke(*args)
        assert result.exit_code == 1
        one_error_line(result.stderr)


def test_non_utf8_input_names_the_line(model, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("The dog .\nCaf\u00e9 au lait .\n".encode("latin-1"))
    code, _, err = run("tag", "-m", model, "-i", path)
    assert code == 1
    assert one_error_line(err).startswith(f"seqtag: error: {path}:2: not valid utf-8")
    result = invoke("tag", "-m", model, "-i", path, "--encoding", "latin-1")
    assert result.exit_code == 0 and result.stdout.split("\n")[1].startswith("Caf\u00e9/")
    code, _, err = run("tag", "-m", model, input=b"ok line\n\xff\xfe\n")
    assert code == 1 and "<stdin>:2:" in one_error_line(err)


def test_traceback_only_when_asked(tmp_path):
    missing = tmp_path / "missing.txt"
    code, _, err = run("--verbose", "train", missing)
    assert code == 1 and "Traceback" in err and err.splitlines()[-1].startswith("seqtag: error:")
    code, _, err = run("train", missing, env={"SEQTAG_DEBUG": "1"})
    assert code == 1 and "Traceback" in err


@pytest.mark.parametrize("args", [
    ["tag", "--format", "xml", "hi"],
    ["tag", "--top-k", "0", "hi"],
    ["tag", "--top-k", "2", "--format", "conllu", "hi"],
    ["tag", "-i", "x.txt", "hi"],
    ["tag", "--encoding"],
    ["tag", "--input-format", "tokens", "hi"],
    ["train", SAMPLE, "--epochs", "many"],
    ["train", SAMPLE, "--cell", "rnn"],
    ["train", SAMPLE, "--lr", "0"],
    ["evaluate", "m.npz"],
    ["nosuchcommand"],
])
def test_usage_errors_exit_2(args):
    assert invoke(*args).exit_code == 2


@pytest.mark.parametrize("args,line", [
    (["train", SAMPLE, "--lr", "-1"], "--lr must be a number > 0, got -1"),
    (["train", SAMPLE, "--dropout", "1.5"], "--dropout must be a number in [0, 1), got 1.5"),
    (["train", SAMPLE, "--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
    (["train", SAMPLE, "--epochs", "many"], "--epochs must be an integer >= 1, got 'many'"),
    (["train", SAMPLE, "--cell", "rnn"], "--cell must be one of lstm, peephole, gru, got 'rnn'"),
    (["tag", "--top-k", "0", "hi"], "--top-k must be an integer >= 1, got 0"),
    (["tag", "--threads", "0", "hi"], "--threads must be an integer >= 1, got 0"),
])
def test_bad_option_value_is_one_line_naming_the_flag(args, line):
    result = invoke(*args)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"seqtag: error: {line}\n")


def test_bad_option_value_with_verbose_shows_the_traceback():
    code, out, err = run("--verbose", "train", SAMPLE, "--decay-patience", "0")
    assert code == 2 and out == "" and "Traceback" in err and "ConfigError" in err
    assert err.splitlines()[-1] == (
        "seqtag: error: --decay-patience must be an integer >= 1, got 0")


def tag_in_a_new_process(module, report):
    """(stdout, stderr) of a fresh interpreter that runs `module`.main(['tag', 'The dog ate
    the apple']) and then prints the expression `report` (over sys.modules) to stderr."""
    code = (f"import sys; from {module} import main\n"
            "try:\n    main(['tag', 'The dog ate the apple'])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            f"print({report}, file=sys.stderr)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    return p.stdout, p.stderr


def test_tagging_imports_no_pydantic():
    # typer >= 0.25 would import pydantic to convert each parameter (+70 ms a call);
    # seqtag.cli gives its parameters a plain conversion instead
    assert tag_in_a_new_process("seqtag.cli", "'pydantic' in sys.modules") == (
        "The/DET dog/NOUN ate/VERB the/DET apple/NOUN\n", "False\n")


# ---- seqtag.console: `seqtag tag TEXT...` without typer

def _exit_and_output(main, args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return e.value.code or 0, out, err


@pytest.mark.parametrize("texts", [
    ["The dog ate the apple"],
    ["The dog barked. It ran.", "", "  ", "Élan vital, ça va? Don't."],
    ["train"],  # a command's name is text after tag
    [""],
])
def test_plain_tag_without_typer_prints_what_the_command_line_prints(texts, capsys):
    from seqtag import console

    fast = _exit_and_output(console.main, ["tag", *texts], capsys)
    full = _exit_and_output(cli.main, ["tag", *texts], capsys)
    assert fast == full and fast[0] == 0


def test_plain_tag_without_typer_reports_a_broken_model_in_one_line(tmp_path, monkeypatch,
                                                                     capsys):
    from seqtag import console, tagger

    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 but nothing more")
    monkeypatch.setattr(tagger, "DEFAULT_MODEL", broken)
    monkeypatch.delenv("SEQTAG_DEBUG", raising=False)
    fast = _exit_and_output(console.main, ["tag", "The dog"], capsys)
    assert fast == _exit_and_output(cli.main, ["tag", "The dog"], capsys)
    code, out, err = fast
    assert (code, out) == (1, "") and err.startswith(f"seqtag: error: {broken} is truncated")
    assert err.count("\n") == 1


def test_plain_tag_ends_its_process_with_the_output_and_status_of_the_command_line(tmp_path):
    """The console script ends the process itself after a plain `seqtag tag` (no
    interpreter teardown): its output, errors and exit status are the typer path's, written
    out in full."""
    texts = ["The dog ate the apple. " * 400, "Élan vital, ça va?"]
    assert run("tag", *texts) == run("tag", "--format", "text", *texts)
    code, out, err = run("tag", *texts)
    assert code == 0 and err == "" and out.count("\n") == 401
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 but nothing more")
    script = ("import sys; from seqtag import console, tagger; "
              f"tagger.DEFAULT_MODEL = tagger.Path({str(broken)!r}); "
              "sys.argv = ['seqtag', 'tag', 'The dog']; console.main(); print('not here')")
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120, env={k: v for k, v in os.environ.items()
                                         if k != "SEQTAG_DEBUG"})
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr.startswith(f"seqtag: error: {broken} is truncated") and \
        p.stderr.count("\n") == 1


def test_plain_tag_without_typer_interrupted(monkeypatch, capsys):
    from seqtag import console
    from seqtag.tagger import Tagger

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Tagger, "load", interrupted)
    assert _exit_and_output(console.main, ["tag", "hello"], capsys) == (
        130, "", "seqtag: interrupted\n")


def test_console_leaves_options_and_the_rest_to_typer(capsys):
    from seqtag import console

    code, out, _ = _exit_and_output(console.main, ["tag", "--format", "tsv", "The dog"], capsys)
    assert (code, out) == (0, "The\tDET\ndog\tNOUN\n\n")
    # "--" is typer's: what follows is text even where it looks like an option
    code, out, _ = _exit_and_output(console.main, ["tag", "The dog", "--", "-x"], capsys)
    assert (code, out) == (0, "The/DET dog/NOUN\n-/PUNCT x/SYM\n")
    code, out, _ = _exit_and_output(console.main, ["--help"], capsys)
    assert code == 0 and "Usage: seqtag" in out


def test_the_command_line_leaves_the_hosts_excepthook_alone(monkeypatch, capsys):
    from seqtag import console

    def host_hook(*args):
        pass

    monkeypatch.setattr(sys, "excepthook", host_hook)
    for args in (["--help"], ["tag", "--format", "tsv", "The dog"], ["info"]):
        code, out, _ = _exit_and_output(console.main, args, capsys)
        assert code == 0 and out
        assert sys.excepthook is host_hook, args


@pytest.mark.parametrize("command, message", [
    ("tag 'Hi.' >&-", "seqtag: error: cannot write the output: Bad file descriptor\n"),
    ("tag --format tsv 'Hi.' >&-",  # through typer
     "seqtag: error: cannot write the output: Bad file descriptor\n"),
    ("tag <&-", "seqtag: error: <stdin>:1: cannot read: Bad file descriptor\n"),
])
def test_a_closed_standard_stream_is_one_error_line(command, message):
    """A stream the shell closed is None in Python: an AttributeError's traceback before."""
    p = subprocess.run(f"{shlex.quote(sys.executable)} -m seqtag {command}", shell=True,
                       capture_output=True, text=True, timeout=120)
    assert (p.returncode, p.stderr) == (1, message)


def test_a_closed_stdout_is_no_matter_where_the_output_goes_to_files(tmp_path):
    (tmp_path / "in.txt").write_text("Hi there.\n", encoding="utf-8")
    p = subprocess.run(f"{shlex.quote(sys.executable)} -m seqtag tag -i {tmp_path / 'in.txt'} "
                       f"--output-dir {tmp_path / 'out'} >&-", shell=True, capture_output=True,
                       text=True, timeout=120)
    assert (p.returncode, p.stderr) == (0, "")
    assert (tmp_path / "out" / "in.txt").read_text(encoding="utf-8") == "Hi/INTJ there/ADV ./PUNCT\n"


def test_plain_tag_imports_no_typer():
    assert tag_in_a_new_process(
        "seqtag.console", "sorted(m for m in sys.modules if m.split('.')[0] in "
        "('typer', 'click') or m == 'seqtag.cli')") == (
        "The/DET dog/NOUN ate/VERB the/DET apple/NOUN\n", "[]\n")


def test_plain_tag_imports_only_what_tagging_needs():
    # each of these was milliseconds of a one-shot `seqtag tag` (BENCHMARKS.md, #12):
    # the second thread is seqtag.runtime.Worker, not a ThreadPoolExecutor (which imports
    # logging); traceback is imported for SEQTAG_DEBUG, difflib for a misspelt option, glob
    # where NumPy's BLAS is not loaded yet
    assert tag_in_a_new_process(
        "seqtag.console", "sorted(m for m in ('concurrent.futures', 'logging', 'traceback', "
        "'difflib', 'glob', 'queue') if m in sys.modules)") == (
        "The/DET dog/NOUN ate/VERB the/DET apple/NOUN\n", "[]\n")


def _blas_after(script, **variables):
    """(BLAS vendor, its thread count or None, OPENBLAS_NUM_THREADS) printed by a fresh
    interpreter after `script`, with only `variables` of BLAS's thread variables set."""
    report = ("from seqtag import runtime; info = runtime.blas_info(); "
              "print('blas:', info['vendor'], info['threads'], "
              "os.environ.get('OPENBLAS_NUM_THREADS'), file=sys.stderr)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")}
    p = subprocess.run([sys.executable, "-c", f"import os, sys\n{script}\n{report}"],
                       capture_output=True, text=True, timeout=120, env={**env, **variables})
    assert p.returncode == 0, p.stderr
    vendor, threads, variable = p.stderr.splitlines()[-1].split()[1:]
    return vendor, None if threads == "None" else int(threads), variable


def test_the_console_script_loads_blas_on_one_thread_and_leaves_the_environment():
    """`seqtag tag`'s own process loads OpenBLAS with one thread (its threads would only
    spin: seqtag computes with one BLAS thread) and removes the variable that said so; a
    count the user set stands, and a host that imports seqtag keeps OpenBLAS's own count
    (one thread per usable core)."""
    host = _blas_after("import seqtag.tagger")
    if host[0] != "openblas" or host[1] is None:
        pytest.skip(f"NumPy's BLAS here is not OpenBLAS with a thread count: {host[:2]}")
    command = ("sys.argv = ['seqtag', 'tag', '--format', 'tsv', 'The dog']\n"
               "from seqtag import console\n"
               "try:\n    console.main()\nexcept SystemExit as e:\n    assert not e.code")
    assert _blas_after(command) == ("openblas", 1, "None")
    assert host[2] == "None"
    if host[1] > 1:  # a machine of one usable core starts one thread anyway
        assert _blas_after(command, OMP_NUM_THREADS="2") == ("openblas", 2, "None")
        assert _blas_after(command, OPENBLAS_NUM_THREADS="2") == ("openblas", 2, "2")
    # other commands keep OpenBLAS's own count (training may use it: seqtag.embeddings)
    other = ("sys.argv = ['seqtag', 'info']\nfrom seqtag import console\n"
             "try:\n    console.main()\nexcept SystemExit as e:\n    assert not e.code")
    assert _blas_after(other) == host


def test_usage_error_in_subprocess():
    code, out, err = run("tag", "--format", "xml", "hi")
    assert code == 2 and out == "" and "--format" in err


def test_interrupt(monkeypatch):
    from seqtag.tagger import Tagger

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Tagger, "load", interrupted)
    result = invoke("tag", "-m", "m.npz", "hello")
    assert result.exit_code == 130
    assert result.stderr == "seqtag: interrupted\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("args, stdin", [
    (["tag", "The dog ate the apple"], None),                       # the plain path (console)
    (["tag", "--format", "conllu", "The dog ate the apple"], None),  # through typer
    (["tag", "-i", "-", "--input-format", "lines"], b"The dog ate the apple\n"),
])
def test_a_full_disk_under_the_output_is_one_line_and_exit_1(args, stdin):
    """Output that cannot be written (stdout on /dev/full: ENOSPC) is one error line, exit
    1, no traceback, and no second complaint from the interpreter's flush at exit."""
    env = {k: v for k, v in os.environ.items() if k != "SEQTAG_DEBUG"}
    with open("/dev/full", "wb") as full:
        p = subprocess.run([sys.executable, "-m", "seqtag", *args], input=stdin, stdout=full,
                           stderr=subprocess.PIPE, env=env, timeout=120)
    assert p.returncode == 1
    assert p.stderr.decode() == "seqtag: error: cannot write the output: No space left on device\n"
