#!/usr/bin/python3
"""PyTorch CPU baseline for bench_losses.

Times, with 2 threads, the two operations bench_losses times, done the way the
MiSLAS reference code does them:

  LAS  label-aware smoothing: log_softmax over the classes, gather of the
       target log-probability, mean log-probability, per-target smoothing
       factor; the batch mean, then loss.backward() to the logits.
       N=4096, K=1000. Also the forward alone under torch.no_grad().
  ECE  softmax + max over dim 1 of 100000 x 1000 logits, then the reference's
       NumPy binning: edges np.linspace(0, 1, 16), np.digitize(right=True),
       per-bin mean accuracy and confidence, ECE = sum |acc - conf| * count /
       sum count, 15 bins. Timed twice: softmax + max over the whole tensor at
       once, and in batches of 1000 rows (as the reference's validation loop
       does it, batch by batch) with the binning over the concatenated results.

Two effects of the allocator matter a lot here and are handled explicitly:

* glibc returns freed blocks above its mmap threshold to the kernel, so each
  step of PyTorch's 16 MB temporaries is page-faulted in afresh (thousands of
  faults per LAS step). How often that happens depends on glibc's dynamic
  threshold, which makes the median bimodal (about 6 ms or 14 ms). Unless
  --default-malloc is given, this script first sets M_MMAP_THRESHOLD to 32 MB
  and a high M_TRIM_THRESHOLD, so freed buffers are reused: the baseline is
  then both stable and as fast as PyTorch gets (a conservative baseline).
* The whole-tensor ECE allocates a 400 MB softmax, always mmapped: about
  98,000 page faults per pass, most of its time. The batched ECE avoids that.

The logits' gradient: for the reference's network, the logits are not a leaf,
so backward writes their gradient into a fresh tensor; that is timed here as
las_fwd_bwd_us (the leaf's .grad set to None before each step). The variant
where a leaf's .grad is zeroed in place and accumulated into
(optimizer.zero_grad() with PyTorch 1.13's default set_to_none=False) is
slower and printed for information (las_fwd_bwd_accum_us).

It also times the long-tail losses bench_lt_losses times, as the code of the
papers that introduced them computes them (focal loss as BagofTricks-LT,
LDAM as Cao et al., logit adjustment as Menon et al., class-balanced
cross-entropy with PyTorch's weighted mean), forward + backward, and
temperature scaling as Guo et al.'s code fits it (LBFGS, 50 iterations);
keys focal_fwd_bwd_us, ldam_fwd_bwd_us, la_fwd_bwd_us, cb_ce_fwd_bwd_us and
temperature_fit_ms.

Prints the medians and writes them to the file named by the first argument as
`key value` lines (las_fwd_bwd_us, las_fwd_us, ece_ms, ece_batched_ms,
las_fwd_bwd_accum_us), the format bench_losses reads from
MISLAS_BENCH_BASELINE_FILE.

Usage: /usr/bin/python3 bench/pytorch_baseline.py OUTPUT_FILE [--quick] [--default-malloc]
"""
import ctypes
import math
import statistics
import sys
import time

N, K = 4096, 1000
ECE_N, ECE_BATCH, BINS = 100000, 1000, 15
LOGIT_STD = 3.0
THREADS = 2
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # glibc <malloc.h>


