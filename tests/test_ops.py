"""Small compiled kernels outside the recurrent layers: log-softmax of rows."""

import numpy as np
import pytest

from seqtag import _core


def reference_log_softmax(x):
    x = x.astype(np.float64)
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("dtype, atol", [(np.float32, 2e-6), (np.float64, 1e-13)])
@pytest.mark.parametrize("shape", [(1, 1), (3, 17), (257, 5), (64, 40)])
def test_log_softmax_rows_matches_float64_reference(dtype, atol, shape):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    expected = reference_log_softmax(x)
    _core.log_softmax_rows(x)
    np.testing.assert_allclose(x, expected, atol=atol, rtol=0)


def test_log_softmax_rows_is_stable_for_huge_and_tiny_logits():
    x = np.array([[1e30, 0.0, -1e30], [3e38, 3e38, 0.0], [-80.0, -80.0, -80.0]],
                 dtype=np.float32)
    _core.log_softmax_rows(x)
    assert np.isfinite(x[0, 0]) and x[0, 0] == 0.0
    np.testing.assert_allclose(x[1, :2], np.log(0.5), rtol=1e-6)
    np.testing.assert_allclose(x[2], np.log(1 / 3), rtol=1e-6)
    # every row is a distribution
    np.testing.assert_allclose(np.exp(x.astype(np.float64)).sum(axis=1), 1.0, rtol=1e-6)


def test_log_softmax_rows_lets_nan_through_and_takes_empty_input():
    x = np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]], dtype=np.float32)
    _core.log_softmax_rows(x)
    assert np.isnan(x[0]).any()
    np.testing.assert_allclose(x[1], reference_log_softmax(np.array([[0.0, 1.0, 2.0]]))[0],
                               rtol=1e-6)
    _core.log_softmax_rows(np.empty((0, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="at least one column"):
        _core.log_softmax_rows(np.empty((3, 0), dtype=np.float32))


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m", [1, 2, 3])
def test_few_row_products_through_gemv_equal_gemm(dtype, tol, trans_a, trans_b, m):
    """Products of one or two rows go row by row through cblas gemv (seqtag/runtime.py finds
    it next to gemm); they must give gemm's result for every transpose, alpha and beta."""
    from seqtag import runtime
    rng = np.random.default_rng(int(trans_a) * 2 + int(trans_b) + 4 * m)
    k, n = 37, 19
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    expected = 0.5 * ((a.T if trans_a else a) @ (b.T if trans_b else b)) + 2 * c
    found = runtime.blas()
    assert found is not None and found.sgemv and found.dgemv, "no gemv next to NumPy's gemm"
    results = []
    try:
        for gemv in (True, False):
            _core._set_blas(found.sgemm, found.dgemm, found.int_bits,
                            *((found.sgemv, found.dgemv) if gemv else (0, 0)))
            out = c.copy()
            _core.gemm_check(a, b, out, trans_a, trans_b, 0.5, 2.0)
            results.append(out)
    finally:
        runtime._install(found)
    for out in results:
        np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)


def test_set_blas_wants_both_gemv_addresses_or_neither():
    from seqtag import runtime
    found = runtime.blas()
    try:
        with pytest.raises(ValueError, match="both gemv addresses or neither"):
            _core._set_blas(found.sgemm, found.dgemm, found.int_bits, found.sgemv, 0)
    finally:
        runtime._install(found)
