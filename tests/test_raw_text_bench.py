"""bench/common.py's raw-text maker and dummy-tree filler, which bench/raw_text.py scores with:
the raw text must hold exactly the gold file's characters in the issue's paragraphs, and the
filled output must be accepted by the official scorer without changing any tagging score."""

import importlib.util
import io

import pytest

from conftest import REPO_ROOT, shared_dir

spec = importlib.util.spec_from_file_location("bench_common", REPO_ROOT / "bench" / "common.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def row(i, form, upos, head="_", deprel="_", misc="_"):
    return f"{i}\t{form}\t_\t{upos}\t_\t_\t{head}\t{deprel}\t_\t{misc}"


def sentence(text, *rows, comments=()):
    return "\n".join([*comments, f"# text = {text}", *rows]) + "\n\n"


HI = sentence("Hi!", row(1, "Hi", "INTJ", 0, "root", "SpaceAfter=No"),
              row(2, "!", "PUNCT", 1, "punct"))
GO = sentence("Go.", row(1, "Go", "VERB", 0, "root", "SpaceAfter=No"),
              row(2, ".", "PUNCT", 1, "punct"))
# French "du" is one surface token and the two words "de le".
DU = sentence("Il parle du chat.",
              row(1, "Il", "PRON", 2, "nsubj"), row(2, "parle", "VERB", 0, "root"),
              "3-4\tdu\t_\t_\t_\t_\t_\t_\t_\t_",
              row(3, "de", "ADP", 5, "case"), row(4, "le", "DET", 5, "det"),
              row(5, "chat", "NOUN", 2, "obl", "SpaceAfter=No"), row(6, ".", "PUNCT", 2, "punct"))


def test_paragraphs_follow_newpar_and_newdoc():
    gold = ("# newdoc id = d1\n# newpar id = p1\n" + HI + GO
            + "# newpar id = p2\n" + DU + "# newdoc id = d2\n" + GO)
    assert bench.raw_text_paragraphs(gold) == ["Hi! Go.", "Il parle du chat.", "Go."]
    assert bench.raw_text(gold) == "Hi! Go.\n\nIl parle du chat.\n\nGo.\n"


def test_groups_of_five_sentences_where_the_treebank_marks_no_paragraph():
    gold = HI * 7
    assert bench.raw_text(gold) == " ".join(["Hi!"] * 5) + "\n\nHi! Hi!\n"
    assert bench.raw_text_paragraphs(gold, group=3) == ["Hi! Hi! Hi!", "Hi! Hi! Hi!", "Hi!"]


def test_sentence_without_text_comment_is_rebuilt_from_its_surface_tokens():
    no_text = "\n".join(line for line in DU.splitlines() if not line.startswith("#")) + "\n\n"
    assert bench.raw_text_paragraphs(no_text) == ["Il parle du chat."]


def test_windows_line_ends_and_trailing_spaces_in_text():
    gold = (HI.replace("# text = Hi!", "# text = Hi!  ") + GO).replace("\n", "\r\n")
    assert bench.raw_text(gold) == "Hi! Go.\n"


def test_dummy_tree_replaces_missing_heads_only():
    tagged = sentence("Il parle du chat.", row(1, "Il", "PRON"), row(2, "parle", "VERB"),
                      "3-4\tdu\t_\t_\t_\t_\t_\t_\t_\t_", row(3, "de", "ADP"), row(4, "le", "DET"),
                      row(5, "chat", "NOUN", misc="SpaceAfter=No"), row(6, ".", "PUNCT"),
                      comments=["# sent_id = 1"])
    filled = bench.fill_dummy_tree(tagged + GO)
    lines = filled.split("\n")
    assert lines[:4] == ["# sent_id = 1", "# text = Il parle du chat.",
                         row(1, "Il", "PRON", 0, "root"), row(2, "parle", "VERB", 1, "dep")]
    assert lines[4] == "3-4\tdu\t_\t_\t_\t_\t_\t_\t_\t_"
    assert lines[8] == row(6, ".", "PUNCT", 1, "dep")
    assert filled.endswith("\n\n") and filled.count("\n\n") == 2
    assert GO in filled  # a sentence with a tree keeps it


def without_head(line):
    cols = line.split("\t")
    return "\t".join(cols[:6] + ["_", "_"] + cols[8:]) if cols[0].isdigit() else line


def scorer_or_skip():
    path = shared_dir() / "tools" / "conll18_ud_eval.py"
    if not path.exists():
        pytest.skip(f"the CoNLL 2018 scorer is not at {path}; set SEQTAG_SHARED")
    return bench.load_scorer()


def test_scorer_accepts_dummy_tree_and_scores_gold_against_itself_100():
    scorer = scorer_or_skip()
    gold = "# newpar\n" + DU + HI + GO
    headless = "\n".join(without_head(line) for line in gold.split("\n"))
    with pytest.raises(scorer.UDError, match="Cannot parse HEAD '_'"):
        scorer.load_conllu(io.StringIO(headless))
    evaluation = scorer.evaluate(scorer.load_conllu(io.StringIO(gold)),
                                 scorer.load_conllu(io.StringIO(bench.fill_dummy_tree(headless))))
    for metric in ("Tokens", "Sentences", "Words", "UPOS", "XPOS", "UFeats", "Lemmas"):
        assert evaluation[metric].f1 == 1.0, metric
    assert evaluation["UAS"].f1 < 1.0  # the tree is a dummy one


def test_raw_text_holds_the_scorers_characters():
    scorer = scorer_or_skip()
    gold = "# newpar\n" + DU + HI + "# newpar\n" + GO
    characters = "".join(scorer.load_conllu(io.StringIO(gold)).characters)
    assert "".join(bench.raw_text(gold).split()) == characters


def test_sequoia_test_raw_text():
    scorer = scorer_or_skip()
    path = shared_dir() / "data" / "ud-french-sequoia" / "fr_sequoia-ud-test.conllu"
    if not path.exists():
        pytest.skip(f"UD French-Sequoia not found at {path}; set SEQTAG_SHARED")
    with open(path, encoding="utf-8") as f:
        characters = "".join(scorer.load_conllu(f).characters)
    paragraphs = bench.raw_text_paragraphs(path.read_text(encoding="utf-8"))
    assert len(paragraphs) == 92  # 456 sentences, no # newpar: groups of 5
    assert "".join("".join(paragraphs).split()) == characters
