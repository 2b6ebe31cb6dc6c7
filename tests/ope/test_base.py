"""The machinery shared by every estimator, tested on its own."""

import math

import numpy as np
import pytest

from ope.base import bootstrap_means


def test_bootstrap_means_both_paths_agree_in_distribution():
    rng = np.random.default_rng(0)
    discrete = rng.integers(3, size=(5000, 1)).astype(float)  # 3 distinct rows: multinomial
    continuous = discrete + rng.normal(0, 1e-9, size=discrete.shape)  # all distinct: gather
    a = bootstrap_means(discrete, n_bootstrap=400, seed=1)[:, 0]
    b = bootstrap_means(continuous, n_bootstrap=400, seed=1, max_block=20_000)[:, 0]
    # both estimate the sd of the mean, sd/sqrt(n); with 400 resamples the
    # sample sd of the means is within ~3.5% (1/sqrt(2*400)) of it, so 15% is safe
    expected = discrete.std() / math.sqrt(5000)
    assert a.std() == pytest.approx(expected, rel=0.15)
    assert b.std() == pytest.approx(expected, rel=0.15)
    # the mean of 400 resample means is within 4 sd (sd = expected / sqrt(400)) of the data mean
    assert a.mean() == pytest.approx(discrete.mean(), abs=4 * expected / math.sqrt(400))
