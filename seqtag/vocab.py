"""Vocabularies: words, characters and the output heads' labels (seqtag.heads), and the
encoding of sentences into ids."""

import functools
import re
from collections import Counter
from itertools import repeat

import numpy as np

from .heads import Head, heads_from_meta, heads_to_meta
from .modelfile import StringIndex, get_strings, is_strings_reference, put_strings

PAD, UNK = "<pad>", "<unk>"
_DIGITS = re.compile(r"\d")


def word_key(form):
    """The key a word's embedding is stored under: case and exact digits are left to the
    character features, so "Dog"/"dog" and "1995"/"1996" share an embedding."""
    return _DIGITS.sub("0", form.lower())


def word_keys(forms):
    """[word_key(form) for form in forms], made from one string: the forms joined by NUL,
    lowercased and their digits replaced at once, then cut again (a new form's key was
    a third of looking its word up, one regex call each).  NUL stops str.lower's look
    around a capital sigma as a string's end does (it is neither cased nor
    case-ignorable), so each form's key is the one it has alone; forms with a NUL of
    their own take word_key one by one."""
    if not isinstance(forms, list):
        forms = list(forms)
    if not forms:
        return []
    joined = "\0".join(forms)
    if joined.count("\0") != len(forms) - 1:
        return list(map(word_key, forms))  # a form holds a NUL: cutting would not undo
    return _DIGITS.sub("0", joined.lower()).split("\0")


#: The word shapes word_shape tells apart (a shape embedding's rows).
SHAPES = ("lower", "Capitalized", "UPPER", "mIxEd", "digits", "alnum1", "punct")


def word_shape(form):
    """The id (in SHAPES) of a word's shape: its case pattern when it has letters (and no
    digit), digits only, letters and digits, or neither.  Word keys are lowercased, so this
    is the case information a word embedding lacks, handed to the tagger directly (an
    entity is most often Capitalized)."""
    letters = [ch for ch in form if ch.isalpha()]
    digits = any(ch.isdigit() for ch in form)
    if not letters:
        return 4 if digits else 6
    if digits:
        return 5
    if not any(ch.isupper() for ch in letters):
        return 0
    if letters[0].isupper() and not any(ch.isupper() for ch in letters[1:]):
        return 1
    if len(letters) > 1 and all(ch.isupper() for ch in letters):
        return 2
    return 3


