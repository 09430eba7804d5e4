"""seqtag inside spaCy (the "seqtag" pipeline component) and NLTK (seqtag.nltk.SeqtagTagger),
run with the real packages: each must tag as Tagger does."""

import subprocess
import sys
from pathlib import Path

import pytest

from seqtag import Tagger
from seqtag.corpus import read_corpus
from seqtag.errors import SeqtagError

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample.txt"
TEXT = ("The dog barked at the mailman. It ran away!\n\n"
        "Book that flight to Boston, please.  Time flies like an arrow.")


@pytest.fixture(scope="module")
def tagger():
    return Tagger.load(threads=1)


@pytest.fixture(scope="module")
def spacy():
    return pytest.importorskip("spacy", reason="spaCy is needed for the component "
                               "(pip install 'seqtag[spacy]'; the test extra has it)")


@pytest.fixture(scope="module")
def nlp(spacy):
    nlp = spacy.blank("en")
    nlp.add_pipe("seqtag", config={"threads": 1})  # found through the entry point
    return nlp


def expected_tags(tagger, doc):
    """Tagger.predict on the doc's non-space tokens, sentence by sentence as the model's
    front end cuts doc.text: what the component must give."""
    starts = [s.start for s in tagger.tag_text(doc.text)]
    groups = {}
    for token in doc:
        if not token.is_space:
            k = sum(1 for s in starts if s <= token.idx)
            groups.setdefault(k, []).append(token)
    want = {}
    for tokens in groups.values():
        for token, tag in zip(tokens, tagger.predict([[t.text for t in tokens]])[0]):
            want[token.i] = tag
    return [want.get(t.i, "SPACE") for t in doc]


def test_the_component_is_registered_by_the_entry_point(spacy):
    from importlib.metadata import entry_points
    (point,) = [p for p in entry_points(group="spacy_factories") if p.name == "seqtag"]
    assert point.value == "seqtag.spacy_component:make_seqtag"
    # in a fresh process: nothing but the entry point makes spaCy import the component
    script = ("import sys, spacy; assert 'seqtag.spacy_component' not in sys.modules; "
              "nlp = spacy.blank('en'); nlp.add_pipe('seqtag', config={'threads': 1}); "
              "print(' '.join(t.pos_ for t in nlp('The dog barked.')))")
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert (p.returncode, p.stdout, p.stderr) == (0, b"DET NOUN VERB PUNCT\n", b"")


def test_the_component_tags_spacys_tokens_like_the_tagger(nlp, tagger):
    doc = nlp(TEXT)
    assert [t.pos_ for t in doc] == expected_tags(tagger, doc)
    assert any(t.is_space for t in doc) and all(t.pos_ == "SPACE" for t in doc if t.is_space)
    assert [t.pos_ for t in doc][:4] == ["DET", "NOUN", "VERB", "ADP"]
    assert not doc.has_annotation("SENT_START")  # it sets no sentences of its own


def test_a_joint_model_fills_tag_morph_and_lemma_in_one_pass(spacy, nlp, tagger):
    """The bundled model predicts UPOS, XPOS, FEATS and lemmas: the component puts each
    where spaCy keeps it, the values Tagger.predict_columns gives for the same words."""
    assert tagger.columns == ["upos", "xpos", "feats", "lemma"]
    words = ["She", "has", "been", "reading", "books", "."]
    doc = nlp(spacy.tokens.Doc(nlp.vocab, words=words, sent_starts=[True] + [False] * 5))
    want = {c: v[0] for c, v in tagger.predict_columns([words]).items()}
    assert [t.pos_ for t in doc] == want["upos"]
    assert [t.tag_ for t in doc] == want["xpos"]
    assert [str(t.morph) or "_" for t in doc] == want["feats"]
    assert [t.lemma_ for t in doc] == want["lemma"]
    assert [t.lemma_ for t in doc][1:5] == ["have", "be", "read", "book"]


def test_pipe_batches_and_gives_what_one_doc_at_a_time_gives(nlp):
    texts = [TEXT, "Short one.", "", "   ", "Another dog barked loudly yesterday."] * 3
    piped = [[t.pos_ for t in doc] for doc in nlp.pipe(texts, batch_size=4)]
    single = [[t.pos_ for t in nlp(text)] for text in texts]
    assert piped == single and len(piped) == len(texts)


def test_sentences_set_before_it_are_the_ones_tagged(spacy, tagger):
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("seqtag", config={"threads": 1})
    doc = nlp(TEXT)
    for sentence in doc.sents:
        tokens = [t for t in sentence if not t.is_space]
        want = tagger.predict([[t.text for t in tokens]])[0]
        assert [t.pos_ for t in tokens] == want


