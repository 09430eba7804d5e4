"""One validated configuration (seqtag.config): every option refuses bad values with the same
one-line message from the library and from the command line (there naming its flag, exit 2);
the defaults are the same everywhere; models and checkpoints hold the checked configs, and
older ones, lacking options added since, still load."""

import inspect
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from seqtag import Tagger, cli, memo, modelfile, network, stream, train
from seqtag.config import NetworkConfig, TaggingConfig, TrainingConfig
from seqtag.corpus import Sentence
from seqtag.errors import ConfigError, ModelError, SeqtagError
from seqtag.tagger import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample.txt"
SMALL = dict(hidden=8, word_dim=8, char_dim=4, char_hidden=4, layers=1, threads=1, seed=3,
             batch_size=4, lr=0.01)

# For every option: values it must refuse, as (value from Python, what the message shows).
BAD = {
    "cell": [("rnn", "'rnn'"), (None, "None"), ("LSTM", "'LSTM'")],
    "word_dim": [(0, "0"), (1.0, "1.0"), ("100", "'100'")],
    "char_dim": [(-1, "-1"), (True, "True")],
    "char_hidden": [(0, "0"), (np.float64(4.0), "4.0")],
    "hidden": [(0, "0"), (None, "None")],
    "layers": [(0, "0"), (2.5, "2.5")],
    "dropout": [(1, "1"), (1.5, "1.5"), (-0.1, "-0.1"), (math.nan, "nan")],
    "word_dropout": [(-1, "-1"), (math.inf, "inf")],
    "epochs": [(0, "0"), (2.0, "2.0"), (False, "False")],
    "batch_size": [(0, "0"), ("32", "'32'")],
    "optimizer": [("adagrad", "'adagrad'"), (None, "None")],
    "embedding_adam": [("sparse", "'sparse'"), (None, "None")],
    "lr": [(-1, "-1"), (0, "0"), (math.nan, "nan"), (math.inf, "inf"), (True, "True")],
    "clip": [(-1, "-1"), (math.nan, "nan")],
    "seed": [(-1, "-1"), (1.5, "1.5")],
    "patience": [(0, "0")],
    "average": [(1, "1"), (-0.5, "-0.5")],
    "decay_patience": [(0, "0")],
    "lr_decay": [(0, "0"), (1.5, "1.5")],
    "max_time": [(0, "0"), (-3.5, "-3.5"), (math.inf, "inf")],
    "dev_fraction": [(0, "0"), (1, "1"), (1.0, "1.0")],
    "threads": [(0, "0"), (1.0, "1.0"), (np.bool_(True), repr(np.bool_(True)))],
    "top_k": [(0, "0"), (2.0, "2.0")],
    "memo_words": [(-1, "-1"), (2.5, "2.5"), (True, "True"), ("8", "'8'")],
    "output_layer": [("CRF", "'CRF'"), (None, "None")],
    "shape_dim": [(-1, "-1"), (2.5, "2.5")],
    "span_scheme": [("iob1", "'iob1'"), (2, "2")],
    "embeddings": [(3, "3"), (True, "True")],
    "embeddings_vocab": [(-1, "-1"), (1.5, "1.5")],
    "freeze_embeddings": [(1, "1"), ("yes", "'yes'"), (None, "None")],
    "feats": [("per-feature", "'per-feature'"), (None, "None")],
    "columns": [("upos,pos", "'upos,pos'"), ("upos,upos", "'upos,upos'"), (3, "3"),
                ("", "''")],
}
# The tagging batch_size shares its name with training's; its bad values:
BAD_TAG_BATCH_SIZE = [(0, "0"), (1.5, "1.5")]

