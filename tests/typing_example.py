"""The public API as a user's type-checked code calls it: tests/test_typing.py runs mypy
over this file (every annotation below must hold) and then runs main()."""

from __future__ import annotations

import io
import warnings

from seqtag import SeqtagError, Tagger
from seqtag.corpus import Sentence, detect_format, format_sentence, iter_sentences, read_corpus
from seqtag.inference import TagProb
from seqtag.rawtext import TaggedSentence
from seqtag.stream import tag_files, tag_stream


def main() -> dict[str, object]:
    tagger: Tagger = Tagger.load(memo_words=1000)
    tagset: list[str] = tagger.tagset
    one: list[list[tuple[str, str]]] = tagger.tag("The dog barked.")
    found: list[TaggedSentence] = tagger.tag_text("The dog barked.")
    offsets: tuple[int, int] = (found[0].tokens[1].start, found[0].tokens[1].end)
    tokens: list[tuple[str, str]] = tagger.tag(["The", "dog"])
    many: list[list[tuple[str, str]]] = tagger.tag_sents(["A cat sat.", ["It", "ran"]])
    tags: list[list[str]] = tagger.predict([["Book", "that", "flight"]])
    first_tag: str = tags[0][0]
    top: list[list[list[TagProb]]] = tagger.predict_top_k([["Book", "that", "flight"]], 3)
    best_tag, probability = top[0][0][0]
    p: float = probability
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old_tags, old_top = tagger.predict([["Book"]], top_k=2)  # deprecated form
    tagger.set_threads(1)
    info: dict[str, object] = tagger.info()

    lines = ["The/DET dog/NOUN barked/VERB", "A/DET cat/NOUN"]
    fmt: str = detect_format(lines)
    sentences: list[Sentence] = read_corpus(lines, format=fmt)
    scores = tagger.evaluate(sentences)
    accuracy: float = scores["accuracy"]
    untagged = list(iter_sentences(["The cat sat .", ""], "text", tagged=False))
    words: list[str] = untagged[0].words
    line: str = format_sentence("json", untagged[0], ["DET", "NOUN", "VERB", "PUNCT"])

    out = io.StringIO()
    counts: tuple[int, int] = tag_stream(tagger, [["The", "dog"], Sentence(["Hi"])], out,
                                         "tsv", top_k=2)
    file_counts: tuple[int, int] = tag_files(tagger, [io.StringIO("The dog .\n")], out,
                                             input_format="text", output_format="json")
    try:
        tagger.tag_sents([["fine"], [3]])  # type: ignore[list-item]  # a SeqtagError at run time
    except SeqtagError as e:
        error = str(e)
    return {"tagset": tagset, "one": one, "offsets": offsets, "tokens": tokens, "many": many, "tags": tags,
            "first_tag": first_tag, "best_tag": best_tag, "p": p, "old": (old_tags, old_top),
            "info": info, "format": fmt, "accuracy": accuracy, "words": words, "line": line,
            "counts": counts, "file_counts": file_counts, "output": out.getvalue(),
            "error": error}


if __name__ == "__main__":
    print(main())
