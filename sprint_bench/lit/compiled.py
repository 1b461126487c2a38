"""The distillation's network calls through ``torch.compile``: the frozen teacher's CFG call on its 2B batch, the
student's JVP pass, the student's own calls (with their backward when they carry gradients) and the frozen teacher's
feature passes for the discriminator heads (with the backward into a G step's fakes). Every tensor is an explicit
input, so one compiled graph per grad mode serves every training step; a call whose compilation fails runs eagerly.

Why: eager forward-mode AD materialises the (zero) tangents of weights and pays a convolution or matmul for each,
plus many small elementwise kernels; inductor drops the zero terms and fuses the rest. On 2 CPU cores the default
student's JVP at batch 32 takes two fifths of its eager time, the teacher's calls about two thirds, a call with its
backward about four fifths (`make bench-compile`; docs/RESULTS.md, "Compiling the distillation's hottest calls")."""
from __future__ import annotations

import logging
from typing import Callable

import torch

from sprint_bench.losses.scm import jvp_autograd

log = logging.getLogger(__name__)


def model_out(model, x_scaled, t, text, mask, guidance=None, cond=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(F, logvar) of a TrigFlow model (``models/trigflow.py``), as its forward returns them."""
    return model(x_scaled, t, text, mask, guidance, cond=cond)


def model_F(model, x_scaled, t, text, mask, guidance=None, cond=None) -> torch.Tensor:
    """F of a TrigFlow model, without its logvar."""
    return model_out(model, x_scaled, t, text, mask, guidance, cond)[0]


def model_jvp(model, x_scaled, t, tx, tt, text, mask, guidance, cond=None) -> torch.Tensor:
    """J = d/de F(x_scaled + e tx, t + e tt) at e = 0, without gradients (losses/scm.py, ``jvp_autograd``)."""
    return jvp_autograd(lambda xs, ts: model_F(model, xs, ts, text, mask, guidance, cond), x_scaled, t, tx, tt)


def model_features(disc, teacher, x_scaled, s, text, mask, cond=None) -> list[torch.Tensor]:
    """The teacher's token features at the discriminator's tapped blocks (``Discriminator.features``)."""
    return disc.features(teacher, x_scaled, s, text, mask, cond)


def _tensors(out) -> list[torch.Tensor]:
    """The tensors of a call's output: a tensor, or a tuple / list of tensors and Nones."""
    return [out] if isinstance(out, torch.Tensor) else [o for o in out if isinstance(o, torch.Tensor)]


def _grad_inputs(args) -> list[torch.Tensor]:
    """What a backward through a call on ``args`` reaches: its tensor arguments and its modules' parameters that
    require gradients."""
    out = []
    for a in args:
        if isinstance(a, torch.nn.Module):
            out += [p for p in a.parameters() if p.requires_grad]
        elif isinstance(a, torch.Tensor) and a.requires_grad:
            out.append(a)
    return out


def _signature(args) -> tuple:
    """What decides whether a call needs a backward graph of its own: each tensor's shape, dtype, device and
    requires_grad, each module's parameter dtypes and devices, the other arguments' types, and how many tensors a
    backward reaches."""
    def one(a):
        if isinstance(a, torch.Tensor):
            return tuple(a.shape), a.dtype, a.device, a.requires_grad
        if isinstance(a, torch.nn.Module):
            return type(a).__name__, tuple(sorted({(str(p.dtype), str(p.device)) for p in a.parameters()}))
        return type(a).__name__
    return tuple(one(a) for a in args) + (len(_grad_inputs(args)),)


class Compiled:
    """``fn`` compiled by inductor at its first call (tens of seconds on 2 CPU cores; later calls with the same
    shapes reuse the graph). If compiling or running the compiled ``fn`` raises (inductor needs a C++ compiler on
    CPU), one warning is logged and ``fn`` runs eagerly from then on: the same result, only slower.

    A compiled backward is compiled at its first use, inside the caller's ``backward()``, where no fallback can
    catch it: so the first call with a graph, per input signature, first takes a backward of its own
    (``check_backward``)."""

    def __init__(self, fn: Callable[..., torch.Tensor]):
        self.name, self.fn = fn.__name__, torch.compile(fn)
        self.eager, self.compiled = fn, True
        self.backward_checked: set[tuple] = set()

    def __call__(self, *args) -> torch.Tensor:
        if self.compiled:
            try:
                out = self.fn(*args)
                self.check_backward(out, args)
                return out
            except Exception as e:  # noqa: BLE001 - any compiler failure: fall back to the eager call
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                log.warning("torch.compile of %s failed (%s: %s); running it eagerly", self.name,
                            type(e).__name__, first[:200])
                self.compiled, self.fn = False, self.eager
        return self.fn(*args)

    def check_backward(self, out, args) -> None:
        """Once per input signature (``_signature``) of a call whose output carries a graph, run the compiled forward
        and backward on detached copies of the inputs, so that the backward's compilation fails here, not in the
        caller's ``backward()``. Its gradients go to ``autograd.grad`` and are dropped: no ``.grad`` changes, and the
        caller's graph is untouched (a compiled backward may run only once on a graph)."""
        if not any(o.requires_grad for o in _tensors(out)):
            return
        key = _signature(args)
        if key in self.backward_checked:
            return
        copies = [a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.requires_grad else a for a in args]
        outs, inputs = [o for o in _tensors(self.fn(*copies)) if o.requires_grad], _grad_inputs(copies)
        if outs and inputs:
            torch.autograd.grad(outs, inputs, [torch.ones_like(o) for o in outs], allow_unused=True)
        self.backward_checked.add(key)
