#!/usr/bin/python3
"""PyTorch CPU baseline for bench_losses.

Times, with 2 threads, the two operations bench_losses times, done the way the
MiSLAS reference code does them:

  LAS  label-aware smoothing: log_softmax over the classes, gather of the
       target log-probability, mean log-probability, per-target smoothing
       factor; the batch mean, then backward to the logits. N=4096, K=1000.
       Also the forward alone under torch.no_grad().
  ECE  softmax + max over dim 1 of 100000 x 1000 logits, then the reference's
       NumPy binning: edges np.linspace(0, 1, 16), np.digitize(right=True),
       per-bin mean accuracy and confidence, ECE = sum |acc - conf| * count /
       sum count, 15 bins.

Prints the medians and writes them to the file named by the first argument as
`key value` lines (las_fwd_bwd_us, las_fwd_us, ece_ms, and for information
las_fwd_bwd_fresh_us), the format
bench_losses reads from MISLAS_BENCH_BASELINE_FILE.

Usage: /usr/bin/python3 bench/pytorch_baseline.py OUTPUT_FILE [--quick]
"""
import math
import statistics
import sys
import time

N, K = 4096, 1000
ECE_N, BINS = 100000, 15
LOGIT_STD = 3.0
THREADS = 2


def long_tail_counts(num_classes, max_per_class=1280, imb_factor=0.01):
    """ImageNet-LT-like exponential profile, as mislas_long_tail_counts(EXP)."""
    return [int(max_per_class * imb_factor ** (i / (num_classes - 1.0))) for i in range(num_classes)]


def las_factors(counts, head=0.4, tail=0.1):
    """Concave LAS smoothing factor per class."""
    n_max, n_min = max(counts), min(counts)
    return [tail + (head - tail) * math.sin((c - n_min) * math.pi / (2 * (n_max - n_min))) for c in counts]


def time_calls(fn, warmup_reps, warmup_seconds, min_reps, min_seconds):
    """Per-call seconds of fn() after a warm-up, at least min_reps and min_seconds."""
    start = time.perf_counter()
    done = 0
    while done < warmup_reps or time.perf_counter() - start < warmup_seconds:
        fn()
        done += 1
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main(argv):
    args = [a for a in argv[1:] if a != "--quick"]
    quick = "--quick" in argv[1:]
    if len(args) != 1:
        sys.stderr.write("usage: pytorch_baseline.py OUTPUT_FILE [--quick]\n")
        return 2
    out_path = args[0]
    try:
        import numpy as np
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        sys.stderr.write("pytorch_baseline.py: cannot import torch/numpy: %s\n" % e)
        return 3

    torch.set_num_threads(THREADS)
    torch.manual_seed(20240607)
    capability = [line.split(":", 1)[1].strip() for line in torch.__config__.show().splitlines()
                  if "CPU capability usage" in line]
    print("PyTorch %s baseline, %d threads (CPU capability: %s)" % (
        torch.__version__, torch.get_num_threads(), capability[0] if capability else "unknown"))

    # ---- LAS forward + backward ------------------------------------------
    smooth = torch.tensor(las_factors(long_tail_counts(K)), dtype=torch.float32)
    logits = (torch.randn(N, K) * LOGIT_STD).requires_grad_(True)
    target = torch.randint(0, K, (N,))

    def las_forward(x, y):
        smoothing = smooth[y]
        confidence = 1.0 - smoothing
        logprobs = F.log_softmax(x, dim=-1)
        nll_loss = -logprobs.gather(dim=-1, index=y.unsqueeze(1)).squeeze(1)
        smooth_loss = -logprobs.mean(dim=-1)
        loss = confidence * nll_loss + smoothing * smooth_loss
        return loss.mean()

    def las_fwd_bwd():
        # optimizer.zero_grad() of PyTorch 1.13 (set_to_none=False): the
        # gradient buffer is zeroed in place and reused
        if logits.grad is not None:
            logits.grad.zero_()
        las_forward(logits, target).backward()

    def las_fwd_bwd_fresh():
        # a fresh gradient tensor every step (zero_grad(set_to_none=True), or
        # a network's non-leaf output): slower and much noisier, as each step
        # page-faults in new 16 MB buffers; printed for information only
        logits.grad = None
        las_forward(logits, target).backward()

    def las_fwd():
        with torch.no_grad():
            las_forward(logits, target)

    las_budget = (3, 0.02, 5, 0.05) if quick else (20, 0.3, 50, 1.0)
    t_fwd_bwd = statistics.median(time_calls(las_fwd_bwd, *las_budget))
    t_fwd = statistics.median(time_calls(las_fwd, *las_budget))
    t_fresh = statistics.median(time_calls(las_fwd_bwd_fresh, *las_budget))
    with torch.no_grad():
        las_value = las_forward(logits, target).item()
    print("LAS N=%d K=%d: forward+backward %.1f us, forward only %.1f us (loss %.6f)" % (
        N, K, t_fwd_bwd * 1e6, t_fwd * 1e6, las_value))
    print("  (forward+backward with a fresh gradient tensor each step: %.1f us; not used)" % (t_fresh * 1e6))
    del logits

    # ---- ECE ----------------------------------------------------------------
    ece_logits = torch.randn(ECE_N, K) * LOGIT_STD
    # about 40 % right, as in bench_losses
    arg = ece_logits.argmax(dim=1)
    right = torch.rand(ECE_N) < 0.4
    ece_target = torch.where(right, arg, torch.randint(0, K, (ECE_N,)))
    true_labels = ece_target.numpy()
    result = {}

    def ece_pass():
        with torch.no_grad():
            softmax = F.softmax(ece_logits, dim=1)
            confidence, pred = torch.max(softmax, 1)
        confidences = confidence.numpy()
        pred_labels = pred.numpy()
        edges = np.linspace(0.0, 1.0, BINS + 1)
        indices = np.digitize(confidences, edges, right=True)
        bin_acc = np.zeros(BINS, dtype=np.float64)
        bin_conf = np.zeros(BINS, dtype=np.float64)
        bin_count = np.zeros(BINS, dtype=np.int64)
        for b in range(BINS):
            selected = np.where(indices == b + 1)[0]
            if len(selected) > 0:
                bin_acc[b] = np.mean(true_labels[selected] == pred_labels[selected])
                bin_conf[b] = np.mean(confidences[selected])
                bin_count[b] = len(selected)
        gaps = np.abs(bin_acc - bin_conf)
        result["ece"] = np.sum(gaps * bin_count) / np.sum(bin_count)
        result["acc"] = np.sum(bin_acc * bin_count) / np.sum(bin_count)

    ece_budget = (1, 0.0, 2, 0.0) if quick else (2, 0.5, 9, 2.0)
    t_ece = statistics.median(time_calls(ece_pass, *ece_budget))
    print("ECE %d x %d, %d bins: %.1f ms (ECE %.6f, accuracy %.4f)" % (
        ECE_N, K, BINS, t_ece * 1e3, result["ece"], result["acc"]))

    with open(out_path, "w") as f:
        f.write("# PyTorch %s, %d threads, medians\n" % (torch.__version__, torch.get_num_threads()))
        f.write("las_fwd_bwd_us %.3f\n" % (t_fwd_bwd * 1e6))
        f.write("las_fwd_us %.3f\n" % (t_fwd * 1e6))
        f.write("las_fwd_bwd_fresh_us %.3f\n" % (t_fresh * 1e6))
        f.write("ece_ms %.3f\n" % (t_ece * 1e3))
    print("baseline written to %s" % out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
