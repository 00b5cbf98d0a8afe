"""Every forbidden construct is rejected before anything runs; the seeds pass."""

from __future__ import annotations

import pytest

from evoformer.candidates.program import CandidateProgram
from evoformer.candidates.static_check import StaticCheckConfig, check_source
from evoformer.seeds import seed_files

HEADER = (
    "import torch\nimport torch.nn as nn\n\n"
    "def build_model(input_dim, num_classes):\n    return nn.Linear(input_dim, num_classes)\n"
)

FORBIDDEN = {
    "open": "open('/etc/passwd')",
    "exec": "exec('1')",
    "eval": "eval('1')",
    "compile": "compile('1', 'x', 'eval')",
    "__import__": "__import__('os')",
    "globals": "globals()",
    "locals": "locals()",
    "vars": "vars()",
    "breakpoint": "breakpoint()",
    "input": "input()",
    "getattr dunder": "getattr(torch, '__dict__')",
    "setattr dunder": "setattr(torch, '__doc__', 1)",
    "getattr computed": "getattr(torch, 'o' + 's')",
    "getattr alias": "g = getattr\nx = g(torch, 'o' + 's')",
    "import os": "import os",
    "import sys": "import sys",
    "import subprocess": "import subprocess",
    "import socket": "import socket",
    "import shutil": "import shutil",
    "import pathlib": "import pathlib",
    "import importlib": "import importlib",
    "import ctypes": "import ctypes",
    "import pickle": "import pickle",
    "import marshal": "import marshal",
    "import threading": "import threading",
    "import multiprocessing": "import multiprocessing",
    "from os import": "from os import system",
    "not allow-listed": "import numpy",
    "dunder attribute": "x = torch.__builtins__",
    "dunder subclasses": "x = ().__class__.__bases__",
    "torch.os": "x = torch.os.environ",
    "relative import": "from . import thing",
}


@pytest.mark.parametrize("snippet", FORBIDDEN.values(), ids=FORBIDDEN.keys())
def test_forbidden_construct_is_rejected(snippet: str) -> None:
    report = check_source(HEADER + snippet + "\n")
    assert not report.ok and report.reasons


def test_missing_entry_point_size_and_syntax() -> None:
    assert "no top-level function build_model" in check_source("import torch\n").reasons[0]
    assert "syntax error" in check_source("def build_model(:\n").reasons[0]
    big = HEADER + "# " + "x" * 200 + "\n"
    assert "over the limit" in check_source(big, StaticCheckConfig(max_source_bytes=150)).reasons[0]


def test_allow_list_is_configurable() -> None:
    source = HEADER + "import numpy\n"
    assert not check_source(source).ok
    assert check_source(source, StaticCheckConfig(allowed_imports=["torch", "torch.nn", "numpy"])).ok


def test_seeds_and_super_init_pass() -> None:
    files = seed_files()
    assert len(files) >= 5
    for path in files:
        report = check_source(path.read_text())
        assert report.ok, (path.name, report.reasons)


def test_prelude_is_prepended_and_checked() -> None:
    program = CandidateProgram(name="p", source=HEADER, prelude="import math\nPI = math.pi\n")
    assert program.full_source().startswith("import math")
    assert check_source(program.full_source()).ok
    bad = CandidateProgram(name="p", source=HEADER, prelude="import os\n")
    assert not check_source(bad.full_source()).ok


def test_program_hash_ignores_formatting() -> None:
    a = CandidateProgram(name="a", source=HEADER)
    b = CandidateProgram(name="b", source=HEADER.replace("\n\n", "\n\n\n") + "# a comment\n")
    c = CandidateProgram(name="c", source=HEADER.replace("Linear", "Bilinear"))
    assert a.program_hash() == b.program_hash() != c.program_hash()
