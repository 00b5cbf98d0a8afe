"""Which of a model's sub-modules was running when its forward pass raised, and on what input.

Why: the commonest fault of a program written by a small LLM is a width mismatch ("mat1 and mat2
shapes cannot be multiplied (8x64 and 128x3)"). The traceback's frames name the line of
``forward`` but not which layer, nor what it was given, and two repair rounds with the bare error
often did not fix it. "inside `head` (Linear(in_features=128, out_features=3)), which was given
[8, 64]" says what to change.

Runs in the sandbox worker, with the program's model: every hook swallows its own errors, so a
model with odd modules (a failing ``extra_repr``, inputs that are not tensors) is traced less, never
broken.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

MAX_ARGS = 4
MAX_REPR_CHARS = 200


def describe_value(value: Any) -> str:
    """A tensor as its shape and (when not float32) its dtype; anything else by its type's name."""
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        dtype = str(value.dtype).removeprefix("torch.")
        return f"[{', '.join(str(int(d)) for d in shape)}]" + ("" if dtype == "float32" else f" {dtype}")
    if isinstance(value, (tuple, list)):
        return (
            "("
            + ", ".join(describe_value(v) for v in value[:MAX_ARGS])
            + (", ..." if len(value) > MAX_ARGS else "")
            + ")"
        )
    return type(value).__name__


def describe_module(module: Any) -> str:
    """``Linear(in_features=128, out_features=3, bias=True)``: the class and its one-line settings."""
    try:
        settings = module.extra_repr()
    except Exception:  # noqa: BLE001 - a program's own extra_repr may fail
        settings = ""
    text = f"{type(module).__name__}({settings})".replace("\n", " ")
    return text if len(text) <= MAX_REPR_CHARS else text[: MAX_REPR_CHARS - 3] + "..."


class ModuleTrace:
    """``with ModuleTrace(model) as trace: model(x, mask)``; after an exception, ``trace.where()``
    names the innermost sub-module that had started and not finished its forward, with its inputs.

    A forward pre-hook pushes each sub-module as it starts and a forward hook pops it when it
    returns; an exception skips the pops, so the stack is left holding the chain of modules the
    exception went through. The hooks are removed on exit."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.stack: list[tuple[str, Any, str]] = []
        self.handles: list[Any] = []

    def __enter__(self) -> ModuleTrace:
        self.stack.clear()
        try:
            modules = list(self.model.named_modules())
        except Exception:  # noqa: BLE001 - not a module tree we can walk: no trace
            return self
        for name, module in modules:
            if not name:  # the model itself: the program's frames already name its lines
                continue
            try:
                self.handles.append(module.register_forward_pre_hook(self._started(name), with_kwargs=True))
                self.handles.append(module.register_forward_hook(self._finished(module)))
            except Exception:  # noqa: BLE001
                continue
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for handle in self.handles:
            try:
                handle.remove()
            except Exception:  # noqa: BLE001
                pass
        self.handles.clear()

    def _started(self, name: str):
        def hook(module: Any, args: tuple, kwargs: dict) -> None:
            try:
                inputs = [describe_value(a) for a in args[:MAX_ARGS]]
                inputs += [f"{key}={describe_value(value)}" for key, value in list(kwargs.items())[:MAX_ARGS]]
                self.stack.append((name, module, ", ".join(inputs)))
            except Exception:  # noqa: BLE001
                pass

        return hook

    def _finished(self, module: Any):
        def hook(done: Any, args: tuple, output: Any) -> None:
            # Pops down to this module: a sub-module whose own hooks failed to push is tolerated.
            for depth in range(len(self.stack) - 1, -1, -1):
                if self.stack[depth][1] is module:
                    del self.stack[depth:]
                    return

        return hook

    def where(self) -> str:
        """``inside `blocks.0.proj` (Linear(in_features=128, ...)), which was given [8, 40, 64]``, or "" when
        the exception came from the model's own code outside any sub-module."""
        if not self.stack:
            return ""
        name, module, inputs = self.stack[-1]
        return f"inside `{name}` ({describe_module(module)}), which was given {inputs or 'no input'}"
