"""The rule that sizes a run by its corpus (seqtag.config.auto_schedule): epochs, patience and
decay_patience left to it (None, the defaults) give every corpus about the optimizer steps of
EWT's 30 epochs; the model records what was chosen, `seqtag info` shows it, and a resumed run
keeps it and ends bit for bit as the run that never stopped."""

import numpy as np
import pytest
from typer.testing import CliRunner

from seqtag import Tagger, cli, modelfile
from seqtag.config import MAX_EPOCHS, STEP_BUDGET, TrainingConfig, auto_schedule
from seqtag.corpus import Sentence
from seqtag.train import TrainingInterrupted, TrainingState

SMALL = dict(hidden=8, word_dim=8, char_dim=4, char_hidden=4, layers=1, threads=1, seed=3,
             batch_size=4, lr=0.01)


@pytest.mark.parametrize("sentences,batch_size,expected", [
    # EWT train: 392 steps an epoch, 11,760 steps in 30 epochs: the recipe stays as it was
    (12_544, 32, (30, 6, 2)),
    # French-Sequoia train: 70 steps an epoch
    (2_231, 32, (171, 34, 11)),
    (12_800, 32, (30, 6, 2)),   # 400 steps: exactly the budget in 30 epochs
    (12_801, 32, (30, 6, 2)),   # 401 steps: 29 epochs' worth, but never fewer than 30
    (200_000, 32, (30, 6, 2)),  # a big corpus keeps 30 epochs
    (6_400, 32, (60, 12, 4)),   # half of EWT's steps an epoch: twice the epochs
    (6_400, 64, (120, 24, 8)),  # a step is a batch, whatever its size
    (2_000, 32, (190, 38, 13)),
    (10, 32, (MAX_EPOCHS, 40, 13)),  # one step an epoch: capped
    (1, 1, (MAX_EPOCHS, 40, 13)),
])
def test_auto_schedule_gives_exact_values(sentences, batch_size, expected):
    assert auto_schedule(sentences, batch_size) == dict(
        zip(("epochs", "patience", "decay_patience"), expected))


def test_auto_schedule_is_a_budget_of_steps():
    for sentences in (500, 1_000, 2_231, 3_000, 5_000, 9_000, 12_544):
        steps = -(-sentences // 32)
        epochs = auto_schedule(sentences, 32)["epochs"]
        assert epochs * steps <= max(STEP_BUDGET, 30 * steps)
        assert (epochs + 1) * steps > STEP_BUDGET or epochs == MAX_EPOCHS


@pytest.mark.parametrize("sentences,batch_size", [(0, 32), (10, 0)])
def test_auto_schedule_refuses_an_empty_corpus(sentences, batch_size):
    with pytest.raises(ValueError, match="need sentences >= 1 and batch_size >= 1"):
        auto_schedule(sentences, batch_size)


def test_scheduled_fills_only_what_was_left_to_the_rule():
    assert TrainingConfig().scheduled(2_231).to_dict() == dict(
        TrainingConfig().to_dict(), epochs=171, patience=34, decay_patience=11)
    given = TrainingConfig(epochs=40, decay_patience=3).scheduled(2_231)
    assert (given.epochs, given.patience, given.decay_patience) == (40, 34, 3)
    # batches of 64: 35 steps an epoch, 342 epochs' worth, capped
    assert TrainingConfig(batch_size=64).scheduled(2_231).epochs == MAX_EPOCHS == 200


def varied_sentences(n, seed):
    rng = np.random.default_rng(seed)
    lexicon = [("the", "DET"), ("a", "DET"), ("dog", "NOUN"), ("cat", "NOUN"),
               ("barks", "VERB"), ("sleeps", "VERB"), ("big", "ADJ"), (".", "PUNCT")]
    out = []
    for _ in range(n):
        words = [lexicon[i] for i in rng.integers(0, len(lexicon), rng.integers(2, 7))]
        out.append(Sentence([w for w, _ in words], [t for _, t in words]))
    return out


def test_a_default_run_records_the_schedule_it_chose(tmp_path):
    train_sents, dev_sents = varied_sentences(12, 0), varied_sentences(4, 1)
    tagger = Tagger.train(train_sents, dev_sents, **SMALL)
    # 12 sentences in batches of 4: 3 steps an epoch, so the cap of 200 epochs
    training = tagger.meta["training"]
    assert (training["epochs"], training["patience"], training["decay_patience"]) == (
        200, 40, 13)
    assert tagger.meta["training_auto"] == ["epochs", "patience", "decay_patience"]
    scores = tagger.meta["scores"]
    # the run stops after 40 epochs without progress, or at 200
    assert scores["epochs_run"] == min(200, scores["best_epoch"] + 40)
    path = tmp_path / "m.npz"
    tagger.save(path)
    info = Tagger.load(path).info()
    assert info["training"]["epochs"] == 200
    assert info["training_auto"] == ["epochs", "patience", "decay_patience"]
    result = CliRunner().invoke(cli.app, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert ("training      at most 200 epochs (auto: 3 steps an epoch), patience 40 (auto), "
            "learning rate cut after 13 epochs without progress (auto)\n") in result.stdout


def test_given_values_are_not_called_auto(tmp_path):
    tagger = Tagger.train(varied_sentences(12, 0), varied_sentences(4, 1), epochs=2,
                          decay_patience=1, **SMALL)
    assert tagger.meta["training_auto"] == ["patience"]
    path = tmp_path / "m.npz"
    tagger.save(path)
    result = CliRunner().invoke(cli.app, ["info", str(path)])
    assert ("training      at most 2 epochs, patience 40 (auto), learning rate cut after 1 "
            "epochs without progress\n") in result.stdout


def test_a_resumed_auto_run_ends_bit_for_bit(tmp_path):
    train_sents, dev_sents = varied_sentences(12, 0), varied_sentences(4, 1)
    whole = Tagger.train(train_sents, dev_sents, checkpoint=tmp_path / "whole.ckpt", **SMALL)
    assert whole.meta["scores"]["epochs_run"] > 5

    def stop_after_epoch_5(event):
        if event["type"] == "epoch" and event["epoch"] == 5:
            raise KeyboardInterrupt

    ckpt = tmp_path / "part.ckpt"
    with pytest.raises(TrainingInterrupted):
        Tagger.train(train_sents, dev_sents, checkpoint=ckpt, progress=stop_after_epoch_5,
                     **SMALL)
    state = TrainingState.load(ckpt)
    assert state.epoch == 5 and state.auto == ("epochs", "patience", "decay_patience")
    assert (state.opts.epochs, state.opts.patience, state.opts.decay_patience) == (200, 40, 13)
    resumed = Tagger.train(train_sents, dev_sents, resume=ckpt)
    assert resumed.meta["training"] == whole.meta["training"]
    assert resumed.meta["training_auto"] == ["epochs", "patience", "decay_patience"]
    a, b = whole.network.arrays(), resumed.network.arrays()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert [r["dev_acc"] for r in resumed.meta["history"]] == [
        r["dev_acc"] for r in whole.meta["history"]]
    # epochs given on resuming replace the rule's, and the model says so
    again = Tagger.train(train_sents, dev_sents, resume=ckpt, epochs=6,
                         checkpoint=tmp_path / "again.ckpt")
    assert again.meta["training"]["epochs"] == 6
    assert again.meta["training_auto"] == ["patience", "decay_patience"]
    assert modelfile.load_model(tmp_path / "again.ckpt")[1]["auto_options"] == [
        "patience", "decay_patience"]
