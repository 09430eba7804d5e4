# Python lists in and out of tagging, in loops that stay in C.  Decoded values (tags,
# lemmas) cut into the lists of their sentences: tagging every column made a list per
# sentence and column with a Python statement each (a slice of the batch's values and a
# store), 3 % of the calling thread's time, which the other core spends idle.  And the
# check of the sentences given: 1.3 ms a pass over EWT test in Python's C-level loops
# (the types of every token gathered in a set, their truth, the copies).  Python
# objects: the GIL is held.

from cpython.list cimport PyList_New
from cpython.object cimport PyObject

# borrowed and stolen references as raw pointers: no reference counted twice per value
cdef extern from "Python.h":
    PyObject* _list_item "PyList_GET_ITEM"(object, Py_ssize_t)
    void _list_set_item "PyList_SET_ITEM"(object, Py_ssize_t, PyObject*)
    void _incref "Py_INCREF"(PyObject*)


def put_sentence_lists(list target not None, const int64_t[::1] chunk,
                       const int64_t[::1] lengths, list values not None,
                       const int64_t[::1] ids=None, list more=None):
    """target[chunk[k]] = a new list of the k-th sentence's values, the sentences laid end
    to end lengths[k] values each: values[ids[p]] for their positions p (values[p] when
    ids is None), and more[i - len(values)] for an id i past values (a batch's lemmas:
    the lexicon's, shared by every batch, then the batch's forms and the lemma head's).
    The caller checks the arguments and says what is wrong (seqtag.inference.
    _put_sentence_lists); what would read or write out of bounds is refused here too
    (IndexError), never done."""
    cdef Py_ssize_t k, j, n, i, p = 0, first = len(values)
    cdef Py_ssize_t size = first + (len(more) if more is not None else 0)
    cdef Py_ssize_t n_target = len(target), total = 0
    cdef bint by_id = ids is not None
    cdef list sentence
    cdef PyObject* item
    if lengths.shape[0] != chunk.shape[0]:
        raise IndexError("chunk and lengths differ in length")
    for k in range(chunk.shape[0]):
        if lengths[k] < 0 or chunk[k] < 0 or chunk[k] >= n_target:
            raise IndexError("a sentence out of range")
        total += lengths[k]
    if total > (ids.shape[0] if by_id else first):
        raise IndexError("more tokens than values")
    for k in range(chunk.shape[0]):
        n = lengths[k]
        sentence = PyList_New(n)
        for j in range(n):
            i = ids[p] if by_id else p
            if i < 0 or i >= size:  # (the list's empty items are released as NULL)
                raise IndexError("an id out of range of the values")
            item = _list_item(values, i) if i < first else _list_item(more, i - first)
            _incref(item)  # the list steals a reference
            _list_set_item(sentence, j, item)
            p += 1
        target[chunk[k]] = sentence


def plain_token_lists(object sentences):
    """New lists of the tokens of `sentences` if it is a non-empty list of lists (exactly
    those types) of non-empty str (exactly str, no subclass), else None: the common case
    of what tagging is given, checked and copied in one pass."""
    cdef object sentence, token
    if type(sentences) is not list or not len(<list>sentences):
        return None
    for sentence in <list>sentences:
        if type(sentence) is not list:
            return None
        for token in <list>sentence:
            if type(token) is not str or not len(<str>token):
                return None
    return [list(<list>sentence) for sentence in <list>sentences]


cdef extern from "Python.h":
    PyObject* _dict_get_item "PyDict_GetItemWithError"(object, object) except? NULL


def number_forms(object sentences, int64_t[::1] ids not None):
    """The distinct tokens of `sentences` in the order they first come (a new list), with
    ids[p] <- the index among them of the p-th token, the sentences laid end to end (ids
    as long as their tokens: IndexError if not); None, ids untouched, where `sentences` is
    not a list of lists (exactly those types): a batch's numbering of its word forms
    (seqtag.network.Batch), one dictionary probe per token, two for a form's first use.
    Tokens compare as dictionary keys do."""
    cdef object sentence, token
    cdef dict index = {}
    cdef list forms = []
    cdef PyObject* found
    cdef Py_ssize_t p = 0, total = 0, n
    if type(sentences) is not list:
        return None
    for sentence in <list>sentences:
        if type(sentence) is not list:
            return None
        total += len(<list>sentence)
    if total != ids.shape[0]:
        raise IndexError(f"{total} tokens but {ids.shape[0]} ids")
    for sentence in <list>sentences:
        for token in <list>sentence:
            if p >= total:  # a list grown since it was counted (another thread)
                raise IndexError("the sentences changed while they were numbered")
            found = _dict_get_item(index, token)
            if found == NULL:
                n = len(forms)
                index[token] = n
                forms.append(token)
                ids[p] = n
            else:
                ids[p] = <int64_t>(<object>found)
            p += 1
    if p != total:
        raise IndexError("the sentences changed while they were numbered")
    return forms
