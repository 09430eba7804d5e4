"""Bad input, broken files and interruptions (issue 5): one clear line on stderr, exit 1 (or
130 for Ctrl-C), and nothing lost or half-written.

Cases covered elsewhere, not tested again here:

- corpus messages (missing file, folder, empty / blank / comment-only file, tsv and slash
  errors, CoNLL-U column count and ID, unterminated last sentence, bad UTF-8 then
  --encoding latin-1, BOM + CRLF, 5,000-token sentence read, mixed formats):
  test_corpus.py (test_missing_file_and_directory, test_no_sentences, test_tsv_errors,
  test_conllu_wrong_column_count, test_conllu_bad_id, test_last_sentence_without_final_newline,
  test_invalid_utf8_names_the_line, test_bom_and_crlf_are_accepted,
  test_long_sentence_and_long_token, test_mixed_formats_name_the_first_misfit_line); here only
  what the CLI makes of them.  `seqtag tag` with bad UTF-8 and --encoding:
  test_cli.py::test_non_utf8_input_names_the_line; tracebacks only with --verbose or
  SEQTAG_DEBUG=1: test_cli.py::test_traceback_only_when_asked.
- model file messages (missing, not an .npz, truncated, corrupt, pickled object never
  executed, newer format version): test_modelfile.py; atomic writing (full disk,
  Ctrl-C, failed rename while saving): test_modelfile.py's atomicity tests.
- a gold tag never seen in training: test_tagger.py::test_unknown_gold_tag_counts_as_an_error.
- empty input lines kept aligned: test_cli.py::test_tag_arguments_keep_empty_lines,
  test_tag_file_and_stdin_text.
- several threads tagging at once:
  test_tagger.py::test_tagging_from_several_threads_gives_the_serial_results.
- fuzzing the readers: test_corpus.py::test_random_bytes_parse_or_raise_corpus_error,
  test_mutated_corpora_parse_or_raise_corpus_error; the core boundary:
  test_rnn_validation.py::test_forward_returns_documented_shapes_or_raises_value_error.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from seqtag import Tagger, cli, modelfile
from seqtag.errors import ModelError
from seqtag.network import Network

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample.txt"
TINY = ["--hidden", "16", "--word-dim", "16", "--char-dim", "8", "--char-hidden", "8",
        "--layers", "1", "--threads", "1", "--quiet"]
runner = CliRunner()


def invoke(*args):
    return runner.invoke(cli.app, [str(a) for a in args])


def one_error_line(stderr):
    """The single line a user error prints."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def last_line(stderr):
    return stderr.splitlines()[-1]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.npz"
    result = invoke("train", SAMPLE, "-o", path, "--epochs", "1", *TINY)
    assert result.exit_code == 0, result.output
    return path


def write(path, content):
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def conllu_row(i, word, tag):
    return f"{i}\t{word}\t_\t{tag}\t_\t_\t_\t_\t_\t_\n"


GOOD_CONLLU = conllu_row(1, "The", "DET") + conllu_row(2, "dog", "NOUN") + "\n"


# ---------------------------------------------------------------- corpora


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("<dir>", "is a directory, not a file"),
    ("", "no sentences found"),
    ("\n  \n\n", "no sentences found"),
    ("# a comment\n\n# another\n", "no sentences found"),
    ("The\tDET\ndog\n", "2: expected 2 columns (word and tag), found 1 "
                        "(format detected as tsv; use --format to choose another)"),
    ("The\tDET\ndog\t\n", "2: missing tag after the word "
                          "(format detected as tsv; use --format to choose another)"),
    (GOOD_CONLLU + "1\tA\t_\tDET\n",
     "4: expected 10 tab-separated columns, found 4 "
     "(format detected as conllu; use --format to choose another)"),
    (GOOD_CONLLU + conllu_row("x", "A", "DET"),
     "4: bad token ID 'x': expected an integer, a range like 1-2 or a decimal like 1.1 "
     "(format detected as conllu; use --format to choose another)"),
    ("The/DET dog/NOUN\nCaf\u00e9/NOUN\n".encode("latin-1"),
     "2: not valid utf-8: byte 0xe9 at byte 4 of the line; use --encoding if the file is in "
     "another encoding"),
    ("The\tDET\ndog\tNOUN\n\nA/DET cat/NOUN sat/VERB\n",
     "4: expected 2 columns (word and tag), found 3 "
     "(format detected as tsv; use --format to choose another)"),
], ids=["missing", "folder", "empty", "blank", "comments", "one-column", "no-tag",
        "conllu-columns", "conllu-id", "not-utf8", "mixed-formats"])
