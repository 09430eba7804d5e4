# Row gathers and scatters for embeddings.


def add_rows(floating[:, ::1] out, const int64_t[::1] index, floating[:, :] src):
    """out[index[i]] += src[i] for every i (repeated indices accumulate).

    out (U, D), index (N,) with 0 <= index[i] < U, src (N, D): the gradient of an embedding
    lookup, summed into the rows it read.
    """
    cdef Py_ssize_t n = index.shape[0], width = out.shape[1], rows = out.shape[0]
    cdef Py_ssize_t i, j, row
    _require(src.shape[0] == n and src.shape[1] == width, "src shape")
    if width > 1:
        _check_rows(src.strides[1], sizeof(floating), "src", src.strides[0], src.shape[0], src.shape[1])
    for i in range(n):
        _require(0 <= index[i] < rows, "index out of range")
    cdef Py_ssize_t ld = row_stride(src.strides[0], sizeof(floating))
    cdef floating* o = &out[0, 0] if rows else NULL
    cdef const floating* s = &src[0, 0] if n else NULL
    with nogil:
        for i in range(n):
            row = index[i]
            for j in range(width):
                o[row * width + j] += s[i * ld + j]
