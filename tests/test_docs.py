"""Every command and snippet in README.md and docs/*.md runs, and shows what it prints, so none can go stale.

How a Markdown file is run (the conventions for whoever writes the docs):

* Each file is one test. Its fenced blocks run in document order in one fresh namespace and one fresh working
  folder, so a block may use the names and files of earlier blocks of the same file, never another file's.
  Generated modules go to the tests' cache (``conftest.py`` sets ``SYMNET_GENERATED_DIR`` and
  ``SYMNET_RECORD_DIR``; commands inherit them), so a second run skips the Numba compiles.
* ```` ```python ```` blocks are executed in this process.  One preceded by the line ``<!-- write: NAME -->`` is
  not executed but written to NAME in the working folder (a model file that a later command trains).
* ```` ```pycon ```` blocks are doctests (``>>>`` and ``...`` prompts) in the same namespace: the output shown
  must be the output printed, with ``...`` standing for any text (doctest's ELLIPSIS).
* ```` ```console ```` blocks: each line starting with ``$ `` is a command, ``symnet ...`` or
  ``python -m symnet ...``; the lines after it, up to the next command, are its output as shown, and must be what
  it prints now, line by line, except:

  - a line ``…`` stands for any number of lines (output trimmed), and ``…`` inside a line for any text;
  - times are not compared: a line is compared only up to its first number followed by a unit of time
    (``7.88 s``, ``44 µs``), and in a table (a header over a line of dashes) the columns whose header names a
    unit of time (``µs/gradient``) are blanked;
  - generated modules compare by kind (``network_<hash>.py``): their hash and folder depend on the checkout.

  A command must exit with status 0, unless its output shown is an error (``symnet: error: ...``): then with
  status 2, and its standard error is part of its output.

  The commands run in this process, through ``symnet.cli.main``, the function that both ``symnet`` and
  ``python -m symnet`` call (:func:`test_python_dash_m_symnet_is_the_symnet_command` checks both entry points in
  subprocesses): a new process per command would spend 1–2 s importing SymPy and Numba, most of this file's time
  budget.  Set ``SYMNET_DOCS_SUBPROCESS=1`` to run each as ``python -m symnet`` in a subprocess instead.
* ```` ```text ````, ```` ```bash ```` and unlabelled blocks are not run: output or commands shown for reading
  (the README's Quick start is run by CI itself, ``.ci/run``).  Commands that would take long are shown there,
  with the reason in the text; the others use small settings.
"""

import contextlib
import doctest
import io
import os
import re
import shlex
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

