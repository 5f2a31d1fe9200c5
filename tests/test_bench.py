"""The benchmark's references compute what symnet computes; `symnet bench` reports the documented numbers."""

import json

import numpy as np
import pytest

from symnet import bench
from symnet.cli import main
from symnet.errors import ConfigurationError
from symnet.train.optim import SGD


@pytest.mark.parametrize("name", list(bench.CONFIGS))
def test_generated_step_and_hand_written_references_agree(name):
    config = bench.CONFIGS[name]
    net = config.model().compile(optimizer=SGD(lr=bench.LEARNING_RATE))
    params = net.init(seed=0)
    X, Y = config.data()
    # the references are plain textbook back-propagation, independent of symnet; one step of each must agree
    assert bench.check_agreement(config, net, params, X, Y) < 1e-14
    before = params.flat.copy()
    net.module.train_step(params.flat, X, Y, *net.step_arguments())
    assert np.abs(params.flat - before).max() > 1e-6               # the step did move the parameters


def test_cli_bench_json(capsys):
    assert main(["bench", "--configs", "xor", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (row,) = result["rows"]
    for key in ("symnet", "symnet_epoch", "symnet_serial", "numpy", "numba", "ratio_to_best_reference", "blas_floor",
                "cold_start_seconds", "warm_start_seconds"):
        assert row[key] > 0
    assert row["max_disagreement"] < 1e-14
    assert main(["bench", "--configs", "nosuch"]) == 2


@pytest.mark.parametrize("peer, module", [("jax", "jax"), ("torch", "torch"), ("pytensor", "pytensor")])
def test_peers_are_checked_against_symnet_before_they_are_timed(peer, module):
    pytest.importorskip(module)
    config = bench.CONFIGS["digits"]
    net = config.model().compile(optimizer=SGD(lr=bench.LEARNING_RATE))
    params = net.init(seed=0)
    X, Y = config.data()
    timed = bench.bench_peers(config, params, X, Y, net.loss(params, X, Y))
    assert isinstance(timed[peer], float) and timed[peer] > 0
    with pytest.raises(ConfigurationError, match="not comparable"):
        bench.bench_peers(config, params, X, Y, net.loss(params, X, Y) * 1.001)
