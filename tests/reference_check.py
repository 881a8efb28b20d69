#!/usr/bin/python3
"""The library against PyTorch and NumPy doing what the MiSLAS reference does.

For several batches (each LAS shape, K from 10 to 1000) this script writes
logits, targets and class counts to a file, runs tests/ref_dump (the library)
on it, and compares:
  - the per-class smoothing factors with docs/method.md's formulas in NumPy;
  - the LAS loss and its gradient with log_softmax + gather + mean in PyTorch
    and autograd, plain and as the mixup criterion;
  - accuracy, mean confidence, ECE, MCE and the bin counts with a float32
    softmax + max in PyTorch and the reference's NumPy binning
    (linspace edges, digitize(right=True), per-bin means);
  - NLL and the Brier score with their definitions in double.
Exits 77 (meson's "skipped") when torch or numpy cannot be imported.

Usage: reference_check.py PATH_TO_REF_DUMP
"""
import os
import shlex
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skipped: {e} (install Debian's python3-torch)")
    sys.exit(77)


def smoothing(counts, head, tail, shape, power):
    """docs/method.md's eps_c in double, from the float32 options, as float32."""
    c = np.asarray(counts, dtype=np.float64)
    hi, lo = c.max(), c.min()
    head, tail = float(np.float32(head)), float(np.float32(tail))
    if hi == lo:
        return np.full(len(c), head, dtype=np.float32)
    t = (c - lo) / (hi - lo)
    if shape == 0:
        eps = tail + (head - tail) * np.sin(np.pi * t / 2)
    elif shape == 1:
        eps = tail + (head - tail) * t
    elif shape == 2:
        eps = head + (head - tail) * np.sin(1.5 * np.pi + np.pi * t / 2)
    else:
        eps = tail + (head - tail) * np.power(t, float(np.float32(power)))
    return np.clip(eps, 0.0, 1.0).astype(np.float32)


def las(z, y, eps):
    logp = torch.log_softmax(z, dim=-1)
    nll = -logp.gather(1, y[:, None]).squeeze(1)
    smooth = -logp.mean(dim=-1)
    e = eps[y]
    return ((1 - e) * nll + e * smooth).mean()


def binning(conf, correct, bins):
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.digitize(conf, edges, right=True)
    counts = np.zeros(bins, dtype=np.int64)
    accs = np.zeros(bins)
    confs = np.zeros(bins)
    for b in range(bins):
        sel = np.where(idx == b + 1)[0]
        if len(sel) > 0:
            counts[b] = len(sel)
            accs[b] = np.mean(correct[sel])
            confs[b] = np.mean(conf[sel])
    gaps = np.abs(accs - confs)
    return counts, np.sum(gaps * counts) / np.sum(counts), np.max(gaps)


def check(name, got, want, rtol, atol):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        worst = np.argmax(np.abs(got - want) - rtol * np.abs(want))
        raise AssertionError(f"{name}: got {got.flat[worst]!r}, want {want.flat[worst]!r} "
                             f"(rtol {rtol}, atol {atol})")


def run_case(ref_dump, workdir, seed, n, k, shape, head, tail, power, lam, boost, bins=15, scale=4.0):
    rng = np.random.default_rng(seed)
    counts = np.sort(rng.integers(1, 5000, size=k))[::-1].astype(np.int64)
    ya = rng.integers(0, k, size=n).astype(np.int32)
    logits = rng.standard_normal((n, k)) * scale
    logits[np.arange(n), ya] += boost      # a classifier that is mostly right
    logits = logits.astype(np.float32)
    yb = ya[rng.permutation(n)]
    path_in, path_out = os.path.join(workdir, "in.bin"), os.path.join(workdir, "out.bin")
    with open(path_in, "wb") as f:
        f.write(struct.pack("=4i4f", n, k, bins, shape, head, tail, power, lam))
        f.write(counts.tobytes() + logits.tobytes() + ya.tobytes() + yb.tobytes())
    # MISLAS_TEST_WRAPPER (e.g. "valgrind --error-exitcode=99") runs ref_dump under a checker
    wrapper = shlex.split(os.environ.get("MISLAS_TEST_WRAPPER", ""))
    subprocess.run(wrapper + [ref_dump, path_in, path_out], check=True)
    raw = open(path_out, "rb").read()
    at = 0

    def take(dtype, count):
        nonlocal at
        a = np.frombuffer(raw, dtype=dtype, count=count, offset=at)
        at += a.nbytes
        return a

    eps_lib = take(np.float32, k)
    loss_lib = take(np.float32, 1)[0]
    grad_lib = take(np.float32, n * k).reshape(n, k)
    mix_lib = take(np.float32, 1)[0]
    mix_grad_lib = take(np.float32, n * k).reshape(n, k)
    acc, avg_conf, ece, mce, nll, brier = take(np.float64, 6)
    bins_lib = take(np.uint64, bins)

    eps = smoothing(counts, head, tail, shape, power)
    check("eps", eps_lib, eps, 0, 1e-7)
    eps_t = torch.from_numpy(eps)
    z = torch.from_numpy(logits).requires_grad_(True)
    ta, tb = torch.from_numpy(ya).long(), torch.from_numpy(yb).long()
    loss = las(z, ta, eps_t)
    loss.backward()
    # float32 softmax differs from the library's by ulps: gradients (of size
    # about 1/n) agree to ~1e-7/n absolute
    check("loss", loss_lib, loss.item(), 2e-6, 1e-7)
    check("grad", grad_lib, z.grad.numpy(), 1e-4, 1e-6 / n)
    z.grad = None
    mix = lam * las(z, ta, eps_t) + (1 - lam) * las(z, tb, eps_t)
    mix.backward()
    check("mixup loss", mix_lib, mix.item(), 2e-6, 1e-7)
    check("mixup grad", mix_grad_lib, z.grad.numpy(), 1e-4, 1e-6 / n)

    with torch.no_grad():
        p = torch.softmax(torch.from_numpy(logits), dim=1)
        conf, pred = torch.max(p, 1)
    conf64 = conf.numpy().astype(np.float64)
    correct = (pred.numpy() == ya).astype(np.float64)
    counts_ref, ece_ref, mce_ref = binning(conf64, correct, bins)
    p64 = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
    onehot = np.eye(k)[ya]
    check("accuracy", acc, correct.mean(), 0, 0)
    check("mean confidence", avg_conf, conf64.mean(), 1e-6, 1e-7)
    if not np.array_equal(bins_lib.astype(np.int64), counts_ref):
        raise AssertionError(f"bin counts: got {bins_lib.tolist()}, want {counts_ref.tolist()}")
    check("ECE", ece, ece_ref, 1e-5, 1e-7)
    check("MCE", mce, mce_ref, 1e-5, 1e-7)
    check("NLL", nll, np.mean(-np.log(p64[np.arange(n), ya])), 1e-5, 1e-7)
    check("Brier", brier, np.mean(np.sum((p64 - onehot) ** 2, axis=1)), 1e-5, 1e-7)
    return loss.item(), ece_ref


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    torch.set_num_threads(1)
    cases = [
        # seed, n, K, shape, head, tail, power, lambda, boost of the target logit
        (1, 257, 10, 0, 0.3, 0.0, 1.0, 0.7, 0.0),
        (2, 300, 100, 1, 0.4, 0.1, 1.0, 0.25, 8.0),
        (3, 128, 1000, 2, 0.4, 0.1, 1.0, 0.5, 12.0),
        (4, 64, 37, 3, 0.3, 0.05, 2.0, 0.9, 4.0),
        (5, 2000, 10, 0, 0.1, 0.0, 1.0, 0.0, 6.0),
    ]
    with tempfile.TemporaryDirectory() as workdir:
        for case in cases:
            loss, ece = run_case(sys.argv[1], workdir, *case)
            print(f"case seed {case[0]}: n {case[1]}, K {case[2]}, shape {case[3]}: "
                  f"loss {loss:.6f}, ECE {ece:.6f}: library matches PyTorch/NumPy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
