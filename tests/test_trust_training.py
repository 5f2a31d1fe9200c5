"""Training and checkpoints refuse what they cannot honour, in one clear line (issue 13, items 9–14).

Bad settings, damaged or garbled checkpoint files, non-finite saved numbers, resuming with other settings,
an unusable checkpoint path, too few epochs to resume and parameters of another network's layout.
"""

import json
import os
import time

import numpy as np
import pytest

import symnet as sn
from symnet.cli import main
from symnet.errors import ConfigurationError, NonFiniteError, ShapeError
from symnet.train.checkpoint import SCALAR_TYPES

X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.5, 0.2], [0.1, 0.9]])
Y = np.array([[0.0], [1.0], [1.0], [0.0], [0.3], [0.8]])


def tiny_model():
    return sn.Sequential([sn.Dense(2, 3, "tanh"), sn.Dense(3, 1)], loss="mse")


def tiny_net(optimizer=None):
    return tiny_model().compile(optimizer=optimizer or sn.optim.Adam(lr=0.01))


def trained_checkpoint(path, epochs=2, **settings):
    """A checkpoint written by fit: Adam(lr=0.01), batch 4, seed 3 unless ``settings`` say otherwise."""
    net = tiny_net(settings.pop("optimizer", None))
    options = {"batch_size": 4, "seed": 3, **settings}
    sn.fit(net, net.init(seed=0), X, Y, epochs=epochs, checkpoint=path, verbose=False, **options)
    return path


def members(path):
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def rewritten(source, target, replace):
    """A copy of the checkpoint ``source`` at ``target`` with the members in ``replace`` replaced (None: removed)."""
    arrays = members(source)
    for key, value in replace.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    with open(target, "wb") as stream:
        np.savez(stream, **arrays)
    return target


def with_meta(source, target, change):
    meta = json.loads(str(members(source)["meta"]))
    return rewritten(source, target, {"meta": np.array(json.dumps(change(meta)))})


def one_line_error(error):
    text = str(error.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def cli(capsys, *argv):
    status = main(list(argv))
    return status, *capsys.readouterr()


# --- 9: bad arguments are one clear error ------------------------------------------------------------

def test_sequential_refuses_what_is_not_a_layer():
    with pytest.raises(ConfigurationError, match=r"layer 1 is 'dense' \(str\), not a layer; .*sn\.Dense\(") as error:
        sn.Sequential(["dense"])
    one_line_error(error)
    with pytest.raises(ConfigurationError, match=r"layer 2 is") as error:
        sn.Sequential([sn.Dense(2, 3), "x" * 5000])
    assert len(str(error.value)) < 300                     # the 5000 characters are cut
    with pytest.raises(ConfigurationError, match="a list of layers"):
        sn.Sequential(sn.Dense(2, 3))


def test_compile_refuses_an_optimizer_name_or_class_and_says_what_to_pass():
    for given, shown in [("Adam", "'Adam'"), (sn.optim.Adam, "the class Adam")]:
        with pytest.raises(ConfigurationError, match=rf"got {shown}; pass an instance such as "
                                                     r"optimizer=sn\.optim\.Adam\(lr=0\.01\)"):
            tiny_model().compile(optimizer=given)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True, None])
def test_init_refuses_seeds_that_are_not_integers_at_least_0(seed):
    net = tiny_model().compile()
    with pytest.raises(ConfigurationError, match="seed must be an integer ≥ 0"):
        net.init(seed=seed)


@pytest.mark.parametrize("weight_decay", [float("nan"), float("inf"), -0.1, True, "0.1"])
def test_weight_decay_must_be_a_finite_number_at_least_0(weight_decay):
    with pytest.raises(ConfigurationError, match="weight_decay must be a finite number ≥ 0"):
        sn.Sequential([sn.Dense(2, 1)], weight_decay=weight_decay)