import symnet as sn
from symnet.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 300
RUN = ("python", "pycon", "console")
SHOWN = ("text", "bash", "")
WRITE = re.compile(r"<!--\s*write:\s*(\S+)\s*-->")
FENCE = re.compile(r"^( *)(`{3,})\s*([\w+-]*)\s*$")
TIME = re.compile(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?\s?(?:s|ms|µs)(?![\w/])")
TIME_HEADER = re.compile(r"(?:^|\W)(?:s|ms|µs|seconds)(?:\W|$)")
MODULE = re.compile(r"\S*?\b([a-z]+)_[0-9a-f]{16}\.py")
GAP = "…"
COMMAND_TIMEOUT = 600
SUBPROCESS_VARIABLE = "SYMNET_DOCS_SUBPROCESS"


def blocks(path):
    """``[(language, first line number of the body, body, file to write or None)]`` of the fenced blocks."""
    lines = path.read_text(encoding="utf-8").split("\n")
    found, number = [], 0
    while number < len(lines):
        opening = FENCE.match(lines[number])
        if not opening:
            number += 1
            continue
        indent, fence, language = opening.groups()
        end = next((k for k in range(number + 1, len(lines)) if lines[k].strip() == fence), None)
        assert end is not None, f"{path.name}:{number + 1}: a fenced block that is never closed"
        previous = lines[number - 1] if number else ""
        target = WRITE.fullmatch(previous.strip())
        body = "\n".join(line[len(indent):] if line.startswith(indent) else line for line in lines[number + 1:end])
        found.append((language.lower(), number + 2, body + "\n", target.group(1) if target else None))
        number = end + 1
    return found


# --- comparing a command's output with the output shown ------------------------------------------------------

def _mask_tables(lines):
    """Blank the cells of table columns whose header names a unit of time."""
    lines = list(lines)
    for row in range(1, len(lines)):
        dashes = lines[row]
        if not re.fullmatch(r"-+(?: {2,}-+)*", dashes.strip()) or dashes != dashes.lstrip():
            continue
        spans = [match.span() for match in re.finditer(r"-+", dashes)]
        header = lines[row - 1]
        timed = [(start, stop) for start, stop in spans if TIME_HEADER.search(header[start:stop])]
        following = row + 1
        while following < len(lines) and lines[following].strip():
            text = lines[following].ljust(max(stop for _, stop in spans))
            for start, stop in timed:
                text = text[:start] + " " * (stop - start) + text[stop:]
            lines[following] = text
            following += 1
    return lines


def normalised(lines):
    """Lines as compared: tables' time columns blanked, each line cut at its first time, modules by kind."""
    out = []
    for line in _mask_tables(lines):
        time = TIME.search(line)
        if time:
            line = line[:time.start()] + "<time>"
        out.append(MODULE.sub(r"\1_<hash>.py", line).rstrip())
    return out


def _pattern(line):
    return re.compile(".*".join(re.escape(part) for part in line.split(GAP)), re.DOTALL)


def matches(shown, printed):
    """Whether ``printed`` fits ``shown`` (both normalised), with ``…`` lines as gaps of any length."""
    memo = {}

    def fit(i, j):
        if (i, j) in memo:
            return memo[i, j]
        if i == len(shown):
            result = j == len(printed)
        elif shown[i].strip() == GAP:
            result = any(fit(i + 1, k) for k in range(j, len(printed) + 1))
        else:
            result = j < len(printed) and _pattern(shown[i]).fullmatch(printed[j]) is not None and fit(i + 1, j + 1)
        memo[i, j] = result
        return result

    return fit(0, 0)


def commands(body):
    """``[(command, [output lines shown])]`` of a console block."""
    found = []
    for line in body.rstrip("\n").split("\n"):
        if line.startswith("$ "):
            found.append((line[2:], []))
        else:
            assert found, f"console output before any command: {line!r}"
            found[-1][1].append(line)
    return found


def run_command(command, shown, where, folder):
    """Run one console command in ``folder``; fail unless it prints what ``shown`` shows."""
    argv = shlex.split(command)
    if argv[0] == "symnet":
        arguments = argv[1:]
    elif argv[:3] == ["python", "-m", "symnet"]:
        arguments = argv[3:]
    else:
        raise AssertionError(f"{where}: a console command runs symnet or python -m symnet, not {command!r}")
    if os.environ.get(SUBPROCESS_VARIABLE):
        result = subprocess.run([sys.executable, "-m", "symnet", *arguments], cwd=folder, capture_output=True,
                                text=True, timeout=COMMAND_TIMEOUT, env=dict(os.environ, MPLBACKEND="Agg"))
        status, stdout, stderr = result.returncode, result.stdout, result.stderr
    else:
        status, stdout, stderr = _main(arguments)
    fails = any(line.startswith("symnet: error:") for line in shown)
    printed = stdout + (stderr if fails else "")
    assert status == (2 if fails else 0), f"{where}: `{command}` exited with {status}\n{stdout}\n{stderr}"
    if not matches(normalised(shown), normalised(printed.rstrip("\n").split("\n"))):
        pytest.fail(f"{where}: `{command}` printed\n{printed}\nbut the docs show\n" + "\n".join(shown), pytrace=False)


def _main(arguments):
    """``(status, stdout, stderr)`` of ``symnet.cli.main(arguments)``, the function the command runs."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = main(arguments)
        except SystemExit as done:   # argparse's --version and --help
            status = done.code or 0
    return status, stdout.getvalue(), stderr.getvalue()


# --- running a document --------------------------------------------------------------------------------------

def run_doctest(body, namespace, path, line):
    test = doctest.DocTestParser().get_doctest(body, namespace, f"{path.name}:{line}", str(path), line - 1)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = []
    runner.run(test, out=report.append, clear_globs=False)
    namespace.update(test.globs)   # the DocTest ran in a copy of the namespace; later blocks see its names
    if runner.failures:
        pytest.fail("".join(report), pytrace=False)


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_block_runs(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": f"docs_{path.stem}"}
    for language, line, body, target in blocks(path):
        where = f"{path.relative_to(ROOT)}:{line}"
        assert language in RUN + SHOWN, f"{where}: unknown block language {language!r} (run: {RUN}; shown: {SHOWN})"
        if target is not None:
            assert language == "python", f"{where}: only a python block can be written to a file"
            (tmp_path / target).write_text(body, encoding="utf-8")
        elif language == "python":
            exec(compile(body, where, "exec"), namespace)   # noqa: S102 -- the project's own documentation
        elif language == "pycon":
            run_doctest(body, namespace, path, line)
        elif language == "console":
            for command, shown in commands(body):
                run_command(command, shown, where, tmp_path)


def test_the_output_check_compares_all_but_times_and_module_hashes():
    """The check is not vacuous: values are compared; times, a module's folder and hash, and trimmed lines are not."""
    shown = ["digits: 64-32-10, 20 epochs in 7.88 s (with Numba compiling the new module) (+0.61 s to derive)",
             "  loss: train 0.0078466", GAP, "  generated module: /home/me/generated/network_9283238a8858e9db.py",
             "method  h    ∂f/∂w  µs/gradient", "------  ---  -----  -----------", "central  0.1  0.25         11.6"]
    printed = ["digits: 64-32-10, 20 epochs in 0.42 s (+0.33 s to derive)", "  loss: train 0.0078466",
               "  accuracy: train 1.0000", "  generated module: /tmp/cache/network_0123456789abcdef.py",
               "method  h    ∂f/∂w  µs/gradient", "------  ---  -----  -----------", "central  0.1  0.25          9.6"]
    assert matches(normalised(shown), normalised(printed))
    for line, changed in ((1, "  loss: train 0.0078467"), (0, "digits: 64-32-10, 30 epochs in 0.42 s"),
                          (3, "  generated module: /tmp/cache/expression_0123456789abcdef.py"),
                          (6, "central  0.1  0.26          9.6")):
        assert not matches(normalised(shown), normalised(printed[:line] + [changed] + printed[line + 1:])), changed
    assert not matches(normalised(shown), normalised(printed + ["one line more"]))


# --- the README's shape and the links -----------------------------------------------------------------------

def test_the_readme_is_a_front_door_with_a_two_command_quick_start():
    lines = README.read_text(encoding="utf-8").split("\n")
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"
    # .ci/run takes the second line of the Quick start's fenced block as the test command
    start = lines.index("## Quick start")
    fences = [k for k in range(start, len(lines)) if lines[k].startswith("```")][:2]
    quick = lines[fences[0] + 1:fences[1]]
    assert len(quick) == 2 and "symnet train" in quick[0] and "pytest" in quick[1], quick


def _anchor(heading):
    """GitHub's anchor of a Markdown heading."""
    text = unicodedata.normalize("NFC", heading.strip().lower())
    text = "".join(character for character in text if character.isalnum() or character in " -_")
    return text.replace(" ", "-")


def test_relative_links_point_to_files_and_headings_that_exist():
    wrong = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            if not linked.exists():
                wrong.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md":
                headings = {_anchor(h) for h in re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"),
                                                           flags=re.MULTILINE)}
                if anchor not in headings:
                    wrong.append(f"{path.relative_to(ROOT)}: {target} (no such heading)")
    assert not wrong, "\n".join(wrong)


# --- python -m symnet ---------------------------------------------------------------------------------------

def test_python_dash_m_symnet_is_the_symnet_command():
    """``python -m symnet`` runs the console script's function, with its output and exit status."""
    def run(*argv):
        result = subprocess.run([*argv], capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        return result.returncode, result.stdout, result.stderr

    module = run(sys.executable, "-m", "symnet", "--version")
    assert module[:2] == (0, f"symnet {sn.__version__}\n")
    script = Path(sys.executable).with_name("symnet")   # the console script of this environment, if installed
    if script.exists():
        assert run(str(script), "--version") == module
    status, stdout, stderr = run(sys.executable, "-m", "symnet", "nosuch")
    assert (status, stdout) == (2, "") and stderr.startswith("symnet: error:") and "'nosuch'" in stderr
