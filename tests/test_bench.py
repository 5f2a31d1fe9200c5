"""The benchmark's references compute what symnet computes; `symnet bench` reports the documented numbers."""

import json
import time

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
    depth = len(config.sizes) - 1
    # the references are plain textbook back-propagation, independent of symnet; one step of each must agree
    by_numpy, by_numba = bench._weights(params, depth), bench._weights(params, depth)
    bench.numpy_step(by_numpy, X, Y, config)
    bench.numba_step(bench.numba_lists(by_numba), X, Y, config)
    reported = bench.check_agreement(config, net, params, X, Y)
    before = params.flat.copy()
    net.module.train_step(params.flat, X, Y, *net.step_arguments())
    moved, worst = np.abs(params.flat - before).max(), 0.0
    for number, ((W_numpy, b_numpy), (W_numba, b_numba)) in enumerate(zip(by_numpy, by_numba), start=1):
        for reference in (W_numpy, W_numba):
            worst = max(worst, np.abs(params[f"W{number}"] - reference).max())
        for reference in (b_numpy, b_numba):
            worst = max(worst, np.abs(params[f"b{number}"] - reference).max())
    assert moved > 1e-6 and worst < 1e-14                              # the step moved, and all three agree
    assert reported == worst                                          # what the benchmark reports is that difference


def test_cli_bench_json(capsys):
    assert main(["bench", "--configs", "xor", "--rounds", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (row,) = result["rows"]
    config = bench.CONFIGS["xor"]
    assert (row["config"], row["sizes"], row["hidden"], row["loss"], row["batch"]) == (
        "xor", "2-2-1", config.hidden, config.loss, config.batch)
    for key in ("symnet", "symnet_net_step", "symnet_epoch", "symnet_parallel", "numpy", "numba", "blas_floor",
                "cold_start_seconds", "warm_start_seconds"):
        assert isinstance(row[key], float) and np.isfinite(row[key]), key
    # the ratios are the reported times' ratios: the public call over the better reference, the raw step over the
    # BLAS floor
    assert row["ratio_to_best_reference"] == pytest.approx(row["symnet_net_step"] / min(row["numpy"], row["numba"]),
                                                          rel=1e-12)
    assert row["ratio_to_blas_floor"] == pytest.approx(row["symnet"] / row["blas_floor"], rel=1e-12)
    # xor's relu layer has no transcendental activation loop, so there is no parallel module to time: the column
    # repeats the serial step
    assert row["symnet_parallel"] == row["symnet"]
    assert "peers" not in row and "best_peer_over_symnet" not in row        # only with --peers
    assert row["max_disagreement"] < 1e-14
    assert main(["bench", "--configs", "nosuch"]) == 2
    assert main(["bench", "--configs", "xor", "--rounds", "0"]) == 2
    assert main(["bench", "--configs", "xor", "--dtype", "float32", "--peers"]) == 2     # peers are float64


def test_cli_bench_float32_times_a_float32_network_against_the_float64_references(capsys):
    assert main(["bench", "--configs", "xor", "--dtype", "float32", "--rounds", "1", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["dtype"] == "float32"
    # one float32 step against the float64 references: float32 rounding, not a wrong update
    assert 1e-12 < row["max_disagreement"] < 1e-5


@pytest.mark.parametrize("peer, module", [("jax", "jax"), ("torch", "torch"), ("pytensor", "pytensor")])
def test_peers_are_checked_against_symnet_before_they_are_timed(peer, module):
    pytest.importorskip(module)
    config = bench.CONFIGS["digits"]
    net = config.model().compile(optimizer=SGD(lr=bench.LEARNING_RATE))
    params = net.init(seed=0)
    X, Y = config.data()
    steps = bench.peer_steps(config, params, X, Y, net.loss(params, X, Y))
    steps[peer]()                                                   # runs (the loss was checked inside)
    with pytest.raises(ConfigurationError, match="not comparable"):
        bench.peer_steps(config, params, X, Y, net.loss(params, X, Y) * 1.001)


def test_interleaved_medians_time_each_function_in_every_round():
    from symnet.timing import interleaved_medians

    order = []

    def busy(name, seconds):
        def run():
            order.append(name)
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                pass
        return run

    medians = interleaved_medians({"fast": busy("fast", 1e-5), "slow": busy("slow", 1e-3)}, rounds=3, budget=0.01)
    assert set(medians) == {"fast", "slow"}
    assert medians["slow"] >= 1e-3 and medians["fast"] >= 1e-5          # each call waits at least that long
    # in turns: a block of calls of one function, then of the other, three rounds of each
    blocks = [name for number, name in enumerate(order) if number == 0 or order[number - 1] != name]
    assert blocks == ["fast", "slow"] * 3
    assert order.count("fast") >= 3 * 21 and order.count("slow") >= 3 * 21   # a warm-up and ≥ 20 timed calls a round
