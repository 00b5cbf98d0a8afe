"""Exec wrapper of the sandbox: join the pids cgroup, set rlimits, then exec the real command.

It replaces ``subprocess.Popen(preexec_fn=...)``, which is not safe while other threads run
(a Prefect thread runner drives several sandboxes at once). Usage (by the runner only):
``python -I -m evoformer.sandbox.launch [--cgroup-procs F] --memory-bytes N --file-bytes N
[--nproc N] -- COMMAND...``
"""

from __future__ import annotations

import argparse
import os
import resource


def main() -> None:
    parser = argparse.ArgumentParser(prog="evoformer.sandbox.launch")
    parser.add_argument("--cgroup-procs")
    parser.add_argument("--memory-bytes", type=int, required=True)
    parser.add_argument("--file-bytes", type=int, required=True)
    parser.add_argument("--nproc", type=int)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    if args.cgroup_procs:
        with open(args.cgroup_procs, "w") as handle:
            handle.write(str(os.getpid()))
    resource.setrlimit(resource.RLIMIT_AS, (args.memory_bytes, args.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (args.file_bytes, args.file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if args.nproc:
        resource.setrlimit(resource.RLIMIT_NPROC, (args.nproc, args.nproc))
    os.execvp(args.command[0], args.command)


if __name__ == "__main__":
    main()
