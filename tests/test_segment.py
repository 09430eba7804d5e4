"""The raw-text front ends of seqtag.segment: training material from CoNLL-U, the character
tagger's gradients, segmentation invariants on any text, multiword tokens, saving, the
rule front end and CoNLL-U output accepted by the official scorer."""

import json
import re
from collections import Counter
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_dir
from seqtag.errors import CorpusError, ModelError, SeqtagError
from seqtag.frontend import RawSentence, Token
from seqtag.packing import Packing
from seqtag.segment import (DEFAULTS, END, INSIDE, LABELS, MWT, MWT_SENT, SENT, SPACE, CharCodes,
                            CharTagger, LearnedFrontEnd, MultiwordContext, MultiwordExpander,
                            RuleFrontEnd,
                            TrainingText, WordBoundaries, _apply_lexicon, _char_class,
                            _choose_labels, _code_points, _ends_past_closing_marks, _is_space,
                            _mark_runs, _lexicon_arrays, _lexicon_from_arrays,
                            _paragraph_sentences, _spans, dev_scores, learn_headings,
                            learn_lexicon, learn_repeated_symbols,
                            learn_shapes, paragraphs_to_conllu, read_training_text,
                            to_conllu, train_frontend)

DATA = Path(__file__).parent / "data"
CORPORA = {lang: DATA / f"segment_{lang}.conllu" for lang in ("fr", "de", "el")}
SCORER = shared_dir() / "tools" / "conll18_ud_eval.py"


def write(tmp_path, text, name="corpus.conllu"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def row(ident, form, misc="_"):
    return f"{ident}\t{form}\t_\tX\t_\t_\t0\troot\t_\t{misc}"


def codes_of(labels):
    return "".join(str(x) for x in labels)


# ---------------------------------------------------------------- training material


def test_labels_from_tokens_multiword_empty_nodes_and_spaces(tmp_path):
    path = write(tmp_path, "\n".join([
        "# text = Je vais au 13 819.",
        row(1, "Je"), row(2, "vais"), row("3-4", "au"), row(3, "à"), row(4, "le"),
        row("4.1", "ghost"), row(5, "13 819", "SpaceAfter=No"), row(6, "."), "", ""]))
    material = read_training_text(path)
    assert material.paragraphs == ["Je vais au 13 819."]
    # "Je" "vais" "au" (multiword) "13 819" (a space inside) "." (ends the sentence)
    assert codes_of(material.labels[0]) == "01" "5" "0001" "5" "03" "5" "000001" "2"
    assert (INSIDE, END, SENT, MWT, SPACE) == (0, 1, 2, 3, 5)
    assert material.multiword == [("au", ("à", "le"))]
    assert (material.sentences, material.rebuilt) == (1, 0)


def test_paragraphs_follow_newpar_else_groups_of_five(tmp_path):
    def sentence(word, par=False):
        return ["# newpar"] * par + [f"# text = {word}.", row(1, word, "SpaceAfter=No"),
                                     row(2, "."), ""]
    marked = write(tmp_path, "\n".join(sentence("A", True) + sentence("B") + sentence("C", True)),
                   "marked.conllu")
    assert read_training_text(marked).paragraphs == ["A. B.", "C."]
    plain = write(tmp_path, "\n".join(sum((sentence(w) for w in "ABCDEFG"), [])), "plain.conllu")
    assert read_training_text(plain).paragraphs == ["A. B. C. D. E.", "F. G."]


def test_tokens_that_do_not_match_the_text_are_rebuilt_not_fatal(tmp_path):
    path = write(tmp_path, "\n".join([
        "# text = Hello wrld!", row(1, "Hello"), row(2, "world", "SpaceAfter=No"), row(3, "!"),
        "", "# text = Fine.", row(1, "Fine", "SpaceAfter=No"), row(2, "."), "", ""]))
    material = read_training_text(path)
    assert material.paragraphs == ["Hello world! Fine."]
    assert (material.sentences, material.rebuilt) == (2, 1)


def test_a_file_without_text_lines_says_so(tmp_path):
    path = write(tmp_path, "\n".join([row(1, "Hello"), row(2, "."), "", ""]))
    with pytest.raises(CorpusError) as e:
        read_training_text(path)
    assert str(e.value) == (f"{path}: no '# text =' lines: a tokenizer cannot be learned from "
                            "this file (the rule front end stays)")
    with pytest.raises(CorpusError, match="no '# text =' lines"):
        train_frontend(path)


def test_bad_options():
    with pytest.raises(SeqtagError) as e:
        train_frontend(CORPORA["fr"], options={"window": 64, "margin": 32})
    assert str(e.value) == ("front end option window must be more than twice margin (>= 0), "
                            "got window=64, margin=32")
    with pytest.raises(SeqtagError, match="unknown front end option.s.: hiden"):
        train_frontend(CORPORA["fr"], options={"hiden": 8})


def test_a_tiny_corpus_is_gone_over_a_bounded_number_of_times():
    """min_chars (16 million characters by default) alone would train the 1,321 characters
    of this corpus for 12,112 epochs of one step each (32 crops of its 6 paragraphs, each
    epoch going over it 5 times), minutes of a toy run: at most _MAX_PASSES passes over its
    characters, and about 12 progress reports."""
    from seqtag.segment import _MAX_PASSES

    paragraphs = read_training_text(CORPORA["fr"]).paragraphs
    assert sum(map(len, paragraphs)) == 1321 and _MAX_PASSES == 200
    reports = []
    train_frontend(CORPORA["fr"], seed=0, threads=1, progress=reports.append,
                   options={"dim": 8, "hidden": 16})
    assert reports[-1]["epoch"] == 38 and len(reports) <= 13


def test_a_corpus_of_one_step_or_more_trains_for_min_chars_as_before():
    """From one step's characters (crop x batch = 8,192) on, an epoch is about one pass
    and min_chars sets the epochs as it always did: the recipes measured on Sequoia and
    EWT do not change, nor a small treebank's."""
    from seqtag.segment import _epochs

    fr = np.array([len(p) for p in read_training_text(CORPORA["fr"]).paragraphs])
    assert _epochs(fr, DEFAULTS) == (38, 1)  # capped: 12,112 by min_chars
    assert _epochs(np.tile(fr, 30), DEFAULTS) == (404, 4)  # 39,630 characters: not capped
    assert _epochs(np.full(1000, 265), DEFAULTS) == (61, 32)  # Sequoia train's size
    assert _epochs(np.full(8000, 126), DEFAULTS) == (16, 123)  # EWT's: the default epochs
    assert _epochs(fr, dict(DEFAULTS, min_chars=0, epochs=40)) == (40, 1)  # as asked


def test_front_end_options_are_checked_alike_for_training_and_loading():
    """_checked_options: what train_frontend and a model's front end read.  A whole float
    or a NumPy integer is an integer (front ends trained with epochs=3.0 stored that)."""
    from seqtag.segment import _checked_options

    opts = _checked_options({"epochs": 3.0, "window": np.int64(64), "margin": 8, "lr": 1})
    assert (opts["epochs"], opts["window"], opts["lr"]) == (3, 64, 1.0)
    assert type(opts["epochs"]) is int and type(opts["window"]) is int
    assert opts["crop"] == DEFAULTS["crop"]
    for options, message in (({"crop": 2.5}, "crop must be an integer, got 2.5"),
                             ({"crop": True}, "crop must be an integer, got True"),
                             ({"lr": "x"}, "lr must be a number, got 'x'"),
                             ({"lr": float("nan")}, "lr must be a number, got nan"),
                             ({"cell": 3}, "cell must be a string, got 3")):
        with pytest.raises(SeqtagError) as e:
            _checked_options(options)
        assert str(e.value) == "front end option " + message


def test_bad_training_files(tmp_path):
    missing = tmp_path / "missing.conllu"
    with pytest.raises(CorpusError, match=r"missing.conllu: cannot read: No such file"):
        read_training_text(missing)
    bad = write(tmp_path, "# text = a b\n1\ta\n", "bad.conllu")
    with pytest.raises(CorpusError) as e:
        read_training_text(bad)
    assert str(e.value) == f"{bad}:2: expected 10 tab-separated columns, found 2"


@pytest.mark.parametrize("rows, line, message", [
    (["1-2\tdu", "2-3\tdu", "1\tde", "2\tle", "3\tchien"], 3,
     "multiword token range '2-3' does not start at the next word (1)"),
    (["1-2\tdu", "1\tde", "3\tle"], 4, "word ID '3' out of order (2 expected)"),
    (["1\tle", "2-3\tdu", "2\tde"], 3, "multiword token 'du' ends past its sentence's last word"),
    (["1\tle", "3\tchat"], 3, "word ID '3' out of order (2 expected)"),
    (["2-1\tdu", "1\tde", "2\tle"], 2, "bad multiword token range '2-1'"),
])
def test_malformed_multiword_ranges_are_errors_naming_the_line(tmp_path, rows, line, message):
    """A range must open at the next word and its words follow it: the expander learned
    `du` -> `de le chien` from a range over three words, and overlaps and ranges past the
    sentence's end went by silently."""
    text = "# text = x\n" + "".join(r + "\t_" * 8 + "\n" for r in rows) + "\n"
    path = write(tmp_path, text, "mwt.conllu")
    with pytest.raises(CorpusError) as e:
        read_training_text(path)
    assert str(e.value) == f"{path}:{line}: {message}"


# ---------------------------------------------------------------- the network's gradients


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_loss_gradient_matches_finite_differences(cell):
    rng = np.random.default_rng(3)
    model = CharTagger(9, dim=3, hidden=4, cell=cell, seed=1, dtype=np.float64)
    model.output_bias[:] = rng.standard_normal(len(LABELS))
    packing = Packing([5, 3, 4])
    ids = rng.integers(0, 9, packing.n_rows)
    labels = rng.integers(0, len(LABELS), packing.n_rows)
    weights = rng.uniform(0.5, 2.0, packing.n_rows)
    _, dense, sparse = model.loss_and_gradients(ids, labels, packing, weights)
    grads = dict(dense)
    embedding_grad = np.zeros_like(model.embedding)
    embedding_grad[sparse["embedding"][0]] = sparse["embedding"][1]
    grads["embedding"] = embedding_grad
    assert set(grads) == set(model.arrays())
    for name, array in model.arrays().items():
        for index in np.ndindex(array.shape):
            old = array[index]
            array[index] = old + 1e-6
            up = model.loss_and_gradients(ids, labels, packing, weights)[0]
            array[index] = old - 1e-6
            down = model.loss_and_gradients(ids, labels, packing, weights)[0]
            array[index] = old
            assert grads[name][index] == pytest.approx((up - down) / 2e-6, abs=1e-7), (name, index)


def test_inference_scores_are_the_training_forward_log_probs():
    rng = np.random.default_rng(0)
    model = CharTagger(9, dim=3, hidden=4, seed=1, dtype=np.float64)
    packing = Packing([6, 2])
    ids = rng.integers(0, 9, packing.n_rows)
    labels = np.zeros(packing.n_rows, dtype=np.int64)
    loss = model.loss_and_gradients(ids, labels, packing)[0]
    scores = model.logits(ids, packing)
    log_probs = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    assert -log_probs[:, 0].mean() == pytest.approx(loss, rel=1e-12)


# ---------------------------------------------------------------- decoding


def test_spans_from_labels():
    text = "Il y a 13 819 ans. Au revoir"
    labels = np.full(len(text), INSIDE)
    for k, c in enumerate(text):
        if c == " ":
            labels[k] = SPACE
    labels[[1, 3, 5, 16]] = END  # Il y a ans
    labels[9] = INSIDE  # the space of "13 819" is inside
    labels[17] = SENT
    labels[20] = MWT
    spans = _spans(labels, np.array([c.isspace() for c in text]))
    (sentences,) = _paragraph_sentences(text, [(0, len(text))], spans,
                                        MultiwordExpander({"au": ["à", "le"]}, {}))
    assert [[t.text for t in s.tokens] for s in sentences] == [
        ["Il", "y", "a", "13 819", "ans", "."], ["Au", "revoir"]]
    assert sentences[1].tokens[0].words == ["À", "le"]
    assert sentences[1].text == "Au revoir" and sentences[1].start == 19
    assert [t.space_after for t in sentences[0].tokens] == [True] * 4 + [False, True]
    # the same from the text's code points and the tokens' text, as the decoder gives them
    forms = [text[a:b] for a, b in zip(spans[0].tolist(), spans[1].tolist())]
    (again,) = _paragraph_sentences(text, [(0, len(text))], spans,
                                    MultiwordExpander({"au": ["à", "le"]}, {}), forms,
                                    _code_points(text))
    assert again == sentences


def test_space_after_a_token_is_str_isspace_for_every_character():
    """_paragraph_sentences reads SpaceAfter from code points (_is_space): a table below
    U+3001, Python above; every character of Unicode as str.isspace() has it."""
    cps = np.arange(0x110000)
    expected = np.array([chr(c).isspace() for c in cps.tolist()])
    np.testing.assert_array_equal(_is_space(cps), expected)
    text = "a\u3000b\u2029c\U00010000 d\x85e\u00a0f"
    spans = _spans(np.where(_is_space(_code_points(text)), SPACE, END),
                   np.array([c.isspace() for c in text]))
    (with_cps,) = _paragraph_sentences(text, [(0, len(text))], spans, None,
                                       cps=_code_points(text))
    (without,) = _paragraph_sentences(text, [(0, len(text))], spans, None)
    assert with_cps == without
    tokens = [t for sentence in with_cps for t in sentence.tokens]
    assert [t.text for t in tokens] == ["a", "b", "c", "\U00010000", "d", "e", "f"]
    assert [t.space_after for t in tokens] == [True, True, False, True, True, True, True]


# ---------------------------------------------------------------- multiword tokens


def test_multiword_expander():
    expander = MultiwordExpander.learn([
        ("du", ("de", "le")), ("du", ("de", "le")), ("Du", ("De", "le")), ("au", ("à", "le")),
        ("don't", ("do", "n't")), ("can't", ("ca", "n't")), ("won't", ("wo", "n't")),
        ("it's", ("it", "'s"))])
    assert expander.expand("du") == ["de", "le"]
    assert expander.expand("Du") == ["De", "le"]
    assert expander.expand("AU") == ["À", "LE"]
    assert expander.expand("Au") == ["À", "le"]
    # where the words spell the token out, they are cut from it: its own case
    assert expander.expand("DON'T") == ["DO", "N'T"]
    assert expander.expand("Don't") == ["Do", "n't"]
    assert expander.expand("DoN't") == ["Do", "N't"]
    assert expander.expand("IT'S") == ["IT", "'S"]
    # never seen: the suffix of seen ones that their words spell out ("'s" was seen once)
    assert expander.expand("shouldn't") == ["should", "n't"]
    assert expander.expand("Didn't") == ["Did", "n't"]
    assert expander.expand("he's") == ["he's"]
    assert expander.expand("zum") == ["zum"]
    assert MultiwordExpander.from_meta(json.loads(json.dumps(expander.to_meta()))).forms == \
        expander.forms


def test_forms_nearly_always_one_word_are_never_expanded():
    # "its" is "it s" once in 4, "from" and "hours" never: the model's flag on them and
    # the suffixes "m" (of "im") and "s" (of "its") would make "fro m", "hour s"
    multiword = [("its", ("it", "s")), ("im", ("i", "m")), ("im", ("i", "m")),
                 ("lets", ("let", "s"))]
    plain = Counter({"its": 3, "from": 40, "hours": 2, "days": 1, "lets": 30})
    expander = MultiwordExpander.learn(multiword, plain)
    assert expander.whole == {"from", "hours", "lets"}  # "days": seen once only
    assert [expander.expand(f) for f in ["Its", "From", "HOURS", "days", "Lets"]] == [
        ["It", "s"], ["From"], ["HOURS"], ["day", "s"], ["Lets"]]
    again = MultiwordExpander.from_meta(json.loads(json.dumps(expander.to_meta())))
    assert again.whole == expander.whole


def tagged_conllu(sentences):
    """CoNLL-U with `# text` of sentences of (form, UPOS) tokens and (form, (word, word))
    multiword tokens."""
    blocks = []
    for sentence in sentences:
        lines, n = [f"# text = {' '.join(form for form, _ in sentence)}"], 1
        for form, what in sentence:
            if isinstance(what, tuple):
                lines.append(f"{n}-{n + len(what) - 1}\t{form}" + "\t_" * 8)
                for word in what:
                    lines.append(f"{n}\t{word}\t_\tX\t_\t_\t0\troot\t_\t_")
                    n += 1
            else:
                lines.append(f"{n}\t{form}\t_\t{what}\t_\t_\t0\troot\t_\t_")
                n += 1
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks) + "\n"


