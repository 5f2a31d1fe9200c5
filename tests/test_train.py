"""The training loop, datasets, checkpoints and `symnet train`."""

import json
import subprocess
import sys

import numpy as np
import pytest

import symnet as sn
from symnet import models
from symnet.errors import ConfigurationError
from symnet.train.loop import accuracy
from tests import zoo


def digits_split():
    data = sn.datasets.load("digits")
    return sn.datasets.split(data.X, data.Y, 0.2, seed=0)


def small_net(optimizer=None, hidden=8):
    """tests/zoo.py's digits network: the tests here use it with Adam or SGD (two modules for the whole file)."""
    return zoo.digits_small(optimizer, hidden)


# --- datasets --------------------------------------------------------------------

def test_datasets_shapes_and_split():
    digits = sn.datasets.load("digits")
    assert digits.X.shape == (1797, 64) and digits.Y.shape == (1797, 10) and digits.classes == 10
    assert digits.X.min() == 0.0 and digits.X.max() == 1.0
    assert np.array_equal(digits.Y.sum(axis=1), np.ones(1797))
    for name in ("xor", "spirals", "moons", "circles"):
        data = sn.datasets.load(name)
        assert data.Y.shape == (len(data.X), 1) and set(np.unique(data.Y)) == {0.0, 1.0}, name
    assert sn.datasets.load("regression").task == "regression"
    X_train, Y_train, X_test, Y_test = sn.datasets.split(digits.X, digits.Y, 0.2, seed=1)
    assert len(X_train) + len(X_test) == 1797
    per_class = Y_test.sum(axis=0) / digits.Y.sum(axis=0)            # stratified: 20 % of every class
    assert np.all(np.abs(per_class - 0.2) < 0.01)
    again = sn.datasets.split(digits.X, digits.Y, 0.2, seed=1)
    assert np.array_equal(again[0], X_train)
    scale = sn.datasets.Standardizer.fit(X_train)
    standardized = scale(X_train)
    varying = X_train.std(axis=0) > 0
    assert np.allclose(standardized.mean(axis=0), 0) and np.allclose(standardized.std(axis=0)[varying], 1)
    with pytest.raises(ConfigurationError, match="unknown dataset 'mnist'"):
        sn.datasets.load("mnist")


# --- fit -------------------------------------------------------------------------

def test_fit_digits_reaches_the_documented_accuracy():
    recipe = models.builtin("digits")
    X_train, Y_train, X_test, Y_test, _ = recipe.prepared_data(seed=0)
    net = recipe.model.compile(optimizer=recipe.make_optimizer())
    params = net.init(seed=0)
    history = sn.fit(net, params, X_train, Y_train, epochs=recipe.epochs, batch_size=recipe.batch_size, seed=0,
                     validation=(X_test, Y_test))
    assert len(history) == recipe.epochs and history.stopped is None
    assert history.val_accuracy[-1] >= 0.95
    assert history.loss[-1] < history.loss[0] / 5
    # the History's last validation accuracy is that of the returned parameters, counted independently
    hidden = 1 / (1 + np.exp(-(X_test @ params["W1"].T + params["b1"])))
    labels = np.argmax(hidden @ params["W2"].T + params["b2"], axis=1)
    assert np.mean(labels == np.argmax(Y_test, axis=1)) == history.val_accuracy[-1]


@pytest.mark.parametrize("name, epochs, threshold", [("xor", 2000, 1.0), ("spirals", 300, 0.9), ("moons", 60, 0.95)])
def test_fit_builtin_binary_problems(name, epochs, threshold):
    recipe = models.builtin(name)
    X_train, Y_train, X_test, Y_test, _ = recipe.prepared_data(seed=0)
    net = recipe.model.compile(optimizer=recipe.make_optimizer())
    params = net.init(seed=0)
    sn.fit(net, params, X_train, Y_train, epochs=epochs, batch_size=recipe.batch_size, seed=0)
    assert accuracy(net, params, X_train, Y_train) >= threshold


