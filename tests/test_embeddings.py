"""Pretrained word vectors (seqtag.embeddings, train --embeddings): every format reads the
same vectors, broken files fail in one line naming file and line, and vectors in which
unseen words sit next to known words of their tag raise the accuracy on those words."""

import gzip
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from seqtag import Tagger, cli
from seqtag.corpus import Sentence
from seqtag.embeddings import INIT_SD, initialise, read_vectors, vectors_dimension
from seqtag.errors import CorpusError

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample.txt"
WORDS = ["the", "The", "dog", "cat", "runs", "1995", "1996"]
DIM = 5

runner = CliRunner()


def vectors(seed=0):
    return np.random.default_rng(seed).standard_normal((len(WORDS), DIM)).astype(np.float32)


def text_file(path, words, vecs, header=True, gz=False):
    lines = [f"{len(words)} {vecs.shape[1]}"] if header else []
    # fastText's .vec lines end with a space: allowed
    lines += [w + " " + " ".join(f"{x:.7g}" for x in v) + " " for w, v in zip(words, vecs)]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    Path(path).write_bytes(gzip.compress(data) if gz else data)
    return path


def binary_file(path, words, vecs, count=None, gz=False):
    data = f"{count or len(words)} {vecs.shape[1]}\n".encode()
    data += b"".join(w.encode() + b" " + v.astype("<f4").tobytes() + b"\n"
                     for w, v in zip(words, vecs))
    Path(path).write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("kind", ["word2vec text", "glove", "text gz", "binary", "binary gz"])
def test_every_format_reads_the_same_vectors(tmp_path, kind):
    v = vectors()
    path = tmp_path / "vectors"
    if kind.startswith("binary"):
        binary_file(path, WORDS, v, gz=kind.endswith("gz"))
    else:
        text_file(path, WORDS, v, header=kind != "glove", gz=kind.endswith("gz"))
    got = read_vectors(path, wanted={"dog", "0000"}, extra=2)
    assert (got.format, got.compressed, got.dim, got.words_read) == (
        "binary" if kind.startswith("binary") else "text", kind.endswith("gz"), DIM, 7)
    # keys: lowercased, digits as 0; the first word of a key wins ("the" before "The",
    # "1995" before "1996"); beyond the wanted keys, the first 2 others in file order
    assert got.keys == ["the", "dog", "cat", "0000"] and got.extra_keys == ["the", "cat"]
    for key, row in (("the", 0), ("dog", 2), ("cat", 3), ("0000", 5)):
        assert np.allclose(got.vectors[got.keys.index(key)], v[row], atol=1e-6)
    assert vectors_dimension(path) == DIM


def bad_text(tmp_path, body):
    path = tmp_path / "bad.vec"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize("body, message", [
    ("3 2\ndog 1 2\ncat 1 2 3\nthe 1 2\n", "{p}:3: expected a word and 2 numbers, found 3 numbers"),
    ("dog 1 2\ncat 1\n", "{p}:2: expected a word and 2 numbers, found 1 numbers"),
    ("dog 1 2\ncat 1 x\n", "{p}:2: 'x' is not a number"),
    ("dog 1 2\ncat 1 nan\n", "{p}:2: a number is not finite"),
    ("2 2\ndog 1 2\ncat 3 4\ndog 5 6\n", "{p}:4: the word 'dog' is given again (first on line 2)"),
    ("dog\n", "{p}:1: expected a word and its numbers (or a 'COUNT DIM' header)"),
    ("", "{p}: no vectors"),
    ("\n\n", "{p}: no vectors"),
])
def test_a_broken_text_file_is_one_line_naming_file_and_line(tmp_path, body, message):
    path = bad_text(tmp_path, body)
    with pytest.raises(CorpusError) as e:
        read_vectors(path, wanted={"dog", "cat"}, extra=10)
    assert str(e.value) == message.format(p=path)


def test_a_broken_binary_file_names_the_record(tmp_path):
    v = vectors()
    path = binary_file(tmp_path / "v.bin", WORDS[:3], v[:3], count=4)
    with pytest.raises(CorpusError) as e:
        read_vectors(path, wanted=set(), extra=10)
    assert str(e.value) == f"{path}: truncated: record 4 of 4 has no word (the header says 4)"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(CorpusError) as e:
        read_vectors(path, wanted=set(), extra=10)
    assert str(e.value) == f"{path}: truncated: record 3 of 4 has fewer than {DIM} numbers"
    path = binary_file(tmp_path / "d.bin", ["dog", "cat", "dog"], v[:3])
    with pytest.raises(CorpusError) as e:
        read_vectors(path, wanted=set(), extra=10)
    assert str(e.value) == (f"{path}: record 3: the word 'dog' is given again (first on "
                            "record 1)")
    with pytest.raises(CorpusError) as e:
        read_vectors(tmp_path / "missing.vec", wanted=set(), extra=1)
    assert str(e.value) == f"{tmp_path / 'missing.vec'}: no such file"