def test_bad_corpus_is_one_line_naming_file_and_line(model, tmp_path, content, message):
    path = tmp_path / "corpus.txt"
    if content == "<dir>":
        path.mkdir()
    elif content is not None:
        write(path, content)
    separator = ":" if message[0].isdigit() else ": "
    expected = f"seqtag: error: {path}{separator}{message}"
    train = invoke("train", path, "-o", tmp_path / "m.npz", *TINY)
    assert train.exit_code == 1 and last_line(train.stderr) == expected
    assert "Traceback" not in train.stderr and not (tmp_path / "m.npz").exists()
    evaluate = invoke("evaluate", model, path)
    assert evaluate.exit_code == 1 and one_error_line(evaluate.stderr) == expected


@pytest.mark.parametrize("content, args, tokens", [
    (GOOD_CONLLU + conllu_row(1, "A", "DET") + conllu_row(2, "cat", "NOUN").rstrip("\n"), [], 4),
    (b"\xef\xbb\xbfThe/DET dog/NOUN\r\nA/DET cat/NOUN\r\n", [], 4),
    ("The/DET dog/NOUN\nCaf\u00e9/NOUN\n".encode("latin-1"), ["--encoding", "latin-1"], 3),
    ("The/DET dog/NEVER-SEEN\n", [], 2),
], ids=["conllu-unterminated", "bom-crlf", "latin-1", "unseen-gold-tag"])
def test_accepted_corpora_evaluate(model, tmp_path, content, args, tokens):
    path = write(tmp_path / "gold.txt", content)
    result = invoke("evaluate", model, path, "--json", *args)
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["tokens"] == tokens
    if "NEVER-SEEN" in scores["per_tag"]:  # counted, and always wrong
        assert scores["per_tag"]["NEVER-SEEN"]["recall"] == 0.0 and scores["accuracy"] <= 0.5


def test_5000_token_sentence_and_1000_character_token_train_and_tag(tmp_path):
    words = [f"w{i % 300}" for i in range(4999)] + ["x" * 1000]
    long = write(tmp_path / "long.txt", " ".join(f"{w}/X" for w in words) + "\n")
    corpus = write(tmp_path / "train.txt", SAMPLE.read_text() + long.read_text())
    out = tmp_path / "m.npz"
    result = invoke("train", corpus, "--dev", long, "-o", out, "--epochs", "1", *TINY)
    assert result.exit_code == 0, result.output
    tokens = write(tmp_path / "tokens.txt", "\n".join(words) + "\n")
    result = invoke("tag", "-m", out, "-i", tokens, "--input-format", "tokens", "--format", "tsv")
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.split("\n\n")[0].split("\n")]
    assert [r[0] for r in rows] == words and all(len(r) == 2 for r in rows)


# ---------------------------------------------------------------- models


def bad_model(kind, model, path):
    """Write a broken model of KIND to PATH; returns the message expected after 'error: '."""
    if kind == "missing":
        return f"model file not found: {path}"
    if kind == "not-a-model":
        write(path, "word\tTAG\n")
        return f"{path} is not a seqtag model (not an .npz archive)"
    if kind == "truncated":
        write(path, model.read_bytes()[:5000])
        return f"{path} is truncated or corrupt: "  # then zipfile's reason
    if kind == "pickle":
        bomb = np.array([Bomb(path.parent / "PWNED")], dtype=object)
        meta = np.frombuffer(json.dumps({"format_version": 1}).encode(), np.uint8)
        np.savez(path, allow_pickle=True, w=bomb, **{"__meta__.json": meta})
        return f"{path} holds a pickled object; refusing to load it (models never contain pickles)"
    arrays, meta = modelfile.load_model(model)
    if kind == "newer":
        meta["format_version"] = 99
        arrays[modelfile.META_NAME] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        np.savez(path, **arrays)
        return (f"{path} was written by a newer seqtag (model format 99; this seqtag reads up "
                f"to format {modelfile.FORMAT_VERSION}); upgrade seqtag")
    if kind == "shapes":
        vocab = meta["vocab"]  # model format 2: the words and their counts are arrays
        words = modelfile.get_strings(arrays, vocab["words"]) + ["one-word-too-many"]
        vocab["words"] = modelfile.put_strings(arrays, "vocab.words", words)
        arrays["vocab.word_counts"] = np.append(arrays["vocab.word_counts"], 1)
        modelfile.save_model(path, arrays, meta)
        rows, dim = arrays["word_embedding"].shape
        return (f"{path}: model weight word_embedding has shape ({rows}, {dim}), "
                f"expected ({rows + 1}, {dim})")
    raise ValueError(kind)


