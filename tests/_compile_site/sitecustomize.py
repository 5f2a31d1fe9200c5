"""Put first on a subprocess's PYTHONPATH by tests/_compile_report.py: record that process's Numba compiles too."""

import os

if os.environ.get("SYMNET_COMPILE_REPORT"):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
    try:
        from tests._compile_report import install_in_subprocess
    finally:
        del sys.path[0]
    install_in_subprocess()
