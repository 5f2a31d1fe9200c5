"""Which test compiles which generated module, and for how long: a pytest plugin, off unless asked for.

Set ``SYMNET_COMPILE_REPORT=<path>`` to turn it on (``tests/conftest.py`` registers it then, in the main process
and in every xdist worker)::

    SYMNET_COMPILE_REPORT=/tmp/compiles.json python -m pytest -q -n auto --dist worksteal

Every Numba compile (the ``"numba:compile"`` event, fired only when Numba really compiles, not when it loads its
cache) is recorded with the test that was running, the function's name, the file of its module (for generated
modules ``<kind>_<hash>.py``), its argument types, and its duration both inclusive (with the functions it compiled
for its callees) and exclusive.  Subprocesses the tests start (``python -m symnet ...``, notebook kernels) are
recorded too, through a ``sitecustomize`` put first on their ``PYTHONPATH``.  Each process appends JSON lines to
``<path>.d/``; the main process merges them at the end into ``<path>`` (JSON) and ``<path>.txt`` (a summary: per
function name, per module, per test, and the modules only one test compiles).

``python -m tests._compile_report <path>`` writes the summary again from ``<path>.d/``.
"""

import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

VARIABLE = "SYMNET_COMPILE_REPORT"
TEST_VARIABLE = "SYMNET_COMPILE_REPORT_TEST"
SITE_FOLDER = Path(__file__).resolve().parent / "_compile_site"


def events_folder(path):
    return Path(f"{path}.d")


class _Recorder:
    """Listens to Numba's compile events in one process and appends one JSON line per compile."""

    def __init__(self, path, process):
        folder = events_folder(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.file = open(folder / f"{process}-{os.getpid()}.jsonl", "a", buffering=1, encoding="utf-8")
        self.test = os.environ.get(TEST_VARIABLE, "<outside a test>")
        self.process = process
        self.stack = []         # [start, child seconds]
        self.titles = {}

    def install(self):
        from numba.core import event

        recorder = self

        class Listener(event.Listener):
            def on_start(self, ev):
                recorder.stack.append([time.perf_counter(), 0.0])

            def on_end(self, ev):
                start, children = recorder.stack.pop()
                seconds = time.perf_counter() - start
                if recorder.stack:
                    recorder.stack[-1][1] += seconds
                recorder.write(ev.data or {}, seconds, seconds - children, len(recorder.stack))

        self.listener = Listener()
        event.register("numba:compile", self.listener)

    def uninstall(self):
        from numba.core import event

        event.unregister("numba:compile", self.listener)
        self.file.close()

    def write(self, data, seconds, own, depth):
        dispatcher = data.get("dispatcher")
        function = getattr(dispatcher, "py_func", None)
        file = getattr(getattr(function, "__code__", None), "co_filename", "?")
        if file not in self.titles:
            self.titles[file] = _title(file)
        self.file.write(json.dumps({
            "test": self.test, "process": self.process, "pid": os.getpid(),
            "function": getattr(function, "__qualname__", repr(dispatcher)),
            "module": os.path.basename(file), "path": file,
            "args": str(data.get("args")), "title": self.titles[file], "seconds": round(seconds, 4), "own": round(own, 4), "depth": depth,
        }) + "\n")


def _title(file):
    """The first line of a generated module's docstring (what it was generated from), else ''."""
    try:
        with open(file, encoding="utf-8") as stream:
            head = stream.read(400)
    except OSError:
        return ""
    return head[3:].splitlines()[0][:150] if head.startswith('"""') else ""


# --- the pytest plugin ----------------------------------------------------------------------------------------

class Plugin:
    def __init__(self, config, path):
        self.config = config
        self.path = path
        self.worker = getattr(config, "workerinput", {}).get("workerid")
        if _subprocess_recorder is not None:      # an xdist worker inherits the sitecustomize: record once, here
            _subprocess_recorder.uninstall()
        self.recorder = _Recorder(path, self.worker or "main")
        self.recorder.install()
        self.durations = {}
        # subprocesses: the recording sitecustomize first on their path
        paths = [str(SITE_FOLDER)] + [part for part in os.environ.get("PYTHONPATH", "").split(os.pathsep) if part]
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)

    def pytest_runtest_logstart(self, nodeid, location):
        self.recorder.test = nodeid
        os.environ[TEST_VARIABLE] = nodeid

    def pytest_runtest_logfinish(self, nodeid, location):
        self.recorder.test = "<between tests>"

    def pytest_runtest_logreport(self, report):
        if self.worker is None:       # the main process sees every worker's reports
            self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self, session):
        if self.worker is None:
            summarise(self.path, self.durations)


def register(config):
    path = os.environ.get(VARIABLE)
    if path:
        config.pluginmanager.register(Plugin(config, os.path.abspath(path)), "symnet_compile_report")