class Bomb:
    """Unpickling it would create a folder."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("kind", ["missing", "not-a-model", "truncated", "pickle", "newer",
                                  "shapes"])
def test_bad_model_is_one_line(model, tmp_path, kind):
    path = tmp_path / "bad.npz"
    expected = "seqtag: error: " + bad_model(kind, model, path)
    for args in (["tag", "-m", path, "a dog"], ["info", path]):
        result = invoke(*args)
        assert result.exit_code == 1 and result.stdout == ""
        assert one_error_line(result.stderr).startswith(expected)
        if kind != "truncated":
            assert one_error_line(result.stderr) == expected
    assert not (tmp_path / "PWNED").exists()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_bytes_are_a_model_error(model, data):
    good = model.read_bytes()
    random = st.binary(max_size=2000)
    content = data.draw(st.one_of(
        random,
        random.map(lambda b: b"PK\x03\x04" + b),  # looks like a zip
        st.integers(0, len(good) - 1).map(lambda n: good[:n]),  # truncated
        st.lists(st.tuples(st.integers(0, len(good) - 1), st.integers(1, 255)), min_size=1,
                 max_size=4).map(lambda flips: flip(good, flips)),  # bytes changed
    ))
    with tempfile.TemporaryDirectory() as d:
        path = write(Path(d) / "m.npz", content)
        try:
            Tagger.load(path)
        except ModelError:
            return
    # only changed bytes that left the file valid (or flipped back) can get here
    assert len(content) == len(good)


def flip(data, flips):
    data = bytearray(data)
    for at, mask in flips:
        data[at] ^= mask
    return bytes(data)


def test_checkpoint_is_not_a_model(model, tmp_path):
    checkpoint = Path(str(model) + ".ckpt")
    result = invoke("info", checkpoint)
    assert result.exit_code == 1
    assert one_error_line(result.stderr) == (
        f"seqtag: error: {checkpoint} is a training checkpoint, not a model; continue its run "
        f"with seqtag train --resume {checkpoint}")
    result = invoke("train", SAMPLE, "-o", tmp_path / "m.npz", "--resume", model, *TINY)
    assert result.exit_code == 1 and last_line(result.stderr) == (
        f"seqtag: error: {model} is not a training checkpoint (a model cannot be resumed; "
        "give the .ckpt file that training wrote next to it)")


# ---------------------------------------------------------------- training


def start_training(out, *extra):
    """`seqtag train` in a subprocess that runs until stopped, SIGINT handled as usual even if
    this process ignores it."""
    args = [sys.executable, "-m", "seqtag", "train", SAMPLE, "-o", out, "--epochs", "100000",
            "--patience", "100000", "--lr", "0.01", *TINY, *extra]
    return subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_epoch(proc, n):
    seen = 0
    for line in proc.stderr:
        seen += line.startswith("epoch")
        if seen == n:
            return
    raise AssertionError(f"training ended before epoch {n}: {proc.wait()}")


def test_ctrl_c_keeps_the_best_model(tmp_path, monkeypatch):
    out = tmp_path / "m.npz"
    proc = start_training(out)
    try:
        wait_for_epoch(proc, 1)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and stdout == ""
    scores = Tagger.load(out).meta["scores"]
    assert scores["interrupted"] is True
    assert last_line(stderr) == (
        f"seqtag: interrupted after {scores['epochs_run']} epoch"
        f"{'s' if scores['epochs_run'] > 1 else ''}; the model of epoch {scores['best_epoch']} "
        f"(dev accuracy {scores['dev_accuracy']:.2%}) is in {out}; --resume {out}.ckpt "
        "continues the run")
    # before the first epoch ends, nothing is written
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Network, "loss_and_gradients", interrupt)
    result = invoke("train", SAMPLE, "-o", tmp_path / "new.npz", *TINY)
    assert result.exit_code == 130
    assert last_line(result.stderr) == (
        "seqtag: interrupted before the first epoch finished; nothing was saved")
    assert sorted(os.listdir(tmp_path)) == ["m.npz", "m.npz.ckpt"]


def test_kill_9_leaves_the_last_model_loadable(tmp_path):
    out = tmp_path / "m.npz"
    proc = start_training(out)
    try:
        wait_for_epoch(proc, 2)  # an epoch's line comes after its files are written
        proc.kill()
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    info = invoke("info", out)
    assert info.exit_code == 0, info.output
    tagged = invoke("tag", "-m", out, "The dog barked .")
    assert tagged.exit_code == 0 and len(tagged.stdout.split()) == 4
    assert Path(str(out) + ".ckpt").exists()


@pytest.fixture(scope="module")
def a_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    assert invoke("train", SAMPLE, "-o", folder / "m.npz", "--epochs", "1",
                  *TINY).exit_code == 0
    return folder / "m.npz.ckpt"


@pytest.mark.parametrize("key, value, problem", [
    ("history", "x", "history is not a list of epochs with their dev_acc"),
    ("history", [{"epoch": 1}], "history is not a list of epochs with their dev_acc"),
    ("best", "x", "best is 'x', not a number"),
    ("stale", None, "stale is None, not a count"),
    ("stale", "x", "stale is 'x', not a count"),
    ("flags", {"float16": "yes"}, "its flags are not an object of true and false"),
    ("optimizer", "lr", "the optimizer's lr is 'x', not a number"),
])
def test_a_checkpoint_with_values_of_the_wrong_type_is_one_error_line(
        a_checkpoint, tmp_path, key, value, problem):
    """Each was a TypeError, AttributeError or KeyError traceback once training began."""
    from seqtag import modelfile
    arrays, meta = modelfile.load_model(a_checkpoint)
    meta[key] = dict(meta["optimizer"], lr="x") if key == "optimizer" else value
    broken = tmp_path / "broken.ckpt"
    modelfile.save_model(broken, arrays, meta)
    result = invoke("train", SAMPLE, "-o", tmp_path / "m.npz", "--epochs", "3", *TINY,
                    "--resume", broken)
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr and result.stderr.splitlines()[-1] == (
        f"seqtag: error: {broken} is a broken checkpoint: TypeError: {problem}")


def test_a_learning_rate_that_overflows_is_one_line_without_numpy_warnings(tmp_path):
    """--lr 1e308 overflows in the first step: NumPy's RuntimeWarnings came before the
    line; and the caller's NumPy error settings are as they were."""
    import numpy as np
    p = subprocess.run([sys.executable, "-m", "seqtag", "train", str(SAMPLE), "-o",
                        str(tmp_path / "m.npz"), "--lr", "1e308", *TINY],
                       capture_output=True, text=True, timeout=120)
    code, err = p.returncode, p.stderr
    assert code == 1 and "RuntimeWarning" not in err, err
    assert err.splitlines()[-1] == ("seqtag: error: the loss became nan in epoch 1; "
                                    "training stopped (try a lower --lr)")
    before = np.geterr()
    invoke("train", SAMPLE, "-o", tmp_path / "m.npz", "--lr", "1e308", *TINY)
    assert np.geterr() == before


