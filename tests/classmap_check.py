#!/usr/bin/python3
"""mislas_long_tail_class_map against NumPy doing what the MiSLAS reference does.

The reference (datasets/imagenet.py, ina2018.py, places.py) renumbers the
classes of its list-file data sets with

    sorted_classes = np.argsort(-np.array(cls_num_list))
    class_map[sorted_classes[i]] = i        # label -> class_map[label]

and the released models' classifier rows follow that order, ties included.
Through ctypes on the built libmislas.so this requires the library's
old_to_new (= class_map) and new_to_old (= sorted_classes) to be identical to
NumPy's on:
  - 2400 random count vectors, 1 to 2000 classes, drawn from 1 to 12 distinct
    levels (many ties);
  - count vectors shaped like ImageNet-LT (1000 classes, 5 to 1280 images),
    Places-LT (365 classes, 5 to 4980) and iNaturalist 2018 (8142 classes,
    2 to 1000), Pareto-like with long runs of equal counts in the tail;
  - all-equal, sorted, reverse-sorted and organ-pipe vectors around the
    16-element insertion-sort threshold;
  - vectors built (McIlroy's "killer adversary" played against the sort's
    steps) to exhaust NumPy's depth budget so that its heapsort fallback runs
    on ranges full of equal counts.
Each vector is also run with old_to_new alone (the in-place inversion).

NumPy is the ground truth only where its argsort of int64 is the introsort of
NumPy 1.17 to 1.24: from 1.25 on an AVX-512 CPU it dispatches argsort to
x86-simd-sort, whose tie order differs, so other versions are skipped.
Exits 77 (meson's "skipped") when numpy cannot be imported, for other NumPy
versions, and when the library is built with a sanitizer (which a Python
process cannot load).

Usage: classmap_check.py PATH_TO_LIBMISLAS_SO
"""
import ctypes
import random
import sys

try:
    import numpy as np
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skipped: {e} (install Debian's python3-numpy)")
    sys.exit(77)

version = tuple(int(p) for p in np.__version__.split(".")[:2])
if not (1, 17) <= version < (1, 25):
    print(f"skipped: NumPy {np.__version__}; only 1.17 to 1.24 sort int64 indices with the introsort "
          "the reference's models were made with (1.25 and later use AVX-512 where the CPU has it)")
    sys.exit(77)

with open(sys.argv[1], "rb") as f:
    image = f.read()
if b"libasan.so" in image or b"libtsan.so" in image:
    print("skipped: the library is built with a sanitizer, which Python cannot load")
    sys.exit(77)
lib = ctypes.CDLL(sys.argv[1])
i32p, i64p = ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int64)
lib.mislas_last_error.restype = ctypes.c_char_p
lib.mislas_long_tail_class_map.argtypes = [i32p, i32p, i64p, ctypes.c_int32]
lib.mislas_long_tail_class_map.restype = ctypes.c_int
failures = []


def reference(counts):
    """The reference's class_map and sorted_classes, as it computes them."""
    sorted_classes = np.argsort(-np.array(counts))
    class_map = [0 for _ in range(len(counts))]
    for i in range(len(counts)):
        class_map[sorted_classes[i]] = i
    return class_map, sorted_classes.tolist()


def library(counts, both=True):
    k = len(counts)
    c = np.ascontiguousarray(counts, dtype=np.int64)
    o2n = np.full(k, -1, dtype=np.int32)
    n2o = np.full(k, -1, dtype=np.int32)
    status = lib.mislas_long_tail_class_map(o2n.ctypes.data_as(i32p),
                                           n2o.ctypes.data_as(i32p) if both else None,
                                           c.ctypes.data_as(i64p), k)
    if status != 0:
        raise SystemExit(f"mislas_long_tail_class_map failed: {lib.mislas_last_error().decode()}")
    return o2n.tolist(), n2o.tolist()


stats = {"vectors": 0, "unstable": 0}


def compare(counts, what):
    counts = [int(x) for x in counts]
    want_o2n, want_n2o = reference(counts)
    got_o2n, got_n2o = library(counts)
    alone_o2n, _ = library(counts, both=False)
    stats["vectors"] += 1
    if want_n2o != sorted(range(len(counts)), key=lambda c: -counts[c]):
        stats["unstable"] += 1
    if got_n2o != want_n2o or got_o2n != want_o2n or alone_o2n != want_o2n:
        first = next((i for i in range(len(counts)) if got_n2o[i] != want_n2o[i]), None)
        failures.append(what)
        print(f"FAIL: {what} (k = {len(counts)}): first difference in new_to_old at {first}"
              + ("" if alone_o2n == want_o2n else "; old_to_new alone differs"), file=sys.stderr)


# ---- inputs that make NumPy 1.24's introsort fall back to heapsort ----------
#
# The sort's steps, used only to build such inputs and to confirm that the
# fallback is reached; the expected maps still come from NumPy itself.

class _Fallback(Exception):
    pass


