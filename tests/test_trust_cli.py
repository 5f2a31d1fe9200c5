"""Regression tests of issue 13's command-line items: bad input gives one line and status 2, checked before the
work; --json output is strict JSON, errors included; --version; points with repeated, unknown or Unicode names."""

import json
import tempfile
from pathlib import Path

import pytest

import symnet
import symnet.bench
import symnet.compare
import symnet.report
from symnet.cli import main


def strict_json(text):
    """``json.loads`` that rejects NaN and ±Infinity, which are not JSON."""
    def reject(constant):
        raise AssertionError(f"{constant} in JSON output")

    return json.loads(text, parse_constant=reject)


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def fails(capsys, *argv):
    """Run a command that must fail: status 2, one line on stderr, no traceback; returns that line."""
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert err.startswith("symnet: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def fails_json(capsys, *argv):
    """With --json, an error is one JSON object {"error": ...} on stdout, status 2, nothing on stderr."""
    status, out, err = run(capsys, *argv, "--json")
    assert status == 2 and err == "" and out.count("\n") == 1
    result = strict_json(out)
    assert list(result) == ["error"]
    return result["error"]


def must_not_run(*args, **kwargs):
    raise AssertionError("the work started before the input was checked")


POINT_ERRORS = [
    ("x=1,x=2", "gives 'x' twice"),
    ("", "empty point"),
    (",", "empty point"),
    ("x=1,y=2", "'y', which is not a symbol of the expression; its symbols are 'x'"),
    ("x=nan", "not a finite number"),
    ("x=1e999", "not a finite number"),
    ("=1", "expected name=value"),
]


@pytest.mark.parametrize("point, fragment", POINT_ERRORS)
def test_derive_rejects_bad_points(capsys, point, fragment):
    assert fragment in fails(capsys, "derive", "x**2", "--wrt", "x", "--at", point)


@pytest.mark.parametrize("point, fragment", POINT_ERRORS)
def test_compare_rejects_bad_points_before_the_work(capsys, monkeypatch, point, fragment):
    monkeypatch.setattr(symnet.compare, "compare", must_not_run)
    assert fragment in fails(capsys, "compare", "x**2", "--wrt", "x", "--at", point)


def test_errors_quote_at_most_about_80_characters_of_the_input(capsys):
    long = "x=" + "a" * 5000
    err = fails(capsys, "derive", "x**2", "--wrt", "x", "--at", long)
    assert "not a number" in err and len(err) < 200
    err = fails(capsys, "derive", "x**2", "--wrt", "x", "--at", "x=1," + "y" * 5000 + "=2")
    assert "not a symbol" in err and len(err) < 200
    err = fails(capsys, "derive", "x**2", "--wrt", "x,x" + ",x" * 3000)
    assert "twice" in err and len(err) < 200
    err = fails(capsys, "compare", "x**2", "--wrt", "x", "--at", "x=1", "--steps", "," * 5000)
    assert "gives no step" in err and len(err) < 300


def test_unicode_names_work_end_to_end(capsys):
    status, out, _ = run(capsys, "derive", "α*x**2", "--wrt", "α", "--at", "α=1,x=2", "--json")
    assert status == 0 and strict_json(out)["gradient"] == {"α": 4.0}
    # µ (micro sign) and μ (Greek mu) are one name, as Python reads identifiers (NFKC)
    status, out, _ = run(capsys, "derive", "µ*x**2", "--wrt", "μ", "--at", "μ=1,x=3", "--json")
    assert status == 0 and strict_json(out)["gradient"] == {"μ": 9.0}


def test_names_must_start_with_a_letter(capsys):
    assert "names start with a letter" in fails(capsys, "derive", "_y*x", "--wrt", "x")
    assert "start with a letter" in fails(capsys, "derive", "x**2", "--wrt", "_x")
    assert "not a valid variable name" in fails(capsys, "derive", "x**2", "--wrt", "lambda")


def test_json_writes_non_finite_numbers_as_null(capsys):
    status, out, _ = run(capsys, "derive", "exp(x)", "--wrt", "x", "--at", "x=1000", "--json")
    assert status == 0 and strict_json(out)["gradient"] == {"x": None}
    status, out, _ = run(capsys, "derive", "sqrt(x)", "--wrt", "x", "--at", "x=-1", "--json")
    assert status == 0 and strict_json(out)["gradient"] == {"x": None}


@pytest.mark.parametrize("argv, fragment", [
    (["derive", "x**2", "--wrt", "y"], "does not occur"),
    (["derive", "x**2", "--wrt", "x", "--at", "x=1,x=2"], "twice"),
    (["derive", "x**2"], "required: --wrt"),
    (["derive", "x**2", "--wrt", "x", "--bogus"], "unrecognized arguments: --bogus"),
    (["swell", "--logistic-map", "abc"], "invalid int value"),
    (["compare", "x", "--wrt", "x", "--at", "x=1", "--plot", "out.xyz"], "not a format matplotlib writes"),
    (["bench", "--configs", ","], "names no config"),
    (["compare", "--network", "nosuch"], "unknown model"),
])
def test_json_errors_are_one_json_object_on_stdout(capsys, argv, fragment):
    assert fragment in fails_json(capsys, *argv)


def test_version(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["--version"])
    assert raised.value.code == 0 and capsys.readouterr().out == f"symnet {symnet.__version__}\n"


def test_bench_refuses_an_empty_or_unknown_config_list(capsys, monkeypatch):
    err = fails(capsys, "bench", "--configs", ",")
    assert "names no config" in err and "xor, tiny, digits, deep, mnist" in err
    monkeypatch.setattr(symnet.bench, "bench_config", must_not_run)
    assert "known: xor, tiny, digits, deep, mnist" in fails(capsys, "bench", "--configs", "xor,nosuch")


@pytest.mark.parametrize("name, fragment", [
    ("out.xyz", "extension '.xyz' is not a format matplotlib writes; end the name in one of"),
    ("out", "no extension names a format"),
    ("file/out.png", "is a file, not a folder"),
])
def test_compare_plot_paths_are_checked_before_the_work(capsys, monkeypatch, tmp_path, name, fragment):
    pytest.importorskip("matplotlib")
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setattr(symnet.compare, "compare", must_not_run)
    err = fails(capsys, "compare", "x**2", "--wrt", "x", "--at", "x=1", "--plot", str(tmp_path / name))
    assert fragment in err


def test_compare_plot_without_matplotlib_says_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setattr(symnet.compare, "pyplot", lambda: None)
    monkeypatch.setattr(symnet.compare, "compare", must_not_run)
    err = fails(capsys, "compare", "x**2", "--wrt", "x", "--at", "x=1", "--plot", "errors.png")
    assert "pip install 'symnet[plot]'" in err


def test_compare_plot_makes_a_missing_folder(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "new" / "sub" / "errors.svg"
    status, out, _ = run(capsys, "compare", "x**2", "--wrt", "x", "--at", "x=1", "--steps", "0.1,0.01",
                         "--plot", str(target), "--json")
    assert status == 0 and strict_json(out)["plot"] == str(target) and target.exists()


def test_compare_network_takes_no_expression_options(capsys):
    assert "takes no EXPRESSION, --plot" in fails(capsys, "compare", "x", "--network", "xor", "--plot", "a.png")


def read_only_folder(tmp_path):
    """A folder that takes no new files: a mode-555 folder, or for root (who writes there anyway) sysfs's root."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, Path("/sys")):
        try:
            with tempfile.TemporaryFile(dir=candidate):
                pass
        except OSError:
            return candidate
    pytest.skip("no read-only folder on this machine")


def test_report_out_is_checked_before_the_work(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(symnet.report, "pyplot", must_not_run)   # the first step after the check
    (tmp_path / "file").write_text("not a folder")
    err = fails(capsys, "report", "xor", "--out", str(tmp_path / "file"))
    assert "report folder" in err and "is a file, not a folder" in err
    err = fails(capsys, "report", "xor", "--out", str(tmp_path / "file" / "sub"))
    assert "cannot be written to" in err
    err = fails(capsys, "report", "xor", "--out", str(read_only_folder(tmp_path) / "report"))
    assert "cannot be written to" in err


@pytest.mark.parametrize("argv, fragment", [
    (["report", "xor", "--epochs", "3"], "add --train"),
    (["report", "xor", "--train", "--seed", "-1"], "expected an integer ≥ 0, got '-1'"),
    (["compare", "x**2", "--wrt", "x", "--at", "x=1", "--steps", ","], "gives no step"),
])
def test_options_that_were_ignored_or_crashed(capsys, argv, fragment):
    assert fragment in fails(capsys, *argv)


MODEL_FILES = {
    "raises.py": ('raise RuntimeError("boom\\nsecond line")\n', "failed when run: RuntimeError: boom"),
    "syntax.py": ("def f(:\n", "failed when run: SyntaxError"),
    "exits.py": ("import sys\nsys.exit(3)\n", "failed when run: SystemExit: 3"),
    "bad_layer.py": ("import symnet as sn\nmodel = sn.Sequential([sn.Dense(0, 3)], loss='mse')\n", "n_in"),
    "no_model.py": ("x = 1\n", "must define `model"),
    "notes.txt": ("not python\n", "is not a .py file"),
    "folder": (None, "is a folder"),
    "missing.py": (None, "unknown model"),
}


@pytest.mark.parametrize("command", [["latex"], ["report"], ["swell", "--network"], ["compare", "--network"]])
@pytest.mark.parametrize("name", sorted(MODEL_FILES))
def test_a_failing_model_file_gives_one_line_naming_it(capsys, monkeypatch, tmp_path, command, name):
    text, fragment = MODEL_FILES[name]
    path = tmp_path / name
    if name == "folder":
        path.mkdir()
    elif text is not None:
        path.write_text(text)
    monkeypatch.chdir(tmp_path)   # report's default --out; the file is named as users name it, relative
    err = fails(capsys, *command, name)
    assert fragment in err and name in err