def tune_malloc():
    """Keep freed blocks of up to 32 MB in the heap; True when glibc accepted it."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))


def long_tail_counts(num_classes, max_per_class=1280, imb_factor=0.01):
    """ImageNet-LT-like exponential profile, as mislas_long_tail_counts(EXP)."""
    return [int(max_per_class * imb_factor ** (i / (num_classes - 1.0))) for i in range(num_classes)]


def las_factors(counts, head=0.4, tail=0.1):
    """Concave LAS smoothing factor per class."""
    n_max, n_min = max(counts), min(counts)
    return [tail + (head - tail) * math.sin((c - n_min) * math.pi / (2 * (n_max - n_min))) for c in counts]


def time_calls(fn, warmup_reps, warmup_seconds, min_reps, min_seconds):
    """Median seconds per call of fn() after a warm-up, over at least
    min_reps calls and min_seconds."""
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
    return statistics.median(times)


def main(argv):
    flags = {"--quick", "--default-malloc"}
    args = [a for a in argv[1:] if a not in flags]
    quick = "--quick" in argv[1:]
    if len(args) != 1 or args[0].startswith("-"):
        sys.stderr.write("usage: pytorch_baseline.py OUTPUT_FILE [--quick] [--default-malloc]\n")
        return 2
    out_path = args[0]
    malloc_note = "glibc malloc defaults"
    if "--default-malloc" not in argv[1:]:
        malloc_note = ("malloc tuned: M_MMAP_THRESHOLD 32 MB, M_TRIM_THRESHOLD 1 GB" if tune_malloc()
                       else "malloc tuning FAILED, glibc defaults")
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
    print("PyTorch %s baseline, %d threads, CPU capability %s, %s" % (
        torch.__version__, torch.get_num_threads(), capability[0] if capability else "unknown", malloc_note))

    # ---- LAS ----------------------------------------------------------------
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
        logits.grad = None          # a fresh gradient tensor, as for non-leaf logits
        las_forward(logits, target).backward()

    def las_fwd_bwd_accum():
        if logits.grad is not None:  # optimizer.zero_grad(), PyTorch 1.13 default
            logits.grad.zero_()
        las_forward(logits, target).backward()

    def las_fwd():
        with torch.no_grad():
            las_forward(logits, target)

    las_budget = (3, 0.02, 5, 0.05) if quick else (20, 0.3, 50, 1.0)
    t_fwd_bwd = time_calls(las_fwd_bwd, *las_budget)
    t_fwd_bwd_accum = time_calls(las_fwd_bwd_accum, *las_budget)
    t_fwd = time_calls(las_fwd, *las_budget)
    with torch.no_grad():
        las_value = las_forward(logits, target).item()
    print("LAS N=%d K=%d (loss %.6f), medians:" % (N, K, las_value))
    print("  forward + backward                           %10.1f us" % (t_fwd_bwd * 1e6))
    print("  forward + backward, .grad zeroed/accumulated %10.1f us (information)" % (t_fwd_bwd_accum * 1e6))
    print("  forward only (no_grad)                       %10.1f us" % (t_fwd * 1e6))

    # ---- the long-tail losses (bench_lt_losses), as their papers' code does them
    lt_logits = (torch.rand(N, K) * 6.0 - 3.0).requires_grad_(True)
    counts = torch.tensor(long_tail_counts(K), dtype=torch.float32)
    log_prior = torch.log(counts / counts.sum())
    m_list = 1.0 / torch.sqrt(torch.sqrt(counts))
    m_list = m_list * (0.5 / m_list.max())
    beta = 0.9999
    cb = (1.0 - beta) / (1.0 - torch.pow(beta, counts))
    cb = cb / cb.sum() * K

    def focal(x, y):                        # BagofTricks-LT
        ce = F.cross_entropy(x, y, reduction="none")
        return ((1 - torch.exp(-ce)) ** 2.0 * ce).mean()

    def ldam(x, y):                         # Cao et al.
        index = F.one_hot(y, K).to(torch.bool)
        output = torch.where(index, x - m_list[y].view(-1, 1), x)
        return F.cross_entropy(30.0 * output, y)

    def logit_adjusted(x, y):               # Menon et al.
        return F.cross_entropy(x + log_prior, y)

    def cb_ce(x, y):                        # Cui et al.'s weights, PyTorch's weighted mean
        return F.cross_entropy(x, y, weight=cb)

    lt_times = {}
    for key, criterion in (("focal", focal), ("ldam", ldam), ("la", logit_adjusted), ("cb_ce", cb_ce)):
        def step(c=criterion):
            lt_logits.grad = None
            c(lt_logits, target).backward()
        lt_times[key] = time_calls(step, *las_budget)
    print("long-tail losses N=%d K=%d, forward + backward medians:" % (N, K))
    for key in lt_times:
        print("  %-44s %10.1f us" % (key, lt_times[key] * 1e6))

    # temperature scaling as Guo et al.'s code fits it (LBFGS on T, 50 iterations)
    with torch.no_grad():
        fit_logits = lt_logits.detach().clone()
        fit_logits[torch.arange(N), target] += 6.0 * (torch.arange(N) % 3 == 0)

    def fit_temperature():
        temperature = torch.ones(1, requires_grad=True)
        opt = torch.optim.LBFGS([temperature], lr=0.01, max_iter=50)

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(fit_logits / temperature, target)
            loss.backward()
            return loss
        opt.step(closure)
    t_temperature = time_calls(fit_temperature, *((1, 0.0, 3, 0.0) if quick else (1, 0.2, 5, 1.0)))
    print("  temperature fit (LBFGS, 50 iterations)       %10.1f ms" % (t_temperature * 1e3))
    del lt_logits

    # ---- ECE ----------------------------------------------------------------
    ece_logits = torch.randn(ECE_N, K) * LOGIT_STD
    # about 40 % right, as in bench_losses
    right = torch.rand(ECE_N) < 0.4
    ece_target = torch.where(right, ece_logits.argmax(dim=1), torch.randint(0, K, (ECE_N,)))
    true_labels = ece_target.numpy()
    result = {}

    def binning(confidences, pred_labels):
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

    def ece_whole():
        with torch.no_grad():
            softmax = F.softmax(ece_logits, dim=1)
            confidence, pred = torch.max(softmax, 1)
        binning(confidence.numpy(), pred.numpy())

    def ece_batched():
        confidences, preds = [], []
        with torch.no_grad():
            for start in range(0, ECE_N, ECE_BATCH):
                softmax = F.softmax(ece_logits[start:start + ECE_BATCH], dim=1)
                confidence, pred = torch.max(softmax, 1)
                confidences.append(confidence)
                preds.append(pred)
        binning(torch.cat(confidences).numpy(), torch.cat(preds).numpy())

    ece_budget = (1, 0.0, 2, 0.0) if quick else (2, 0.5, 9, 2.0)
    t_ece = time_calls(ece_whole, *ece_budget)
    t_ece_batched = time_calls(ece_batched, *ece_budget)
    print("ECE %d x %d, %d bins (ECE %.6f, accuracy %.4f), medians:" % (
        ECE_N, K, BINS, result["ece"], result["acc"]))
    print("  softmax + max on the whole tensor, binning   %10.1f ms" % (t_ece * 1e3))
    print("  softmax + max in batches of %d, binning    %10.1f ms" % (ECE_BATCH, t_ece_batched * 1e3))

    with open(out_path, "w") as f:
        f.write("# PyTorch %s, %d threads, %s; medians\n" % (torch.__version__, torch.get_num_threads(), malloc_note))
        f.write("las_fwd_bwd_us %.3f\n" % (t_fwd_bwd * 1e6))
        f.write("las_fwd_us %.3f\n" % (t_fwd * 1e6))
        f.write("ece_ms %.3f\n" % (t_ece * 1e3))
        f.write("ece_batched_ms %.3f\n" % (t_ece_batched * 1e3))
        f.write("las_fwd_bwd_accum_us %.3f\n" % (t_fwd_bwd_accum * 1e6))
        for key in lt_times:
            f.write("%s_fwd_bwd_us %.3f\n" % (key, lt_times[key] * 1e6))
        f.write("temperature_fit_ms %.3f\n" % (t_temperature * 1e3))
    print("baseline written to %s" % out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