def its_corpus():
    """"its" written for "it's" before determiners and adverbs, the possessive before
    nouns; "that" and "house" never follow it, but are seen elsewhere with their tags."""
    its = ("its", ("it", "s"))
    sentences = []
    for k in range(20):
        sentences.append([("well", "INTJ"), its, (["the", "a", "very", "so"][k % 4], "DET"),
                          ("shame", "NOUN")])
        sentences.append([("the", "DET"), ("cat", "NOUN"), ("likes", "VERB"), ("its", "PRON"),
                          (["car", "dog", "owner", "bed"][k % 4], "NOUN")])
        sentences.append([("that", "DET"), ("house", "NOUN"), ("is", "AUX"), ("big", "ADJ")])
    return sentences


def test_multiword_context_learns_from_the_tags_of_the_next_word(tmp_path):
    material = read_training_text(write(tmp_path, tagged_conllu(its_corpus())))
    assert material.tags["house"] == Counter({"NOUN": 20})
    assert material.tags["its"] == Counter({"PRON": 20})  # multiword tokens have no tag
    expander = MultiwordExpander.learn(material.multiword, material.plain)
    context = MultiwordContext.learn(material, expander)
    # the expander could split "its" and "is" (suffix "s"), nothing else here
    index, before_determiner = context.scores(["and", "its", "that", "is", "big"], expander)
    assert index.tolist() == [1, 3]
    index, before_noun = context.scores(["and", "its", "house", "is", "big"], expander)
    assert index.tolist() == [1, 3]
    assert before_determiner[0] > 0 > before_noun[0]
    assert (before_determiner[1], before_noun[1]) < (0, 0)  # "is" is never two words


def test_the_context_model_decides_only_tokens_the_expander_can_split(french):
    paragraph = "Le chat dort sur le canapé du salon."
    before = french.segment(paragraph)
    assert before[0].tokens[6].words == ["de", "le"]
    context = MultiwordContext(np.zeros(1 << 16), {}, [])
    expander, lexicon = french.expander, french.use_lexicon
    trained = french.context, french.context_weight, french.context_bias
    try:
        french.use_lexicon = False  # the chunk lexicon's decisions are kept
        french.context, french.context_weight, french.context_bias = context, 1.0, -100.0
        assert [t.words for t in french.segment(paragraph)[0].tokens] == [[]] * 9
        # the context decides even for a form the expander alone keeps whole
        french.expander = MultiwordExpander(expander.forms, expander.suffixes, {"du"})
        french.context_bias = 100.0
        tokens = french.segment(paragraph)[0].tokens
        split = [t.text for t in tokens if len(expander.split(t.text)) > 1]
        assert split and [t.text for t in tokens if t.words] == split
        assert tokens[6].words == ["de", "le"]
        assert french._analyse([paragraph])[2][3].sum() == len(split)
        french.expander, french.use_lexicon = expander, lexicon
        french.context_weight = 0.0  # weight 0: the character model alone, as before
        assert french.segment(paragraph) == before
    finally:
        french.expander, french.use_lexicon = expander, lexicon
        french.context, french.context_weight, french.context_bias = trained  # as trained


def test_repeated_symbols_learned_and_kept_whole(french):
    text = "oh !!! non -- oui $$"
    whole = np.array([SPACE if c == " " else INSIDE for c in text])
    whole[[1, 5, 9, 12, 16, 19]] = END
    cut = whole.copy()
    cut[[3, 4, 11]] = END  # "!" "!" "!" and "-" "-"
    assert learn_repeated_symbols(TrainingText([text], [whole])) == 1.0
    assert learn_repeated_symbols(TrainingText([text, text], [whole, cut])) == 4 / 6
    assert learn_repeated_symbols(TrainingText(["a b"], [np.array([END, SPACE, SENT])])) == 1.0
    paragraph = "Il a payé $$$ pour ça!!! Puis il part--vite."
    runs = [(m.start(), m.end()) for m in re.finditer(r"\$+|!+|-+", paragraph)]

    def cut_inside_runs():
        tokens = [t for s in french.segment(paragraph) for t in s.tokens]
        return [t.text for t in tokens if any(a < t.end < b for a, b in runs)]

    chosen = french.repeats_whole
    try:
        french.repeats_whole = False
        assert cut_inside_runs()  # the tiny model cuts "!!!"
        french.repeats_whole = True
        assert cut_inside_runs() == []
    finally:
        french.repeats_whole = chosen


# ---------------------------------------------------------------- the chunk lexicon


