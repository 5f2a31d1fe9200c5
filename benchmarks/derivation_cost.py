"""Derivation cost versus width and depth: deriving, simplifying and generating a network's module must not
grow with its width (the layer-level derivation works on symbolic sizes).

Run: python benchmarks/derivation_cost.py   (each size is timed in a fresh process with an empty folder)
"""

import json
import subprocess
import sys
import tempfile

PROBE = """
import sys, time
import symnet as sn
imported = time.perf_counter()
sizes = [int(s) for s in sys.argv[1].split("-")]
layers = [sn.Dense(a, b, "tanh" if k < len(sizes) - 2 else None) for k, (a, b) in enumerate(zip(sizes, sizes[1:]))]
net = sn.Sequential(layers, loss="softmax_cross_entropy").compile(optimizer=sn.optim.SGD(lr=0.1))
print(time.perf_counter() - imported)
"""


def derivation_seconds(sizes):
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run([sys.executable, "-c", PROBE, sizes], capture_output=True, text=True, check=True,
                                env={"SYMNET_GENERATED_DIR": folder, "PATH": ""})
    return float(result.stdout.strip())


def main():
    rows = []
    for sizes in ("16-32-10", "64-256-10", "784-256-10", "784-1024-10", "16-32-32-10", "16-32-32-32-32-10"):
        rows.append({"sizes": sizes, "derive_generate_seconds": derivation_seconds(sizes)})
        print(f"{sizes:>20}: derive + simplify + generate + load {rows[-1]['derive_generate_seconds']:.2f} s")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