@pytest.mark.parametrize("arguments, message", [
    (dict(early_stopping=-1), "early_stopping must be a positive integer"),
    (dict(early_stopping=0), "early_stopping must be a positive integer"),
    (dict(early_stopping=2.5), "early_stopping must be a positive integer"),
    (dict(seed=-1), "seed must be an integer ≥ 0"),
    (dict(seed=0.5), "seed must be an integer ≥ 0"),
    (dict(batch_size=0, optimizer=sn.optim.GD(lr=0.1)), "batch_size must be a positive integer"),
    (dict(validation_split="0.2"), "validation_split must be a fraction"),
    (dict(validation_split=float("nan")), "validation_split must be a fraction"),
])
def test_fit_refuses_bad_settings_before_training(arguments, message):
    net = tiny_net(arguments.pop("optimizer", None))
    params = net.init(seed=0)
    before = params.flat.copy()
    with pytest.raises(ConfigurationError, match=message):
        sn.fit(net, params, X, Y, epochs=2, verbose=False, **arguments)
    assert np.array_equal(params.flat, before)


@pytest.mark.parametrize("argv, message", [
    (("--seed", "-1"), "--seed must be an integer ≥ 0, got '-1'"),
    (("--batch-size", "0"), "batch_size must be a positive integer or None, got '0'"),
    (("--epochs", "-1"), "epochs must be an integer ≥ 0, got -1"),
    (("--lr", "nan"), "lr must be a number in (0.0, inf), got nan"),
    (("--lr", "inf"), "lr must be a number in (0.0, inf), got inf"),
    (("--lr", "0"), "lr must be a number in (0.0, inf), got 0.0"),
])
def test_cli_train_bad_numbers_are_one_error_line(capsys, argv, message):
    status, out, err = cli(capsys, "train", "xor", "--epochs", "1", *argv)
    assert status == 2 and err.count("\n") == 1 and message in err, err


# --- 10: damaged files and garbled metadata -----------------------------------------------------------

