"""ModuleTrace: the innermost sub-module a forward pass was in when it raised, and its inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from evoformer.candidates.module_trace import ModuleTrace, describe_value


class Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(8, 4)
        self.second = nn.Linear(5, 2)  # wrong: first gives 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


class Outer(nn.Module):
    def __init__(self, fail_in_own_code: bool = False) -> None:
        super().__init__()
        self.inner = Inner()
        self.ok = nn.Linear(8, 8)
        self.fail_in_own_code = fail_in_own_code

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ok(x)
        if self.fail_in_own_code:
            return torch.cat([h, mask], dim=0)  # shapes differ, outside any sub-module
        return self.inner(h)


def test_the_innermost_running_module_is_named_with_its_input_shape() -> None:
    model = Outer()
    with ModuleTrace(model) as trace, pytest.raises(RuntimeError):
        model(torch.zeros(3, 7, 8), torch.ones(3, 7, dtype=torch.bool))
    assert trace.where() == (
        "inside `inner.second` (Linear(in_features=5, out_features=2, bias=True)), which was given [3, 7, 4]"
    )
    # The hooks are gone afterwards: a second pass leaves the (cleared) stack alone.
    trace.stack.clear()
    with pytest.raises(RuntimeError):
        model(torch.zeros(3, 7, 8), torch.ones(3, 7, dtype=torch.bool))
    assert trace.stack == []


def test_an_error_in_the_models_own_code_names_no_module() -> None:
    model = Outer(fail_in_own_code=True)
    with ModuleTrace(model) as trace, pytest.raises(RuntimeError):
        model(torch.zeros(3, 7, 8), torch.ones(3, 9))
    assert trace.where() == ""  # `ok` finished; the program's frames name the failing line


def test_keyword_inputs_and_non_tensors_are_described() -> None:
    attention = nn.MultiheadAttention(8, 2, batch_first=True)
    x = torch.zeros(2, 5, 8)

    class Bad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = attention

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.attn(x, x, x, key_padding_mask=torch.ones(2, 4, dtype=torch.bool))[0]  # 4, not 5

    model = Bad()
    with ModuleTrace(model) as trace, pytest.raises((RuntimeError, AssertionError)):
        model(x)
    assert trace.where().startswith("inside `attn` (MultiheadAttention(")
    assert trace.where().endswith("which was given [2, 5, 8], [2, 5, 8], [2, 5, 8], key_padding_mask=[2, 4] bool")
    assert describe_value((x, 3, "a")) == "([2, 5, 8], int, str)"