def test_resume_gives_the_uninterrupted_model_bit_for_bit(tmp_path):
    # patience high enough that both runs reach epoch 8 whatever the dev scores; any run,
    # with or without rate cuts on the way, must resume exactly
    options = [*TINY, "--seed", "1", "--lr", "0.005", "--patience", "8"]
    whole, part = tmp_path / "whole.npz", tmp_path / "part.npz"
    assert invoke("train", SAMPLE, "-o", whole, "--epochs", "8", *options).exit_code == 0
    # stopped after epoch 6, then resumed
    assert invoke("train", SAMPLE, "-o", part, "--epochs", "6", *options).exit_code == 0
    result = invoke("train", SAMPLE, "-o", part, "--epochs", "8", "--resume",
                    f"{part}.ckpt", *options)
    assert result.exit_code == 0, result.output
    assert [line.split()[1] for line in result.stderr.splitlines()
            if line.startswith("epoch")] == ["7", "8"]
    a, meta_a = modelfile.load_model(whole)
    b, meta_b = modelfile.load_model(part)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    drop_time = lambda history: [dict(r, seconds=0) for r in history]  # noqa: E731
    assert drop_time(meta_a["history"]) == drop_time(meta_b["history"])
    seconds = meta_a["scores"]["train_seconds"]
    assert meta_a["scores"] == dict(meta_b["scores"], train_seconds=seconds)
    result = invoke("train", SAMPLE, "-o", part, "--resume", f"{part}.ckpt", *options,
                    "--batch-size", "8")
    assert result.exit_code == 1 and last_line(result.stderr) == (
        f"seqtag: error: cannot resume with batch_size 8: the run in {part}.ckpt has 32 "
        "(only epochs, patience, max_time, threads can change)")