def damaged_files(directory, good):
    """name → path of a file that must not load as a checkpoint."""
    content = good.read_bytes()
    files = {"empty": b"", "random": np.random.default_rng(0).bytes(300), "truncated": content[: len(content) // 2],
             "pickle": b"\x80\x04\x95" + b"\0" * 40}
    paths = {name: directory / f"{name}.npz" for name in files}
    for name, data in files.items():
        paths[name].write_bytes(data)
    np.save(directory / "plain.npy", np.zeros(3))
    os.replace(directory / "plain.npy", directory / "npy.npz")
    paths["npy"] = directory / "npy.npz"
    paths["object array"] = rewritten(good, directory / "objects.npz", {"param/W1": np.array([{"a": 1}], object)})
    paths["no meta"] = rewritten(good, directory / "nometa.npz", {"meta": None})
    paths["meta not text"] = rewritten(good, directory / "metaint.npz", {"meta": np.array(5)})
    paths["text parameter"] = rewritten(good, directory / "textparam.npz", {"param/W1": np.array(["x"])})
    return paths


def test_damaged_files_are_refused_in_one_line_that_never_suggests_allow_pickle(tmp_path):
    good = trained_checkpoint(tmp_path / "good.npz")
    for name, path in damaged_files(tmp_path, good).items():
        with pytest.raises(ConfigurationError, match="is not a usable symnet checkpoint: ") as error:
            sn.load(path)
        text = one_line_error(error)
        assert "allow_pickle" not in text and "unpickl" not in text and len(text) < 400, (name, text)
    with pytest.raises(ConfigurationError, match="holds Python objects, which symnet never loads"):
        sn.load(tmp_path / "objects.npz")
    with pytest.raises(ConfigurationError, match="is a folder, not a checkpoint file"):
        sn.load(tmp_path)


GARBLED = {
    "meta a list": lambda meta: [meta],
    "meta a string": lambda meta: "epoch 2",
    "epoch absent": lambda meta: {k: v for k, v in meta.items() if k != "epoch"},
    "seed absent": lambda meta: {k: v for k, v in meta.items() if k != "seed"},
    "epoch a string": lambda meta: {**meta, "epoch": "2"},
    "epoch a list": lambda meta: {**meta, "epoch": [2]},
    "epoch negative": lambda meta: {**meta, "epoch": -1},
    "seed a float": lambda meta: {**meta, "seed": 3.5},
    "history a string": lambda meta: {**meta, "history": "x"},
    "records not objects": lambda meta: {**meta, "history": {"records": [1, 2]}},
    "settings nested": lambda meta: {**meta, "settings": {"lr": [0.01]}},
    "changes garbled": lambda meta: {**meta, "history": {**meta["history"], "changes": [{"epoch": "x"}]}},
}


@pytest.mark.parametrize("garble", GARBLED, ids=list(GARBLED))
def test_garbled_metadata_is_refused_when_resuming(tmp_path, garble):
    good = trained_checkpoint(tmp_path / "good.npz")
    path = with_meta(good, tmp_path / "bad.npz", GARBLED[garble])
    net = tiny_net()
    with pytest.raises(ConfigurationError, match=r"'.*bad\.npz' is not a usable symnet checkpoint: its metadata") \
            as error:
        sn.fit(net, net.init(seed=0), X, Y, epochs=4, batch_size=4, seed=3, resume=path, verbose=False)
    one_line_error(error)


def test_metadata_that_is_not_json_is_refused(tmp_path):
    path = rewritten(trained_checkpoint(tmp_path / "good.npz"), tmp_path / "bad.npz", {"meta": np.array("{" * 100000)})
    with pytest.raises(ConfigurationError, match="its metadata is not JSON: '{{{") as error:
        sn.load(path)
    assert len(one_line_error(error)) < 300


# --- 11: non-finite saved numbers ----------------------------------------------------------------------

@pytest.mark.parametrize("member, name", [("param/W1", "parameter 'W1'"), ("state/r", "optimizer state 'r'"),
                                          ("state/step", "optimizer state 'step'")])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_parameters_or_state_are_refused(tmp_path, member, name, bad):
    good = trained_checkpoint(tmp_path / "good.npz")
    value = members(good)[member].copy()
    value.flat[-1] = bad
    path = rewritten(good, tmp_path / "bad.npz", {member: value})
    net = tiny_net()
    params = net.init(seed=0)
    before = params.flat.copy()
    with pytest.raises(NonFiniteError, match=rf"{name} holds NaN or infinity; training cannot continue from it"):
        sn.fit(net, params, X, Y, epochs=4, batch_size=4, seed=3, resume=path, verbose=False)
    assert np.array_equal(params.flat, before)


@pytest.mark.parametrize("member, value, fragment", [
    ("state/step", np.array([1.5]), "step count"),
    ("state/step", np.array([-3.0]), "step count"),
    ("param/W1", None, "symnet saves floats"),
    ("param/zzz", np.zeros(3), "does not have: zzz"),
])
def test_a_checkpoint_with_an_impossible_step_count_or_foreign_parameters_is_refused(tmp_path, member, value,
                                                                                     fragment):
    good = trained_checkpoint(tmp_path / "good.npz")
    if value is None:
        value = members(good)[member].astype(np.int64)
    path = rewritten(good, tmp_path / "bad.npz", {member: value})
    net = tiny_net()
    with pytest.raises(sn.SymnetError, match=fragment):
        sn.fit(net, net.init(seed=0), X, Y, epochs=4, batch_size=4, seed=3, resume=path, verbose=False)


# --- 12: resuming with other settings ---------------------------------------------------------------------

@pytest.mark.parametrize("change, named", [
    (dict(optimizer=sn.optim.Adam(lr=0.02)), "lr 0.01 → 0.02"),
    (dict(optimizer=sn.optim.Adam(lr=0.01, beta2=0.99)), "beta2 0.999 → 0.99"),
    (dict(batch_size=2), "batch_size 4 → 2"),
    (dict(seed=4), "seed 3 → 4"),
    (dict(validation_split=0.5), "validation_split None → 0.5"),
    (dict(Y=Y * 2), "training_data 'sha256:"),
    (dict(optimizer=sn.optim.SGD(lr=0.01)), "optimizer 'Adam' → 'SGD'"),
    (dict(weight_decay=0.1), "weight_decay 0.0 → 0.1"),
])
def test_resume_with_another_setting_is_refused_naming_it(tmp_path, change, named):
    path = trained_checkpoint(tmp_path / "run.npz")
    model = sn.Sequential(tiny_model().layers, loss="mse", weight_decay=change.pop("weight_decay", 0.0))
    net = model.compile(optimizer=change.pop("optimizer", sn.optim.Adam(lr=0.01)))
    options = {"batch_size": 4, "seed": 3, "Y": Y, **change}
    params = net.init(seed=0)
    before = params.flat.copy()
    with pytest.raises(ConfigurationError, match="was trained with other settings") as error:
        sn.fit(net, params, X, epochs=4, resume=path, verbose=False, **options)
    assert named in one_line_error(error) and "allow_changes=True" in str(error.value)
    assert np.array_equal(params.flat, before)


def test_allowed_change_is_recorded_in_the_history_and_later_checkpoints(tmp_path):
    path = trained_checkpoint(tmp_path / "run.npz")
    net = tiny_net(sn.optim.Adam(lr=0.02))
    params = net.init(seed=0)
    history = sn.fit(net, params, X, Y, epochs=4, batch_size=4, seed=3, resume=path, checkpoint=path,
                     allow_changes=True, verbose=False)
    expected = [{"epoch": 3, "changed": {"lr": {"from": 0.01, "to": 0.02}}}]
    assert history.changes == expected and history.epoch == [1, 2, 3, 4]
    saved = sn.load(path).metadata
    assert saved["history"]["changes"] == expected and saved["settings"]["lr"] == 0.02 and saved["epoch"] == 4
    assert all(isinstance(value, SCALAR_TYPES) for value in saved["settings"].values())
    # the new settings are now the checkpoint's: going on with them needs no permission
    again = sn.fit(tiny_net(sn.optim.Adam(lr=0.02)), net.init(seed=0), X, Y, epochs=5, batch_size=4, resume=path,
                   verbose=False)
    assert again.changes == expected and again.epoch == [1, 2, 3, 4, 5]


def test_allowed_optimizer_change_starts_the_new_optimizer_afresh(tmp_path):
    path = trained_checkpoint(tmp_path / "run.npz")
    net = tiny_net(sn.optim.Momentum(lr=0.1, momentum=0.5))
    net.optimizer_state["v"][...] = 7.0                  # left over from an earlier run of this network
    params = net.init(seed=0)
    history = sn.fit(net, params, X, Y, epochs=3, batch_size=6, seed=3, resume=path, allow_changes=True,
                     verbose=False)
    changed = history.changes[0]["changed"]
    assert changed["optimizer"] == {"from": "Adam", "to": "Momentum"} and changed["beta1"] == {"from": 0.9, "to": None}
    assert changed["momentum"] == {"from": None, "to": 0.5} and changed["batch_size"] == {"from": 4, "to": 6}
    # one full-batch momentum step from the checkpoint's parameters with v = 0: v = −η g, θ + v
    reference = tiny_model().compile()
    start = reference.pack(sn.load(path).params)
    _, gradient = reference.loss_and_grad(start, X, Y)
    np.testing.assert_allclose(params.flat, start.flat - 0.1 * gradient.flat, rtol=0, atol=1e-13)


def test_cli_resume_with_another_lr_is_refused_unless_allowed(capsys, tmp_path):
    path = str(tmp_path / "xor.npz")
    assert cli(capsys, "train", "xor", "--epochs", "2", "--checkpoint", path, "--json")[0] == 0
    status, _, err = cli(capsys, "train", "xor", "--epochs", "4", "--resume", path, "--lr", "0.1")
    assert status == 2 and err.count("\n") == 1 and "lr 0.05 → 0.1" in err and "--allow-changes" in err
    status, out, err = cli(capsys, "train", "xor", "--epochs", "4", "--resume", path, "--checkpoint", path, "--lr",
                           "0.1", "--allow-changes", "--json")
    assert status == 0, err
    assert json.loads(out)["epochs"] == 4
    assert sn.load(path).metadata["history"]["changes"] == [{"epoch": 3, "changed": {"lr": {"from": 0.05, "to": 0.1}}}]


# --- 13: the checkpoint path, too few epochs, stale temporaries, permissions ---------------------------

def test_checkpoint_path_is_checked_before_any_training(tmp_path):
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "file").write_text("")
    net = tiny_net()
    params = net.init(seed=0)
    before = params.flat.copy()
    epochs_run = []
    for path, message in [(tmp_path, "must end in .npz"), (tmp_path / "folder.npz", "is a folder; give a file in it"),
                          (tmp_path / "file" / "c.npz", "is a file, not a folder")]:
        with pytest.raises(ConfigurationError, match=message):
            sn.fit(net, params, X, Y, epochs=2, checkpoint=path, verbose=False,
                   callbacks=[lambda record, params: epochs_run.append(record)])
    assert epochs_run == [] and np.array_equal(params.flat, before)


