"""Run ``FOLDER/script.py`` in the sandbox as it is: for tests and checks of the sandbox itself.

Usage (by the runner only): ``python -I -m evoformer.sandbox.script FOLDER``. The real workers
live next to the jobs they run, outside this package.
"""

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(str(Path(sys.argv[1]) / "script.py"), run_name="__main__")