def test_initialise_scales_and_projects(tmp_path):
    v = np.random.default_rng(1).standard_normal((40, 12)).astype(np.float32) * 3
    words = ["w" + chr(97 + k // 26) + chr(97 + k % 26) for k in range(40)]  # no digits
    got = read_vectors(text_file(tmp_path / "v.vec", words, v), wanted=set(words), extra=0)
    vocab = ["<pad>", "<unk>", *words[:30], "other"]
    same = np.zeros((len(vocab), 12), np.float32)
    rows = initialise(same, vocab, got)
    assert rows.tolist() == list(range(2, 32))
    assert same[rows].std() == pytest.approx(INIT_SD, rel=1e-3)
    assert np.allclose(same[rows] / same[rows].std(), v[:30] / v[:30].std(), atol=1e-4)
    assert not same[[0, 1, 32]].any()  # rows without a vector are left alone
    narrow = np.zeros((len(vocab), 4), np.float32)
    initialise(narrow, vocab, got)
    # principal components: the first keeps the most variance, the directions are orthogonal
    spread = narrow[rows].var(axis=0)
    assert np.all(np.diff(spread) <= 1e-9)
    cross = np.cov(narrow[rows].T)
    assert np.allclose(cross - np.diag(np.diag(cross)), 0, atol=1e-6)


# ---------------------------------------------------------------- training with vectors


TAGS = ["A", "B", "C"]


def synthetic(seed=0):
    """A language whose tags depend on the word alone and whose words are random letters:
    neither context nor spelling tells the tag of a word never seen in training.  Vectors:
    each word near its tag's centre.  Test sentences use only words absent from training."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    seen_words = {t: ["".join(rng.choice(letters, 6)) for _ in range(20)] for t in TAGS}
    unseen_words = {t: ["".join(rng.choice(letters, 6)) for _ in range(20)] for t in TAGS}

    def sentences(pool, n):
        out = []
        for _ in range(n):
            tags = rng.choice(TAGS, int(rng.integers(3, 8)))
            out.append(Sentence([str(rng.choice(pool[t])) for t in tags], list(tags)))
        return out

    centres = {t: rng.standard_normal(16) * 2 for t in TAGS}
    words, vecs = [], []
    for pool in (seen_words, unseen_words):  # the known words first: the frequent ones
        for t in TAGS:
            for w in pool[t]:
                words.append(w)
                vecs.append(centres[t] + rng.standard_normal(16) * 0.5)
    return (sentences(seen_words, 300), sentences(seen_words, 40), sentences(unseen_words, 60),
            words, np.array(vecs, dtype=np.float32))


TRAIN = dict(epochs=6, hidden=16, char_dim=8, char_hidden=8, layers=1, threads=1,
             batch_size=8, lr=0.01)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    train, dev, test, words, vecs = synthetic()
    path = text_file(tmp_path_factory.mktemp("vectors") / "v.vec", words, vecs)
    plain = Tagger.train(train, dev, word_dim=16, **TRAIN)
    with_vectors = Tagger.train(train, dev, embeddings=str(path), embeddings_vocab=100, **TRAIN)
    frozen = Tagger.train(train, dev, embeddings=str(path), embeddings_vocab=100,
                          freeze_embeddings=True, **TRAIN)
    return {"test": test, "path": path, "words": words, "plain": plain,
            "vectors": with_vectors, "frozen": frozen}


def test_vectors_raise_the_accuracy_on_unseen_words(runs):
    plain = runs["plain"].evaluate(runs["test"])
    better = runs["vectors"].evaluate(runs["test"])
    assert plain["unseen_tokens"] == better["unseen_tokens"] == plain["tokens"]  # all unseen
    assert plain["unseen_accuracy"] < 0.6  # chance is a third: spelling and context are noise
    assert better["unseen_accuracy"] > plain["unseen_accuracy"] + 0.3
    assert runs["frozen"].evaluate(runs["test"])["unseen_accuracy"] > (
        plain["unseen_accuracy"] + 0.3)


def test_the_model_records_the_vectors_and_keeps_their_words(runs, tmp_path):
    tagger = runs["vectors"]
    assert tagger.network.config["word_dim"] == 16  # the vectors' dimension
    assert tagger.meta["training"]["embeddings"] == str(runs["path"])
    assert tagger.meta["embeddings"] == {
        "file": str(runs["path"]), "format": "text", "gzip": False, "dim": 16,
        "words_in_file": 120, "vectors_kept": 120, "extra_words": 60}
    unseen = runs["words"][-1]
    assert unseen in tagger.vocab.word_index and not tagger.vocab.is_known(unseen)
    tagger.save(tmp_path / "m.npz")
    again = Tagger.load(tmp_path / "m.npz")
    assert again.meta["embeddings"] == tagger.meta["embeddings"]
    assert again.predict([runs["words"][-5:]]) == tagger.predict([runs["words"][-5:]])


def test_frozen_vectors_stay_as_initialised(runs):
    tagger = runs["frozen"]
    got = read_vectors(runs["path"], wanted=set(tagger.vocab.words), extra=0)
    start = np.zeros_like(tagger.network.word_embedding)
    rows = initialise(start, tagger.vocab.words, got)
    assert len(rows) == 120
    # the weights kept are a moving average: a constant row comes back within rounding
    assert np.allclose(tagger.network.word_embedding[rows], start[rows], rtol=0, atol=1e-6)
    moved = runs["vectors"].network.word_embedding[rows]
    assert np.abs(moved - start[rows]).max() > 1e-3  # unfrozen, training moves them


def test_a_word_dim_of_its_own_projects_the_vectors(runs):
    train, dev, test, _, _ = synthetic()
    tagger = Tagger.train(train, dev, embeddings=str(runs["path"]), embeddings_vocab=100,
                          word_dim=8, **TRAIN)
    assert tagger.network.config["word_dim"] == 8
    assert tagger.evaluate(test)["unseen_accuracy"] > (
        runs["plain"].evaluate(test)["unseen_accuracy"] + 0.2)


def test_command_line_options_and_a_broken_file(tmp_path):
    bad = bad_text(tmp_path, "2 3\nthe 1 2 3\ndog 1 2\n")
    model = tmp_path / "m.npz"
    result = runner.invoke(cli.app, ["train", str(SAMPLE), "-o", str(model), "--embeddings",
                                     str(bad), "--epochs", "1", "--threads", "1"])
    assert result.exit_code == 1
    assert result.stderr.count("seqtag: error") == 1
    assert result.stderr.splitlines()[-1] == (f"seqtag: error: {bad}:3: expected a word and "
                                              "3 numbers, found 2 numbers")
    assert not model.exists()
    good = text_file(tmp_path / "v.vec", ["the", "dog", "zebra"], vectors()[:3])
    result = runner.invoke(cli.app, [
        "train", str(SAMPLE), "-o", str(model), "--embeddings", str(good),
        "--embeddings-vocab", "1", "--freeze-embeddings", "--epochs", "1", "--threads", "1",
        "--hidden", "8", "--char-dim", "4", "--char-hidden", "4", "--layers", "1"])
    assert result.exit_code == 0, result.output
    tagger = Tagger.load(model)
    assert tagger.network.config["word_dim"] == DIM
    assert tagger.meta["training"]["freeze_embeddings"] is True
    assert tagger.meta["training"]["embeddings_vocab"] == 1
    assert "zebra" in tagger.vocab.word_index and not tagger.vocab.is_known("zebra")
    info = runner.invoke(cli.app, ["info", str(model)]).stdout
    assert f"vectors       {good} (text, dim {DIM}): 3 of 3 kept, 1 beyond the corpus" in info


def test_a_run_with_frozen_vectors_resumes_bit_for_bit(runs, tmp_path):
    train, dev, _, _, _ = synthetic()
    options = dict(TRAIN, epochs=2, embeddings=str(runs["path"]), embeddings_vocab=100,
                   freeze_embeddings=True)
    whole = Tagger.train(train, dev, **options)
    def stop(event):  # a Ctrl-C after the first epoch
        if event["type"] == "epoch":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Tagger.train(train, dev, checkpoint=tmp_path / "run.ckpt", progress=stop, **options)
    resumed = Tagger.train(train, dev, resume=tmp_path / "run.ckpt", **options)
    for name, array in whole.network.arrays().items():
        assert np.array_equal(array, resumed.network.arrays()[name]), name
    assert resumed.meta["embeddings"] == whole.meta["embeddings"]
