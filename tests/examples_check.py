#!/usr/bin/env python3
"""The pipeline's four programs end to end on a tiny synthetic data set.

Usage: examples_check.py MISLAS_STAGE1 MISLAS_STAGE2 MISLAS_EVAL MISLAS_CALIBRATE [LIBFAULTYIO]

A Fashion-MNIST-shaped folder (IDX files, 28x28, 10 classes, a long-tailed
training split of a few hundred images) is written to a temporary folder;
then stage 1, stage 2 (LWS and MiSLAS) and the evaluation run on it, the SVG
and JSON outputs are checked, a run with a held-out split is calibrated on
it, corrupt checkpoints must be refused without
writing anything, and bad flags must exit with 2. With LIBFAULTYIO (the
tests' write-failure shim, tests/faultyio.c) the programs also run with
failing writes preloaded: a full disk at several points, EIO, writes of
nothing, failing fsync, close and rename must each exit 1 saying so and
leave every output either as it was before or complete, never partial.
"""
import json
import os
import random
import shlex
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"
CLASSES = 10
TRAIN_MAX = 60          # images of the largest class
IMB_FACTOR = 0.1        # the split below is already this long tail
TEST_PER_CLASS = 20
# Options every training run shares: small and fast, and the same long tail
# in stage 1 and stage 2.
COMMON = ["--imb-factor", str(IMB_FACTOR), "--batch-size", "32", "--threads", "2"]