REQUIREMENT = {
    "cell": "one of lstm, peephole, gru",
    "word_dim": "an integer >= 1", "char_dim": "an integer >= 1",
    "char_hidden": "an integer >= 1", "hidden": "an integer >= 1", "layers": "an integer >= 1",
    "dropout": "a number in [0, 1)", "word_dropout": "a number >= 0",
    "epochs": "an integer >= 1", "batch_size": "an integer >= 1",
    "optimizer": "one of adam, sgd", "lr": "a number > 0", "clip": "a number >= 0",
    "embedding_adam": "one of lazy, dense",
    "seed": "an integer >= 0", "patience": "an integer >= 1", "average": "a number in [0, 1)",
    "decay_patience": "an integer >= 1", "lr_decay": "a number in (0, 1]",
    "max_time": "a number > 0", "dev_fraction": "a number in (0, 1)",
    "threads": "an integer >= 1", "top_k": "an integer >= 1", "memo_words": "an integer >= 0",
    "output_layer": "one of auto, softmax, crf", "span_scheme": "one of IOB2, IOBES",
    "embeddings": "a text", "embeddings_vocab": "an integer >= 0",
    "freeze_embeddings": "true or false", "shape_dim": "an integer >= 0",
    "feats": "one of whole, split",
    "columns": "a comma-separated list of distinct upos, xpos, feats, lemma",
}

# Values from the command line that must be refused, as typed: for every flag.
BAD_CLI = {
    "cell": ["rnn", "LSTM"], "word_dim": ["0", "many", "16.0"], "char_dim": ["-1"],
    "char_hidden": ["0"], "hidden": ["0", "1e3"], "layers": ["0"], "dropout": ["1", "nan"],
    "word_dropout": ["-1", "inf"], "epochs": ["0", "2.5", "many"], "batch_size": ["0"],
    "optimizer": ["adagrad"], "lr": ["-1", "0", "fast", "inf"], "clip": ["-1"],
    "embedding_adam": ["Dense"],
    "seed": ["-1"], "patience": ["0"], "average": ["1"], "decay_patience": ["0"],
    "lr_decay": ["0", "2"], "max_time": ["0", "-5"], "dev_fraction": ["0", "1"],
    "threads": ["0", "two"], "top_k": ["0", "1.5"], "memo_words": ["-1"],
    "output_layer": ["hmm"], "span_scheme": ["IOB1"], "shape_dim": ["-1", "x"],
    # any text names a file (its problems are the file's); a switch takes no value
    "embeddings": [], "embeddings_vocab": ["-1", "many"], "freeze_embeddings": [],
    "feats": ["per-feature"], "columns": ["UPOS", "upos,,lemma"],
}

runner = CliRunner()


def invoke(*args):
    return runner.invoke(cli.app, [str(a) for a in args])


def sentences(n=12):
    words = [("the", "DET"), ("dog", "NOUN"), ("barks", "VERB"), (".", "PUNCT")]
    return [Sentence([w for w, _ in words], [t for _, t in words]) for _ in range(n)]


def all_options():
    return {**NetworkConfig.options(), **TrainingConfig.options(), **TaggingConfig.options()}


def test_every_option_has_bad_values_and_a_requirement_here():
    assert set(BAD) == set(all_options()) == set(REQUIREMENT) == set(BAD_CLI)
    for name, opt in all_options().items():
        assert opt.requirement() == REQUIREMENT[name]


# ---------------------------------------------------------------- bad values, library


@pytest.mark.parametrize("name,value,shown", [
    (name, value, shown) for name, cases in BAD.items() for value, shown in cases
    if name in NetworkConfig.options() or name in TrainingConfig.options()])
def test_tagger_train_refuses_a_bad_value_before_anything_else(name, value, shown, tmp_path):
    with pytest.raises(ConfigError) as caught:
        # the checkpoint to resume does not exist: the option is checked before it is read
        Tagger.train(sentences(), resume=tmp_path / "missing.ckpt", **{name: value})
    assert str(caught.value) == f"{name} must be {REQUIREMENT[name]}, got {shown}"
    assert caught.value.option == name
    assert isinstance(caught.value, SeqtagError)


@pytest.mark.parametrize("name,value,shown", [
    (name, value, shown) for name in ("threads", "memo_words") for value, shown in BAD[name]])
def test_tagger_load_refuses_a_bad_value(name, value, shown):
    with pytest.raises(ConfigError) as caught:
        Tagger.load(DEFAULT_MODEL, **{name: value})
    assert str(caught.value) == f"{name} must be {REQUIREMENT[name]}, got {shown}"


@pytest.mark.parametrize("name,value,shown", [
    *[("top_k", v, s) for v, s in BAD["top_k"]],
    *[("batch_size", v, s) for v, s in BAD_TAG_BATCH_SIZE]])
def test_tagging_config_refuses_a_bad_value(name, value, shown):
    with pytest.raises(ConfigError) as caught:
        TaggingConfig(**{name: value})
    assert str(caught.value) == f"{name} must be an integer >= 1, got {shown}"