def test_cli_checkpoint_folder_is_one_error_line(capsys, tmp_path):
    (tmp_path / "c.npz").mkdir()
    status, _, err = cli(capsys, "train", "xor", "--epochs", "1", "--checkpoint", str(tmp_path / "c.npz"))
    assert status == 2 and err.count("\n") == 1 and "is a folder" in err


def test_resuming_with_no_more_epochs_than_the_checkpoint_is_an_error(capsys, tmp_path):
    path = trained_checkpoint(tmp_path / "run.npz", epochs=3)
    for epochs in (2, 3):
        net = tiny_net()
        with pytest.raises(ConfigurationError, match=f"already holds 3 epochs, and epochs={epochs} is the total, "
                                                     "also when resuming: give more than 3"):
            sn.fit(net, net.init(seed=0), X, Y, epochs=epochs, batch_size=4, seed=3, resume=path, verbose=False)
    xor = str(tmp_path / "xor.npz")
    assert cli(capsys, "train", "xor", "--epochs", "3", "--checkpoint", xor, "--json")[0] == 0
    status, out, err = cli(capsys, "train", "xor", "--epochs", "2", "--resume", xor)
    assert status == 2 and err.count("\n") == 1 and "already holds 3 epochs" in err and out == ""


def test_saving_removes_stale_temporaries_and_honours_the_umask(tmp_path):
    path = tmp_path / "run.npz"
    stale, fresh = tmp_path / "run.npz.k1lled.tmp", tmp_path / "run.npz.writing.tmp"
    for leftover in (stale, fresh):
        leftover.write_bytes(b"half a file")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    previous = os.umask(0o022)
    try:
        trained_checkpoint(path, epochs=1)
    finally:
        os.umask(previous)
    assert not stale.exists() and fresh.exists()         # a fresh one may belong to a writer still running
    assert path.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz", "run.npz.writing.tmp"]


