"""symnet sweep on Dask: each run is what `symnet train --json` gives (the reference is that command's own output);
a worker killed mid-sweep loses no run and duplicates none; a rerun skips recorded runs; bad grids give one line.

One LocalCluster of two worker processes serves the module.  Its workers keep their generated folders under the
tests' module cache (``<cache>/generated/sweep/worker-<n>``), so their Numba compiles are cached across runs too.
"""

import importlib.util
import json
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from symnet.cli import main
from symnet.generate import modules

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")
sweep_module = sys.modules["symnet.sweep"]        # `symnet.sweep` the attribute is the function sn.sweep
sweep = sweep_module.sweep

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sweep_xor.py"
COMPARED = ("model", "network", "epochs", "final_loss", "test_loss", "train_accuracy", "test_accuracy", "stopped")


@pytest.fixture(scope="module")
def cluster(test_cache):
    """Two single-threaded worker processes, started with the test cache as their generated and record folders
    (a worker the kill test restarts gets the same: the tests' own fixture has set them by then)."""
    generated, records = test_cache
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(modules.ENVIRONMENT_VARIABLE, str(generated))
        patch.setenv(modules.RECORD_VARIABLE, str(records))
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0",
                                      preload=["symnet.sweep"]) as local:     # as sweep starts its own
            yield local


