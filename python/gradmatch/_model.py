"""PyTorch side of gradmatch's conventions: parameter selection, the mean
loss, full-batch gradients and Hessian-vector products on a float64 copy.

Conventions (those of the C++ library):
  * theta is one flat vector: the selected parameters flattened and
    concatenated in module registration order (``named_parameters()``).
  * The loss is a full-batch mean: sum the per-example loss over all batches
    and divide by N. MSE averages over examples and output dimensions.
  * Everything is evaluated in eval mode (no dropout) and in float64.
"""
import copy
import numbers

import torch

_LOSS_NAMES = {"mse": "mse", "ce": "ce", "cross-entropy": "ce", "bce": "bce", "bce-with-logits": "bce"}


def _float_target(output, target, what):
    if target.dim() == 1 and output.dim() == 2 and output.shape[1] == 1:
        target = target.unsqueeze(1)
    if target.shape != output.shape:
        raise ValueError(f"{what}: the targets' shape {tuple(target.shape)} does not match "
                         f"the model output's {tuple(output.shape)}")
    return target.to(output.dtype)


def _check_class_indices(y, classes):
    """Class indices: integers (integer-valued floats accepted) in [0, classes)."""
    if y.numel() == 0:
        return
    bad = ~torch.isfinite(y) | (y != torch.round(y)) if y.is_floating_point() else torch.zeros_like(y, dtype=torch.bool)
    bad = bad | (y < 0) | (y >= classes)
    if bad.any():
        i = int(torch.nonzero(bad)[0, 0])
        raise ValueError(f"ce loss: targets[{i}] = {y[i].item():g}: class indices must be integers "
                         f"in [0, {classes}) for a model with {classes} outputs")


def _outputs_per_example(output):
    return 1.0 if output.dim() == 0 or output.shape[0] == 0 else output.numel() / output.shape[0]


def summed_loss_function(loss_fn):
    """The per-example loss summed over a batch, ``f(output, target) -> scalar``.

    ``loss_fn`` is either one of the names "mse", "ce" (alias
    "cross-entropy") or "bce" (alias "bce-with-logits"), which are gradmatch's
    built-in losses, or a callable ``loss_fn(output, target)`` returning the
    batch MEAN (PyTorch's default ``reduction='mean'``: ``torch.nn.MSELoss()``,
    ``torch.nn.functional.cross_entropy``, ...). A mean over the batch times
    the batch size is the batch's summed loss, so for ``MSELoss`` (a mean over
    examples and outputs) the per-example loss is the mean over the outputs,
    exactly gradmatch's MSE.
    """
    if isinstance(loss_fn, str):
        kind = _LOSS_NAMES.get(loss_fn)
        if kind is None:
            raise ValueError(f"loss_fn: unknown loss '{loss_fn}'; use mse, ce or bce, or a callable")
        if kind == "mse":
            return lambda out, y: (out - _float_target(out, y, "mse loss")).square().sum() / _outputs_per_example(out)
        if kind == "ce":
            def ce(out, y):
                if out.dim() != 2 or y.dim() != 1 or y.shape[0] != out.shape[0]:
                    raise ValueError("ce loss: expected outputs [n, classes] and class indices [n]")
                _check_class_indices(y, out.shape[1])
                return -torch.log_softmax(out, 1).gather(1, y.long().unsqueeze(1)).sum()
            return ce
        return lambda out, y: torch.nn.functional.binary_cross_entropy_with_logits(
            out, _float_target(out, y, "bce loss"), reduction="sum") / _outputs_per_example(out)
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a callable or one of 'mse', 'ce', 'bce', not {type(loss_fn).__name__}")
    reduction = getattr(loss_fn, "reduction", "mean")
    if reduction != "mean":
        raise ValueError(f"loss_fn has reduction='{reduction}'; gradmatch needs the batch mean "
                         "(reduction='mean', PyTorch's default)")
    # CrossEntropyLoss and NLLLoss with class weights divide by the batch's
    # summed weights, and ignore_index drops examples from the count: their
    # "mean" is not the per-example mean, so batch mean x batch size is not
    # the batch's summed loss and batch_size= would change the gradient.
    class_mean = isinstance(loss_fn, (torch.nn.CrossEntropyLoss, torch.nn.NLLLoss))
    if class_mean and getattr(loss_fn, "weight", None) is not None:
        raise ValueError(f"loss_fn: {type(loss_fn).__name__}(weight=...) averages with the class weights, "
                         "not over examples; pass a callable returning the per-example mean, e.g. "
                         "lambda out, y: (w[y] * F.cross_entropy(out, y, reduction='none')).mean()")

    def summed(out, y):
        if (y.is_floating_point() and y.dim() == 1 and out.dim() == 2 and out.shape[1] == 1
                and y.shape[0] == out.shape[0]):
            y = y.unsqueeze(1)  # targets [n] for outputs [n, 1], as the built-in losses read them
        if y.is_floating_point() and y.dim() > 0 and out.dim() > 0 and y.shape != out.shape:
            try:
                broadcast = torch.broadcast_shapes(out.shape, y.shape)
            except RuntimeError:
                broadcast = None
            if broadcast is not None and broadcast != out.shape:
                raise ValueError(f"loss_fn: the targets' shape {tuple(y.shape)} broadcasts against the model "
                                 f"output's {tuple(out.shape)} to {tuple(broadcast)}, pairing every output "
                                 "with every target; give targets the output's shape")
        if class_mean and (y == loss_fn.ignore_index).any():
            raise ValueError(f"loss_fn: targets hold ignore_index = {loss_fn.ignore_index}; "
                             "the loss's mean then leaves those examples out of the count. "
                             "Drop those examples from inputs and targets")
        value = loss_fn(out, y)
        if not isinstance(value, torch.Tensor) or value.dim() != 0:
            raise ValueError("loss_fn must return a scalar tensor (the mean loss of the batch)")
        return value * out.shape[0]
    return summed


