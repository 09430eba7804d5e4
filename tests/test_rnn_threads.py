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