@pytest.mark.parametrize("config_class", [NetworkConfig, TrainingConfig, TaggingConfig])
def test_configs_check_every_value_they_are_built_with(config_class):
    for name in config_class.options():
        value, shown = BAD[name][0] if config_class is not TaggingConfig or name != "batch_size" \
            else BAD_TAG_BATCH_SIZE[0]
        with pytest.raises(ConfigError, match=rf"^{name} must be .*, got {shown}$"):
            config_class(**{name: value})
        with pytest.raises(ConfigError, match=rf"^{name} must be "):
            config_class.from_dict({name: value})
        with pytest.raises(ConfigError, match=rf"^{name} must be "):
            config_class().replace(**{name: value})


def test_network_refuses_a_bad_config():
    with pytest.raises(ConfigError, match=r"^layers must be an integer >= 1, got 0$"):
        network.Network({"layers": 0}, 10, 10, 3)


def test_train_function_refuses_bad_options():
    with pytest.raises(ConfigError, match=r"^batch_size must be an integer >= 1, got 0$"):
        train.train(sentences(), sentences(2), {}, {"batch_size": 0})


# ---------------------------------------------------------------- unknown options


@pytest.mark.parametrize("name,message", [
    ("hiden", "unknown option 'hiden'; did you mean 'hidden'?"),
    ("lr_decy", "unknown option 'lr_decy'; did you mean 'lr_decay'?"),
    ("wordDim", "unknown option 'wordDim'; did you mean 'word_dim'?"),
    ("zzz", "unknown option 'zzz'; the options are cell, word_dim, char_dim, char_hidden, "
            "hidden, layers, dropout, word_dropout, shape_dim, output_layer, feats, epochs, "
            "batch_size, optimizer, embedding_adam, lr, clip, seed, patience, average, "
            "decay_patience, lr_decay, max_time, dev_fraction, columns, threads, embeddings, "
            "embeddings_vocab, freeze_embeddings"),
])
def test_unknown_option_names_the_nearest(name, message):
    with pytest.raises(ConfigError) as caught:
        Tagger.train(sentences(), **{name: 1})
    assert str(caught.value) == message
    assert caught.value.option == name and caught.value.problem is None


def test_unknown_option_in_a_config_dict():
    with pytest.raises(ConfigError, match=r"^unknown option 'dropuot'; did you mean 'dropout'\?$"):
        NetworkConfig.from_dict({"dropuot": 0.1})
    with pytest.raises(ConfigError, match=r"^unknown option 'top'; did you mean 'top_k'\?$"):
        TaggingConfig.from_dict({"top": 3})


def test_unknown_flag_is_a_usage_error():
    result = invoke("train", SAMPLE, "--hiden", "3")
    assert result.exit_code == 2 and "--hiden" in result.stderr


# ---------------------------------------------------------------- bad values, command line


def cli_cases():
    for name, texts in BAD_CLI.items():
        for text in texts:
            yield name, text


def expected_shown(text):
    try:
        float(text)
        return text
    except ValueError:
        return repr(text)


@pytest.mark.parametrize("name,text", list(cli_cases()))
def test_command_line_refuses_a_bad_value_naming_the_flag(name, text, tmp_path):
    flag = "--" + name.replace("_", "-")
    line = f"seqtag: error: {flag} must be {REQUIREMENT[name]}, got {expected_shown(text)}\n"
    if name in NetworkConfig.options() or name in TrainingConfig.options():
        # the corpus does not exist: the options are checked before it is read
        result = invoke("train", tmp_path / "missing.txt", "-o", tmp_path / "m.npz", flag, text)
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", line)
        assert not list(tmp_path.iterdir())
    if name in TaggingConfig.options():
        result = invoke("tag", "-m", tmp_path / "missing.npz", flag, text, "Hello .")
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", line)
    if name == "threads":
        result = invoke("evaluate", tmp_path / "missing.npz", SAMPLE, flag, text)
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", line)


def test_tag_batch_size_flag_is_the_tagging_one():
    result = invoke("tag", "--batch-size", "1.5", "Hello .")
    assert (result.exit_code, result.stderr) == (
        2, "seqtag: error: --batch-size must be an integer >= 1, got 1.5\n")


