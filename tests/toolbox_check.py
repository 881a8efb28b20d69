#!/usr/bin/python3
"""The long-tail losses and the calibration fits against PyTorch doing what
the projects that introduced them do.

Through ctypes on the built libmislas.so, on random batches (K = 10 and 100,
with and without mixup), this compares:
  - focal loss with BagofTricks-LT's formulation (per-sample cross-entropy,
    p = exp(-ce), (1 - p)^gamma ce, batch mean) and autograd's gradient;
  - LDAM-DRW with Cao et al.'s code (margins max_m N^-1/4 / max, the target's
    logit lowered, scaled by s, cross_entropy(weight=per_cls_weights)), the
    weights from Cui et al.'s effective number as LDAM-DRW computes them;
  - logit-adjusted cross-entropy (Menon et al.: cross_entropy(z + tau log pi));
  - class-weighted LAS with the plain mean reduction;
  - temperature scaling with a converged L-BFGS on the temperature in double.
Losses are compared in double; tolerances cover the library's float32 math.
Exits 77 (meson's "skipped") when torch or numpy cannot be imported, or when the
library is built with a sanitizer (which a Python process cannot load).

Usage: toolbox_check.py PATH_TO_LIBMISLAS_SO
"""
import ctypes
import math
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skipped: {e} (install Debian's python3-torch)")
    sys.exit(77)

# A sanitizer's runtime must come first in a process; the Python interpreter
# does not load one, so a sanitized build of the library cannot be loaded
# here (its own suites cover it under the sanitizers).
with open(sys.argv[1], "rb") as f:
    image = f.read()
if b"libasan.so" in image or b"libtsan.so" in image:
    print("skipped: the library is built with a sanitizer, which Python cannot load")
    sys.exit(77)
lib = ctypes.CDLL(sys.argv[1])
f32p, i32p, i64p = (ctypes.POINTER(t) for t in (ctypes.c_float, ctypes.c_int32, ctypes.c_int64))
lib.mislas_last_error.restype = ctypes.c_char_p
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def ok(status, call):
    if status != 0:
        raise SystemExit(f"{call} failed: {lib.mislas_last_error().decode()}")


def arr(values, ctype):
    return (ctype * len(values))(*values)


class Loss:
    """A mislas_loss made by one of the constructors."""

    def __init__(self, constructor, *args):
        self.handle = ctypes.c_void_p()
        ok(getattr(lib, constructor)(ctypes.byref(self.handle), *args), constructor)

    def weights(self, w, weighted_mean):
        ok(lib.mislas_loss_set_class_weights(self.handle, arr(w, ctypes.c_float), int(weighted_mean)),
           "mislas_loss_set_class_weights")

    def __call__(self, z, ya, yb=None, lam=1.0):
        n, k = z.shape
        zf = np.ascontiguousarray(z, dtype=np.float32)
        grad = np.zeros((n, k), dtype=np.float32)
        value = ctypes.c_float()
        zp, gp = zf.ctypes.data_as(f32p), grad.ctypes.data_as(f32p)
        a = arr([int(v) for v in ya], ctypes.c_int32)
        if yb is None:
            ok(lib.mislas_loss_compute(self.handle, zp, a, ctypes.c_size_t(n), ctypes.byref(value), gp),
               "mislas_loss_compute")
        else:
            b = arr([int(v) for v in yb], ctypes.c_int32)
            ok(lib.mislas_loss_compute_mixup(self.handle, zp, a, b, ctypes.c_float(lam), ctypes.c_size_t(n),
                                             ctypes.byref(value), gp), "mislas_loss_compute_mixup")
        return value.value, grad

    def __del__(self):
        lib.mislas_loss_free(self.handle)


def torch_value_and_grad(criterion, z, ya, yb=None, lam=1.0):
    """criterion(z, y) -> batch loss; mixup as lam c(z, ya) + (1 - lam) c(z, yb)."""
    zt = torch.tensor(np.asarray(z, dtype=np.float32), dtype=torch.float64, requires_grad=True)
    a = torch.tensor(ya, dtype=torch.long)
    loss = criterion(zt, a)
    if yb is not None:
        loss = lam * loss + (1 - lam) * criterion(zt, torch.tensor(yb, dtype=torch.long))
    loss.backward()
    return loss.item(), zt.grad.numpy()


def compare(name, ours, theirs, scale=1.0):
    (v, g), (tv, tg) = ours, theirs
    check(abs(v - tv) <= 2e-5 * max(1.0, abs(tv)), f"{name}: loss {v:.8g} vs PyTorch {tv:.8g}")
    err = float(np.max(np.abs(g - tg)))
    check(err <= 2e-6 * scale + 1e-5 * float(np.max(np.abs(tg))), f"{name}: gradient off by {err:.3g}")


def counts_for(k):
    return [max(1, int(500 * 0.01 ** (c / (k - 1)))) for c in range(k)]


def cb_weights(counts, beta):
    """Cui et al. as LDAM-DRW computes per_cls_weights."""
    effective = 1.0 - np.power(beta, counts)
    w = (1.0 - beta) / np.array(effective)
    return w / np.sum(w) * len(counts)


def main():
    rng = np.random.default_rng(11)
    for k in (10, 100):
        n = 64
        counts = counts_for(k)
        c64 = arr(counts, ctypes.c_int64)
        z = rng.normal(0.0, 2.0, size=(n, k)).astype(np.float32)
        ya, yb = rng.integers(0, k, n), rng.integers(0, k, n)
        lam = 0.35

        for gamma in (0.5, 2.0):
            focal = Loss("mislas_loss_new_focal", ctypes.c_int32(k), ctypes.c_float(gamma))

            def bot_focal(x, y, g=gamma):
                ce = F.cross_entropy(x, y, reduction="none")
                p = torch.exp(-ce)
                return ((1 - p) ** g * ce).mean()
            compare(f"focal gamma {gamma}, K {k}", focal(z, ya), torch_value_and_grad(bot_focal, z, ya))
            compare(f"focal gamma {gamma}, K {k}, mixup", focal(z, ya, yb, lam),
                    torch_value_and_grad(bot_focal, z, ya, yb, lam))

        m_list = 1.0 / np.sqrt(np.sqrt(np.array(counts, dtype=np.float64)))
        m_list = torch.tensor(m_list * (0.5 / np.max(m_list)))
        for drw in (False, True):
            w = cb_weights(counts, 0.9999) if drw else np.ones(k)
            ldam = Loss("mislas_loss_new_ldam", c64, ctypes.c_int32(k), None)
            ldam.weights(list(w), weighted_mean=True)

            def cao_ldam(x, y, w=torch.tensor(w)):
                index = F.one_hot(y, k).to(torch.bool)
                batch_m = m_list[y].view(-1, 1)
                output = torch.where(index, x - batch_m, x)
                return F.cross_entropy(30.0 * output, y, weight=w)
            z_small = (z / 4).astype(np.float32)   # LDAM's normalised-feature logits are small
            compare(f"LDAM{'-DRW' if drw else ''}, K {k}", ldam(z_small, ya), torch_value_and_grad(cao_ldam, z_small, ya),
                    scale=30.0)
            compare(f"LDAM{'-DRW' if drw else ''}, K {k}, mixup", ldam(z_small, ya, yb, lam),
                    torch_value_and_grad(cao_ldam, z_small, ya, yb, lam), scale=30.0)

        for tau in (0.5, 1.0):
            la = Loss("mislas_loss_new_logit_adjusted", c64, ctypes.c_int32(k), ctypes.c_float(tau))
            log_prior = torch.log(torch.tensor(counts, dtype=torch.float64) / sum(counts))

            def menon(x, y, t=tau):
                return F.cross_entropy(x + t * log_prior, y)
            compare(f"logit-adjusted tau {tau}, K {k}", la(z, ya), torch_value_and_grad(menon, z, ya))

        las = Loss("mislas_loss_new_label_aware_smoothing", c64, ctypes.c_int32(k), None)
        eps = (ctypes.c_float * k)()
        ok(lib.mislas_loss_class_smoothing(las.handle, eps), "mislas_loss_class_smoothing")
        w = cb_weights(counts, 0.999)
        las.weights(list(w), weighted_mean=False)
        e, wt = torch.tensor(list(eps), dtype=torch.float64), torch.tensor(w)

        def weighted_las(x, y):
            logp = torch.log_softmax(x, dim=-1)
            nll, smooth = -logp.gather(1, y[:, None]).squeeze(1), -logp.mean(dim=-1)
            return (wt[y] * ((1 - e[y]) * nll + e[y] * smooth)).mean()
        compare(f"class-weighted LAS, K {k}, mixup", las(z, ya, yb, lam),
                torch_value_and_grad(weighted_las, z, ya, yb, lam))

        ours = (ctypes.c_float * k)()
        ok(lib.mislas_loss_class_balanced_weights(ours, c64, ctypes.c_int32(k), ctypes.c_double(0.9999)),
           "mislas_loss_class_balanced_weights")
        err = float(np.max(np.abs(np.array(list(ours)) - cb_weights(counts, 0.9999))))
        check(err < 1e-5, f"class-balanced weights, K {k}: off by {err:.3g}")

        # temperature scaling: over-confident logits of a known scale
        n_fit = 4000
        true = rng.normal(0.0, 1.5, size=(n_fit, k))
        true[np.arange(n_fit), rng.integers(0, k, n_fit)] += 2.0
        p = np.exp(true - true.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        y = np.array([rng.choice(k, p=row) for row in p])
        logits = (2.0 * true).astype(np.float32)
        t = ctypes.c_double()
        ok(lib.mislas_calib_fit_temperature(ctypes.byref(t), logits.ctypes.data_as(f32p),
                                      arr([int(v) for v in y], ctypes.c_int32),
                                      ctypes.c_size_t(n_fit), ctypes.c_int32(k), None),
           "mislas_calib_fit_temperature")
        log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        zt, yt = torch.tensor(logits, dtype=torch.float64), torch.tensor(y)
        opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-15,
                                line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(zt / torch.exp(log_t), yt)
            loss.backward()
            return loss
        opt.step(closure)
        theirs = math.exp(log_t.item())
        check(abs(t.value - theirs) <= 1e-4 * theirs, f"temperature, K {k}: {t.value:.6f} vs L-BFGS {theirs:.6f}")

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("toolbox: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