def test_lexicon_keeps_each_chunks_most_frequent_segmentation():
    def labelled(text, ends, mwt=(), sentence=()):
        labels = np.array([SPACE if c == " " else INSIDE for c in text], dtype=np.int8)
        labels[list(ends)] = END
        labels[list(mwt)] = MWT
        labels[list(sentence)] = SENT
        return labels
    # "Inc." whole twice, split once; "e-mail" whole; "don't" one multiword token;
    # "word" and "ok" are plain words (never stored); "x-y" split once, whole once: no rule;
    # "won." is stored too: only a chunk of letters that is one plain word is not
    texts = ["Acme Inc. won.", "Inc. Inc. e-mail", "Inc . don't word", "x-y x-y", "ok"]
    labels = [labelled(texts[0], [3, 8, 12], sentence=[13]),
              labelled(texts[1], [3, 8, 15]),
              labelled(texts[2], [2, 4, 15], mwt=[10]),
              labelled(texts[3], [0, 1, 2, 6]),
              labelled(texts[4], [1])]
    lexicon = learn_lexicon(TrainingText(texts, labels))
    assert lexicon == {"Inc.": b"\x00\x00\x00\x01", "won.": b"\x00\x00\x01\x01",
                       "e-mail": b"\x00" * 5 + b"\x01", ".": b"\x01",
                       "don't": b"\x00" * 4 + b"\x02"}
    text = "Inc. e-mail don't x-y."
    predicted = np.array([SPACE if c == " " else END for c in text])
    predicted[-1] = SENT
    predicted[3] = SENT  # the model ended a sentence inside "Inc."
    _apply_lexicon(text, predicted, np.array([c == " " for c in text]), lexicon)
    assert codes_of(predicted) == "0002" "5" "000001" "5" "00003" "5" "1112"


def test_shapes_carry_conventions_to_unseen_chunks():
    def labelled(text, ends, mwt=()):
        labels = np.array([SPACE if c == " " else INSIDE for c in text], dtype=np.int8)
        labels[list(ends)] = END
        labels[list(mwt)] = MWT
        return labels
    # "...a" cut after the ellipsis 3 times, "9,9" whole 2 times out of 3, "a'a" cut
    # inside a run ("do" "n't") and whole: no shape kept; "a.a" too rare
    texts = ["...so ...ok ...no", "1,000 2,500 3,1", "don't it's", "e.g"]
    labels = [labelled(texts[0], [2, 4, 8, 10, 14, 16]),
              labelled(texts[1], [4, 10, 12, 14]),
              labelled(texts[2], [1, 4], mwt=[9]),
              labelled(texts[3], [2])]
    shapes = learn_shapes(TrainingText(texts, labels), min_count=2)
    assert shapes == {"...a": (b"\x00\x00\x01\x01", 1.0),
                      "9,9": (b"\x00\x00\x01", pytest.approx(2 / 3))}
    used = {shape: ends for shape, (ends, _) in shapes.items()}
    text = "...wow 7,500 ...its ...cool"
    space = np.array([c == " " for c in text])
    predicted = np.array([SPACE if c == " " else INSIDE for c in text])
    predicted[[5, 8, 11, 26]] = END  # "...wow" whole, "7," "500", "...cool" whole
    predicted[18] = MWT  # the model's multiword decision at a shape's token end stays
    _apply_lexicon(text, predicted, space, {"...cool": b"\x00" * 6 + b"\x01"}, used)
    # the lexicon's chunk wins over its shape
    assert codes_of(predicted) == "001001" "5" "00001" "5" "001003" "5" "0000001"


def test_shapes_with_their_letters_tell_units_from_ordinals():
    # "650k" "12k" "9k" cut after the number, "4th" "21th" "8th" whole, "1990s" whole
    # twice: a shape "9a" would hide which is which; "ok." has no digit: no letter shape
    text = "650k 12k 9k 4th 21th 8th 1990s 80s ok. ok. ok."
    labels = np.array([SPACE if c == " " else INSIDE for c in text], dtype=np.int8)
    for m in re.finditer(r"\S+", text):
        chunk = m.group()
        digits = len(re.match(r"\d*", chunk).group())
        if chunk.endswith("k") or chunk.endswith("."):
            labels[m.start() + (digits or len(chunk) - 1) - 1] = END
        labels[m.end() - 1] = END
    material = TrainingText([text], [labels])
    letters = learn_shapes(material, min_count=2, letters=True)
    assert letters == {"9k": (b"\x01\x01", 1.0), "9th": (b"\x00\x01", 1.0),
                       "9s": (b"\x00\x01", 1.0)}
    assert learn_shapes(material, min_count=2)["9a"] == (b"\x00\x01", 5 / 8)
    used = {shape: ends for shape, (ends, _) in letters.items()}
    text = "39K 5th 7x"
    space = np.array([c == " " for c in text])
    predicted = np.array([SPACE if c == " " else INSIDE for c in text])
    predicted[[2, 6, 9]] = END
    _apply_lexicon(text, predicted, space, {}, {"9a": b"\x01\x01"}, used)
    # "39K" cut by its letters' shape, "5th" whole (its letters' shape first), "7x" cut by
    # the shape without letters
    assert codes_of(predicted) == "011" "5" "001" "5" "11"
    arrays = _lexicon_arrays(used, "letter_shapes", lengths=True)
    assert _lexicon_from_arrays(arrays, "letter_shapes") == used


def test_shapes_with_their_first_word_tell_prefixes_kept_whole():
    # EWT's convention: "anti-" and "non-" words whole, "self-" words cut at the hyphen;
    # "x-ray" once: too rare; "4-door" begins with no word: no shape with its first word
    text = "word. word. word. anti-war anti-gay anti-Bush non-stop non-toxic non-profit, " \
           "self-help self-made " \
           "x-ray 4-door 4-door 4-door"
    labels = np.array([SPACE if c == " " else INSIDE for c in text], dtype=np.int8)
    for m in re.finditer(r"\S+", text):
        chunk = m.group()
        if chunk == "word.":  # two runs: no shape with its first word
            labels[m.start() + 3] = END
        if chunk.startswith(("self", "4")):
            labels[m.start() + chunk.index("-") - 1] = END
            labels[m.start() + chunk.index("-")] = END
        if chunk.endswith(","):
            labels[m.end() - 2] = END
        labels[m.end() - 1] = END
    material = TrainingText([text], [labels])
    prefixes = learn_shapes(material, min_count=2, letters="first")
    assert prefixes == {"anti-a": (b"\x00\x00\x01", 1.0), "non-a": (b"\x00\x00\x01", 1.0),
                        "self-a": (b"\x01\x01\x01", 1.0)}
    # counted with "non-profit," apart: its shape is "non-a,"
    assert learn_shapes(material, min_count=1, letters="first")["non-a,"] == (
        b"\x00\x00\x01\x01", 1.0)
    used = {shape: ends for shape, (ends, _) in prefixes.items()}
    text = "Anti-Shiite self-Esteem 4-door co-op"
    space = np.array([c == " " for c in text])
    predicted = np.array([SPACE if c == " " else INSIDE for c in text])
    predicted[[3, 4, 10, 15, 16, 22, 24, 25, 29, 32, 33, 35]] = END  # every hyphen cut
    _apply_lexicon(text, predicted, space, {}, {"9-a": b"\x00\x00\x01", "a-a": b"\x00\x00\x01"},
                   {"9-door": b"\x01\x01\x01"}, dict(used, **{"9-door": b"\x00\x00\x01"}))
    # "Anti-Shiite" whole and "self-Esteem" cut by their first word's shapes, which come
    # before the plain shape "a-a" (whole); "4-door" cut by its letters' shape, which comes
    # first; "co-op" whole by the plain shape
    assert codes_of(predicted) == "00000000001" "5" "00011000001" "5" "110001" "5" "00001"
    arrays = _lexicon_arrays(used, "prefix_shapes", lengths=True)
    assert _lexicon_from_arrays(arrays, "prefix_shapes") == used


def test_shapes_with_their_last_word_come_after_those_with_their_first():
    # "b/c" "w/c" "a/c" whole, "and/or" cut: by the last word, "a/c" and "a/or"
    text = "b/c w/c a/c and/or and/or and/or self-help self-help self-help"
    labels = np.array([SPACE if c == " " else INSIDE for c in text], dtype=np.int8)
    for m in re.finditer(r"\S+", text):
        if m.group().startswith(("and", "self")):
            cut = m.start() + m.group().index(m.group()[3 if m.group()[0] == "a" else 4])
            labels[[cut - 1, cut]] = END
        labels[m.end() - 1] = END
    material = TrainingText([text], [labels])
    suffixes = learn_shapes(material, min_count=3, letters="last")
    assert suffixes == {"a/c": (b"\x00\x00\x01", 1.0), "a/or": (b"\x01\x01\x01", 1.0),
                        "a-help": (b"\x01\x01\x01", 1.0)}
    text = "x/c self-help"
    space = np.array([c == " " for c in text])
    predicted = np.array([SPACE if c == " " else INSIDE for c in text])
    predicted[[0, 1, 2, 7, 12]] = END  # "x" "/" "c", "self-" "help"
    _apply_lexicon(text, predicted, space, {}, None, None, {"self-a": b"\x00\x00\x01"},
                   {s: e for s, (e, _) in suffixes.items()})
    # "x/c" whole by its last word; "self-help" whole by its first, which comes first
    assert codes_of(predicted) == "001" "5" "000000001"


def _conllu(sentences):
    """CoNLL-U of sentences given as tokens, "+" joining a token to the next (no space)."""
    out = []
    for tokens in sentences:
        forms = [t.rstrip("+") for t in tokens]
        text = "".join(f + ("" if t.endswith("+") else " ") for f, t in zip(forms, tokens))
        out.append(f"# text = {text.strip()}")
        for i, (form, token) in enumerate(zip(forms, tokens), 1):
            misc = "SpaceAfter=No" if token.endswith("+") else "_"
            out.append(f"{i}\t{form}\t_\tX\t_\t_\t0\troot\t_\t{misc}")
        out.append("")
    return "\n".join(out) + "\n"


def test_tune_word_shapes_learns_them_and_keeps_every_other_choice(french, tmp_path):
    import copy

    from seqtag import segment
    from seqtag.segment import tune_word_shapes

    train = write(tmp_path, _conllu(
        [["We", "oppose", "anti-war", "votes", "."], ["No", "anti-tax", "rally", "."],
         ["The", "anti-gay", "law", "fell", "."], ["Try", "self+", "-+", "help", "."],
         ["Be", "self+", "-+", "made", "."], ["A", "self+", "-+", "test", "."],
         ["Use", "and+", "/+", "or", "."], ["Pick", "either+", "/+", "or", "."],
         ["Ask", "he+", "/+", "or", "."]]), "train.conllu")
    dev = write(tmp_path, _conllu([["An", "anti-fraud", "unit", "."],
                                   ["Some", "self+", "-+", "doubt", "."],
                                   ["Say", "this+", "/+", "or", "."]]), "dev.conllu")
    front_end = copy.deepcopy(french)
    front_end.prefix_shapes = {"x-a": b"\x01\x01\x01"}  # replaced, not added to
    front_end.sentence_bias, front_end.word_weight, front_end.context_weight = 0.5, 2.0, 1.5
    kept = {name: copy.deepcopy(getattr(front_end, name)) for name in (
        "shapes", "letter_shapes", "use_lexicon", "repeats_whole", "sentence_bias",
        "multiword_bias", "word_weight", "word_bias", "context_weight", "context_bias")}
    before = dev_scores(front_end, dev)
    tune_word_shapes(front_end, train, dev)
    after = dev_scores(front_end, dev)
    assert {name: getattr(front_end, name) for name in kept} == kept
    learned = learn_shapes(read_training_text(train), 3, letters="first")
    assert learned == {"anti-a": (b"\x00\x00\x01", 1.0), "self-a": (b"\x01\x01\x01", 1.0)}
    # the tiny French model keeps "anti-fraud" and "self-doubt" whole on dev and cuts
    # "this/or" as "this" "/or"; "self-a" cuts the second, "a/or" the third
    assert dict(front_end.prefix_shapes) == {s: e for s, (e, _) in learned.items()}
    last = learn_shapes(read_training_text(train), 3, letters="last")
    assert last == {"a/or": (b"\x01\x01\x01", 1.0)}
    assert dict(front_end.suffix_shapes) == {"a/or": b"\x01\x01\x01"}
    front_end.prefix_shapes = front_end.suffix_shapes = {}
    assert dev_scores(front_end, dev)["tokens"] == before["tokens"] < after["tokens"] == 1.0
    # tune_on_dev (what training runs after the model) chooses the same
    tuned = copy.deepcopy(french)
    segment.tune_on_dev(tuned, train, dev)
    assert dict(tuned.prefix_shapes) == {s: e for s, (e, _) in learned.items()}
    assert dict(tuned.suffix_shapes) == {"a/or": b"\x01\x01\x01"}
    assert dev_scores(tuned, dev)["tokens"] == 1.0