def test_nan_loss_saves_no_garbage(tmp_path, monkeypatch):
    out = tmp_path / "m.npz"
    modelfile.save_model(out, {"w": np.ones(3)}, {"old": True})
    before = out.read_bytes()
    real = Network.loss_and_gradients
    calls = []

    def nan_from(n):
        def loss_and_gradients(self, *args, **kwargs):
            calls.append(1)
            loss, dense, sparse, right = real(self, *args, **kwargs)
            return (float("nan") if len(calls) >= n else loss), dense, sparse, right
        return loss_and_gradients

    monkeypatch.setattr(Network, "loss_and_gradients", nan_from(1))
    result = invoke("train", SAMPLE, "-o", out, *TINY)
    assert result.exit_code == 1
    assert last_line(result.stderr) == ("seqtag: error: the loss became nan in epoch 1; "
                                        "training stopped (try a lower --lr)")
    assert out.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["m.npz"]
    # in epoch 2 (7 batches an epoch): epoch 1's model was written and stays good
    calls.clear()
    monkeypatch.setattr(Network, "loss_and_gradients", nan_from(10))
    result = invoke("train", SAMPLE, "-o", out, *TINY)
    assert result.exit_code == 1
    assert last_line(result.stderr) == (
        "seqtag: error: the loss became nan in epoch 2; training stopped (try a lower --lr); "
        f"the best model before that (epoch 1) is in {out}")
    saved = Tagger.load(out)
    assert saved.meta["scores"]["best_epoch"] == 1
    assert all(np.isfinite(a).all() for a in saved.network.arrays().values())


def test_full_disk_keeps_the_previous_model(model, tmp_path, monkeypatch):
    out = tmp_path / "m.npz"
    out.write_bytes(model.read_bytes())
    before = out.read_bytes()

    def full_disk(f, arrays):
        f.write(b"\x93NUMPY partial" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(modelfile, "_write_npz", full_disk)
    result = invoke("train", SAMPLE, "-o", out, "--epochs", "1", *TINY)
    assert result.exit_code == 1
    assert last_line(result.stderr) == (
        f"seqtag: error: cannot write model {out}: No space left on device")
    assert out.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]  # no temporary file, no checkpoint


# ---------------------------------------------------------------- tagging


def test_broken_sentence_in_a_stream_keeps_the_output_before_it(model, tmp_path):
    good = [conllu_row(1, "The", "_") + conllu_row(2, "dog", "_"),
            conllu_row(1, "Dogs", "_") + conllu_row(2, "bark", "_")]
    path = write(tmp_path / "in.conllu",
                 good[0] + "\n" + good[1] + "\n" + conllu_row(1, "Cats", "_") + "2\tmeow\n\n"
                 + good[0] + "\n")
    result = invoke("tag", "-m", model, "-i", path, "--format", "conllu")  # one 256-sentence chunk
    assert result.exit_code == 1
    assert one_error_line(result.stderr) == (
        f"seqtag: error: {path}:8: expected 10 tab-separated columns, found 2 "
        "(format detected as conllu; use --format to choose another)")
    blocks = result.stdout.split("\n\n")
    assert len(blocks) == 3 and blocks[2] == ""  # the two sentences before it, complete
    assert [[row.split("\t")[1] for row in b.split("\n")] for b in blocks[:2]] == \
        [["The", "dog"], ["Dogs", "bark"]]
