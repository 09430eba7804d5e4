# Hashes of word forms for the front end's word-level models (seqtag.segment's
# WordBoundaries and MultiwordContext): each new form's row was ~10 Python calls (lower
# case, case shape, five CRC-32s), 0.3-0.4 s of a command tagging EWT train's raw text,
# most of it on the thread that also decodes.  The values are exactly the Python ones
# (seqtag.segment._hash, _case_shape): zlib's CRC-32 of the UTF-8 bytes (lone surrogates
# passed through), the character classes of str.isupper/islower/isdigit/isalpha.

from libc.stdint cimport uint32_t
from cpython.unicode cimport (Py_UNICODE_ISUPPER, Py_UNICODE_ISLOWER, Py_UNICODE_ISDIGIT,
                              Py_UNICODE_ISALPHA)

cdef uint32_t _crc_table[256]


cdef void _make_crc_table() noexcept:
    cdef uint32_t c
    cdef int n, k
    for n in range(256):
        c = <uint32_t>n
        for k in range(8):
            c = (0xEDB88320 ^ (c >> 1)) if (c & 1) else (c >> 1)
        _crc_table[n] = c


_make_crc_table()


cdef inline int64_t _crc32(bytes data):
    """zlib.crc32(data): the CRC-32 of ISO 3309 / ITU-T V.42."""
    cdef const unsigned char* p = data
    cdef Py_ssize_t i, n = len(data)
    cdef uint32_t c = 0xFFFFFFFF
    for i in range(n):
        c = _crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8)
    return <int64_t>(c ^ 0xFFFFFFFF)


cdef inline int64_t _text_hash(str text):
    return _crc32(text.encode("utf-8", "surrogatepass"))


cdef str _case_shape(str form):
    """seqtag.segment._case_shape: the form's characters by class (X upper, x lower, 9
    digit, a other letter, anything else itself), runs collapsed, the first four."""
    cdef list shape = []
    cdef Py_UCS4 c, k, last = 0
    cdef Py_ssize_t n = 0
    for c in form:
        if Py_UNICODE_ISUPPER(c):
            k = u"X"
        elif Py_UNICODE_ISLOWER(c):
            k = u"x"
        elif Py_UNICODE_ISDIGIT(c):
            k = u"9"
        elif Py_UNICODE_ISALPHA(c):
            k = u"a"
        else:
            k = c
        if n == 0 or k != last:
            n += 1
            if n <= 4:
                shape.append(k)
            last = k
    return "".join(shape)


def form_hashes(list forms, int64_t[:, ::1] out):
    """out (len(forms), 5) <- each form's hashes (seqtag.segment._hash) of: its lower-case
    form, the form, its case shape (_case_shape), the lower-case form's last three and
    first three characters."""
    _require(out.shape[0] == len(forms) and out.shape[1] == 5, "form_hashes out shape")
    cdef Py_ssize_t i
    cdef str form, low
    for i in range(len(forms)):
        form = forms[i]
        low = form.lower()
        out[i, 0] = _text_hash(low)
        out[i, 1] = _text_hash(form)
        out[i, 2] = _text_hash(_case_shape(form))
        out[i, 3] = _text_hash(low[-3:])
        out[i, 4] = _text_hash(low[:3])


from libc.stdint cimport uint64_t