_subprocess_recorder = None


def install_in_subprocess():
    """Called by ``_compile_site/sitecustomize.py`` in every subprocess of a reporting run."""
    global _subprocess_recorder
    path = os.environ.get(VARIABLE)
    if path:
        _subprocess_recorder = _Recorder(path, "subprocess")
        _subprocess_recorder.install()


# --- the summary ----------------------------------------------------------------------------------------------

def load_events(path):
    events = []
    for file in sorted(events_folder(path).glob("*.jsonl")):
        for line in file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                events.append(json.loads(line))
    return events


def _generated(event):
    return event["module"].split("_")[0] in {"network", "kernels", "loss", "layers", "optimizer", "expression",
                                             "conv", "pointwise", "jacobian"} or "/generated" in event["path"] \
        or "symnet/tests" in event["path"] or "/tmp" in event["path"]


def summarise(path, durations=None):
    events = load_events(path)
    durations = durations or {}
    by_function = defaultdict(lambda: [0, 0.0])
    by_module = defaultdict(lambda: {"events": 0, "seconds": 0.0, "tests": set(), "paths": set(), "functions": set()})
    by_test = defaultdict(lambda: {"events": 0, "seconds": 0.0, "modules": set()})
    top = [event for event in events]
    for event in top:
        by_function[event["function"].split(".")[-1]][0] += 1
        by_function[event["function"].split(".")[-1]][1] += event["own"]
        module = by_module[event["module"]]
        module["events"] += 1
        module["seconds"] += event["own"]
        module["tests"].add(event["test"])
        module["paths"].add(os.path.dirname(event["path"]))
        module["functions"].add(event["function"])
        module["title"] = event.get("title", "")
        test = by_test[event["test"]]
        test["events"] += 1
        test["seconds"] += event["own"]
        test["modules"].add(event["module"])
    total = sum(event["own"] for event in events)
    generated = {name for name, module in by_module.items() if any(_generated(e) for e in events if e["module"] == name)}
    generated_paths = {(e["module"], os.path.dirname(e["path"])) for e in events if e["module"] in generated}
    summary = {
        "compile_events": len(events),
        "top_level_compile_events": sum(1 for e in events if e["depth"] == 0),
        "compile_seconds": round(total, 1),
        "distinct_modules": len(by_module),
        "distinct_generated_modules": len(generated),
        "distinct_generated_module_folders": len(generated_paths),
        "test_seconds": round(sum(durations.values()), 1),
    }
    Path(path).write_text(json.dumps({
        "summary": summary,
        "by_function": {name: {"events": n, "seconds": round(s, 2)} for name, (n, s) in by_function.items()},
        "by_module": {name: {**{k: v for k, v in m.items() if not isinstance(v, set)},
                             **{k: sorted(v) for k, v in m.items() if isinstance(v, set)}}
                      for name, m in by_module.items()},
        "by_test": {name: {"events": t["events"], "seconds": round(t["seconds"], 2), "modules": sorted(t["modules"]),
                           "duration": round(durations.get(name, 0.0), 2)} for name, t in by_test.items()},
        "durations": durations,
    }, indent=1, sort_keys=True), encoding="utf-8")

    lines = [f"{key}: {value}" for key, value in summary.items()]
    lines += ["", "Per function name (exclusive seconds):"]
    for name, (count, seconds) in sorted(by_function.items(), key=lambda item: -item[1][1]):
        lines.append(f"  {seconds:8.1f} s  {count:4d}  {name}")
    lines += ["", "Per test (exclusive compile seconds, events, modules, test duration):"]
    for name, test in sorted(by_test.items(), key=lambda item: -item[1]["seconds"]):
        lines.append(f"  {test['seconds']:7.1f} s {test['events']:4d} {len(test['modules']):3d}  "
                     f"{durations.get(name, 0.0):6.1f} s  {name}")
    lines += ["", "Per module (seconds, events, #tests, #folders; tests):"]
    for name, module in sorted(by_module.items(), key=lambda item: -item[1]["seconds"]):
        lines.append(f"  {module['seconds']:7.1f} s {module['events']:4d} {len(module['tests']):3d} "
                     f"{len(module['paths']):2d}  {name}  [{module.get('title', '')}]  <- {', '.join(sorted(module['tests']))}")
    lines += ["", "Modules compiled by one test only (seconds, module, test):"]
    for name, module in sorted(by_module.items(), key=lambda item: -item[1]["seconds"]):
        if len(module["tests"]) == 1:
            lines.append(f"  {module['seconds']:7.1f} s  {name}  [{module.get('title', '')}]  {next(iter(module['tests']))}")
    Path(f"{path}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return summary


if __name__ == "__main__":
    print(json.dumps(summarise(os.path.abspath(sys.argv[1])), indent=1))