def test_another_model_and_a_non_universal_tagset_go_to_tag_(spacy, tmp_path):
    """A model trained on the sample (UPOS tags) fills pos_; one whose tags are not Universal
    POS fills tag_ (spaCy refuses them in pos_)."""
    sentences = read_corpus(SAMPLE)
    tiny = dict(epochs=1, hidden=8, word_dim=8, char_dim=4, char_hidden=4, layers=1,
                threads=1)
    upos = tmp_path / "upos.npz"
    Tagger.train(sentences, **tiny).save(upos)
    other = tmp_path / "other.npz"
    Tagger.train([[(w, "T-" + t) for w, t in zip(s.words, s.tags)] for s in sentences],
                 **tiny).save(other)
    for path, attribute in ((upos, "pos_"), (other, "tag_")):
        nlp = spacy.blank("en")
        nlp.add_pipe("seqtag", config={"model": str(path), "threads": 1})
        words = ["The", "dog", "barked", "."]
        doc = nlp(spacy.tokens.Doc(nlp.vocab, words=words))
        want = Tagger.load(path).predict([words])[0]
        assert [getattr(t, attribute) for t in doc] == want


def test_nltk_tagger_tags_like_the_tagger_and_scores_with_nltk(tagger):
    pytest.importorskip("nltk", reason="NLTK is needed for seqtag.nltk (the test extra has it)")
    from nltk.tag.api import TaggerI

    from seqtag.nltk import SeqtagTagger
    adapter = SeqtagTagger(tagger)
    assert isinstance(adapter, TaggerI)
    words = ["Book", "that", "flight", "."]
    assert adapter.tag(words) == tagger.tag(words)
    gold = read_corpus(SAMPLE)
    pairs = [list(zip(s.words, s.tags)) for s in gold]
    assert adapter.tag_sents(s.words for s in gold) == [
        list(zip(s.words, t)) for s, t in zip(gold, tagger.predict([s.words for s in gold]))]
    assert adapter.accuracy(pairs) == pytest.approx(tagger.evaluate(gold)["accuracy"])
    assert SeqtagTagger(threads=1).tag(words) == tagger.tag(words)  # the bundled model
    # a string is no list of tokens: never tagged character by character
    with pytest.raises(SeqtagError, match=r"^SeqtagTagger.tag\(\) takes a list of tokens, "
                       "not a string"):
        adapter.tag("Book that flight")
    with pytest.raises(SeqtagError, match=r"^sentence 2 is a string; "):
        adapter.tag_sents([words, "Book that flight"])
    with pytest.raises(SeqtagError, match=r"takes a list of tokenized sentences, not a string"):
        adapter.tag_sents("Book that flight")


def test_a_span_model_sets_doc_ents(spacy, tmp_path):
    from seqtag.corpus import Sentence
    from seqtag.spans import spans
    words = ["John", "Smith", "saw", "Paris", "today", "with", "Mary"]
    tags = ["B-PER", "I-PER", "O", "B-LOC", "O", "O", "B-PER"]
    sents = [Sentence(words[k:] + words[:k], tags[k:] + tags[:k]) for k in (0, 2, 3, 5)] * 10
    model = tmp_path / "spans.npz"
    Tagger.train(sents, sents[:4], epochs=10, hidden=16, word_dim=16, char_dim=8,
                 char_hidden=8, layers=1, threads=1, lr=0.02).save(model)
    nlp = spacy.blank("en")
    nlp.add_pipe("seqtag", config={"model": str(model), "threads": 1})
    doc = nlp("John Smith saw Paris today with Mary")
    tokens = [t.text for t in doc]
    want = spans(Tagger.load(model).predict([tokens])[0])
    assert want  # the tiny model finds some
    assert [(e.label_, e.start, e.end) for e in doc.ents] == want
    assert all(t.pos_ == "" for t in doc)  # span tags are no part of speech


def test_a_saved_pipeline_loads_and_worker_processes_tag_alike(nlp, spacy, tmp_path):
    """nlp.to_disk / spacy.load rebuild the component from its config, and nlp.pipe with
    n_process=2 (forked workers) tags as one process does."""
    nlp.to_disk(tmp_path / "pipeline")
    again = spacy.load(tmp_path / "pipeline")
    texts = ["The dog barked.", "It ran away quickly!", "Book that flight."] * 4
    want = [[t.pos_ for t in doc] for doc in nlp.pipe(texts)]
    assert [[t.pos_ for t in doc] for doc in again.pipe(texts)] == want
    assert [[t.pos_ for t in doc] for doc in nlp.pipe(texts, n_process=2, batch_size=4)] == want