cdef void _mix_rows(const int64_t[:, ::1] sources, const int64_t[:, ::1] spec,
                    uint64_t mask, int64_t[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t i, f, j, n = sources.shape[1], F = spec.shape[0], width = spec.shape[1]
    cdef int64_t source
    cdef uint64_t h
    for i in range(n):
        for f in range(F):
            h = (<uint64_t>spec[f, 0]) * <uint64_t>0x9E3779B97F4A7C15
            for j in range(1, width):
                source = spec[f, j]
                if source < 0:
                    break
                h = (h ^ <uint64_t>sources[<size_t>source, i]) * <uint64_t>0x100000001B3
                h ^= h >> 29
            out[i, f] = <int64_t>(h & mask)


def mix_columns(const int64_t[:, ::1] sources not None, const int64_t[:, ::1] spec not None,
                int bits, int64_t[:, ::1] out not None):
    """out (n, F) <- the hashed feature indices of the word-level models
    (seqtag.segment._mixed): feature f of row i mixes the slot spec[f, 0] with the values
    sources[spec[f, j], i] for j = 1, 2, ... up to the first -1, each column as uint64
    (two's complement), wrapping in 64 bits, then keeps the low `bits` bits.  Made with
    numpy one column at a time, the 19 + 23 features of the two models were a fifth of
    decoding EWT train's raw text.  The mix: h = slot * 0x9E3779B97F4A7C15, then for
    each value v: h = (h ^ v) * 0x100000001B3, h ^= h >> 29."""
    cdef Py_ssize_t f, j
    _require(0 < bits < 63, "mix_columns: bits out of range")
    _require(out.shape[0] == sources.shape[1] and out.shape[1] == spec.shape[0],
             "mix_columns: out shape")
    _require(spec.shape[1] >= 1, "mix_columns: spec has no slot column")
    for f in range(spec.shape[0]):
        for j in range(1, spec.shape[1]):
            _require(-1 <= spec[f, j] < sources.shape[0], "mix_columns: spec out of range")
    with nogil:
        _mix_rows(sources, spec, (<uint64_t>1 << bits) - 1, out)


# The label of each character of raw text from the front end's scores (seqtag.segment.
# _choose_labels): numpy's copy of the scores, three masks and an argmax were a tenth of
# decoding EWT train's raw text, on the thread that decodes.  Labels: 0 inside a token,
# 1-4 the ends (token, sentence, multiword, multiword and sentence), 5 space.
def choose_labels(const floating[:, ::1] logits not None, const unsigned char[::1] space not None,
                  const unsigned char[::1] glued not None, double sentence_bias,
                  int64_t[::1] labels not None):
    """labels[i] <- the best label of character i (the first of equal scores, as numpy's
    argmax): inside or space for whitespace (space[i]), inside for a character glued to
    the next (glued[i]), else inside or an end, sentence_bias added to the sentence-ending
    labels' scores (rounded to the scores' type first, as numpy adds a Python float)."""
    _require(logits.shape[1] == 6, "choose_labels: logits must have 6 columns")
    _require(space.shape[0] == logits.shape[0] and glued.shape[0] == logits.shape[0]
             and labels.shape[0] == logits.shape[0], "choose_labels: lengths differ")
    cdef Py_ssize_t i, j, n = logits.shape[0]
    cdef floating bias = <floating>sentence_bias, best_score, score
    cdef int64_t best
    with nogil:
        for i in range(n):
            if space[i]:
                labels[i] = 5 if logits[i, 5] > logits[i, 0] else 0
            elif glued[i]:
                labels[i] = 0
            else:
                best, best_score = 0, logits[i, 0]
                for j in range(1, 5):
                    score = logits[i, j]
                    if j == 2 or j == 4:
                        score = score + bias
                    if score > best_score:
                        best, best_score = j, score
                labels[i] = best


cdef extern from "Python.h":
    object PyUnicode_Substring(object, Py_ssize_t, Py_ssize_t)


def text_slices(str text not None, const int64_t[::1] starts, const int64_t[::1] ends):
    """[text[starts[k]:ends[k]] for every k]: the tokens' (or chunks') text of a decoded
    paragraph, a Python slice each in a comprehension being a tenth of decoding EWT
    train's raw text.  Bounds that are not 0 <= start <= end <= len(text) are refused
    (IndexError), never read."""
    _require(starts.shape[0] == ends.shape[0], "text_slices: starts and ends differ")
    cdef Py_ssize_t k, n = starts.shape[0], size = len(text)
    for k in range(n):
        if starts[k] < 0 or starts[k] > ends[k] or ends[k] > size:
            raise IndexError("text_slices: a span out of the text")
    cdef list out = [None] * n
    for k in range(n):
        out[k] = PyUnicode_Substring(text, starts[k], ends[k])
    return out


# The edit scripts that fit a word (seqtag.lemma.ScriptSets): a walk of a trie of the
# suffixes the scripts strip, from the word's last character, for each way the scripts
# re-case it.  In Python each new word cost 6-8 us, on the thread that decodes (a
# fresh pass over EWT test meets 3,500 of them: 10 % of tagging every column).
#   trie: child_start (nodes + 1,): node i's children are child_char / child_node
#   [child_start[i], child_start[i + 1]), ascending by character;  plain (nodes x 3,):
#   the piece of the scripts of case c (0 none, 1 lower, 2 first) that strip that node's
#   suffix and no prefix, -1 if none;  prefixed_start (nodes x 3 + 1,): the entries of
#   those that strip a prefix too, [prefixed_start[3 i + c], prefixed_start[3 i + c + 1])
#   of prefix_start, prefix_len (into prefix_chars, code points) and prefix_piece.
# Gives, per word, the tuple of the pieces that fit it, in the walk's order: the word as
# it is (case 0), then lower-cased (1), then with its first character lower-cased (2),
# one walk for the cases that give the same string.
# the trie's arrays, checked by script_walks
cdef struct _ScriptTrie:
    const int32_t* child_start
    const int32_t* child_char
    const int32_t* child_node
    const int32_t* plain
    const int32_t* prefixed_start
    const int32_t* prefix_start
    const int32_t* prefix_len
    const int32_t* prefix_piece
    const int32_t* prefix_chars


cdef inline int32_t _trie_child(const _ScriptTrie* t, int32_t node, Py_UCS4 ch) noexcept:
    cdef int32_t lo = t.child_start[node], hi = t.child_start[node + 1], mid
    while lo < hi:
        mid = (lo + hi) // 2
        if <Py_UCS4>t.child_char[mid] < ch:
            lo = mid + 1
        else:
            hi = mid
    if lo < t.child_start[node + 1] and <Py_UCS4>t.child_char[lo] == ch:
        return t.child_node[lo]
    return -1


cdef void _walk_source(str source, int cases, list found, const _ScriptTrie* t):
    """Add to found the pieces of the cases (bits of `cases`) that fit source."""
    cdef Py_ssize_t n = len(source), length = 0, k, e, m
    cdef int32_t node = 0, c, piece
    cdef bint match
    while True:
        for c in range(3):
            if not (cases >> c) & 1:
                continue
            piece = t.plain[3 * node + c]
            if piece >= 0:
                found.append(piece)
            for e in range(t.prefixed_start[3 * node + c], t.prefixed_start[3 * node + c + 1]):
                m = t.prefix_len[e]
                if m + length > n:
                    continue
                match = True
                for k in range(m):
                    if source[k] != <Py_UCS4>t.prefix_chars[t.prefix_start[e] + k]:
                        match = False
                        break
                if match:
                    found.append(t.prefix_piece[e])
        if length == n:
            return
        node = _trie_child(t, node, source[n - 1 - length])
        if node < 0:
            return
        length += 1


def script_walks(list words, const int32_t[::1] child_start not None,
                 const int32_t[::1] child_char not None, const int32_t[::1] child_node not None,
                 const int32_t[::1] plain not None, const int32_t[::1] prefixed_start not None,
                 const int32_t[::1] prefix_start not None, const int32_t[::1] prefix_len not None,
                 const int32_t[::1] prefix_piece not None,
                 const int32_t[::1] prefix_chars not None):
    """[tuple of the pieces of the scripts that fit the word, for each word (str)]
    (the trie as above; seqtag.lemma.ScriptSets makes it and checks its shape)."""
    cdef Py_ssize_t nodes = child_start.shape[0] - 1, i
    _require(nodes >= 1 and plain.shape[0] == 3 * nodes
             and prefixed_start.shape[0] == 3 * nodes + 1
             and child_char.shape[0] == child_node.shape[0]
             and child_start[nodes] <= child_char.shape[0], "script trie shapes")
    for i in range(nodes):
        _require(0 <= child_start[i] <= child_start[i + 1], "script trie children")
    for i in range(child_node.shape[0]):
        _require(0 <= child_node[i] < nodes, "script trie children")
    for i in range(3 * nodes):
        _require(0 <= prefixed_start[i] <= prefixed_start[i + 1] <= prefix_start.shape[0],
                 "script trie prefixes")
    _require(prefix_len.shape[0] == prefix_start.shape[0]
             and prefix_piece.shape[0] == prefix_start.shape[0], "script trie prefixes")
    for i in range(prefix_start.shape[0]):
        _require(prefix_start[i] >= 0 and prefix_len[i] >= 0
                 and <Py_ssize_t>prefix_start[i] + prefix_len[i] <= prefix_chars.shape[0],
                 "script trie prefixes")
    cdef int32_t none = 0
    cdef _ScriptTrie t
    t.child_start, t.child_char = &child_start[0], &child_char[0] if child_char.shape[0] else &none
    t.child_node = &child_node[0] if child_node.shape[0] else &none
    t.plain, t.prefixed_start = &plain[0], &prefixed_start[0]
    t.prefix_start = &prefix_start[0] if prefix_start.shape[0] else &none
    t.prefix_len = &prefix_len[0] if prefix_len.shape[0] else &none
    t.prefix_piece = &prefix_piece[0] if prefix_piece.shape[0] else &none
    t.prefix_chars = &prefix_chars[0] if prefix_chars.shape[0] else &none
    cdef list out = [], found
    cdef object word
    cdef str lower, first
    for word in words:
        if type(word) is not str:
            raise TypeError("words must be str")
        found = []
        lower = (<str>word).lower()
        if lower == word:  # every case change leaves it as it is: one walk for all
            _walk_source(<str>word, 7, found, &t)
        else:
            _walk_source(<str>word, 1, found, &t)
            first = (<str>word)[:1].lower() + (<str>word)[1:]
            _walk_source(lower, 6 if first == lower else 2, found, &t)
            if first != lower:
                _walk_source(first, 4, found, &t)
        out.append(tuple(found))
    return out
