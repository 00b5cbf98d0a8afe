"""First program inside a bubblewrap sandbox with a private root: say ready, wait, then exec.

The runner must hold a descriptor on the sandbox's private root (through ``/proc/PID/root``)
before any untrusted code runs there, and it can only do so once bubblewrap has set the root up.
So the sandbox starts here: this writes one byte to READY_FD, blocks until the runner writes one
byte to GO_FD, closes both and replaces itself with COMMAND. It imports nothing but ``os`` and
``sys`` (it runs with ``python -I -S``). Usage (by the runner only):
``python -I -S gate.py READY_FD GO_FD -- COMMAND...``
"""

import os
import sys


def main(argv: list[str]) -> None:
    ready, go = int(argv[1]), int(argv[2])
    command = argv[4:] if argv[3] == "--" else argv[3:]
    os.write(ready, b"r")
    os.close(ready)
    if os.read(go, 1) != b"g":
        os._exit(125)  # the runner went away or refused: run nothing
    os.close(go)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv)