def as_float64(tensor, what):
    """A tensor (or array) as a torch tensor; floating point becomes float64, integers stay."""
    if not isinstance(tensor, torch.Tensor):
        try:
            tensor = torch.as_tensor(tensor)
        except Exception as e:
            raise TypeError(f"{what} must be a tensor or an array, not {type(tensor).__name__}") from e
    tensor = tensor.detach()
    return tensor.to(torch.float64) if tensor.is_floating_point() else tensor


def selected_names(model, params):
    """Names of the selected parameters, in registration order.

    ``params`` is None (every parameter with ``requires_grad``), or an
    iterable of parameter names (as in ``model.named_parameters()``) or of
    the model's parameter tensors.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    named = list(model.named_parameters())
    if params is None:
        names = [n for n, p in named if p.requires_grad]
        if not names:
            raise ValueError("the model has no parameters with requires_grad; pass params=")
        return names
    if isinstance(params, (str, torch.Tensor)):
        params = [params]
    by_id = {id(p): n for n, p in named}
    known = {n for n, _ in named}
    wanted = set()
    for item in params:
        if isinstance(item, str):
            if item not in known:
                raise ValueError(f"params: the model has no parameter named '{item}'; "
                                 f"its parameters are {sorted(known)}")
            name = item
        elif isinstance(item, torch.Tensor):
            if id(item) not in by_id:
                raise ValueError("params: a tensor given is not a parameter of the model")
            name = by_id[id(item)]
        else:
            raise TypeError(f"params: items must be parameter names or tensors, not {type(item).__name__}")
        if name in wanted:
            raise ValueError(f"params: parameter '{name}' is given twice")
        wanted.add(name)
    if not wanted:
        raise ValueError("params: no parameters selected")
    return [n for n, _ in named if n in wanted]


def float64_model(model):
    """``model`` itself when its parameters are all float64, else a float64 deep copy."""
    if all(p.dtype == torch.float64 for p in model.parameters()):
        return model
    try:
        work = copy.deepcopy(model)
    except Exception as e:
        raise TypeError("the model is not float64 and cannot be deep-copied to convert it; "
                        "call model.double() first") from e
    return work.double()


class Evaluator:
    """The full-batch mean loss of ``model`` over (inputs, targets) as a
    function of the flat vector of the parameters ``names``, in eval mode.

    ``batch_size`` (None: one batch) only splits the sums, for memory.
    Points other than the current parameters are evaluated by writing them
    into the model; ``restore()`` puts the parameters back.
    """

    def __init__(self, model, names, summed_loss, inputs, targets, batch_size=None):
        self.model = model
        self.names = list(names)
        lookup = dict(model.named_parameters())
        self.params = [lookup[n] for n in self.names]
        self.shapes = [tuple(p.shape) for p in self.params]
        self.sizes = [p.numel() for p in self.params]
        self.p = sum(self.sizes)
        self.loss = summed_loss
        self.device = self.params[0].device if self.params else torch.device("cpu")
        self.inputs = inputs.to(self.device)
        self.targets = targets.to(self.device)
        self.n = inputs.shape[0]
        if self.n == 0:
            raise ValueError("inputs: at least one example is needed")
        if targets.shape[0] != self.n:
            raise ValueError(f"targets have {targets.shape[0]} rows but inputs have {self.n}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral)
                                       or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, not {batch_size!r}")
        batch_size = None if batch_size is None else int(batch_size)
        self.batch = self.n if batch_size is None else min(batch_size, self.n)
        self._saved = None

    def current(self):
        """The selected parameters as one flat float64 vector (on the model's device)."""
        return torch.cat([p.detach().reshape(-1) for p in self.params]).to(torch.float64).clone()

    def set(self, theta):
        """Writes the flat vector ``theta`` into the selected parameters (saving them first)."""
        if self._saved is None:
            self._saved = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            offset = 0
            for p, size in zip(self.params, self.sizes):
                p.copy_(theta[offset:offset + size].reshape(p.shape))
                offset += size

    def restore(self):
        if self._saved is not None:
            with torch.no_grad():
                for p, value in zip(self.params, self._saved):
                    p.copy_(value)
            self._saved = None

    def _flatten(self, parts):
        return torch.cat([torch.zeros(s, dtype=p.dtype, device=p.device) if g is None else g.reshape(-1)
                          for g, p, s in zip(parts, self.params, self.sizes)])

    def _batches(self):
        for begin in range(0, self.n, self.batch):
            end = min(self.n, begin + self.batch)
            yield self.inputs[begin:end], self.targets[begin:end]

    def _objective(self, x, y):
        return self.loss(self.model(x), y) / self.n

    def _differentiable(self):
        """A ``with`` block in which every selected parameter requires grad
        (a frozen parameter selected explicitly is differentiated too)."""
        return _RequiresGrad(self.params)

    def value(self):
        with torch.no_grad(), eval_mode(self.model):
            return sum(float(self._objective(x, y)) for x, y in self._batches())

    def gradient(self):
        """g: the full-batch mean gradient at the current parameters, flat float64."""
        total = None
        with eval_mode(self.model), self._differentiable():
            for x, y in self._batches():
                parts = torch.autograd.grad(self._objective(x, y), self.params, allow_unused=True)
                g = self._flatten(parts)
                total = g if total is None else total + g
        return total.detach()

    def gradient_and_hvp(self):
        """(g, H g) at the current parameters, by double backpropagation."""
        if self.batch < self.n:
            g = self.gradient()
            return g, self.hvp(g)
        with eval_mode(self.model), self._differentiable():
            first = torch.autograd.grad(self._objective(self.inputs, self.targets), self.params,
                                        create_graph=True, allow_unused=True)
            g = self._flatten([None if f is None else f.detach() for f in first])
            return g, self._second(first, g)

    def hvp(self, v):
        total = torch.zeros(self.p, dtype=torch.float64, device=self.device)
        with eval_mode(self.model), self._differentiable():
            for x, y in self._batches():
                first = torch.autograd.grad(self._objective(x, y), self.params, create_graph=True, allow_unused=True)
                total = total + self._second(first, v)
        return total

    def _second(self, first, v):
        dot, offset = None, 0
        for f, size in zip(first, self.sizes):
            if f is not None:
                term = (f.reshape(-1) * v[offset:offset + size]).sum()
                dot = term if dot is None else dot + term
            offset += size
        if dot is None or not dot.requires_grad:
            return torch.zeros(self.p, dtype=torch.float64, device=self.device)
        return self._flatten(torch.autograd.grad(dot, self.params, allow_unused=True)).detach()


class _RequiresGrad:
    def __init__(self, params):
        self.frozen = [p for p in params if not p.requires_grad]

    def __enter__(self):
        for p in self.frozen:
            p.requires_grad_(True)

    def __exit__(self, *exc):
        for p in self.frozen:
            p.requires_grad_(False)
        return False


class eval_mode:
    """Puts a module in eval mode for a ``with`` block and restores its training flags."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.flags = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        for m, flag in self.flags:
            m.training = flag
        return False