def test_a_shape_tier_is_chosen_only_where_it_beats_the_tiers_chosen_before(french, tmp_path):
    import copy

    from seqtag import segment

    # every hyphenated word of train is cut: the plain shape "a-a" (6 chunks) and the
    # first word's "self-a" (3) both cut "self-doubt", which the model keeps whole on dev;
    # the plain shapes are chosen first, and "self-a" then adds nothing
    train = write(tmp_path, _conllu(
        [["A", first + "+", "-+", last, "."] for first, last in (
            ("self", "help"), ("self", "made"), ("self", "test"), ("well", "made"),
            ("long", "term"), ("high", "end"))]), "train.conllu")
    dev = write(tmp_path, _conllu([["Some", "self+", "-+", "doubt", "."]]), "dev.conllu")
    material = read_training_text(train)
    assert learn_shapes(material)["a-a"] == (b"\x01\x01\x01", 1.0)
    assert learn_shapes(material, 3, letters="first") == {"self-a": (b"\x01\x01\x01", 1.0)}
    tuned = copy.deepcopy(french)
    segment.tune_on_dev(tuned, train, dev)
    assert dev_scores(tuned, dev)["tokens"] == 1.0
    assert tuned.shapes.get("a-a") == b"\x01\x01\x01" and tuned.prefix_shapes == {}


def test_multiword_bias_moves_only_the_multiword_decision():
    # five characters: inside, a plain end, a sentence end, a multiword end, a space
    logits = np.log(np.array([
        [0.90, 0.05, 0.01, 0.03, 0.01, 0.00],
        [0.05, 0.60, 0.01, 0.30, 0.04, 0.00],
        [0.05, 0.10, 0.55, 0.05, 0.25, 0.00],
        [0.05, 0.30, 0.05, 0.60, 0.00, 0.00],
        [0.10, 0.00, 0.00, 0.00, 0.00, 0.90]]) + 1e-9)
    ids = np.array([5, 5, 5, 5, 0])
    glued = np.zeros(5, dtype=bool)
    assert list(_choose_labels(logits, ids, glued)) == [INSIDE, END, SENT, MWT, SPACE]
    assert list(_choose_labels(logits, ids, glued, multiword_bias=1.0)) == [
        INSIDE, MWT, MWT_SENT, MWT, SPACE]
    assert list(_choose_labels(logits, ids, glued, multiword_bias=-1.0)) == [
        INSIDE, END, SENT, END, SPACE]


def test_compiled_labels_are_numpys_argmax_of_the_allowed_scores():
    """_choose_labels (the compiled core's choose_labels) gives what the masks and numpy's
    argmax give: float32 and float64 scores, ties (the first label wins), whitespace,
    glued characters, both biases (the sentence bias added in the scores' type)."""
    def reference(logits, ids, glued, sentence_bias, multiword_bias):
        scores = logits.copy()
        space = ids == 0
        scores[space, END:SPACE] = -np.inf
        scores[~space, SPACE] = -np.inf
        scores[glued, END:SPACE] = -np.inf
        scores[:, SENT] += sentence_bias
        scores[:, MWT_SENT] += sentence_bias
        labels = scores.argmax(axis=1)
        ends = np.flatnonzero(np.isin(labels, [END, SENT, MWT, MWT_SENT]))
        if multiword_bias:
            multiword = (np.maximum(scores[ends, MWT], scores[ends, MWT_SENT]) + multiword_bias
                         > np.maximum(scores[ends, END], scores[ends, SENT]))
            sentence = np.isin(labels[ends], [SENT, MWT_SENT])
            labels[ends] = np.where(multiword, np.where(sentence, MWT_SENT, MWT),
                                    np.where(sentence, SENT, END))
        return labels

    rng = np.random.default_rng(3)
    for trial in range(400):
        n = int(rng.integers(1, 300))
        logits = rng.normal(size=(n, 6)).astype(np.float32 if trial % 2 else np.float64)
        if trial % 3 == 0:
            logits = np.round(logits)  # ties, with each other and once the bias is added
        ids, glued = rng.integers(0, 3, n), rng.random(n) < 0.3
        biases = (float(rng.choice([0.0, -0.75, 0.5, 1.0])), float(rng.choice([0.0, 1.5, -1.0])))
        assert np.array_equal(_choose_labels(logits, ids, glued, *biases),
                              reference(logits, ids, glued, *biases)), trial


def sentences_as_conllu(sentences):
    """CoNLL-U of sentences given as lists of tokens (a space after each but the last)."""
    blocks = []
    for tokens in sentences:
        blocks.append("\n".join([f"# text = {' '.join(tokens)}"]
                                + [row(i, t) for i, t in enumerate(tokens, 1)]))
    return "\n\n".join(blocks) + "\n\n"


