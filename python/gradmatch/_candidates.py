"""Gradient columns of gradmatch's built-in candidate regularizers, each at
unit coefficient, at the current parameters (the C++ ``candidate_columns``):

  ridge                 R = sum theta^2                  col = 2 theta
  huber:beta=B          R = sum h_B(theta)               col = h'_B(theta)
  elastic-net:beta=B    two columns "huber" and "ridge"  -> (lambda1, lambda2)
  layerwise-ridge       R_l = sum over layer l of theta^2, one column per
                        module prefix ("layer0.weight" -> "layer0"), named
                        "layerwise_ridge.<prefix>"
  activation-quadratic  R = sum_l sum_ij W_l,ij^2 m_l,j with m_l,j the mean
                        square of linear layer l's input j (eval mode, frozen
                        at theta); col = 2 W (.) m on nn.Linear weights, 0 elsewhere
  nuclear               R = sum ||W||_* over 2-D parameters; col = U_r V_r^T

h_B(x) = x^2 / (2B) for |x| < B, else |x| - B/2.
"""
import numpy as np
import torch

from ._model import eval_mode

BUILT_IN = ("ridge", "huber:beta=B", "elastic-net:beta=B", "layerwise-ridge", "activation-quadratic", "nuclear")


def parse_candidate(text):
    """(kind, beta) from a candidate string; ValueError naming the valid ones."""
    if text in ("ridge", "layerwise-ridge", "activation-quadratic", "nuclear"):
        return text, 0.0
    for prefix in ("huber:beta=", "elastic-net:beta="):
        if text.startswith(prefix):
            try:
                beta = float(text[len(prefix):])
            except ValueError:
                beta = float("nan")
            if not beta > 0.0 or not np.isfinite(beta):
                raise ValueError(f"candidate '{text}': beta must be a positive number")
            return prefix.split(":")[0], beta
    raise ValueError(f"candidate: unknown regularizer '{text}'; use {', '.join(BUILT_IN)}, "
                     "or give a (name, column) pair")


def huber_derivative(theta, beta):
    return np.where(np.abs(theta) < beta, theta / beta, np.sign(theta))


def _input_second_moments(evaluator):
    """Mean over examples of the squared inputs of each selected nn.Linear weight."""
    weight_of = {}
    for module_name, module in evaluator.model.named_modules():
        if isinstance(module, torch.nn.Linear):
            weight_of[id(module)] = (module_name + "." if module_name else "") + "weight"
    sums = {}
    hooks = []

    def hook(module, args, _output):
        name = weight_of[id(module)]
        a = args[0].detach().to(torch.float64).reshape(-1, args[0].shape[-1])
        sums[name] = sums.get(name, 0.0) + a.square().sum(0)

    for module in evaluator.model.modules():
        if id(module) in weight_of:
            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad(), eval_mode(evaluator.model):
            for x, _ in evaluator._batches():
                evaluator.model(x)
    finally:
        for h in hooks:
            h.remove()
    if not sums:
        raise ValueError("activation-quadratic: the model has no nn.Linear layer to weight")
    return {name: s / evaluator.n for name, s in sums.items()}


def candidate_columns(evaluator, candidates):
    """[(name, column [p])] for the built-in candidate strings, in order."""
    theta = evaluator.current().cpu().numpy()
    offsets = np.cumsum([0] + evaluator.sizes)
    out = []
    for text in candidates:
        kind, beta = parse_candidate(text)
        if kind == "ridge":
            out.append(("ridge", 2.0 * theta))
        elif kind == "huber":
            out.append(("huber", huber_derivative(theta, beta)))
        elif kind == "elastic-net":
            out.append(("huber", huber_derivative(theta, beta)))
            out.append(("ridge", 2.0 * theta))
        elif kind == "layerwise-ridge":
            layers = {}
            for i, name in enumerate(evaluator.names):
                layer = name.rsplit(".", 1)[0] if "." in name else name
                col = layers.setdefault(layer, np.zeros_like(theta))
                col[offsets[i]:offsets[i + 1]] = 2.0 * theta[offsets[i]:offsets[i + 1]]
            out.extend(("layerwise_ridge." + layer, col) for layer, col in layers.items())
        elif kind == "activation-quadratic":
            moments = _input_second_moments(evaluator)
            col = np.zeros_like(theta)
            for i, (name, param) in enumerate(zip(evaluator.names, evaluator.params)):
                if name in moments and param.dim() == 2:
                    w = param.detach().to(torch.float64)
                    col[offsets[i]:offsets[i + 1]] = (2.0 * w * moments[name].unsqueeze(0)).reshape(-1).cpu().numpy()
            out.append(("activation_quadratic", col))
        else:  # nuclear
            col = np.zeros_like(theta)
            for i, param in enumerate(evaluator.params):
                if param.dim() != 2:
                    continue
                u, s, vh = torch.linalg.svd(param.detach().to(torch.float64), full_matrices=False)
                tol = float(s.max()) * 1e-12 * max(param.shape) if s.numel() else 0.0
                r = int((s > tol).sum())
                col[offsets[i]:offsets[i + 1]] = (u[:, :r] @ vh[:r, :]).reshape(-1).cpu().numpy()
            out.append(("nuclear", col))
    return out


def feature_columns(evaluator, features):
    """[(name, column [p] float64)] from ``features``: None, a dict {name:
    column}, or a list of built-in candidate strings and (name, column) pairs."""
    if features is None:
        return []
    if isinstance(features, str):
        features = [features]
    items = list(features.items()) if isinstance(features, dict) else list(features)
    out = []
    for item in items:
        if isinstance(item, str):
            out.extend(candidate_columns(evaluator, [item]))
            continue
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError("features: each item must be a built-in candidate string or a (name, column) pair")
        name, column = item
        if isinstance(column, torch.Tensor):
            column = column.detach().cpu().to(torch.float64).numpy()
        column = np.asarray(column, dtype=np.float64)
        if column.ndim != 1:  # never flattened: a [p, k] or per-tensor array would pair entries wrongly
            raise ValueError(f"feature '{name}' has shape {list(column.shape)}; give one column [p] (the selected "
                             f"parameters flattened in registration order, p = {evaluator.p})")
        if column.shape[0] != evaluator.p:
            raise ValueError(f"feature '{name}' has {column.shape[0]} entries but the selected parameters "
                             f"have p = {evaluator.p}")
        out.append((name, column))
    check_feature_names([name for name, _ in out])
    return out


def check_feature_names(names):
    """ValueError unless every feature name is a unique plain HDF5 name."""
    seen = set()
    for name in names:
        if not isinstance(name, str) or not name or name == "." or "/" in name or name in seen:
            raise ValueError(f"feature name '{name}' is empty, contains '/' or repeats "
                             "(elastic-net already gives 'huber' and 'ridge'); give each a unique plain name")
        seen.add(name)