def test_an_integer_past_64_bits_is_one_config_error():
    """No count, size or seed is 2^63 or more; such a number reached NumPy and itertools
    as it was (a traceback from islice, or from a ufunc)."""
    for flag_, args in (("--batch-size", ("tag", "--batch-size", "99999999999999999999",
                                          "Hello .")),
                        ("--hidden", ("train", SAMPLE, "--hidden", "99999999999999999999"))):
        result = invoke(*args)
        assert (result.exit_code, result.stderr) == (
            2, f"seqtag: error: {flag_} must be an integer >= 1 below 2^63, got "
               "99999999999999999999\n")
    with pytest.raises(ConfigError, match=r"^hidden must be an integer >= 1 below 2\^63, got "
                       r"9223372036854775808$"):
        NetworkConfig(hidden=1 << 63)
    assert NetworkConfig(hidden=(1 << 63) - 1).hidden == (1 << 63) - 1


def test_bad_value_in_a_real_process_exits_2():
    p = subprocess.run([sys.executable, "-m", "seqtag", "train", SAMPLE, "--lr", "-1"],
                       capture_output=True, text=True, timeout=120)
    assert (p.returncode, p.stdout, p.stderr) == (
        2, "", "seqtag: error: --lr must be a number > 0, got -1\n")


# ---------------------------------------------------------------- good values