def train_json(capsys, optimizer, lr, seed, epochs):
    """What `symnet train xor ... --json` prints, parsed."""
    assert main(["train", "xor", "--optimizer", optimizer, "--lr", str(lr), "--seed", str(seed),
                 "--epochs", str(epochs), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_two_worker_processes_give_what_symnet_train_gives(cluster, tmp_path, capsys):
    out = tmp_path / "runs.jsonl"
    result = sweep("xor", {"optimizer": "adam", "lr": [0.05, 0.01], "seed": "0:3"}, epochs=300, out=out,
                   scheduler=cluster.scheduler_address)
    assert result.new == 6 and len(lines(out)) == 6
    assert [(r["optimizer"], r["lr"], r["seed"]) for r in result.records] == \
        [("Adam", lr, seed) for lr in (0.05, 0.01) for seed in range(3)]
    for record in result.records:
        reference = train_json(capsys, "adam", record["lr"], record["seed"], 300)
        assert {key: record.get(key) for key in COMPARED} == {key: reference.get(key) for key in COMPARED}
        assert set(reference) - {"optimizer"} <= set(record)
        assert f"{os.sep}sweep{os.sep}worker-" in record["generated_module"]
    assert len({record["worker"] for record in result.records}) == 2
    assert sorted(map(json.dumps, lines(out))) == sorted(json.dumps(r) for r in result.records)
    solved = sum(record["train_accuracy"] == 1.0 for record in result.records[:3])
    assert result.summary[0]["successes"] == solved and result.summary[0]["runs"] == 3


def test_a_model_file_is_sent_as_its_declaration(cluster, tmp_path, capsys):
    model = tmp_path / "two_relu.py"
    model.write_text("import symnet as sn\n"
                     "model = sn.Sequential([sn.Dense(2, 2, 'relu'), sn.Dense(2, 1)], loss='mse')\n"
                     "data = 'xor'\noptimizer = sn.optim.Adam(lr=0.05, beta1=0.8)\n")
    status = main(["sweep", str(model), "--seeds", "0,1", "--epochs", "40", "--scheduler", cluster.scheduler_address,
                   "--out", str(tmp_path / "runs.jsonl"), "--json"])
    assert status == 0 and json.loads(capsys.readouterr().out)["summary"][0]["lr"] == 0.05
    for record in lines(tmp_path / "runs.jsonl"):
        assert main(["train", str(model), "--seed", str(record["seed"]), "--epochs", "40", "--json"]) == 0
        reference = json.loads(capsys.readouterr().out)
        assert {key: record.get(key) for key in COMPARED} == {key: reference.get(key) for key in COMPARED}
        assert record["model"] == "two_relu" and reference["optimizer"].startswith("Adam(lr=0.05, beta1=0.8")


def test_a_worker_killed_mid_sweep_loses_and_repeats_no_run(cluster, tmp_path, capsys):
    out = tmp_path / "runs.jsonl"
    grid = {"optimizer": "adam", "lr": [0.05], "seed": range(16)}
    with ThreadPoolExecutor(1) as pool, distributed.Client(cluster) as client:
        running = pool.submit(sweep, "xor", grid, epochs=2000, out=out, scheduler=cluster.scheduler_address)
        while not (out.exists() and out.read_text().count("\n") >= 2) and not running.done():
            time.sleep(0.01)
        busy = [worker for worker, keys in client.processing().items() if keys]
        recorded_at_kill = out.read_text().count("\n")
        os.kill(client.run(os.getpid, workers=busy[:1])[busy[0]], signal.SIGKILL)   # its current run is lost
        result = running.result(timeout=120)
    assert recorded_at_kill < 16 and result.new == 16
    records = lines(out)
    assert sorted(record["seed"] for record in records) == list(range(16))
    last = records[-1]
    assert last["final_loss"] == train_json(capsys, "adam", 0.05, last["seed"], 2000)["final_loss"]


def test_a_rerun_skips_recorded_runs_and_a_torn_last_line(cluster, tmp_path, monkeypatch):
    out = tmp_path / "runs.jsonl"
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
    first = sweep("xor", {"lr": [0.05], "seed": "0:2"}, epochs=100, out=out)
    before = out.read_bytes()
    with open(out, "ab") as stream:
        stream.write(b'{"model": "xor", "final_lo')          # a write cut short by a killed process
    again = sweep("xor", {"lr": [0.05], "seed": "0,1,2"}, epochs=100, out=out)
    assert (first.new, again.new, again.workers) == (2, 1, 2)
    assert out.read_bytes().startswith(before) and [r["seed"] for r in lines(out)][2:] == [2]
    assert again.records[:2] == first.records
    nothing = sweep("xor", {"lr": "0.05", "seed": "2,0"}, epochs=100, out=out)
    assert (nothing.new, nothing.workers) == (0, 0) and len(lines(out)) == 3
    other = sweep("xor", {"lr": [0.05], "seed": [0]}, epochs=101, out=out)     # other settings: another run
    assert other.new == 1 and len(lines(out)) == 4


def test_the_command_on_its_own_local_cluster(tmp_path, capsys):
    out, plot = tmp_path / "runs.jsonl", tmp_path / "success.png"
    status = main(["sweep", "xor", "--optimizer", "adam", "--lr", "0.05,0.01", "--seeds", "0:2", "--epochs", "50",
                   "--workers", "1", "--threshold", "0.1", "--out", str(out), "--plot", str(plot)])
    printed = capsys.readouterr().out
    assert status == 0 and "on 1 worker; success: final loss < 0.1" in printed and plot.stat().st_size > 0
    assert [row.split()[:2] for row in printed.splitlines()[3:5]] == [["Adam", "0.05"], ["Adam", "0.01"]]
    assert main(["sweep", "xor", "--lr", "0.01,0.05", "--seeds", "1,0", "--epochs", "50", "--threshold", "0.1",
                 "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["runs"], result["new"], result["skipped"], result["workers"]) == (4, 0, 4, 0)
    for row in result["summary"]:
        losses = [r["final_loss"] for r in lines(out) if r["lr"] == row["lr"]]
        assert row["successes"] == sum(loss < 0.1 for loss in losses)
        assert row["ci_low"] <= row["success_rate"] <= row["ci_high"]


@pytest.mark.parametrize("argv, fragment", [
    (["--seeds", "5:5"], "gives no seed"),
    (["--seeds", "0:3", "--optimizer", "adam,adamw"], "unknown optimizer 'adamw'"),
    (["--seeds", "0:3", "--lr", "-0.1"], "learning rate '-0.1' is not a number > 0"),
    (["--seeds", "0:3", "--lr", "0"], "is not a number > 0"),
    (["--seeds", "0:3", "--lr", "0.1,,0.2"], "empty value"),
    (["--seeds", "0-9"], "expected START:STOP"),
    (["--seeds", "0:3", "--workers", "0"], "workers must be an integer ≥ 1"),
    (["--seeds", "0:3", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "a scheduler's cluster has its own"),
    (["--seeds", "0:3", "--batch-size", "0"], "batch_size must be an integer ≥ 1"),
])
def test_bad_grids_give_one_line(capsys, argv, fragment):
    assert main(["sweep", "xor", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and fragment in err
    assert main(["sweep", "xor", *argv, "--json"]) == 2
    assert fragment in json.loads(capsys.readouterr().out)["error"]


def test_without_distributed_it_says_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)        # `import distributed` now fails
    assert main(["sweep", "xor", "--seeds", "0:3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'symnet[sweep]'" in err


def test_a_broken_line_inside_the_file_is_named(tmp_path, capsys):
    out = tmp_path / "runs.jsonl"
    out.write_text('{"model": "xor"}\nnot json\n{"model": "xor"}\n')
    assert main(["sweep", "xor", "--seeds", "0:3", "--out", str(out)]) == 2
    assert f"{out}:2 is not a JSON object" in capsys.readouterr().err


@pytest.mark.parametrize("successes, runs", [(0, 10), (0, 6), (6, 6), (5, 10), (9, 10), (1, 3), (700, 1000)])
def test_the_wilson_interval_inverts_the_score_test(successes, runs):
    """Its ends are the rates p whose score test just accepts the observed rate: |p̂ − p| = z √(p(1 − p)/n)."""
    observed, z = successes / runs, 1.959963984540054
    ends = sweep_module.wilson(successes, runs)
    assert 0 <= ends[0] <= observed <= ends[1] <= 1 and (ends[0] == 0) == (successes == 0)
    for p in ends:
        assert abs(observed - p) == pytest.approx(z * (p * (1 - p) / runs) ** 0.5, abs=1e-12)


def test_the_example_gives_the_same_runs_serially_and_on_the_cluster(cluster, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("example_sweep_xor", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(["--seeds", "3", "--epochs", "50", "--optimizers", "adam", "--scheduler",
                           cluster.scheduler_address, "--out", str(tmp_path)])
    assert result["identical"] and result["solved_serially"] == {("Adam", 0.05): result["summary"][0]["successes"]}
    assert "final losses identical: True" in capsys.readouterr().out


def test_an_unreachable_scheduler_is_one_line(capsys):
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert main(["sweep", "xor", "--seeds", "0:2", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the Dask scheduler at 'tcp://127.0.0.1:1'" in err