def headline_corpus():
    """Headings without final punctuation before sentences that start with a common word
    (each starts one sentence and is written lower case inside others), and names
    capitalised inside sentences."""
    names = ["Paul", "Marie", "Jean", "Claire", "Luc", "Anne"]
    sentences = []
    for k in range(60):
        common = "ba" + chr(97 + k % 26) + chr(97 + k // 26) + "ment"
        sentences.append(["Rapport", "du", "conseil"])
        sentences.append([common.capitalize(), "le", "maire", "parle", "avec", names[k % 6],
                          "."])
        sentences.append(["le", "maire", "viendra", common, "."])
        sentences.append(["Le", "conseil", "et", names[(k * 5) % 6], "votent", "."])
    return sentences + [["il", "vient", "toujours", "."]] * 2


def test_word_boundaries_learn_that_a_common_capitalised_word_starts_a_sentence(tmp_path):
    material = read_training_text(write(tmp_path, sentences_as_conllu(headline_corpus())),
                                  sentences_per_paragraph=4)
    words = WordBoundaries.learn(material)
    # "Toujours" never starts a sentence in training, but "toujours" is written lower case
    # inside sentences: capitalised after a heading, it starts one; "Marie" does not
    heading = words.scores(["Budget", "de", "la", "ville", "Toujours", "le", "maire", "."])
    name = words.scores(["Le", "budget", "de", "la", "ville", "et", "Marie", "votent", "."])
    assert heading[3] > 0 > name[5]
    assert (heading[:3] < 0).all() and (name < 0)[:-1].all()
    assert words.casing["toujours"] != words.casing["marie"]


def test_the_word_model_decides_sentence_ends_after_whitespace_only(french):
    text = "Rapport du conseil Demain le maire parle. Puis il part"
    before = french.segment(text)
    words = WordBoundaries(np.zeros(len(french.words.weights) if french.words else 1 << 16),
                           {})
    trained = french.words, french.word_weight, french.word_bias
    try:
        french.words, french.word_weight, french.word_bias = words, 1.0, 100.0
        # every token followed by whitespace now ends a sentence, the others do not
        after = french.segment(text)
        assert [s.text for s in after][:3] == ["Rapport", "du", "conseil"]
        assert "parle." in [s.text for s in after]
        assert all(len(s.tokens) == 1 or not s.tokens[0].space_after for s in after)
        french.word_bias = -100.0
        assert [s.text for s in french.segment(text)] == [text]
        french.word_weight = 0.0  # weight 0: the character model alone, as before
        assert french.segment(text) == before
    finally:
        french.words, french.word_weight, french.word_bias = trained  # as trained


def heading_corpus():
    """Sentences and headings (no final mark): `Références` alone 3 times and once inside
    a sentence, `Voir aussi` alone twice, `Notes` alone once, `Paris` alone twice but
    inside sentences 6 times, `le sommaire` alone twice (not capitalised) and `Fin !`
    twice (a mark is no heading's)."""
    said = [["Le", "maire", "parle", "de", "Paris", "."], ["Le", "conseil", "vote", "."]]
    return (said * 3 + [["Références"]] * 3 + [["Voir", "aussi"]] * 2 + [["Notes"]]
            + [["Paris"]] * 2 + [["le", "sommaire"]] * 2 + [["Fin", "!"]] * 2
            + [["Les", "Références", "du", "maire", "."]])


def test_headings_are_the_runs_a_treebank_writes_as_sentences_of_their_own(tmp_path):
    material = read_training_text(write(tmp_path, sentences_as_conllu(heading_corpus())))
    assert learn_headings(material) == {("Références",), ("Voir", "aussi")}
    assert learn_headings(read_training_text(write(
        tmp_path, sentences_as_conllu([["Le", "chat", "dort", "."]]), "one.conllu"))) == set()


def test_a_heading_is_made_a_sentence_of_its_own(french):
    import copy

    front_end = copy.deepcopy(french)
    front_end.words, front_end.word_weight = None, 0.0
    front_end.sentence_bias = -100.0  # the character model ends no sentence itself
    text = "Le maire parle de Paris Références Le conseil vote Voir aussi Paris. Références."
    assert [s.text for s in front_end.segment(text)] == [text]
    front_end.headings = frozenset({("Références",), ("Voir", "aussi"), ("Voir",)})
    sentences = front_end.segment(text)
    check_segmentation(front_end, text, sentences)
    # the longest heading first (`Voir aussi`, not `Voir`); glued to its mark, the last
    # `Références` is no heading
    assert [s.text for s in sentences] == [
        "Le maire parle de Paris", "Références", "Le conseil vote", "Voir aussi",
        "Paris. Références."]
    # a heading inside a longer one is no heading of its own
    front_end.headings = frozenset({("Voir", "aussi"), ("aussi",)})
    assert [s.text for s in front_end.segment("Le maire parle Voir aussi Le conseil vote")
            ] == ["Le maire parle", "Voir aussi", "Le conseil vote"]
    front_end.headings = frozenset({("Références",), ("Voir", "aussi"), ("Voir",)})
    # every token followed by whitespace ends one, but for a heading's tokens
    front_end.words = WordBoundaries(np.zeros(1 << 16), {})
    front_end.word_weight, front_end.word_bias = 1.0, 200.0
    texts = [s.text for s in front_end.segment(text)]
    assert "Voir aussi" in texts and "Voir" not in texts and "Le" in texts


def test_headings_are_kept_unless_dev_is_worse_with_them(french, tmp_path):
    from seqtag import segment

    train = write(tmp_path, sentences_as_conllu(heading_corpus()), "train.conllu")
    between = write(tmp_path, sentences_as_conllu(
        [["Le", "maire", "parle", "."], ["Références"], ["Le", "conseil", "vote", "."]]),
        "between.conllu")
    inside = write(tmp_path, sentences_as_conllu(
        [["Le", "maire", "lit", "Références", "et", "Notes", "."],
         ["Le", "conseil", "cite", "Voir", "aussi", "hier", "."]]), "inside.conllu")
    import copy

    kept, dropped = copy.deepcopy(french), copy.deepcopy(french)
    segment.tune_on_dev(kept, train, between)
    assert kept.headings == {("Références",), ("Voir", "aussi")}
    segment.tune_on_dev(dropped, train, inside)
    assert dropped.headings == frozenset()
    with_them = copy.deepcopy(dropped)
    with_them.headings = kept.headings
    dev = segment._DevSet(read_training_text(inside))
    assert dev.score(with_them)["sentences"] < dev.score(dropped)["sentences"]


def test_sequoia_headings_learned_and_english_ones_refused_on_dev():
    """Sequoia train writes `Références` and `Voir aussi` alone; EWT train's runs alone
    are mostly names in signatures, which the bundled front end's dev would refuse."""
    path = shared_dir() / "data" / "ud-french-sequoia" / "fr_sequoia-ud-train.conllu"
    if not path.is_file():
        pytest.skip(f"{path} not found; set SEQTAG_SHARED")
    headings = learn_headings(read_training_text(path))
    assert {("Références",), ("Voir", "aussi"), ("Liens", "externes")} <= headings
    assert all(len(h) <= 3 and h[0][:1].isupper() for h in headings)


def _ends_moved(tokens, ends_after):
    """The sentence ends of tokens laid out as `tokens` (" " is whitespace between two, any
    other two are glued) after _ends_past_closing_marks, given those ending after the tokens
    ends_after (indices, whitespace not counted), and the first token of each one's run of
    marks (_mark_runs)."""
    starts, stops, text = [], [], ""
    for token in tokens:
        if token != " ":
            starts.append(len(text))
            stops.append(len(text) + len(token))
        text += token
    classes = np.array([_char_class(c) for c in text], dtype=np.int64)
    sentence_end = np.zeros(len(starts), dtype=bool)
    sentence_end[ends_after] = True
    marks, runs = _mark_runs(np.array(starts), np.array(stops), classes)
    _ends_past_closing_marks(np.array(starts), np.array(stops), sentence_end, marks, runs)
    return np.flatnonzero(sentence_end).tolist(), runs.tolist()


def test_a_sentence_end_moves_past_the_closing_marks_glued_to_it():
    # «communiste."»: the quote closes the sentence; "." and '"' are one run of marks
    assert _ends_moved(["communiste", ".", '"', " ", "Puis"], [1]) == ([2], [0, 1, 1, 3])
    # past every mark of the run: ?! then a quote and a bracket
    assert _ends_moved(["Vraiment", "?", "!", '"', ")", " ", "Oui"], [1]) == (
        [4], [0, 1, 1, 1, 1, 5])
    # the end and the mark after it both ended by the model: one end, after the run
    assert _ends_moved(["a", ".", '"', " ", "b"], [1, 2])[0] == [2]
    # a word glued after the end, or after its marks, starts the next sentence there
    assert _ends_moved(["fini", ".", "Puis", " ", '"', "Non"], [1]) == ([1], [0, 1, 2, 3, 4])
    assert _ends_moved(["fini", ".", '"', "Non"], [1]) == ([1], [0, 1, 1, 3])
    # whitespace ends the run
    assert _ends_moved(["fini", ".", " ", '"', "Non"], [1]) == ([1], [0, 1, 2, 3])
    # a token of marks and letters is no mark; an opening bracket neither
    assert _ends_moved(["fini", ".", '"ok', " ", "Non"], [1])[0] == [1]
    assert _ends_moved(["fini", ".", "(", " ", "Non"], [1])[0] == [1]
    # no end, or no glued token after it: nothing moves
    assert _ends_moved(["a", ".", '"'], []) == ([], [0, 1, 1])
    assert _ends_moved(["a", ".", " ", "b", "."], [1, 3]) == ([1, 3], [0, 1, 2, 3])


def test_a_closing_quote_stays_with_the_sentence_it_closes(french):
    text = 'Il a dit : "Le maire part." Puis il rentre.'
    scored = french._score([text])
    scored.logits[:, SENT] = scored.logits[:, MWT_SENT] = -50.0
    scored.logits[text.index("part.") + 4, SENT] = 50.0  # the model ends it before the quote
    trained = french.words, french.word_weight, french.word_bias, french.shapes
    try:
        # without a word model, and with one that adds nothing: the scores of the "." decide,
        # also where the chunk's shape (`a."`, three tokens) moved the end (_apply_lexicon)
        french.words = WordBoundaries(np.zeros(1 << 16), {})
        for french.shapes in ({}, {'a."': bytes([1, 1, 1])}):
            for french.word_weight in (0.0, 1.0):
                assert [s.text for s in french._sentences(scored)[0]] == [
                    'Il a dit : "Le maire part."', "Puis il rentre."]
    finally:
        french.words, french.word_weight, french.word_bias, french.shapes = trained


# ---------------------------------------------------------------- a tiny learned model

TINY = {"dim": 8, "hidden": 16, "epochs": 40, "min_chars": 0, "crop": 64, "batch": 4, "lr": 0.02,
        "window": 48, "margin": 8}


@pytest.fixture(scope="module")
def french():
    return train_frontend(CORPORA["fr"], CORPORA["fr"], seed=0, threads=1, options=TINY)


def check_segmentation(front_end, paragraph, sentences):
    """The invariants of every segmentation: no character lost or invented, offsets right."""
    tokens = [t for s in sentences for t in s.tokens]
    assert "".join(t.text for t in tokens).replace(" ", "") == "".join(paragraph.split())
    position = 0
    for sentence in sentences:
        assert sentence.text == paragraph[sentence.start:sentence.end]
        assert sentence.tokens and sentence.start == sentence.tokens[0].start
        assert sentence.end == sentence.tokens[-1].end
        for t in sentence.tokens:
            assert paragraph[t.start:t.end] == t.text and t.start >= position
            assert t.text == t.text.strip() and t.text
            assert t.space_after == (t.end == len(paragraph) or paragraph[t.end].isspace())
            assert len(t.words) != 1
            position = t.end


HARD_TEXTS = [
    "",
    "   \n\t ",
    "Bonjour.",
    "pas de ponctuation finale",
    "?!... --- !!!",
    "Première ligne.\r\nDeuxième ligne.\r\n",
    "Un paragraphe.\n\nPuis un autre après une ligne vide.",
    "Des emoji 😀👍🏽 et 👨‍👩‍👧 au milieu, des drapeaux 🇫🇷 aussi !",
    "Ελληνικά κείμενα στο σπίτι. Русский текст тоже. 中文文本没有空格。",
    "عربي أيضا. ",
    "e\u0301te\u0301 combining marks",
    "a" * 700,
    " ".join(["Une phrase assez longue du milieu de la ville."] * 60),
    "\ud800 lone surrogate",
]


@pytest.mark.parametrize("paragraph", HARD_TEXTS, ids=range(len(HARD_TEXTS)))
@pytest.mark.parametrize("kind", ["learned", "rules"])
def test_any_text_segments_without_losing_a_character(french, kind, paragraph):
    front_end = french if kind == "learned" else RuleFrontEnd()
    sentences = front_end.segment(paragraph)
    check_segmentation(front_end, paragraph, sentences)
    assert front_end.segment_many([paragraph, "x", paragraph]) == [sentences,
                                                                 front_end.segment("x"),
                                                                 sentences]


def test_empty_batches_and_paragraphs(french):
    assert french.segment_many([]) == [] and RuleFrontEnd().segment_many([]) == []
    assert french.segment_many(["", " ", "\n"]) == [[], [], []]


def test_threads_do_not_change_the_segmentation(french):
    paragraphs = read_training_text(CORPORA["de"]).paragraphs + HARD_TEXTS
    french.set_threads(2)
    two = french.segment_many(paragraphs)
    french.set_threads(1)
    assert french.segment_many(paragraphs) == two


def test_long_text_is_cut_into_windows_consistently(french):
    sentence = "Le chat dort sur le canapé du salon. "
    paragraph = sentence * 40
    sentences = french.segment(paragraph)
    check_segmentation(french, paragraph, sentences)
    # far longer than a window (48 characters): the windows' cores tile the text
    assert [s.text for s in sentences] == [sentence.strip()] * 40
    assert all([w for t in s.tokens for w in t.word_forms] ==
               ["Le", "chat", "dort", "sur", "le", "canapé", "de", "le", "salon", "."]
               for s in sentences)


def test_learned_front_end_learns_its_corpus(french):
    material = read_training_text(CORPORA["fr"])
    got = french.segment_many(material.paragraphs)
    assert french.kind == "learned"
    assert got[0][0].words == ["L'", "association", "a", "changé", "les", "décors", "de",
                               "le", "théâtre", "."]
    assert [s.text for s in got[0]][:2] == [
        "L'association a changé les décors du théâtre.",
        "Aujourd'hui, le maire est allé au marché avec l'aide des bénévoles."]
    assert got[0][1].tokens[0].text == "Aujourd'hui"
    assert got[0][3].tokens[3].text == "13 819"


def test_a_flag_the_expander_keeps_whole_is_no_multiword_token(french):
    paragraph = "Le chat dort sur le canapé du salon."
    assert french.segment(paragraph)[0].tokens[6].words == ["de", "le"]
    expander = french.expander
    try:
        french.expander = MultiwordExpander(expander.forms, expander.suffixes, {"du"})
        tokens = french.segment(paragraph)[0].tokens
        assert tokens[6].text == "du" and tokens[6].words == []
        assert not french._analyse([paragraph])[2][3].any()  # what dev scores count
    finally:
        french.expander = expander


def test_dev_scores(french):
    scores = dev_scores(french, CORPORA["fr"])
    assert set(scores) == {"tokens", "sentences", "multiword"}
    assert scores["tokens"] > 0.9 and scores["sentences"] == 1.0
    assert dev_scores(french, CORPORA["de"])["multiword"] < 0.5  # French multiwords only


def test_save_and_load_give_the_same_segmentation(french):
    arrays, meta = french.to_arrays()
    assert all(re.fullmatch(r"[A-Za-z0-9_.]+", name) for name in arrays)
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    meta = json.loads(json.dumps(meta))
    loaded = LearnedFrontEnd.from_arrays(arrays, meta)
    texts = [p for p in HARD_TEXTS] + read_training_text(CORPORA["de"]).paragraphs
    assert loaded.segment_many(texts) == french.segment_many(texts)
    older = {k: v for k, v in meta.items() if k != "repeats_whole"}
    assert not LearnedFrontEnd.from_arrays(arrays, older).repeats_whole  # as before it
    assert LearnedFrontEnd.from_arrays(arrays, older).letter_shapes == {}
    loaded.shapes, loaded.multiword_bias = {"a,a": b"\x01\x01\x01"}, 0.5
    loaded.letter_shapes = {"9km": b"\x01\x01", "9th.": b"\x00\x01\x01"}
    loaded.prefix_shapes = {"anti-a": b"\x00\x00\x01", "self-a.": b"\x01\x01\x01\x01"}
    loaded.suffix_shapes = {"a/c": b"\x00\x00\x01"}
    loaded.repeats_whole = not french.repeats_whole
    loaded.headings = frozenset({("Références",), ("Voir", "aussi"), ("500 000", "km")})
    again = LearnedFrontEnd.from_arrays(*(json.loads(json.dumps(part)) if k else part
                                          for k, part in enumerate(loaded.to_arrays())))
    with_shapes, shapes_meta = loaded.to_arrays()
    assert {"prefix_shapes.chunks", "suffix_shapes.chunks"} <= set(with_shapes)
    older = LearnedFrontEnd.from_arrays(  # files made before these shapes and headings
        {k: v for k, v in with_shapes.items() if not k.startswith(("prefix_", "suffix_",
                                                                  "headings"))},
        shapes_meta)
    assert (older.prefix_shapes, older.suffix_shapes) == ({}, {})
    assert older.headings == frozenset() and again.headings == loaded.headings
    assert older.letter_shapes == loaded.letter_shapes
    assert (again.shapes, again.multiword_bias, again.repeats_whole, again.letter_shapes,
            again.prefix_shapes, again.suffix_shapes) == (
        loaded.shapes, 0.5, not french.repeats_whole, loaded.letter_shapes,
        loaded.prefix_shapes, loaded.suffix_shapes)
    assert again.words is None and loaded.words is None  # files without a word model load
    # and without a multiword context model (checked below)
    loaded.context, loaded.context_weight, loaded.context_bias = None, 0.0, 0.0
    loaded.words = WordBoundaries(np.arange(1 << 16, dtype=np.float32) % 7 - 3,
                                  {"été": 17, "paris": 4})
    loaded.word_weight, loaded.word_bias = 2.0, -0.5
    again = LearnedFrontEnd.from_arrays(*(json.loads(json.dumps(part)) if k else part
                                          for k, part in enumerate(loaded.to_arrays())))
    assert (again.word_weight, again.word_bias, again.words.casing) == (2.0, -0.5, {
        "été": 17, "paris": 4})
    assert np.array_equal(again.words.weights, loaded.words.weights)
    assert again.segment_many(texts) == loaded.segment_many(texts)
    # files without a multiword context model load without one (and weigh it 0)
    assert again.context is None and again.context_weight == 0.0
    loaded.context = MultiwordContext(np.arange(1 << 16, dtype=np.float32) % 5 - 2,
                                      {"du": 3 * 64 + 2, "été": 65}, ["ADP", "DET"])
    loaded.context_weight, loaded.context_bias = 1.5, -0.5
    again = LearnedFrontEnd.from_arrays(*(json.loads(json.dumps(part)) if k else part
                                          for k, part in enumerate(loaded.to_arrays())))
    assert (again.context_weight, again.context_bias, again.context.lexicon,
            again.context.tags) == (1.5, -0.5, loaded.context.lexicon, ["ADP", "DET"])
    assert np.array_equal(again.context.weights, loaded.context.weights)
    assert again.segment_many(texts) == loaded.segment_many(texts)
    assert again.segment("oui,non")[0].tokens[1].text == ","
    arrays.pop("output.bias")
    with pytest.raises(ModelError, match="front end arrays missing: output.bias"):
        LearnedFrontEnd.from_arrays(arrays, meta)
    with pytest.raises(ModelError, match="front end format 99 is not supported"):
        LearnedFrontEnd.from_arrays(french.to_arrays()[0], dict(meta, format=99))


@pytest.mark.parametrize("lang", ["de", "el"])
def test_other_languages_train_without_changes(lang):
    front_end = train_frontend(CORPORA[lang], seed=1, threads=2, options=TINY)
    material = read_training_text(CORPORA[lang])
    for paragraph, sentences in zip(material.paragraphs,
                                    front_end.segment_many(material.paragraphs)):
        check_segmentation(front_end, paragraph, sentences)
    assert front_end.expander.expand("στο" if lang == "el" else "zum") == (
        ["σε", "το"] if lang == "el" else ["zu", "dem"])


def test_characters_unseen_in_training_map_to_their_class():
    codes = CharCodes("ab.")
    ids = codes.encode("ab.Zé5 😀\u0301x\n,")
    assert ids.tolist() == [11, 12, 13, 1, 2, 4, 0, 8, 9, 2, 0, 7]


# ---------------------------------------------------------------- the rule front end


def test_rule_front_end_offsets_and_sentences():
    paragraph = '  Mr. Smith said: "I can\'t go." Then he left!  What? The U.S. economy grew 3.5%'
    sentences = RuleFrontEnd().segment(paragraph)
    check_segmentation(RuleFrontEnd(), paragraph, sentences)
    assert [s.text for s in sentences] == [
        'Mr. Smith said: "I can\'t go."', "Then he left!", "What?",
        "The U.S. economy grew 3.5%"]
    assert [t.text for t in sentences[0].tokens] == [
        "Mr.", "Smith", "said", ":", '"', "I", "ca", "n't", "go", ".", '"']
    assert sentences[0].tokens[0] == Token("Mr.", 2, 5, [], True)
    assert sentences[0].start == 2 and sentences[-1].end == len(paragraph)
    assert RuleFrontEnd().kind == "rules"


@pytest.mark.parametrize("paragraph, expected", [
    ("One. Two", ["One.", "Two"]),
    ("One.Two", ["One.Two"]),
    ("Wait... what?! Yes (really.) No", ["Wait...", "what?!", "Yes (really.)", "No"]),
    ("Pi is 3.14 and e. Not.", ["Pi is 3.14 and e.", "Not."]),
    ("« Oui. » Non", ["« Oui. »", "Non"]),
    ('He left. "Hi," she said.', ["He left.", '"Hi," she said.']),
    ('"Go." "Now!" Then', ['"Go."', '"Now!"', "Then"]),
    ("Ends here.", ["Ends here."]),
])
def test_rule_sentence_rule(paragraph, expected):
    assert [s.text for s in RuleFrontEnd().segment(paragraph)] == expected


# ---------------------------------------------------------------- CoNLL-U output


def test_to_conllu():
    tokens = [Token("Au", 0, 2, ["À", "le"], True), Token("revoir", 3, 9, [], False),
              Token("!", 9, 10, [], True)]
    sentence = RawSentence(tokens, 0, 10, "Au revoir!")
    assert to_conllu([sentence]) == "\n".join([
        "# text = Au revoir!",
        "1-2\tAu\t_\t_\t_\t_\t_\t_\t_\t_",
        "1\tÀ\t_\t_\t_\t_\t0\troot\t_\t_",
        "2\tle\t_\t_\t_\t_\t1\tdep\t_\t_",
        "3\trevoir\t_\t_\t_\t_\t1\tdep\t_\tSpaceAfter=No",
        "4\t!\t_\t_\t_\t_\t1\tdep\t_\t_", "", ""])
    assert paragraphs_to_conllu([[sentence]]).startswith("# newpar\n# text = Au revoir!\n")
    two_lines = RawSentence([Token("a", 0, 1), Token("b", 4, 5)], 0, 5, "a\r\n  b")
    # a comment holds one line: the break, with the spaces around it, becomes one space
    assert to_conllu([two_lines]).splitlines()[0] == "# text = a b"
    assert to_conllu([]) == ""


def score(gold, system_text, tmp_path):
    system = write(tmp_path, system_text, "system.conllu")
    result = subprocess.run([sys.executable, str(SCORER), "-v", str(gold), str(system)],
                            capture_output=True, text=True, check=True)
    return {line.split("|")[0].strip(): float(line.split("|")[3])
            for line in result.stdout.splitlines()[2:] if line.count("|") >= 3}


def needs_scorer():
    if not SCORER.is_file():
        pytest.skip(f"the official scorer is not at {SCORER}; set SEQTAG_SHARED")


@pytest.mark.parametrize("lang", sorted(CORPORA))
def test_gold_segmentation_written_as_conllu_scores_100(lang, tmp_path):
    needs_scorer()
    material = read_training_text(CORPORA[lang])
    text = "\n".join(material.paragraphs)
    labels = np.concatenate(sum(([lab, [SPACE]] for lab in material.labels), [])[:-1])
    spans = _spans(labels.astype(np.int64), np.array([c.isspace() for c in text]))
    begin = np.cumsum([0] + [len(p) + 1 for p in material.paragraphs[:-1]]).tolist()
    bounds = [(b, b + len(p)) for b, p in zip(begin, material.paragraphs)]
    expander = MultiwordExpander.learn(material.multiword)
    paragraphs = _paragraph_sentences(text, bounds, spans, expander)
    scores = score(CORPORA[lang], paragraphs_to_conllu(paragraphs), tmp_path)
    assert (scores["Tokens"], scores["Sentences"], scores["Words"]) == (100.0, 100.0, 100.0)


def test_learned_output_is_accepted_by_the_scorer(french, tmp_path):
    needs_scorer()
    material = read_training_text(CORPORA["fr"])
    scores = score(CORPORA["fr"], paragraphs_to_conllu(french.segment_many(material.paragraphs)),
                   tmp_path)
    assert scores["Words"] > 90.0 and scores["Sentences"] > 80.0


# ---------------------------------------------------------------- real treebanks


def treebank_dev(name, file):
    path = shared_dir() / "data" / name / file
    if not path.is_file():
        pytest.skip(f"{path} not found; set SEQTAG_SHARED")
    return read_training_text(path).paragraphs


@pytest.mark.parametrize("name, file", [("ud-english-ewt", "en_ewt-ud-dev.conllu"),
                                        ("ud-french-sequoia", "fr_sequoia-ud-dev.conllu")])
def test_real_dev_paragraphs_keep_every_character(french, name, file):
    paragraphs = treebank_dev(name, file)
    for front_end in (french, RuleFrontEnd()):
        for paragraph, sentences in zip(paragraphs, front_end.segment_many(paragraphs)):
            check_segmentation(front_end, paragraph, sentences)


# ---------------------------------------------------------------- lexicons as a model file holds them


@pytest.mark.parametrize("scans", [1000, 3, 0], ids=["scanning", "then-a-dict", "a-dict"])
def test_a_stored_lexicon_is_the_dict_it_was_saved_from(scans, monkeypatch):
    """_StoredLexicon and _StoredCodes answer as the dicts they were saved from, while
    they search the stored bytes and once they have made their dict: chunks with
    characters of 1 to 4 UTF-8 bytes and a lone surrogate before and after the one looked
    up, so the codes' offsets count characters, not bytes."""
    from seqtag.modelfile import StringIndex
    from seqtag.segment import WordBoundaries, _lexicon_arrays, _lexicon_from_arrays

    monkeypatch.setattr(StringIndex, "SCANS", scans)
    chunks = ["a.", "é-é", "日本.", "x\udc80y", "😀!", "U.S.", "zz", "e.g."]
    lexicon = {c: bytes(k % 4 for k in range(1, len(c) + 1)) for c in chunks}  # codes 0-3
    stored = _lexicon_from_arrays(_lexicon_arrays(lexicon))
    missing = ["", "a", "a.\n", "\ne.g.", "日本", "U.S", "nope", "é"]
    for key in chunks + missing + chunks[::-1]:
        assert stored.get(key) == lexicon.get(key), key
        assert (key in stored) == (key in lexicon)
    # saved sorted: the same file whatever the order (the hash seed) the dict was made in
    assert stored == lexicon and list(stored) == sorted(chunks) and len(stored) == len(chunks)
    with pytest.raises(KeyError):
        stored["nope"]
    # codes of any length (shapes with letters: a code per run), with their stored lengths
    runs = {c: bytes(range(1, 2 + k % 3)) for k, c in enumerate(chunks)}
    stored_runs = _lexicon_from_arrays(_lexicon_arrays(runs, lengths=True))
    for key in chunks + missing + chunks[::-1]:
        assert stored_runs.get(key) == runs.get(key), key
    assert stored_runs == runs
    # getter(): get() for a few look-ups (no dict made), past SCANS a dict's get; the same
    # answers
    for table, want in ((stored, lexicon), (stored_runs, runs)):
        few = table.getter(scans)
        assert few.__self__ is table and table._values is None
        many = table.getter(scans + 1)
        assert type(many.__self__) is dict and many.__self__ == want
        for key in chunks + missing:
            assert few(key) == many(key) == want.get(key), key
            # once the dict is made, every look-up reads it
            assert table.get(key) == want.get(key) and (key in table) == (key in want)
            assert table[key] == want[key] if key in want else key not in table
        with pytest.raises(KeyError):
            table["nope"]
        assert table.getter(0).__self__ is many.__self__  # once made, the dict is kept
    assert len(_lexicon_from_arrays(_lexicon_arrays({}))) == 0
    assert _lexicon_from_arrays(_lexicon_arrays({})).get("a.") is None
    casing = {f: k + 1 for k, f in enumerate(["paris", "été", "日本", "x\udc80"])}
    words = WordBoundaries(np.zeros(1 << 16), casing)
    loaded = WordBoundaries.from_arrays(words.to_arrays("w."), "w.")
    for form in list(casing) + ["pari", "", "été\n"]:
        assert loaded.casing.get(form, 0) == casing.get(form, 0), form
    assert dict(loaded.casing) == casing
    many = loaded.casing.getter(scans + 1)  # the codes' dict, made at once
    assert type(many.__self__) is dict and many.__self__ == casing


def test_a_stored_lexicon_whose_codes_do_not_fit_is_refused():
    from seqtag.errors import ModelError
    from seqtag.segment import _lexicon_arrays, _lexicon_from_arrays

    arrays = _lexicon_arrays({"é-é": b"\x00\x00\x01"})
    arrays["lexicon.codes"] = arrays["lexicon.codes"][:-1]
    with pytest.raises(ModelError, match="chunks and codes do not match"):
        _lexicon_from_arrays(arrays)
    runs = _lexicon_arrays({"Aa": b"\x01", "9.9": b"\x02\x03"}, lengths=True)
    runs["lexicon.lengths"] = runs["lexicon.lengths"][:1]
    with pytest.raises(ModelError, match="^front end lexicon is broken: chunks and codes do not match$"):
        _lexicon_from_arrays(runs)


def test_threads_sharing_one_front_end_number_their_new_forms_apart():
    """Two threads meeting new forms at once in one loaded front end (a threaded server, a
    Dask worker's threads) get the rows a front end of their own gives, and leave none
    wrong behind: the word-level models' per-form tables grow under runtime.tables_lock
    (without it, most of these rounds mixed the two threads' rows up)."""
    import sys
    import threading

    from seqtag import Tagger
    from seqtag.segment import MultiwordContext, WordBoundaries

    front_end = Tagger.load(threads=1).frontend
    words, context = front_end.words, front_end.context
    assert isinstance(words, WordBoundaries) and isinstance(context, MultiwordContext)
    expander = front_end.expander

    def alone_words(tokens):
        return WordBoundaries(words.weights, words.casing)._token_columns(tokens)

    def alone_context(tokens):
        return MultiwordContext(context.weights, context.lexicon,
                                context.tags)._columns(tokens, expander)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as they can
    try:
        for trial in range(8):
            sets = [[f"w{trial}x{k}y{j}" + ("A" if k else "s") for j in range(300)] + ["dont"]
                    for k in range(2)]
            out: list = [None, None]

            def run(k):
                out[k] = (words._token_columns(sets[k]), context._columns(sets[k], expander))

            threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for k in range(2):
                assert np.array_equal(out[k][0], alone_words(sets[k])), (trial, k)
                assert np.array_equal(out[k][1], alone_context(sets[k])), (trial, k)
                assert np.array_equal(words._token_columns(sets[k]), alone_words(sets[k]))
    finally:
        sys.setswitchinterval(interval)


def test_a_shape_whose_stored_ends_do_not_fit_its_runs_answers_nothing():
    from seqtag.segment import _shape, _shape_code

    for letters in (False, True, "first", "last"):
        shape, last = _shape("U.S.-based", letters)
        ends = bytes([1] * len(last))
        assert _shape_code("U.S.-based", {shape: ends}, letters) is not None
        assert _shape_code("U.S.-based", {shape: ends[:-1]}, letters) is None
        assert _shape_code("U.S.-based", {shape: ends + b"\x01"}, letters) is None


def test_tuning_a_loaded_front_end_again_chooses_what_training_chose(french, monkeypatch):
    """tune_on_dev (bench/attach_frontend.py --retune) on a front end whose biases and
    weights were tuned otherwise makes the choices training made from the same files: the
    choices before the biases (repeated symbols, lexicon, shapes) are scored with none of
    the old biases, weights and word-level models in play."""
    import copy

    from seqtag import segment

    loaded = copy.deepcopy(french)
    loaded.words = segment.WordBoundaries.learn(read_training_text(CORPORA["fr"]))
    loaded.sentence_bias, loaded.multiword_bias = 3.0, 3.0
    loaded.word_weight, loaded.word_bias = 8.0, -2.0
    loaded.context_weight, loaded.context_bias = 4.0, 3.0
    seen = []
    score, tune_bias = segment._DevSet.score, segment._tune_bias

    def recording_score(self, front_end, *args, **kwargs):
        seen.append((front_end.sentence_bias, front_end.multiword_bias, front_end.words,
                     front_end.word_weight, front_end.word_bias, front_end.context,
                     front_end.context_weight, front_end.context_bias))
        return score(self, front_end, *args, **kwargs)

    def recording_tune_bias(*args, **kwargs):
        seen.append("biases")
        return tune_bias(*args, **kwargs)

    monkeypatch.setattr(segment._DevSet, "score", recording_score)
    monkeypatch.setattr(segment, "_tune_bias", recording_tune_bias)
    segment.tune_on_dev(loaded, CORPORA["fr"], CORPORA["fr"])
    before = seen[:seen.index("biases")]
    assert len(before) >= 2  # the lexicon's two scores at least
    assert set(before) == {(0.0, 0.0, None, 0.0, 0.0, None, 0.0, 0.0)}
    monkeypatch.undo()
    fresh = copy.deepcopy(french)
    segment.tune_on_dev(fresh, CORPORA["fr"], CORPORA["fr"])
    for name in ("repeats_whole", "use_lexicon", "shapes", "letter_shapes", "prefix_shapes",
                 "suffix_shapes", "sentence_bias", "headings",
                 "multiword_bias", "word_weight", "word_bias", "context_weight",
                 "context_bias"):
        assert getattr(loaded, name) == getattr(fresh, name), name


FORMS = ["Paris", "NATO-led", "1,5", "\u01c5emal", "\u0663\u0664", "na\u00efve", "\u65e5\u672c\u8a9e",
         "\U0001f600x", "a\ud800b", "\u00c9T\u00c9", "x", "'s", "\u01c5", "\u0130stanbul", "\u00df",
         "\u216b", "a1b2c3d4", "...", "dont", "Its", "du", "aujourd'hui", "\u0915\u093e", "X" * 300]


def test_form_hashes_are_the_python_ones():
    """seqtag._core.form_hashes (C) gives what _hash and _case_shape give in Python: the
    word models' weights were learned with those."""
    from seqtag.segment import _case_shape, _form_hashes, _hash

    want = [[_hash(f.lower()), _hash(f), _hash(_case_shape(f)), _hash(f.lower()[-3:]),
             _hash(f.lower()[:3])] for f in FORMS]
    assert _form_hashes(FORMS).tolist() == want
    assert _form_hashes([]).shape == (0, 5)


def test_text_slices_are_python_slices_and_refuse_spans_out_of_the_text():
    """seqtag._core.text_slices (the tokens' text of a decoded paragraph) gives Python's
    slices, whatever the characters; a span out of the text is an IndexError."""
    import random

    from seqtag import _core
    from seqtag.segment import _token_texts

    rng = random.Random(3)
    text = "".join(FORMS) + " \U0001f600\udcff\u3000é"
    spans = [(0, 0), (0, len(text)), (len(text), len(text))] + [
        tuple(sorted(rng.randint(0, len(text)) for _ in range(2))) for _ in range(2000)]
    starts, ends = (np.array(x, dtype=np.int64) for x in zip(*spans))
    assert _token_texts(text, starts, ends) == [text[a:b] for a, b in spans]
    assert _token_texts(text, starts[:0], ends[:0]) == []
    for a, b in ((-1, 2), (3, 2), (0, len(text) + 1)):
        with pytest.raises(IndexError, match="a span out of the text"):
            _core.text_slices(text, np.array([a]), np.array([b]))
    with pytest.raises(ValueError, match="starts and ends differ"):
        _core.text_slices(text, np.array([0, 1]), np.array([1]))


def test_word_models_rows_are_each_forms_python_row():
    """The rows the word-level models make for a batch of new forms at once are what each
    form's row was, made one form at a time in Python."""
    from seqtag import Tagger
    from seqtag.segment import _FINAL, MultiwordContext, WordBoundaries, _case_shape, _hash

    front_end = Tagger.load(threads=1).frontend
    words, context, expander = front_end.words, front_end.context, front_end.expander
    assert isinstance(words, WordBoundaries) and isinstance(context, MultiwordContext)
    tokens = FORMS + FORMS[::2]

    def boundary_row(token):
        low = token.lower()
        return [_hash(low), _hash(token), _hash(_case_shape(token)), _hash(low[-3:]),
                _hash(low[:3]), words.casing.get(low, 0), int(set(token) <= _FINAL)]

    def context_row(token):
        low = token.lower()
        code = context.lexicon.get(low, 0)
        parts = expander.split(token)
        split = [-1, -1, -1] if len(parts) < 2 else [
            _hash(parts[-1].lower()), _hash(parts[0].lower()),
            context.lexicon.get(parts[0].lower(), 0) >> 6]
        return [_hash(low), _hash(_case_shape(token)), _hash(low[-3:]), code >> 6,
                code & 63] + split

    assert words._token_columns(tokens).tolist() == [boundary_row(t) for t in tokens]
    assert context._columns(tokens, expander).tolist() == [context_row(t) for t in tokens]
    assert any(row[5] >= 0 for row in context._columns(tokens, expander).tolist())


def test_word_models_sharing_one_index_of_forms_get_their_own_rows(monkeypatch):
    """The front end's two word-level models share one _FormRows (one look-up of each
    token, each new form's hashes made once): each gets the rows it makes alone, with a
    changed expander its rows are made again, and past the limit all starts over."""
    from seqtag import Tagger, segment
    from seqtag.segment import MultiwordContext, MultiwordExpander, WordBoundaries, _FormRows

    front_end = Tagger.load(threads=1).frontend
    words, context, expander = front_end.words, front_end.context, front_end.expander
    hashed = []
    form_hashes = segment._form_hashes

    def counted(forms):
        hashed.extend(forms)
        return form_hashes(forms)

    monkeypatch.setattr(segment, "_form_hashes", counted)

    def alone(tokens, expander):
        return (WordBoundaries(words.weights, words.casing)._token_columns(tokens),
                MultiwordContext(context.weights, context.lexicon,
                                 context.tags)._columns(tokens, expander))

    shared = _FormRows(limit=40)
    # no tokens yet: rows of each model's width all the same
    assert [a.shape for a in shared.rows([], [words.row_maker(),
                                              context.row_maker(expander)])] == [(0, 7), (0, 8)]
    first = FORMS[:20] + ["dont", "cats"] + FORMS[:5]
    hashed.clear()
    got = shared.rows(first, [words.row_maker(), context.row_maker(expander)])
    assert sorted(hashed) == sorted(set(first))  # once each, for both models
    want = alone(first, expander)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    # a second call: new forms only, the context model's rows alone asked for
    second = FORMS[15:30] + ["its"]
    hashed.clear()
    got = shared.rows(second, [context.row_maker(expander)])
    assert sorted(hashed) == sorted(set(second) - set(first))
    assert np.array_equal(got[0], alone(second, expander)[1])
    # the word model's table, left behind by that call, catches up
    assert np.array_equal(shared.rows(second, [words.row_maker()])[0],
                          alone(second, expander)[0])
    # another expander: the context model's rows made again with it
    other = MultiwordExpander({"cats": ["cat", "s"]}, {}, ())
    got = shared.rows(first, [context.row_maker(other)])[0]
    assert np.array_equal(got, alone(first, other)[1])
    assert not np.array_equal(got, want[1])
    # past the limit (checked as a call starts), every table starts over and answers as
    # before
    many = [f"x{k}" for k in range(50)]
    shared.rows(many, [words.row_maker()])
    assert len(shared.forms) == len(set(first) | set(second)) + 50
    got = shared.rows(first, [words.row_maker(), context.row_maker(expander)])
    assert len(shared.forms) == len(set(first))
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_a_call_interrupted_while_new_forms_are_added_leaves_the_tables_whole(monkeypatch):
    """Ctrl-C (or a fork from another thread) in the middle of adding new forms to the word
    models' per-form tables leaves no form pointing past the table: the next call tags."""
    from seqtag import Tagger, segment

    tagger = Tagger.load(threads=1)
    form_hashes = segment._form_hashes

    def interrupted(forms):
        if "boom" in forms:
            raise KeyboardInterrupt
        return form_hashes(forms)

    monkeypatch.setattr(segment, "_form_hashes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tagger.tag("alpha beta boom gamma")
    monkeypatch.setattr(segment, "_form_hashes", form_hashes)
    assert [w for s in tagger.tag("alpha beta boom gamma") for w, _ in s] == \
        ["alpha", "beta", "boom", "gamma"]
    assert tagger.tag("alpha beta") == Tagger.load(threads=1).tag("alpha beta")


def test_an_interrupt_anywhere_in_a_call_leaves_every_form_its_own_rows():
    """A KeyboardInterrupt at any bytecode of _FormRows.rows (a signal, simulated with
    sys.settrace), in a call that meets new forms and in one that starts the tables over
    past the limit, leaves the tables so that the next calls give each token the rows a
    new _FormRows gives."""
    import sys

    from seqtag import Tagger, runtime
    from seqtag.segment import _FormRows

    front_end = Tagger.load(threads=1).frontend

    def makers():
        return [front_end.words.row_maker(), front_end.context.row_maker(front_end.expander)]

    before = "The cat sat on the mat . don't I can't".split()
    during = "the dog's bone , İstanbul cats ain't mat The gonna".split()
    after = "zebra dog's cat wanna X Y".split()
    code = _FormRows.rows.__code__
    for limit in (1000, 5):
        target, interrupted = 0, True
        while interrupted:
            target += 1
            rows, count = _FormRows(limit=limit), [0]
            rows.rows(before, makers())

            def each_opcode(frame, event, arg):
                if event == "opcode":
                    count[0] += 1
                    if count[0] == target:
                        raise KeyboardInterrupt
                return each_opcode

            def calls(frame, event, arg):
                if frame.f_code is code:
                    frame.f_trace_opcodes = True
                    return each_opcode
                return None

            sys.settrace(calls)
            try:
                rows.rows(during, makers())
                interrupted = False
            except KeyboardInterrupt:
                pass
            finally:
                sys.settrace(None)
            if runtime.tables_lock.locked():  # stopped inside the with's own exit
                runtime.tables_lock.release()
            for tokens in (during, during + after, before):
                got, want = rows.rows(tokens, makers()), _FormRows().rows(tokens, makers())
                for g, w in zip(got, want):
                    assert np.array_equal(g, w), (limit, target, tokens[:3])
        assert target > 100  # every opcode of the call was tried


@pytest.mark.parametrize("alphabet", ["", "e", "e\u0301", "\u0301\u093e"])
def test_a_token_never_ends_before_a_combining_mark_seen_in_training_or_not(alphabet):
    """_glued reads each character's class: a combining mark the alphabet has (its own id,
    not the unseen-mark class) glues to the character before it just as an unseen one."""
    from seqtag.segment import CharCodes, _code_points, _glued

    codes = CharCodes(alphabet)
    cps = _code_points("e\u0301x \u0915\u093e")
    glued = _glued(cps, codes.class_of_id[codes.encode_code_points(cps)])
    assert glued.tolist() == [True, False, False, False, True, False]


def test_a_suffix_comes_off_a_word_not_off_a_run_of_punctuation():
    from seqtag.segment import MultiwordExpander

    expander = MultiwordExpander({}, {"'": 5, "'s": 9}, ())
    assert expander.split("dogs'") == ["dogs", "'"]
    assert expander.split("Bob's") == ["Bob", "'s"]
    assert expander.split("''''") == ["''''"]
    assert expander.split("--'s") == ["--'s"]
    assert expander.split("7's") == ["7", "'s"]


def test_the_forms_an_expander_may_split_hold_every_form_it_splits():
    """MultiwordExpander.may_split (which forms split() need see) leaves out no form that
    split() cuts: known forms in any case, suffixes, forms that are only a suffix, forms
    whose lower case is longer (İ), punctuation before a suffix."""
    from seqtag import Tagger
    from seqtag.segment import MultiwordExpander

    bundled = Tagger.load(threads=1).frontend.expander
    small = MultiwordExpander({"du": ["de", "le"], "Zum": ["zu", "dem"]}, {"'s": 3, "s": 2})
    forms = FORMS + ["", "s", "'s", "İs", "İS", "Du", "DU", "zum", "ZUM", "--'s", "7's",
                     "don't", "DONT", "cannot", "gonna", "Bob's", "dogs'", "x'S", "ab"]
    for expander in (bundled, small):
        lows = [f.lower() for f in forms]
        maybe = set(expander.may_split(forms, lows).tolist())
        cut = {k for k, f in enumerate(forms) if len(expander.split(f)) > 1}
        assert cut and cut <= maybe, sorted(cut - maybe)
        assert len(maybe) < len(forms)


def test_compiled_feature_hashes_are_the_python_ones():
    """_mixed (the compiled core's mix_columns) gives the word-level models' hashed feature
    indices bit for bit as _mix does one numpy column at a time: values of the whole int64
    range (negative ones wrap as uint64), one to four sources a feature, any width."""
    from seqtag import _core
    from seqtag.segment import _BOUNDARY_FEATURES, _CONTEXT_FEATURES, _mixed

    def _mix(slot, *columns):  # the numpy formula the models used until 2026-12-04
        h = np.full(len(columns[0]), slot * 0x9E3779B97F4A7C15 % (1 << 64), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for column in columns:
                h = (h ^ column.astype(np.uint64)) * np.uint64(0x100000001B3)
                h ^= h >> np.uint64(29)
        return (h & np.uint64((1 << 16) - 1)).astype(np.int64)

    rng = np.random.default_rng(7)
    for features in (_BOUNDARY_FEATURES, _CONTEXT_FEATURES,
                     (("a",), ("a", "b", "c", "d"), ("d", "a"), ("e",))):
        names = sorted({name for feature in features for name in feature})
        sources = {name: rng.integers(-2**63, 2**63 - 1, 257, dtype=np.int64,
                                      endpoint=True) for name in names}
        sources[names[0]][:3] = [-1, 0, 2**63 - 1]
        want = np.stack([_mix(k + 1, *(sources[n] for n in f))  # 16 bits
                         for k, f in enumerate(features)], axis=1)
        for bits in (16, 5):
            assert np.array_equal(_mixed(sources, features, bits), want & ((1 << bits) - 1))
    out = np.empty((4, 1), dtype=np.int64)
    with pytest.raises(ValueError, match="mix_columns: spec out of range"):
        _core.mix_columns(np.zeros((2, 4), dtype=np.int64), np.array([[1, 2]]), 16, out)
    with pytest.raises(ValueError, match="mix_columns: out shape"):
        _core.mix_columns(np.zeros((2, 3), dtype=np.int64), np.array([[1, 0]]), 16, out)
