"""Running the two directions on two threads changes nothing but the speed."""

import numpy as np
import pytest

from rnn_cases import analytic, make_case


@pytest.mark.parametrize("cell", ["lstm", "peephole", "gru"])
def test_two_threads_give_bitwise_the_serial_result(cell):
    serial, case = make_case(cell, 2, True, [9, 4, 4, 1, 6], 5, dtype=np.float32)
    threaded, _ = make_case(cell, 2, True, [9, 4, 4, 1, 6], 5, dtype=np.float32)
    threaded.threads = 2
    values_1, grads_1 = analytic(serial, case)
    values_2, grads_2 = analytic(threaded, case)
    for a, b in zip(values_1, values_2):
        if a is not None:
            np.testing.assert_array_equal(a, b)
    for name in grads_1:
        np.testing.assert_array_equal(grads_1[name], grads_2[name])


def test_fallback_gemm_matches_blas():
    """The plain-loop product used where no BLAS is found gives BLAS's results."""
    from seqtag import _blas, _core
    rng = np.random.default_rng(0)
    info = _blas.info()
    for dtype in (np.float32, np.float64):
        for trans_a in (False, True):
            for trans_b in (False, True):
                a = rng.standard_normal((7, 5) if trans_a else (5, 7)).astype(dtype)
                b = rng.standard_normal((3, 7) if trans_b else (7, 3)).astype(dtype)
                c = rng.standard_normal((5, 3)).astype(dtype)
                expected = 0.5 * ((a.T if trans_a else a) @ (b.T if trans_b else b)) + 2 * c
                results = []
                try:
                    for mode in ("blas", "fallback"):
                        if mode == "fallback":
                            _core._set_blas(0, 0, 0)
                        out = c.copy()
                        _core.gemm_check(a, b, out, trans_a, trans_b, 0.5, 2.0)
                        results.append(out)
                finally:
                    _blas._install()
                tol = 1e-5 if dtype == np.float32 else 1e-12
                for out in results:
                    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
    assert _blas.info() == info
