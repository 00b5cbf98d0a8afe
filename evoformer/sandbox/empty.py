"""An empty sandbox job: import torch and exit (used to time the sandbox's fixed cost)."""

import torch  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(0)
