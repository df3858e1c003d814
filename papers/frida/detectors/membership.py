"""Membership inference with canaries: each round the server sends fresh samples (the canary) that
honest clients train on; a client that did not train cannot show that it has seen them.

- `MiaLoss`, a loss-threshold attack (Yeom et al. 2018) on the client model's canary loss. The
  server fine-tunes the global model on the canary alone (the canary's share of a client's step,
  step by step), so for each client it knows the loss that client's number of steps should reach.
  The client's position between that reference (0) and the untrained global model (1) is scored as
  a robust z-score across the round's clients and flagged above `mia_threshold_mix` (the server-side
  threshold). Per-client references keep small clients, which take few steps, from looking idle.
- `MiaGrad`, gradient alignment: an update trained on a sample moves against that sample's gradient
  at the global model. For each client, the cosine between its update and minus each per-sample
  gradient is compared for canary members and a server-held non-member pool with Welch's t-test;
  no significant excess alignment on members means no evidence of training.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch.func import functional_call, grad, vmap

from papers.frida.detectors.base import DetectorOutput, RoundView, robust_z
from papers.frida.training import per_sample_loss


class MiaLoss:
    name = "mia_loss"

    def __call__(self, view: RoundView) -> DetectorOutput:
        fed = view.fed
        losses = np.array(
            [per_sample_loss(view.load(c.weights), view.canary_x, view.canary_y).mean() for c in view.clients]
        )
        reference = copy.deepcopy(view.load(view.global_weights))
        global_loss = per_sample_loss(reference, view.canary_x, view.canary_y).mean()
        schedules = [view.schedule(c) for c in view.clients]
        steps = [s.ref_steps for s in schedules]
        share = [s.ref_share for s in schedules]
        # the reference: the global model fine-tuned on the canary alone, with the canary's share of
        # a client's step; its loss after s steps is what a client taking s steps should reach
        curve = [global_loss]
        opt = torch.optim.SGD(reference.parameters(), lr=fed.lr * float(np.median(share)))
        xs, ys = torch.as_tensor(view.canary_x), torch.as_tensor(view.canary_y)
        for _ in range(max(steps)):
            reference.train()
            opt.zero_grad()
            F.cross_entropy(reference(xs), ys).backward()
            opt.step()
            curve.append(per_sample_loss(reference, view.canary_x, view.canary_y).mean())
        tuned = np.array([curve[s] for s in steps])
        # 0: as low as the fine-tuned reference, 1: as high as the untrained global model
        position = (losses - tuned) / np.maximum(global_loss - tuned, 1e-6)
        return DetectorOutput(
            robust_z(position),
            position > fed.mia_threshold_mix,
            {"loss": losses, "reference": tuned, "position": position},
        )


def per_sample_gradients(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[samples, parameters] gradients of the loss, one vmap over the batch (no Python loop); a
    model vmap cannot batch (the GRU) takes one backward pass per sample."""
    if not getattr(model, "vmap_ok", True):
        rows = []
        model.eval()
        for i in range(len(y)):
            model.zero_grad()
            F.cross_entropy(model(torch.as_tensor(x[i : i + 1])), torch.as_tensor(y[i : i + 1])).backward()
            rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double())
        model.zero_grad()
        return torch.stack(rows).numpy()
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_one(p, xi, yi):
        return F.cross_entropy(functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    model.eval()
    grads = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, torch.as_tensor(x), torch.as_tensor(y))
    return torch.cat([g.reshape(len(y), -1) for g in grads.values()], dim=1).double().numpy()


def welch_greater(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Welch's t-test of mean(a) > mean(b) for every column at once (scipy.stats.ttest_ind with
    equal_var=False, alternative='greater', one column at a time, gives the same numbers)."""
    na, nb = len(a), len(b)
    va, vb = a.var(axis=0, ddof=1) / na, b.var(axis=0, ddof=1) / nb
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (a.mean(axis=0) - b.mean(axis=0)) / np.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    return t, stats.t.sf(t, df)


class MiaGrad:
    name = "mia_grad"

    def __call__(self, view: RoundView) -> DetectorOutput:
        model = view.load(view.global_weights)
        names = [k for k, _ in model.named_parameters()]
        if names != list(view.global_weights)[: len(names)]:
            raise ValueError("mia_grad expects parameters first, in state_dict order")
        g = -per_sample_gradients(
            model,
            np.concatenate([view.canary_x, view.nonmember_x]),
            np.concatenate([view.canary_y, view.nonmember_y]),
        )
        g = torch.as_tensor(g / (np.linalg.norm(g, axis=1, keepdims=True) + 1e-30))
        k = len(view.canary_y)
        updates = view.updates[:, : g.shape[1]]
        norms = np.linalg.norm(updates, axis=1)
        unit = updates / np.where(norms > 0, norms, 1.0)[:, None]
        cos = (g @ torch.as_tensor(unit).T).numpy()  # [samples, clients], one product for the round
        t_arr, p_arr = welch_greater(cos[:k], cos[k:])
        # nothing trained at all, or no variance to test: no evidence of membership
        bad = (norms == 0) | ~np.isfinite(t_arr) | ~np.isfinite(p_arr)
        t_arr, p_arr = np.where(bad, 0.0, t_arr), np.where(bad, 1.0, p_arr)
        return DetectorOutput(-t_arr, p_arr > view.fed.mia_alpha, {"t": t_arr, "p": p_arr})