class Vocabulary:
    """Word keys, characters and tags of a training corpus, each mapped to an id, and the
    network's output heads (seqtag.heads), each with its labels; tags are the first
    head's.

    Ids 0 and 1 of words and characters are <pad> and <unk>; tags have no unknown.
    Words longer than max_chars characters are read as their first and last
    max_chars // 2 characters (affixes carry the part of speech; memory stays bounded).
    """

    def __init__(self, words, chars, tags, word_counts=None, max_chars=30, heads=None,
                 column="upos", stored_words=None):
        """heads: the output heads (None: one over `tags`, predicting `column`).
        stored_words: the words as a model file holds them (a seqtag.modelfile.StringIndex),
        looked up there until the dict of word_index is made (a loaded model: a one-shot
        `seqtag tag` looks up a few words, the dict of 15,734 took 2 ms to make)."""
        self.words = list(words)
        self.chars = list(chars)
        self.heads = list(heads) if heads else [Head(column, tags)]
        self.tags = list(self.heads[0].labels)
        self.max_chars = int(max_chars)
        self._stored_words = stored_words
        self._word_index = (None if stored_words is not None
                            else dict(zip(self.words, range(len(self.words)))))
        self.char_index = {c: i for i, c in enumerate(self.chars)}
        self.tag_index = {t: i for i, t in enumerate(self.tags)}
        counts = word_counts if word_counts is not None else [0] * len(self.words)
        self.word_counts = np.asarray(counts, dtype=np.float64)

    @classmethod
    def build(cls, sentences, min_char_count=2, max_chars=30, heads=None, column="upos"):
        """From training sentences (objects with .words and .tags; .tags may be None when
        heads are given)."""
        word_counts, char_counts, tag_counts = Counter(), Counter(), Counter()
        for sentence in sentences:
            for form in sentence.words:
                word_counts[word_key(form)] += 1
                char_counts.update(form)
            if not heads:
                tag_counts.update(sentence.tags)
        words = [PAD, UNK] + sorted(word_counts, key=lambda w: (-word_counts[w], w))
        chars = [PAD, UNK] + sorted(c for c, n in char_counts.items() if n >= min_char_count)
        tags = sorted(tag_counts, key=lambda t: (-tag_counts[t], t))
        counts = [0, 0] + [word_counts[w] for w in words[2:]]
        return cls(words, chars, tags, counts, max_chars, heads, column)

    def to_meta(self, arrays=None):
        """The vocabulary as JSON-able metadata.  With `arrays` (a dict of the arrays a
        model file will hold: model format 2), the long lists go there instead, under
        "vocab.": the words, their counts and a lemma lexicon (Tagger.save)."""
        if arrays is None:
            words, counts = self.words, [int(n) for n in self.word_counts]
        else:
            words = put_strings(arrays, "vocab.words", self.words)
            arrays["vocab.word_counts"] = self.word_counts.astype(np.int64)
            counts = {"array": "vocab.word_counts"}
        return {"words": words, "chars": self.chars, "tags": self.tags, "word_counts": counts,
                "max_chars": self.max_chars, "heads": heads_to_meta(self.heads, arrays, "vocab.")}

    @classmethod
    def from_meta(cls, meta, column="upos", arrays=None):
        """column: what the one head of a vocabulary written before heads existed (no
        "heads") predicts.  arrays: the model file's, where format 2 keeps the words,
        their counts and a lemma lexicon."""
        heads = heads_from_meta(meta["heads"], arrays) if "heads" in meta else None
        words, counts, stored = meta["words"], meta["word_counts"], None
        if is_strings_reference(words):
            reference, words = words, get_strings(arrays or {}, words)
            if reference["strings"] + ".lengths" not in (arrays or {}):  # no word has "\n"
                stored = StringIndex(arrays[reference["strings"]])
        if isinstance(counts, dict):
            counts = (arrays or {})[counts["array"]]
            if counts.ndim != 1 or counts.dtype.kind not in "iu" or len(counts) != len(words):
                raise ValueError("the word counts are not one count per word")
        max_chars = meta["max_chars"]
        if not isinstance(max_chars, int) or isinstance(max_chars, bool) or max_chars < 1:
            raise ValueError(f"max_chars must be a positive integer, got {max_chars!r}")
        return cls(words, meta["chars"], meta["tags"], counts, max_chars, heads, column,
                   stored)

    @property
    def word_index(self):
        """{word key: id}."""
        if self._word_index is None:
            self._word_index = self._stored_words.index()
        return self._word_index

    def word_id(self, form):
        return int(self.word_ids([form])[0])

    def word_ids(self, forms):
        """(len(forms),) int64: the word id of each of forms (a list), 1 (<unk>) for a word
        the vocabulary does not hold; their keys made at once (word_keys)."""
        keys = word_keys(forms)
        index = self._word_index
        if index is None:
            if self._stored_words.scanning():
                locate = self._stored_words.locate
                return np.fromiter((1 if (found := locate(k)) is None else found[0]
                                    for k in keys), dtype=np.int64, count=len(keys))
            index = self.word_index
        return np.fromiter(map(index.get, keys, repeat(1)), dtype=np.int64, count=len(keys))

    def char_ids(self, form):
        if len(form) > self.max_chars:
            half = self.max_chars // 2
            form = form[:half] + form[-half:]
        get = self.char_index.get
        return [get(ch, 1) for ch in form]

    def chars_of(self, forms):
        """(lengths (n,), char ids of the forms laid end to end): what char_ids gives
        for each form, looked up for all of them at once (a new word's characters are a
        fifth of tagging it when it is first seen: a dict lookup per character was most of
        that)."""
        if not isinstance(forms, (list, tuple)):
            forms = list(forms)
        lengths = np.fromiter(map(len, forms), dtype=np.int64, count=len(forms))
        if len(forms) and lengths.max() > self.max_chars:  # (rare: a list only then)
            half = self.max_chars // 2
            forms = [f if len(f) <= self.max_chars else f[:half] + f[-half:] for f in forms]
            lengths = np.fromiter(map(len, forms), dtype=np.int64, count=len(forms))
        # code points, lone surrogates (text read with surrogateescape) included
        codes = np.frombuffer("".join(forms).encode("utf-32-le", "surrogatepass"),
                              dtype=np.uint32)
        known, ids, table = self._char_codes
        if not len(known):
            return lengths, np.ones(len(codes), dtype=np.int64)
        if len(codes) and codes.max() < len(table):  # every character in the table's range
            return lengths, table[codes]
        at = np.minimum(np.searchsorted(known, codes), len(known) - 1)
        return lengths, np.where(known[at] == codes, ids[at], 1)

    def __getstate__(self):
        """A pickled vocabulary leaves out _char_codes, a cache (half a megabyte) made
        again on first use."""
        state = dict(self.__dict__)
        state.pop("_char_codes", None)
        return state

    @functools.cached_property
    def _char_codes(self):
        """(sorted code points of the known characters, their ids, the id of every code
        point below 2^16, 1 for those unknown: one gather for text of the Basic
        Multilingual Plane, instead of a binary search per character)."""
        pairs = sorted((ord(c), i) for c, i in self.char_index.items() if len(c) == 1)
        known = np.array([c for c, _ in pairs], dtype=np.uint32)
        ids = np.array([i for _, i in pairs], dtype=np.int64)
        table = np.ones(1 << 16, dtype=np.int64)
        below = known < len(table)
        table[known[below]] = ids[below]
        return known, ids, table

    def tag_ids(self, tags):
        """Tag ids; a tag never seen in training gets -1 (it can only be an error)."""
        get = self.tag_index.get
        return np.array([get(t, -1) for t in tags], dtype=np.int64)

    def with_words(self, keys):
        """This vocabulary and the word keys given that it lacks, at the end, counted 0 times
        (pretrained vectors' words: in the embedding, never seen in training)."""
        new = [k for k in dict.fromkeys(keys) if k not in self.word_index]
        return Vocabulary(self.words + new, self.chars, self.tags,
                          list(self.word_counts) + [0] * len(new), self.max_chars,
                          self.heads)

    def is_known(self, form):
        """Whether the word was seen in training (a pretrained vector's word, in the
        vocabulary with a count of 0, was not)."""
        i = self.word_index.get(word_key(form))
        return i is not None and self.word_counts[i] > 0