failures = []
# MISLAS_TEST_WRAPPER (e.g. "valgrind --error-exitcode=99") runs every program
# under a checker, with ample time.
WRAPPER = shlex.split(os.environ.get("MISLAS_TEST_WRAPPER", ""))
TIMEOUT = 120 * (30 if WRAPPER else 1)


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def write_idx(folder, prefix, labels, rng):
    """A bright bar whose place tells the class, on noise: learnable, tiny."""
    pixels = bytearray()
    for label in labels:
        image = bytearray(rng.randrange(40) for _ in range(28 * 28))
        top, left = 2 + (label // 5) * 12, 2 + (label % 5) * 5
        for row in range(top, top + 10):
            for col in range(left, left + 4):
                image[row * 28 + col] = 200 + rng.randrange(56)
        pixels += image
    with open(os.path.join(folder, prefix + "-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(labels), 28, 28) + pixels)
    with open(os.path.join(folder, prefix + "-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, len(labels)) + bytes(labels))


def make_dataset(folder):
    rng = random.Random(7)
    counts = [int(TRAIN_MAX * IMB_FACTOR ** (c / (CLASSES - 1))) for c in range(CLASSES)]
    train = [c for c in range(CLASSES) for _ in range(counts[c])]
    test = [c for c in range(CLASSES) for _ in range(TEST_PER_CLASS)]
    rng.shuffle(train)
    rng.shuffle(test)
    write_idx(folder, "train", train, rng)
    write_idx(folder, "t10k", test, rng)


def run(args, expect):
    result = subprocess.run(WRAPPER + args, capture_output=True, text=True, timeout=TIMEOUT)
    name = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(args))
    if result.returncode != expect:
        failures.append(name)
        print("FAIL: %s exited %d, not %d\nstdout: %s\nstderr: %s"
              % (name, result.returncode, expect, result.stdout, result.stderr), file=sys.stderr)
    return result


def corrupt_copies(folder, good):
    data = open(good, "rb").read()
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    paths = {"flipped.ckpt": bytes(flipped), "truncated.ckpt": data[: len(data) // 2]}
    for name, content in paths.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(content)
    return [os.path.join(folder, name) for name in paths]


def check_outputs(svg_path, json_path, checkpoint):
    figures = json.load(open(json_path))
    for key in ("top1", "many", "medium", "few", "ece", "mce", "nll", "count", "brier", "bins",
                "class_accuracy", "checkpoint", "dataset"):
        check(key in figures, "JSON key %s" % key)
    check(figures.get("count") == CLASSES * TEST_PER_CLASS, "JSON count")
    check(figures.get("checkpoint") == checkpoint, "JSON checkpoint")
    check(figures.get("dataset") == "fashion-mnist", "JSON dataset")
    # No class has more than 100 training images: Many is absent, not 0 %.
    check(figures.get("many") is None, "JSON many is null")
    check(isinstance(figures.get("few"), (int, float)), "JSON few is a number")
    check(0 <= figures.get("top1", -1) <= 100, "JSON top1 in percent")
    check(len(figures.get("class_accuracy", [])) == CLASSES, "JSON class_accuracy has K values")
    bins = figures.get("bins", [])
    check(len(bins) == 15, "JSON has the 15 bins")
    check(sum(b["count"] for b in bins) == figures.get("count"), "the bins hold every test image")
    filled = sum(1 for b in bins if b["count"] > 0)

    root = ET.parse(svg_path).getroot()     # raises unless well-formed
    check(root.tag == SVG + "svg", "SVG root element")
    bars = [r for r in root.iter(SVG + "rect") if r.get("class") == "bar"]
    check(len(bars) == filled, "one bar per non-empty bin (%d bars, %d bins)" % (len(bars), filled))
    texts = " ".join("".join(t.itertext()) for t in root.iter(SVG + "text"))
    for word in ("Confidence", "Accuracy", "Gap", "ECE = "):
        check(word in texts, "SVG shows %r" % word)
    check(os.path.basename(checkpoint) in texts, "SVG title names the checkpoint")


FAULTS = ["write:ENOSPC:0", "write:ENOSPC:700", "write:EIO:5000", "write:EDQUOT:60000", "short::100",
          "fsync:EIO:0", "fsync:EIO:1", "close:EIO:0", "rename:EXDEV:0", "rename:EIO:1"]


def with_faults(spec, faultyio):
    env = dict(os.environ, LD_PRELOAD=faultyio, MISLAS_FAULTYIO=spec)
    # the shim comes before a sanitizer's runtime in the load order
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "verify_asan_link_order=0"]))
    return env


def check_failing_writes(tmp, faultyio, programs):
    """Each program's outputs under each fault: old or complete, exit 1."""
    for name, args, outputs in programs:
        for path in outputs:
            if os.path.exists(path):
                os.unlink(path)
        run(args, 0)
        new = {path: open(path, "rb").read() for path in outputs}
        total = sum(len(content) for content in new.values())
        for spec in FAULTS + ["chunk::7"]:
            kind, _, after = spec.split(":")
            if int(after) >= (total if kind in ("write", "short") else len(outputs)):
                continue    # the fault would never be reached
            old = {path: ("old %s before %s\n" % (os.path.basename(path), spec)).encode() for path in outputs}
            for path, content in old.items():
                with open(path, "wb") as f:
                    f.write(content)
            result = subprocess.run(WRAPPER + args, capture_output=True, text=True, timeout=TIMEOUT,
                                    env=with_faults(spec, faultyio))
            now = {path: open(path, "rb").read() for path in outputs}
            what = "%s under %s" % (name, spec)
            if spec.startswith("chunk"):
                check(result.returncode == 0, what + " succeeds")
                check(now == new, what + " writes every byte")
                continue
            check(result.returncode == 1, what + " exits 1 (%d)" % result.returncode)
            check("cannot write" in result.stderr, what + " says which file it could not write")
            for path in outputs:
                check(now[path] in (old[path], new[path]), what + ": %s is old or complete" % os.path.basename(path))
            check(any(now[p] == old[p] for p in outputs), what + ": the failed file kept its old content")
            check(not [f for f in os.listdir(tmp) if ".tmp-" in f], what + ": no temporary file left behind")


def main():
    stage1, stage2, evaluate, calibrate = (os.path.abspath(p) for p in sys.argv[1:5])
    faultyio = os.path.abspath(sys.argv[5]) if len(sys.argv) > 5 else None
    with tempfile.TemporaryDirectory(prefix="mislas-examples-") as tmp:
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        make_dataset(data)
        dataset = ["--data-dir", data]
        s1 = os.path.join(tmp, "stage1.ckpt")
        run([stage1, "--arch", "resnet20", "--epochs", "2", "--out", s1] + dataset + COMMON, 0)
        check(os.path.isfile(s1), "stage 1 wrote its checkpoint")
        again = run([stage1, "--arch", "resnet20", "--epochs", "2", "--out", s1, "--resume"] + dataset + COMMON, 0)
        check("nothing to train" in again.stdout, "a finished run resumes to nothing")

        lws = os.path.join(tmp, "lws.ckpt")
        run([stage2, "--in", s1, "--out", lws, "--method", "lws", "--epochs", "1", "--quiet"] + dataset + COMMON, 0)
        check(os.path.isfile(lws), "stage 2 (LWS) wrote its checkpoint")
        mislas = os.path.join(tmp, "mislas & <co>.ckpt")   # the SVG and JSON must escape the name
        result = run([stage2, "--in", s1, "--out", mislas, "--method", "mislas", "--epochs", "1", "--eval",
                      "--quiet"] + dataset + COMMON, 0)
        check(os.path.isfile(mislas), "stage 2 (MiSLAS) wrote its checkpoint")
        check("top-1" in result.stdout and "ECE" in result.stdout, "--eval prints the figures")

        svg, figures = os.path.join(tmp, "reliability.svg"), os.path.join(tmp, "figures.json")
        result = run([evaluate, mislas, "--svg", svg, "--json", figures, "--quiet"] + dataset, 0)
        check("top-1" in result.stdout and "few" in result.stdout, "mislas-eval prints the figures")
        if os.path.isfile(svg) and os.path.isfile(figures):
            check_outputs(svg, figures, mislas)
        else:
            check(False, "mislas-eval wrote the SVG and the JSON")

        # a held-out split through both stages, then calibrated on it
        held = ["--holdout", "2"]
        h1, h2, cal = (os.path.join(tmp, name) for name in ("held1.ckpt", "held2.ckpt", "calibrated.ckpt"))
        run([stage1, "--arch", "resnet20", "--epochs", "2", "--out", h1, "--quiet"] + held + dataset + COMMON, 0)
        run([stage2, "--in", h1, "--out", h2, "--method", "crt", "--epochs", "1", "--quiet"] + held + dataset
            + COMMON, 0)
        result = run([calibrate, h2, "--out", cal, "--imb-factor", str(IMB_FACTOR), "--threads", "2"] + held
                     + dataset, 0)
        check("temperature" in result.stdout and "after" in result.stdout and os.path.isfile(cal),
              "mislas-calibrate fits a temperature, reports it and writes the model")
        result = run([calibrate, h2, "--method", "vector", "--l2", "0.1", "--imb-factor", str(IMB_FACTOR)]
                     + held + dataset, 0)
        check("vector scaling" in result.stdout, "mislas-calibrate fits vector scaling")
        run([evaluate, cal, "--quiet"] + dataset, 0)
        result = run([calibrate, h2, "--holdout", "3", "--imb-factor", str(IMB_FACTOR)] + dataset, 1)
        check("--holdout" in result.stderr, "a model trained on another hold-out is refused, saying why")
        result = run([calibrate, h2, "--holdout", "50", "--imb-factor", str(IMB_FACTOR)] + dataset, 1)
        check("hold out fewer" in result.stderr, "a hold-out larger than a class is refused")
        run([stage2, "--in", h1, "--out", h2, "--epochs", "1", "--quiet"] + dataset + COMMON, 1)

        for bad in corrupt_copies(tmp, mislas):
            out, bad_svg, bad_json = (os.path.join(tmp, "from-bad." + ext) for ext in ("ckpt", "svg", "json"))
            for args in ([stage2, "--in", bad, "--out", out] + dataset + COMMON,
                         [evaluate, bad, "--svg", bad_svg, "--json", bad_json] + dataset):
                result = subprocess.run(WRAPPER + args, capture_output=True, text=True, timeout=TIMEOUT)
                what = "%s on %s" % (os.path.basename(args[0]), os.path.basename(bad))
                check(result.returncode == 1, what + " exits 1")
                check(bad in result.stderr, what + " names the file")
            for path in (out, bad_svg, bad_json):
                check(not os.path.exists(path), "nothing written from " + os.path.basename(bad))
        check(not [f for f in os.listdir(tmp) if ".tmp-" in f], "no temporary file left behind")

        # a full disk under the standard output is a failure too
        with open("/dev/full", "w") as full:
            result = subprocess.run(WRAPPER + [evaluate, mislas, "--quiet"] + dataset, stdout=full,
                                    stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
        check(result.returncode == 1 and "standard output" in result.stderr,
              "mislas-eval exits 1 when its standard output cannot be written")

        if faultyio is not None:
            svg2, json2 = os.path.join(tmp, "faulty.svg"), os.path.join(tmp, "faulty.json")
            out2 = os.path.join(tmp, "faulty.ckpt")
            check_failing_writes(tmp, faultyio, [
                ("mislas-eval", [evaluate, mislas, "--svg", svg2, "--json", json2, "--quiet"] + dataset,
                 [svg2, json2]),
                ("mislas-stage2", [stage2, "--in", s1, "--out", out2, "--method", "lws", "--epochs", "1",
                                   "--quiet"] + dataset + COMMON, [out2]),
                ("mislas-calibrate", [calibrate, h2, "--out", out2, "--imb-factor", str(IMB_FACTOR)] + held
                 + dataset, [out2]),
            ])

        for args in ([stage1, "--out", s1, "--bogus"], [stage1, "--out", s1, "--epochs", "2x"],
                     [stage2, "--in", s1, "--out", lws, "--method", "nope"], [stage2, "--in", s1],
                     [evaluate, mislas, "--bins", "-1"], [evaluate], [calibrate, mislas],
                     [calibrate, mislas, "--holdout", "2", "--method", "platt"]):
            result = run(args, 2)
            check(result.stderr.strip() != "", "a bad command line is explained")
        for program in (stage1, stage2, evaluate, calibrate):
            check("--help" in run([program, "--help"], 0).stdout, "--help of " + os.path.basename(program))
    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
        return 1
    print("examples: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