GOOD = {  # boundary values each option accepts, and what it holds then
    "cell": [("peephole", "peephole"), ("gru", "gru")],
    "word_dim": [(1, 1), (np.int64(7), 7)], "char_dim": [(1, 1)], "char_hidden": [(1, 1)],
    "hidden": [(1, 1)], "layers": [(1, 1)],
    "dropout": [(0, 0.0), (0.99, 0.99), (np.float32(0.5), 0.5)],
    "word_dropout": [(0, 0.0), (1000, 1000.0)],
    "epochs": [(1, 1)], "batch_size": [(1, 1)], "optimizer": [("sgd", "sgd")],
    "embedding_adam": [("dense", "dense"), ("lazy", "lazy")],
    "lr": [(None, None), (1e-9, 1e-9), (1, 1.0)], "clip": [(0, 0.0), (0.5, 0.5)],
    "seed": [(0, 0), (2**40, 2**40)], "patience": [(1, 1)], "average": [(0, 0.0), (0.9999, 0.9999)],
    "decay_patience": [(1, 1)], "lr_decay": [(1, 1.0), (1e-6, 1e-6)],
    "max_time": [(None, None), (0.001, 0.001)], "dev_fraction": [(0.001, 0.001), (0.999, 0.999)],
    "threads": [(1, 1), (64, 64)], "top_k": [(None, None), (1, 1)], "memo_words": [(0, 0)],
    "output_layer": [("crf", "crf"), ("softmax", "softmax")],
    "shape_dim": [(None, None), (0, 0), (16, 16)],
    "span_scheme": [(None, None), ("IOBES", "IOBES")],
    "embeddings": [(None, None), ("v.vec", "v.vec"), (Path("v.vec"), "v.vec")],
    "embeddings_vocab": [(0, 0)], "freeze_embeddings": [(True, True), (False, False)],
    "feats": [("split", "split")],
    "columns": [(None, None), ("lemma", "lemma"), (" upos , feats", "upos,feats")],
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_boundary_values_are_accepted_and_normalised(name):
    assert set(GOOD) == set(all_options())
    config_class = next(c for c in (NetworkConfig, TrainingConfig, TaggingConfig)
                        if name in c.options())
    for value, held in GOOD[name]:
        got = getattr(config_class(**{name: value}), name)
        assert got == held and type(got) is type(held)


def test_command_line_parses_boundary_values():
    opts = {**NetworkConfig.options(), **TrainingConfig.options()}
    assert opts["dropout"].parse("0") == 0.0
    assert opts["lr_decay"].parse("1") == 1.0
    assert opts["seed"].parse("0") == 0
    assert opts["lr"].parse("1e-3") == 0.001
    assert opts["cell"].parse("gru") == "gru"
    assert TaggingConfig.options()["memo_words"].parse("0") == 0


def test_training_with_boundary_values(tmp_path):
    tagger = Tagger.train(sentences(20), epochs=1, dropout=0, average=0, clip=0, lr_decay=1,
                          word_dropout=0, seed=0, decay_patience=1, dev_fraction=0.5,
                          **{k: v for k, v in SMALL.items() if k != "seed"})
    training = tagger.meta["training"]
    # patience left to the rule: 10 training sentences, 3 steps an epoch, 200 epochs' worth
    assert training == dict(TrainingConfig().to_dict(), epochs=1, average=0.0, clip=0.0,
                            lr_decay=1.0, seed=0, decay_patience=1, dev_fraction=0.5,
                            batch_size=4, lr=0.01, threads=1, patience=40)
    assert tagger.meta["training_auto"] == ["patience"]
    assert tagger.network.config["dropout"] == 0.0
    assert tagger.meta["corpus"]["dev_sentences"] == 10


# ---------------------------------------------------------------- defaults agree everywhere


def test_library_defaults_are_the_configs():
    assert network.DEFAULTS == NetworkConfig().to_dict() == {
        "cell": "lstm", "word_dim": 100, "char_dim": 32, "char_hidden": 64, "hidden": 128,
        "layers": 2, "dropout": 0.5, "word_dropout": 0.25, "shape_dim": None,
        "output_layer": "auto", "feats": "whole"}
    assert train.DEFAULTS == TrainingConfig().to_dict() == {
        "epochs": None, "batch_size": 32, "optimizer": "adam", "embedding_adam": "lazy",
        "lr": None, "clip": 5.0,
        "seed": 1, "patience": None, "average": 0.999, "decay_patience": None,
        "lr_decay": 0.5,
        "max_time": None, "dev_fraction": 0.1, "columns": None, "threads": 2,
        "embeddings": None, "embeddings_vocab": 50000, "freeze_embeddings": False}
    assert train.RESUMABLE_OPTIONS == ("epochs", "patience", "max_time", "threads")
    assert TrainingConfig().learning_rate == 2e-3
    assert TrainingConfig(optimizer="sgd").learning_rate == 0.1
    assert TaggingConfig().to_dict() == {"threads": 2, "batch_size": 256, "top_k": None,
                                         "memo_words": 8192, "span_scheme": None,
                                         "columns": None}
    load = inspect.signature(Tagger.load).parameters
    assert load["threads"].default == TaggingConfig.threads
    assert load["memo_words"].default == TaggingConfig.memo_words == memo.DEFAULT_CAPACITY
    assert stream.DEFAULT_BATCH_SIZE == TaggingConfig.batch_size
    assert TrainingConfig.threads == TaggingConfig.threads


def command_options(command):
    return {p.name: p for p in get_command(cli.app).commands[command].params}


@pytest.mark.parametrize("command,config_classes", [
    ("train", (NetworkConfig, TrainingConfig)), ("tag", (TaggingConfig,))])
def test_command_line_options_come_from_the_configs(command, config_classes):
    params = command_options(command)
    for config_class in config_classes:
        for name, opt in config_class.options().items():
            param = params[name]
            assert param.opts == ["--" + name.replace("_", "-")]
            assert param.help == opt.help
            assert param.default is None  # not given: the library's default applies
            if opt.kind is bool:  # a switch
                assert param.is_flag and param.show_default is False
                continue
            shown = opt.default if opt.default is not None else opt.none_means
            assert param.show_default == (str(shown) if shown is not None else False)
            assert param.metavar == opt.metavar
    assert set(command_options("evaluate")) >= {"threads"}


def test_help_shows_the_defaults_and_choices():
    out = invoke("train", "--help").stdout
    for text in ("--cell [lstm|peephole|gru]", "--optimizer [adam|sgd]", "Network options:",
                 "Training options:", "0.002 with adam, 0.1", "no limit"):
        assert text in out, text
    assert "--memo-words INTEGER" in invoke("tag", "--help").stdout


def test_model_records_the_checked_training_options():
    tagger = Tagger.train(sentences(), sentences(3), epochs=1, lr=1, **{
        k: v for k, v in SMALL.items() if k != "lr"})
    # 12 sentences in batches of 4: the rule's patiences of a 200-epoch run
    assert tagger.meta["training"] == dict(TrainingConfig().to_dict(), epochs=1, lr=1.0,
                                           batch_size=4, seed=3, threads=1, patience=40,
                                           decay_patience=13)
    assert type(tagger.meta["training"]["lr"]) is float
    # output_layer auto: resolved for these part-of-speech tags
    assert tagger.network.config == dict(NetworkConfig().to_dict(), hidden=8, word_dim=8,
                                         char_dim=4, char_hidden=4, layers=1,
                                         output_layer="softmax", shape_dim=0)


# ---------------------------------------------------------------- model files


def test_bundled_model_loads_unchanged():
    _, meta = modelfile.load_model(DEFAULT_MODEL)
    tagger = Tagger.load()
    # written before word shapes had an option: none (0)
    assert tagger.network.config == dict(meta["network"], shape_dim=0)
    assert tagger.tag("The dog ate the apple") == [[
        ("The", "DET"), ("dog", "NOUN"), ("ate", "VERB"), ("the", "DET"), ("apple", "NOUN")]]
    # a model written before output layers and FEATS heads had options: a softmax, whole
    old_path = REPO / "tests" / "data" / "old_upos_model.npz"
    _, old = modelfile.load_model(old_path)
    assert "output_layer" not in old["network"] and "feats" not in old["network"]
    assert Tagger.load(old_path).network.config == dict(old["network"], output_layer="softmax",
                                                        feats="whole", shape_dim=0)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "small.npz"
    Tagger.train(sentences(), sentences(3), epochs=1, **SMALL).save(path)
    return path


def rewrite_meta(src, dst, change):
    arrays, meta = modelfile.load_model(src)
    meta = {k: v for k, v in meta.items() if k not in ("format_version", "array_dtypes")}
    change(meta)
    modelfile.save_model(dst, arrays, meta)
    return dst


def test_model_without_a_newer_option_loads_with_its_default(small_model, tmp_path):
    old = rewrite_meta(small_model, tmp_path / "old.npz",
                       lambda meta: meta["network"].pop("word_dropout"))
    tagger = Tagger.load(old)
    assert tagger.network.config["word_dropout"] == NetworkConfig.word_dropout
    assert tagger.tag(["the", "dog"]) == Tagger.load(small_model).tag(["the", "dog"])


@pytest.mark.parametrize("change,reason", [
    (lambda meta: meta["network"].update(hidden=0),
     "network options: hidden must be an integer >= 1, got 0"),
    (lambda meta: meta["network"].update(dropout=2),
     "network options: dropout must be a number in [0, 1), got 2"),
    (lambda meta: meta["network"].update(cell="rnn"),
     "network options: cell must be one of lstm, peephole, gru, got 'rnn'"),
    (lambda meta: meta["network"].update(hiden=8),
     "network options: unknown option 'hiden'; did you mean 'hidden'?"),
    (lambda meta: meta.update(network=[1, 2]), "network options are not a JSON object"),
])
def test_model_with_bad_options_names_the_file(small_model, tmp_path, change, reason):
    bad = rewrite_meta(small_model, tmp_path / "bad.npz", change)
    with pytest.raises(ModelError) as caught:
        Tagger.load(bad)
    assert str(caught.value) == f"{bad} has invalid metadata: {reason}"
    result = invoke("info", bad)
    assert (result.exit_code, result.stderr) == (
        1, f"seqtag: error: {bad} has invalid metadata: {reason}\n")


# ---------------------------------------------------------------- checkpoints


@pytest.fixture
def stopped_run(tmp_path):
    """A run stopped after epoch 2 of 4: (checkpoint path, sentences, dev sentences)."""
    ckpt = tmp_path / "run.ckpt"
    train_sents, dev_sents = sentences(16), sentences(4)
    Tagger.train(train_sents, dev_sents, checkpoint=ckpt, epochs=2, patience=5, **SMALL)
    return ckpt, train_sents, dev_sents


def test_checkpoint_round_trip_holds_the_checked_configs(stopped_run):
    ckpt, _, _ = stopped_run
    _, meta = modelfile.load_model(ckpt)
    expected = TrainingConfig(epochs=2, patience=5, decay_patience=13, **{
        k: v for k, v in SMALL.items() if k in TrainingConfig.options()})
    assert meta["training"] == expected.to_dict()
    state = train.TrainingState.load(ckpt)
    assert state.opts == expected
    assert NetworkConfig.from_dict(state.network.config) == NetworkConfig(**{
        k: v for k, v in SMALL.items() if k in NetworkConfig.options()},
        output_layer="softmax", shape_dim=0)


def test_resumed_run_keeps_its_options_but_the_resumable(stopped_run):
    ckpt, train_sents, dev_sents = stopped_run
    state = train.TrainingState.load(ckpt)
    resumed = state.resumed_options({"hidden": 8}, {"epochs": 4, "threads": 2,
                                                    "batch_size": 4, "lr": 0.01})
    assert resumed == state.opts.replace(epochs=4, threads=2)
    for net, opts, message in [
        ({"hidden": 16}, {}, "cannot resume with hidden 16: the run in {} has 8"),
        ({}, {"batch_size": 8}, "cannot resume with batch_size 8: the run in {} has 4 "
                                "(only epochs, patience, max_time, threads can change)"),
        ({}, {"lr": 0.02}, "cannot resume with lr 0.02: the run in {} has 0.01 "
                           "(only epochs, patience, max_time, threads can change)"),
    ]:
        with pytest.raises(SeqtagError) as caught:
            state.resumed_options(net, opts)
        assert str(caught.value) == message.format(ckpt)
    # through Tagger.train: a bad value is a ConfigError before the checkpoint is read
    with pytest.raises(ConfigError, match=r"^epochs must be an integer >= 1, got 0$"):
        Tagger.train(train_sents, dev_sents, resume=ckpt, epochs=0)
    tagger = Tagger.train(train_sents, dev_sents, resume=ckpt, epochs=np.int64(3),
                          hidden=np.int64(8))
    assert tagger.meta["scores"]["epochs_run"] == 3
    assert tagger.meta["training"] == dict(state.opts.to_dict(), epochs=3)


def test_old_checkpoint_without_newer_options_resumes(stopped_run, tmp_path):
    ckpt, train_sents, dev_sents = stopped_run

    def forget(meta):
        for name in ("lr_decay", "decay_patience", "dev_fraction"):
            meta["training"].pop(name)
        meta["network"].pop("word_dropout")

    old = rewrite_meta(ckpt, tmp_path / "old.ckpt", forget)
    state = train.TrainingState.load(old)
    assert state.opts.lr_decay == TrainingConfig.lr_decay
    assert state.network.config["word_dropout"] == NetworkConfig.word_dropout
    tagger = Tagger.train(train_sents, dev_sents, resume=old, epochs=3)
    assert tagger.meta["scores"]["epochs_run"] == 3


@pytest.mark.parametrize("change,reason", [
    (lambda meta: meta["training"].update(batch_size=0),
     "training options: batch_size must be an integer >= 1, got 0"),
    (lambda meta: meta["training"].update(optimizer="adagrad"),
     "training options: optimizer must be one of adam, sgd, got 'adagrad'"),
    (lambda meta: meta["network"].update(layers=-1),
     "network options: layers must be an integer >= 1, got -1"),
])
def test_checkpoint_with_bad_options_names_the_file(stopped_run, tmp_path, change, reason):
    bad = rewrite_meta(stopped_run[0], tmp_path / "bad.ckpt", change)
    with pytest.raises(ModelError) as caught:
        train.TrainingState.load(bad)
    assert str(caught.value) == f"{bad} has invalid metadata: {reason}"


# ---------------------------------------------------------------- the config module itself


def test_config_imports_no_numpy():
    code = ("import sys; import seqtag.config, seqtag.cli; "
            "print('numpy' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert p.stdout == "False\n", p.stderr


def test_config_error_is_one_line_naming_the_option():
    error = ConfigError("lr", "must be a number > 0, got -1")
    assert (str(error), error.option, error.problem) == (
        "lr must be a number > 0, got -1", "lr", "must be a number > 0, got -1")
    assert isinstance(error, SeqtagError)


@pytest.mark.parametrize("bad, message", [
    (dict(top_k=0), "top_k must be an integer >= 1, got 0"),
    (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
    (dict(batch_size=True), "batch_size must be an integer >= 1, got True"),
])
def test_tag_stream_checks_its_options_through_the_config(bad, message):
    import io

    from seqtag import Tagger
    from seqtag.stream import tag_stream
    with pytest.raises(ConfigError) as caught:
        tag_stream(Tagger.load(), [["a"]], io.StringIO(), **bad)
    assert str(caught.value) == message