def _play(less, n):
    """Runs the introsort's quicksort phase on indices 0..n-1 with the
    comparison less(a, b); raises _Fallback when a range would be heapsorted."""
    idx = list(range(n))
    stack, lo, hi, budget = [], 0, n - 1, 2 * (n.bit_length() - 1)
    while True:
        if budget < 0:
            raise _Fallback()
        while hi - lo > 15:
            mid = lo + ((hi - lo) >> 1)
            for a, b in ((mid, lo), (hi, mid), (mid, lo)):
                if less(idx[a], idx[b]):
                    idx[a], idx[b] = idx[b], idx[a]
            pivot = idx[mid]
            idx[mid], idx[hi - 1] = idx[hi - 1], idx[mid]
            i, j = lo, hi - 1
            while True:
                i += 1
                while less(idx[i], pivot):
                    i += 1
                j -= 1
                while less(pivot, idx[j]):
                    j -= 1
                if i >= j:
                    break
                idx[i], idx[j] = idx[j], idx[i]
            idx[i], idx[hi - 1] = idx[hi - 1], idx[i]
            budget -= 1
            if i - lo < hi - i:
                stack.append((i + 1, hi, budget))
                hi = i - 1
            else:
                stack.append((lo, i - 1, budget))
                lo = i + 1
        for i in range(lo + 1, hi + 1):
            v, j = idx[i], i
            while j > lo and less(v, idx[j - 1]):
                idx[j] = idx[j - 1]
                j -= 1
            idx[j] = v
        if not stack:
            return
        lo, hi, budget = stack.pop()


def heapsort_counts(n, levels, rng):
    """Counts whose argsort(-counts) exhausts the depth budget: McIlroy's
    adversary fixes a key only when two undecided ones meet, and the elements
    still undecided when the heapsort starts get one of `levels` keys above
    every fixed one, i.e. long runs of equal counts for the heapsort."""
    undecided = 1 << 62
    key = [undecided] * n
    state = {"fixed": 0, "candidate": -1}

    def less(x, y):
        if key[x] == undecided and key[y] == undecided:
            z = x if x == state["candidate"] else y
            key[z] = state["fixed"]
            state["fixed"] += 1
        if key[x] == undecided:
            state["candidate"] = x
        elif key[y] == undecided:
            state["candidate"] = y
        return key[x] < key[y]

    try:
        _play(less, n)
        return None
    except _Fallback:
        pass
    top = state["fixed"]
    key = [top + rng.randrange(levels) if x == undecided else x for x in key]
    # argsort(-counts) compares like argsort(key)
    return [top + levels - x for x in key]


def main():
    rng = random.Random(20240601)
    # random vectors with few distinct levels
    for t in range(2400):
        k = rng.choice([rng.randint(1, 40), rng.randint(1, 300), rng.randint(1, 2000)])
        levels = sorted(rng.sample(range(0, 1300), rng.randint(1, 12)))
        compare([rng.choice(levels) for _ in range(k)], f"random #{t}")
    # Pareto-like long tails: counts = clip(lo * u^(-1/alpha), lo, hi), truncated
    shapes = [("ImageNet-LT", 1000, 5, 1280, 40), ("Places-LT", 365, 5, 4980, 40),
              ("iNaturalist 2018", 8142, 2, 1000, 12)]
    for name, k, lo, hi, reps in shapes:
        for r in range(reps):
            alpha = rng.uniform(0.6, 1.6)
            counts = [min(hi, max(lo, int(lo * (1.0 - rng.random()) ** (-1.0 / alpha)))) for _ in range(k)]
            counts[rng.randrange(k)] = hi
            compare(counts, f"{name}-like #{r}")
    # around the insertion-sort threshold, and simple patterns
    for k in list(range(1, 70)) + [127, 128, 129, 365, 1000, 8142]:
        compare([7] * k, f"all equal, k = {k}")
        compare([i // 3 for i in range(k)], f"ascending runs, k = {k}")
        compare([(k - i) // 3 for i in range(k)], f"descending runs, k = {k}")
        compare([min(i, k - 1 - i) // 2 for i in range(k)], f"organ pipe, k = {k}")
        compare([i % 4 for i in range(k)], f"sawtooth, k = {k}")
    # the heapsort fallback on ranges full of ties
    built = 0
    for n in (40, 100, 365, 1000, 2000, 8142):
        for levels in (1, 2, 3, 7):
            counts = heapsort_counts(n, levels, rng)
            if counts is None:
                failures.append(f"heapsort input, n = {n}")
                print(f"FAIL: could not build an input reaching the heapsort for n = {n}", file=sys.stderr)
                continue
            built += 1
            compare(counts, f"heapsort fallback, n = {n}, {levels} level(s)")

    print(f"classmap: NumPy {np.__version__}, {stats['vectors']} vectors "
          f"({stats['unstable']} whose NumPy order differs from a stable sort, "
          f"{built} reaching the heapsort fallback)")
    if failures:
        print(f"{len(failures)} vector(s) differ from NumPy", file=sys.stderr)
        return 1
    print("classmap: all maps identical to NumPy's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
