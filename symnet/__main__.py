"""``python -m symnet``: the ``symnet`` command, for an environment whose scripts folder is not on PATH."""

import sys

from symnet.cli import main

if __name__ == "__main__":
    sys.exit(main())
