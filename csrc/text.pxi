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