def test_same_seed_same_bits_and_resume_continues_bit_identically(tmp_path):
    X_train, Y_train, *_ = digits_split()
    X_train, Y_train = X_train[:300], Y_train[:300]
    reference = small_net(sn.optim.Adam(lr=0.01))
    uninterrupted = reference.init(seed=5)
    sn.fit(reference, uninterrupted, X_train, Y_train, epochs=6, batch_size=32, seed=9)

    first = small_net(sn.optim.Adam(lr=0.01))
    params = first.init(seed=5)
    path = tmp_path / "run.npz"
    sn.fit(first, params, X_train, Y_train, epochs=3, batch_size=32, seed=9, checkpoint=path)
    resumed_net = small_net(sn.optim.Adam(lr=0.01))          # a fresh network: state only from the file
    resumed = resumed_net.init(seed=123)
    history = sn.fit(resumed_net, resumed, X_train, Y_train, epochs=6, batch_size=32, resume=path)
    assert history.epoch == [1, 2, 3, 4, 5, 6]
    assert np.array_equal(resumed.flat, uninterrupted.flat)
    for name, value in reference.optimizer_state.items():
        assert np.array_equal(resumed_net.optimizer_state[name], value), name
    with pytest.raises(ConfigurationError, match="seed"):
        sn.fit(small_net(sn.optim.Adam(lr=0.01)), resumed, X_train, Y_train, epochs=7, seed=1, resume=path)


def test_nan_stops_at_once_and_restores_the_last_finite_state():
    data = sn.datasets.load("regression")
    X, Y = data.X * 100, data.Y
    model = sn.Sequential([sn.Dense(1, 1)], loss="mse")          # linear: SGD with a huge step diverges
    net = model.compile(optimizer=sn.optim.SGD(lr=1.0))
    params = net.init(seed=0)
    history = sn.fit(net, params, X, Y, epochs=50, batch_size=20, seed=0)
    assert history.stopped and history.stopped.startswith("the loss became")
    # the same steps by hand with net.step: the restored state is the one before the last finite step
    replay = model.compile(optimizer=sn.optim.SGD(lr=1.0))
    check = replay.init(seed=0)
    before, losses = [], []
    for epoch in range(1, 51):
        order = np.random.default_rng([0, epoch]).permutation(len(X))
        for low in range(0, len(X), 20):
            before.append(check.flat.copy())
            losses.append(replay.step(check, X[order][low:low + 20], Y[order][low:low + 20]))
            if not np.isfinite(losses[-1]):
                break
        if not np.isfinite(losses[-1]):
            break
    failing = len(losses) - 1
    assert failing >= 2 and f"epoch {epoch}, step {failing % 10 + 1};" in history.stopped
    assert np.array_equal(params.flat, before[failing - 1]) and np.isfinite(params.flat).all()
    assert len(history) == epoch - 1


def test_early_stopping_restores_the_best_epoch_and_callbacks_stop():
    X_train, Y_train, X_test, Y_test = digits_split()
    net = small_net(sn.optim.Adam(lr=0.05))
    params = net.init(seed=0)
    history = sn.fit(net, params, X_train[:200], Y_train[:200], epochs=200, batch_size=16, seed=0,
                     validation=(X_test, Y_test), early_stopping=3)
    assert history.stopped.startswith("early stopping") and len(history) < 200
    best = int(np.argmin(history.val_loss))
    assert len(history) - 1 - best == 3
    assert net.loss(params, X_test, Y_test) == pytest.approx(history.val_loss[best], rel=1e-12)

    seen = []
    history = sn.fit(small_net(), small_net().init(seed=0), X_train, Y_train, epochs=10, seed=0,
                     callbacks=[lambda record, params: seen.append(record["epoch"]) or record["epoch"] == 2])
    assert seen == [1, 2] and "callback" in history.stopped


def test_validation_split_and_progress_lines(capsys):
    X_train, Y_train, *_ = digits_split()
    net = small_net()
    history = sn.fit(net, net.init(seed=0), X_train, Y_train, epochs=2, seed=0, validation_split=0.25, verbose=True)
    assert history.val_accuracy[-1] is not None
    err = capsys.readouterr().err
    assert "epoch 1/2:" in err and "epoch 2/2:" in err and "val_accuracy" in err