# --- 14: parameters carry their layout ---------------------------------------------------------------------

def test_step_refuses_parameters_of_another_layout_of_the_same_size():
    wide = sn.Sequential([sn.Dense(1, 4, "tanh"), sn.Dense(4, 1)], loss="mse").compile()
    net = sn.Sequential([sn.Dense(2, 3, "tanh"), sn.Dense(3, 1)], loss="mse").compile(sn.optim.SGD(lr=0.1))
    foreign = wide.init(seed=0)
    assert foreign.flat.size == net.size == 13
    before = foreign.flat.copy()
    with pytest.raises(ShapeError, match=r"parameter W1 has shape \(4, 1\); expected \(3, 2\)"):
        net.step(foreign, X, Y)
    assert np.array_equal(foreign.flat, before)


def test_parameters_of_another_layout_with_the_same_names_and_shapes_are_packed_by_name():
    deep = sn.Sequential([sn.Dense(2, 3, "tanh"), sn.Dense(3, 1), sn.Dense(1, 1)], loss="mse").compile()
    net = tiny_net(sn.optim.SGD(lr=0.1))
    foreign = deep.init(seed=1)
    as_dict = {name: value.copy() for name, value in foreign.items()}
    W3 = foreign["W3"].copy()
    assert net.step(foreign, X, Y) == net.step(as_dict, X, Y)
    for name in ("W1", "b1", "W2", "b2"):
        assert np.array_equal(foreign[name], as_dict[name])
    assert np.array_equal(foreign["W3"], W3)


def test_pack_returns_parameters_of_its_own_layout_as_they_are():
    net = tiny_net()
    params = net.init(seed=0)
    assert net.pack(params) is params
    assert tiny_net().pack(params) is params                  # the same model compiled again: the same layout
    copied = net.pack(dict(params))
    assert copied is not params and np.array_equal(copied.flat, params.flat) and copied.layout is net.layout
