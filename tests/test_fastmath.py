"""The vectorised float32 exp / sigmoid / tanh of csrc/fastmath.h against float64 math.

The float32 cells use these instead of libm's expf/tanhf; the bounds here are the ones
documented in fastmath.h (measured over every finite float32, with a little headroom),
checked on a dense sweep plus the extremes.
"""

import numpy as np
import pytest

from seqtag import _core

# bounds documented in fastmath.h; measured over every finite float32: exp 8.5e-8,
# sigmoid 1.5e-7 relative and 9.0e-8 absolute, tanh 1.5e-7 and 8.0e-8
EXP_REL = 1.0e-7        # |x| <= 87
SIGMOID_REL = 1.8e-7    # x >= -87 (output >= 1.6e-38)
SIGMOID_ABS = 1.0e-7    # everywhere
TANH_REL = 1.8e-7       # everywhere (tiny x included: no cancellation near 0)
TANH_ABS = 1.0e-7
SATURATED = 1.7e-38     # sigmoid below -87 and e^x below -87 stay at e^-87 ~ 1.65e-38

TINY = np.float32(np.finfo(np.float32).smallest_subnormal)
BIG = np.finfo(np.float32).max

EXTREMES = np.array([0.0, -0.0, TINY, -TINY, 1e-38, -1e-38, 1e-30, -1e-30, 1e-7, -1e-7,
                     0.625, -0.625, np.nextafter(np.float32(0.625), np.float32(0)),
                     -np.nextafter(np.float32(0.625), np.float32(0)), 9.0, -9.0,
                     43.5, -43.5, 86.9, -86.9, 87.0, -87.0, 87.1, -87.1, 88.0, -88.0,
                     88.7, -88.7, 89.0, -89.0, 100.0, -100.0, 1e4, -1e4, 1e30, -1e30,
                     BIG, -BIG], dtype=np.float32)


def apply(fn, x):
    y = np.array(x, dtype=np.float32, copy=True)
    fn(y)
    return y


@pytest.fixture(scope="module")
def sweep():
    """Dense linear sweep over [-90, 90], both signs of a log sweep from the smallest
    subnormal to 1e38, and the extremes."""
    linear = np.linspace(-90, 90, 3_600_001, dtype=np.float64).astype(np.float32)
    logs = np.logspace(-45.5, 38.5, 400_001).astype(np.float32)
    logs = logs[np.isfinite(logs)]
    return np.unique(np.concatenate([linear, logs, -logs, EXTREMES]))


def rel_abs(y, ref):
    err = np.abs(y.astype(np.float64) - ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(ref != 0, err / np.abs(ref), np.where(err == 0, 0.0, np.inf))
    return rel, err


def test_exp_error(sweep):
    x = sweep[np.abs(sweep) <= 87]
    rel, _ = rel_abs(apply(_core._exp_f32, x), np.exp(x.astype(np.float64)))
    assert rel.max() <= EXP_REL, (rel.max(), x[rel.argmax()])


def test_exp_saturates_without_overflow(sweep):
    y = apply(_core._exp_f32, sweep)
    assert np.isfinite(y).all() and (y > 0).all()
    low, high = apply(_core._exp_f32, [-87.0, 87.0])
    assert (y[sweep <= -87] == low).all() and (y[sweep >= 87] == high).all()
    assert low < SATURATED and low >= np.finfo(np.float32).tiny  # normal, not denormal


def test_sigmoid_error(sweep):
    y = apply(_core._sigmoid_f32, sweep)
    with np.errstate(over="ignore"):
        ref = 1 / (1 + np.exp(-sweep.astype(np.float64)))
    rel, err = rel_abs(y, ref)
    normal = sweep >= -87
    rel_normal = np.where(normal, rel, 0)
    assert rel_normal.max() <= SIGMOID_REL, (rel_normal.max(), sweep[rel_normal.argmax()])
    assert err.max() <= SIGMOID_ABS, (err.max(), sweep[err.argmax()])
    assert (y[~normal] <= SATURATED).all() and (y[~normal] > 0).all()


def test_tanh_error(sweep):
    y = apply(_core._tanh_f32, sweep)
    rel, err = rel_abs(y, np.tanh(sweep.astype(np.float64)))
    assert rel.max() <= TANH_REL, (rel.max(), sweep[rel.argmax()])
    assert err.max() <= TANH_ABS, (err.max(), sweep[err.argmax()])


def test_tanh_is_odd_and_exact_near_zero(sweep):
    pos = sweep[sweep > 0]
    assert np.array_equal(apply(_core._tanh_f32, -pos), -apply(_core._tanh_f32, pos))
    tiny = pos[pos < 1e-4]  # tanh(x) = x to float precision: no 1 - (1 - x) cancellation
    assert np.array_equal(apply(_core._tanh_f32, tiny), tiny)
    assert np.signbit(apply(_core._tanh_f32, [-0.0])[0])


def test_ranges_and_no_nan_for_any_finite_input(sweep):
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, size=2_000_000, dtype=np.uint64).astype(np.uint32)
    anything = bits.view(np.float32)
    x = np.concatenate([sweep, anything[np.isfinite(anything)]])
    s = apply(_core._sigmoid_f32, x)
    t = apply(_core._tanh_f32, x)
    e = apply(_core._exp_f32, x)
    assert not np.isnan(s).any() and not np.isnan(t).any() and not np.isnan(e).any()
    assert ((s > 0) & (s <= 1)).all()
    assert ((t >= -1) & (t <= 1)).all()
    assert (np.isfinite(e) & (e > 0)).all()


def test_infinities_and_nan():
    s = apply(_core._sigmoid_f32, [np.inf, -np.inf, np.nan])
    assert s[0] == 1 and 0 < s[1] <= SATURATED and np.isnan(s[2])
    t = apply(_core._tanh_f32, [np.inf, -np.inf, np.nan])
    assert t[0] == 1 and t[1] == -1 and np.isnan(t[2])
    e = apply(_core._exp_f32, [np.inf, -np.inf, np.nan])
    assert np.isfinite(e[:2]).all() and np.isnan(e[2])


@pytest.mark.parametrize("fn", [_core._exp_f32, _core._sigmoid_f32, _core._tanh_f32])
def test_every_length_and_alignment(fn):
    # the SIMD body, its remainder and an unaligned start all agree with the whole array
    x = np.linspace(-12, 12, 97, dtype=np.float32)
    whole = apply(fn, x)
    for start in range(3):
        for n in range(0, 70):
            buf = x.copy()
            fn(buf[start:start + n])  # a view: starts `start` floats past the allocation
            np.testing.assert_allclose(buf[start:start + n], whole[start:start + n],
                                       rtol=2.5e-7, atol=0)
            assert np.array_equal(buf[:start], x[:start])  # nothing outside is touched
            assert np.array_equal(buf[start + n:], x[start + n:])