def test_gd_uses_the_whole_set_as_one_batch():
    """test_optim's linear networks (tests/zoo.py), whose GD and SGD modules it compiles for sn.fit already."""
    rng = np.random.default_rng(8)
    X_train, Y_train = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
    gd = zoo.linear("GD", lr=0.2)
    sgd = zoo.linear("SGD", lr=0.2)
    first, second = gd.init(seed=0), sgd.init(seed=0)
    sn.fit(gd, first, X_train, Y_train, epochs=3, seed=0)
    sn.fit(sgd, second, X_train, Y_train, epochs=3, batch_size=None, seed=0)
    assert np.array_equal(first.flat, second.flat)
    minibatches = sgd.init(seed=0)
    sn.fit(sgd, minibatches, X_train, Y_train, epochs=3, batch_size=10, seed=0)     # 5 steps an epoch: not GD
    assert not np.array_equal(minibatches.flat, first.flat)


def test_fit_bad_arguments():
    X_train, Y_train, *_ = digits_split()
    net = small_net()
    params = net.init(seed=0)
    for kwargs, message in [(dict(epochs=-1), "epochs"), (dict(batch_size=0), "batch_size"),
                            (dict(validation=(X_train, Y_train), validation_split=0.1), "not both")]:
        with pytest.raises(ConfigurationError, match=message):
            sn.fit(net, params, X_train, Y_train, **kwargs)
    with pytest.raises(ConfigurationError, match="optimizer"):
        sn.fit(small_net().model.compile(), params, X_train, Y_train)


def test_loss_and_grad_writes_into_out_when_given():
    X_train, Y_train, *_ = digits_split()
    net = small_net()
    params = net.init(seed=0)
    X, Y = X_train[:16], Y_train[:16]
    loss, fresh = net.loss_and_grad(params, X, Y)
    out = net.init(seed=1)
    again, returned = net.loss_and_grad(params, X, Y, out=out)
    assert returned is out and again == loss
    assert np.array_equal(out.flat, fresh.flat)          # the same compiled call, so the same bits
    reference = small_net(hidden=9).init(seed=0)
    for wrong in (fresh.flat, {"W1": fresh["W1"]}, reference, sn.Sequential(
            [sn.Dense(64, 8, "tanh"), sn.Dense(8, 10)], loss="softmax_cross_entropy").compile(dtype="float32").init()):
        with pytest.raises(ConfigurationError, match="out must be float64 Parameters of this network"):
            net.loss_and_grad(params, X, Y, out=wrong)
    with pytest.raises(ConfigurationError, match="shares memory with the parameters"):
        net.loss_and_grad(params, X, Y, out=params)


def test_strided_or_foreign_flat_arrays_are_copied_or_refused():
    X_train, Y_train, *_ = digits_split()
    net = small_net(sn.optim.SGD(lr=0.1))
    params = net.init(seed=0)
    X, Y = X_train[:16], Y_train[:16]
    loss, grads = net.loss_and_grad(params, X, Y)
    buffer = np.zeros(2 * params.flat.size)
    buffer[::2] = params.flat
    view = type(params)(buffer[::2], params.layout)          # a strided flat array: packed into a copy
    assert net.loss_and_grad(view, X, Y)[0] == loss
    assert np.array_equal(net.predict(view, X), net.predict(params, X))
    before = view.flat.copy()
    net.step(view, X, Y)                                     # the update reaches the strided array
    assert not np.array_equal(view.flat, before) and np.array_equal(buffer[1::2], np.zeros(params.flat.size))
    # the compiled functions themselves refuse flat arrays of another length or layout; a network of short rows
    # (views with strides written in the code) is the one that could misread them. loss_value has not been called,
    # so its dispatcher still compiles for a strided array, and the check inside refuses it
    small = sn.Sequential([sn.Dense(2, 2, "relu"), sn.Dense(2, 1)]).compile()
    flat = small.init(seed=0).flat
    wide = np.zeros(2 * flat.size)
    for theta in (flat[:-1], wide[::2]):
        with pytest.raises(ValueError, match="wrong length, or not a contiguous float64 array"):
            small.module.loss_value(theta, X[:, :2], Y[:, :1])
    with pytest.raises(ValueError, match="wrong length"):
        net.module.loss_and_gradient(params.flat, X, Y, grads.flat[:-3])



