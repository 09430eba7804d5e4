"""Characters of word forms as ids (seqtag.vocab.Vocabulary): the batch encoding that
tagging and training use (chars_of, all forms at once) gives what char_ids gives for each
form, whatever the characters."""

import numpy as np
import pytest

from seqtag.network import encode_chars
from seqtag.vocab import Vocabulary, word_key, word_keys

CHARS = ["<pad>", "<unk>", "a", "b", "é", "ß", "€", "😀", "ü", "\U0010ffff", "\udcff"]
FORMS = ["ab", "ba", "abcdefghijkl", "é😀z", "\udcffa", "x", "aaaaaaa", "😀" * 9, "Straße",
         "\U0010ffffü€", "q", "ab" * 20]


def vocabulary(chars=CHARS, max_chars=6):
    return Vocabulary(["<pad>", "<unk>", "ab"], chars, ["X"], max_chars=max_chars)


@pytest.mark.parametrize("max_chars", [6, 7, 30])
def test_chars_of_all_forms_is_char_ids_of_each(max_chars):
    vocab = vocabulary(max_chars=max_chars)
    lengths, ids = vocab.chars_of(FORMS)
    expected = [vocab.char_ids(f) for f in FORMS]
    assert lengths.tolist() == [len(e) for e in expected]
    assert ids.tolist() == [c for e in expected for c in e]
    # long forms keep their first and last max_chars // 2 characters
    assert lengths[FORMS.index("ab" * 20)] == 2 * (max_chars // 2)
    assert set(ids.tolist()) >= {1, CHARS.index("😀"), CHARS.index("\udcff")}


@pytest.mark.parametrize("max_chars", [6, 7, 30])
def test_text_of_the_basic_plane_reads_the_same_through_its_table(max_chars):
    """Forms whose characters are all below U+10000 are looked up in a table of that plane
    (one gather); any other character sends the batch through the sorted code points."""
    vocab = vocabulary(max_chars=max_chars)
    basic = [f for f in FORMS if all(ord(c) < 0x10000 for c in f)] + ["\uffff", "\u0000"]
    assert len(basic) > 8
    for forms in (basic, basic + ["😀"]):
        lengths, ids = vocab.chars_of(forms)
        expected = [vocab.char_ids(f) for f in forms]
        assert lengths.tolist() == [len(e) for e in expected]
        assert ids.tolist() == [c for e in expected for c in e]


def test_a_vocabulary_of_no_characters_reads_every_character_as_unknown():
    vocab = vocabulary(chars=["<pad>", "<unk>"])
    lengths, ids = vocab.chars_of(["ab", "c"])
    assert lengths.tolist() == [2, 1] and ids.tolist() == [1, 1, 1]


def test_encode_chars_packs_the_forms_characters():
    vocab = vocabulary()
    packing, ids = encode_chars(FORMS, vocab)
    per_form = [vocab.char_ids(f) for f in FORMS]
    flat = np.array([c for e in per_form for c in e])
    np.testing.assert_array_equal(packing.lengths, [len(e) for e in per_form])
    np.testing.assert_array_equal(ids, flat[packing.flat_index()])


def test_a_batch_looks_up_word_ids_when_asked_and_once():
    from seqtag.network import Batch
    vocab = Vocabulary(["<pad>", "<unk>", "dog", "0000"], CHARS, ["X"])
    batch = Batch([["The", "dog", "1995"], ["dog", "Dog", "cat"]], vocab)
    assert batch.forms == ["The", "dog", "1995", "Dog", "cat"]
    np.testing.assert_array_equal(batch.word_ids_of(np.array([4, 1])), [1, 2])
    np.testing.assert_array_equal(batch._word_ids, [-1, 2, -1, -1, 1])  # only those
    np.testing.assert_array_equal(batch.form_word_ids, [1, 2, 3, 2, 1])
    # packed rows: the longest sentence first, step by step
    np.testing.assert_array_equal(batch.word_ids,
                                  [batch.form_word_ids[f] for f in batch.form_of_row])


def test_word_keys_of_forms_at_once_are_each_forms_word_key():
    """word_keys lowercases and replaces the digits of every form in one string joined by
    NUL: a form's key must not depend on its neighbours (a capital sigma lowercases to
    the final form at a word's end only), and a form holding a NUL of its own must not be
    cut."""
    import random
    rng = random.Random(7)
    pool = (list("aAΣσςΑΟΔİIıi'’·\u0345\u00ad\u200d 09٣३Ⅻ①ẞßﬃǅ-.\x00")
            + ["ΟΔΟΣ", "Σ", "'Σ'", "AΣ'", "ΣA", "\x00Σ", "Σ\x00", "\udcff", "😀"])
    assert word_keys([]) == []
    for trial in range(3000):
        forms = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 5)))
                 for _ in range(rng.randint(1, 8))]
        if trial % 2:  # most batches: no NUL, the one-string path
            forms = [f.replace("\x00", "") for f in forms]
        assert word_keys(forms) == [word_key(f) for f in forms], forms
    # every character on its own, and beside a capital sigma
    chars = [chr(c) for c in range(1, 0x110000, 3) if not 0xD800 <= c < 0xE000]
    forms = chars + ["AΣ" + c for c in chars[::11]] + [c + "Σ" for c in chars[::11]]
    assert word_keys(forms) == [word_key(f) for f in forms]
    assert word_keys(["ΟΔΟΣ", "ΣΑ"]) == ["οδος", "σα"]  # the final sigma where it is one
    assert word_keys(("Dog", "1995")) == ["dog", "0000"]