# --- checkpoints -------------------------------------------------------------------

def test_checkpoint_round_trip_is_bit_exact_and_checks_the_model(tmp_path):
    net = small_net(sn.optim.Adam(lr=0.01))       # the module of the other tests here; its state has 3 arrays
    params = net.init(seed=2)
    X_train, Y_train, *_ = digits_split()
    sn.fit(net, params, X_train[:64], Y_train[:64], epochs=1, seed=0)
    path = sn.save(tmp_path / "deep" / "c.npz", params, net.optimizer_state, net.model, epoch=1, note="hello")
    with np.load(path, allow_pickle=False) as archive:        # plain arrays only
        assert all(archive[key].dtype != object for key in archive.files)
    loaded = sn.load(path, net.model)
    assert loaded.metadata["epoch"] == 1 and loaded.metadata["note"] == "hello"
    for name in params:
        assert np.array_equal(loaded.params[name], params[name]) and loaded.params[name].dtype == np.float64
    for name, value in net.optimizer_state.items():
        assert np.array_equal(loaded.optimizer_state[name], value)
    other = sn.Sequential([sn.Dense(64, 8, "relu"), sn.Dense(8, 10)], loss="softmax_cross_entropy")
    with pytest.raises(ConfigurationError, match="different model"):
        sn.load(path, other)
    with pytest.raises(ConfigurationError, match="no checkpoint"):
        sn.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigurationError, match="not a usable symnet checkpoint"):
        sn.load(tmp_path / "junk.npz")
    with pytest.raises(ConfigurationError, match=".npz"):
        sn.save(tmp_path / "c.txt", params)


# --- command line --------------------------------------------------------------------

def run_cli(*arguments, cwd=None):
    return subprocess.run([sys.executable, "-m", "symnet.cli", *arguments], capture_output=True, text=True, cwd=cwd)


def test_cli_train_json_and_resume(tmp_path):
    checkpoint = tmp_path / "m.npz"
    first = run_cli("train", "moons", "--epochs", "3", "--checkpoint", str(checkpoint), "--json")
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    for key in ("final_loss", "train_accuracy", "test_accuracy", "epochs", "seconds", "generated_module"):
        assert key in result
    assert result["epochs"] == 3 and checkpoint.exists()
    resumed = json.loads(run_cli("train", "moons", "--epochs", "5", "--resume", str(checkpoint), "--json").stdout)
    straight = json.loads(run_cli("train", "moons", "--epochs", "5", "--json").stdout)
    assert resumed["epochs"] == 5 and resumed["final_loss"] == straight["final_loss"]


def test_cli_train_user_model_file_and_errors(tmp_path):
    source = tmp_path / "mine.py"
    source.write_text("import numpy as np\nimport symnet as sn\n"
                      "model = sn.Sequential([sn.Dense(1, 8, 'softplus'), sn.Dense(8, 1)], loss='mse')\n"
                      "X = np.linspace(-1, 1, 50).reshape(-1, 1)\ndata = (X, X**2)\n"
                      "optimizer = sn.optim.Momentum(lr=0.05)\n")
    result = run_cli("train", str(source), "--epochs", "40", "--json")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["optimizer"].startswith("Momentum(lr=0.05") and output["final_loss"] < 0.01
    assert "test_accuracy" not in output
    for arguments, message in [(("train", "nosuch"), "unknown model"),
                               (("train", "xor", "--optimizer", "lbfgs"), "unknown optimizer"),
                               (("train", "xor", "--lr", "-1"), "lr must be")]:
        failed = run_cli(*arguments)
        assert failed.returncode == 2 and message in failed.stderr and len(failed.stderr.splitlines()) == 1
