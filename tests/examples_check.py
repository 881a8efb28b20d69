#!/usr/bin/env python3
"""The pipeline's four programs end to end on a tiny synthetic data set.

Usage: examples_check.py MISLAS_STAGE1 MISLAS_STAGE2 MISLAS_EVAL MISLAS_CALIBRATE [LIBFAULTYIO]

A Fashion-MNIST-shaped folder (IDX files, 28x28, 10 classes, a long-tailed
training split of a few hundred images) is written to a temporary folder;
then stage 1, stage 2 (LWS and MiSLAS) and the evaluation run on it, the SVG
and JSON outputs are checked, a run with a held-out split is calibrated on
it, corrupt checkpoints must be refused without
writing anything, and bad flags must exit with 2. Where outputs go: "-" is
the standard output for --svg and --json (and then nothing else is printed
there), a FIFO or device node is written in place (a device only as root,
which mknod needs), a symbolic link's target is replaced and the link kept;
an output that is an input (a checkpoint, a data file) or the other output,
by any name, and an output whose folder is missing or not a folder, are
refused with 2 before any work; a checkpoint name that is not UTF-8 still
gives UTF-8 JSON and well-formed SVG. With LIBFAULTYIO (the
tests' write-failure shim, tests/faultyio.c) the programs also run with
failing writes preloaded: a full disk at several points, EIO, writes of
nothing, failing fsync, close and rename must each exit 1 saying so and
leave every output either as it was before or complete, never partial.
"""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

from program_check import (CLASSES, COMMON, IMB_FACTOR, TEST_PER_CLASS, TIMEOUT, WRAPPER, check, failures,
                           make_dataset, run)

SVG = "{http://www.w3.org/2000/svg}"


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


def program(args, cwd=None):
    """A program's run, its output as bytes (a name in it may not be UTF-8)."""
    return subprocess.run(WRAPPER + args, capture_output=True, timeout=TIMEOUT, cwd=cwd)


def expect_exit(result, code, what):
    check(result.returncode == code, "%s exits %d (%d; stderr: %s)"
          % (what, code, result.returncode, result.stderr.decode(errors="replace").strip()))


def no_temporary_files(folder):
    return not [f for f in os.listdir(folder) if ".tmp-" in f]


def check_special_outputs(tmp, evaluate, stage2, checkpoint, stage1_checkpoint, dataset):
    """--svg and --json: "-" is the standard output, and then holds nothing
    else; a device or FIFO is written in place, never replaced by a file; a
    symbolic link's target is replaced and the link stays a link."""
    here = os.path.join(tmp, "special")
    os.mkdir(here)
    quiet = ["--quiet"] + dataset

    result = program([evaluate, checkpoint, "--json", "-"] + quiet, cwd=here)
    expect_exit(result, 0, "mislas-eval --json -")
    try:
        figures = json.loads(result.stdout.decode("utf-8"))
        check(figures.get("count") == CLASSES * TEST_PER_CLASS, "--json - writes the figures")
    except ValueError:
        check(False, "--json - gives pure JSON on stdout: %r" % result.stdout[:200])
    check(b"top-1" in result.stderr, "--json -: the figures' block goes to stderr")
    check(not os.path.lexists(os.path.join(here, "-")), "--json - creates no file named -")

    result = program([evaluate, checkpoint, "--svg", "-"] + quiet, cwd=here)
    expect_exit(result, 0, "mislas-eval --svg -")
    try:
        check(ET.fromstring(result.stdout).tag == SVG + "svg", "--svg - writes the SVG on stdout")
    except ET.ParseError:
        check(False, "--svg - gives pure SVG on stdout: %r" % result.stdout[:200])
    check(not os.path.lexists(os.path.join(here, "-")), "--svg - creates no file named -")

    result = program([evaluate, checkpoint, "--svg", "-", "--json", "-"] + quiet, cwd=here)
    expect_exit(result, 2, "mislas-eval --svg - --json -")
    check(b"standard output" in result.stderr, "--svg - --json - is refused, saying why")

    # a FIFO, read by this process: written through, still a FIFO
    fifo = os.path.join(here, "diagram.fifo")
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)     # the SVG fits the pipe's buffer
    try:
        result = program([evaluate, checkpoint, "--svg", fifo] + quiet)
        received = b""
        while True:
            try:
                chunk = os.read(reader, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            received += chunk
    finally:
        os.close(reader)
    expect_exit(result, 0, "mislas-eval --svg FIFO")
    check(stat.S_ISFIFO(os.lstat(fifo).st_mode), "--svg FIFO leaves the FIFO a FIFO")
    try:
        check(ET.fromstring(received).tag == SVG + "svg", "--svg FIFO writes the SVG through it")
    except ET.ParseError:
        check(False, "--svg FIFO writes the SVG through it: %r" % received[:200])

    # a character device (root only: mknod); /dev/null's numbers
    device = os.path.join(here, "null")
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError):
        device = None
    if device is not None:
        result = program([evaluate, checkpoint, "--svg", device, "--json", device] + quiet)
        expect_exit(result, 0, "mislas-eval --svg DEVICE --json DEVICE")
        check(stat.S_ISCHR(os.lstat(device).st_mode), "--svg DEVICE leaves the device node a device")
        # --out is written by the library's mislas_checkpoint_save, which writes a device in place too
        result = program([stage2, "--in", stage1_checkpoint, "--out", device, "--method", "lws", "--epochs", "1"]
                         + quiet + COMMON)
        expect_exit(result, 0, "mislas-stage2 --out DEVICE")
        check(stat.S_ISCHR(os.lstat(device).st_mode), "--out DEVICE leaves the device node a device")
    else:
        print("examples: no device node made (not root?); that case skipped", file=sys.stderr)

    # a link to the standard output: the JSON goes there, alone, and the link stays
    link = os.path.join(here, "to-stdout.json")
    os.symlink("/proc/self/fd/1", link)
    result = program([evaluate, checkpoint, "--json", link] + quiet)
    expect_exit(result, 0, "mislas-eval --json LINK-TO-STDOUT")
    try:
        json.loads(result.stdout.decode("utf-8"))
    except ValueError:
        check(False, "--json LINK-TO-STDOUT writes pure JSON on stdout: %r" % result.stdout[:200])
    check(os.path.islink(link), "--json LINK-TO-STDOUT leaves the link a link")

    # links to a file elsewhere, relative, existing or not yet: the target replaced, the link kept
    elsewhere = os.path.join(here, "elsewhere")
    os.mkdir(elsewhere)
    with open(os.path.join(elsewhere, "figures.json"), "w") as f:
        f.write("old\n")
    os.chmod(os.path.join(elsewhere, "figures.json"), 0o640)
    json_link, svg_link = os.path.join(here, "figures-link.json"), os.path.join(here, "diagram-link.svg")
    os.symlink("elsewhere/figures.json", json_link)
    os.symlink("elsewhere/new.svg", svg_link)                # dangling until written
    result = program([evaluate, checkpoint, "--json", json_link, "--svg", svg_link] + quiet)
    expect_exit(result, 0, "mislas-eval --json LINK --svg DANGLING-LINK")
    check(os.path.islink(json_link) and os.readlink(json_link) == "elsewhere/figures.json",
          "--json LINK leaves the link as it was")
    check(os.path.islink(svg_link) and os.readlink(svg_link) == "elsewhere/new.svg",
          "--svg DANGLING-LINK leaves the link as it was")
    try:
        figures = json.load(open(os.path.join(elsewhere, "figures.json")))
        check(figures.get("count") == CLASSES * TEST_PER_CLASS, "--json LINK writes the link's target")
    except ValueError:
        check(False, "--json LINK writes the link's target")
    check(stat.S_IMODE(os.stat(os.path.join(elsewhere, "figures.json")).st_mode) == 0o640,
          "--json LINK keeps the replaced file's mode")
    check(os.path.isfile(os.path.join(elsewhere, "new.svg")), "--svg DANGLING-LINK creates the link's target")
    check(no_temporary_files(here) and no_temporary_files(elsewhere), "links: no temporary file left behind")


def check_same_files(tmp, programs, checkpoints, dataset):
    """An output that is an input (a checkpoint, a data file) or another
    output, by whatever name, is refused with 2 before any work, naming
    both; nothing is written."""
    stage1, stage2, evaluate, calibrate = programs
    stage1_checkpoint, held_stage2 = checkpoints
    here = os.path.join(tmp, "same")
    os.mkdir(here)
    data = os.path.join(here, "data")          # a copy: the old programs overwrote it
    shutil.copytree(dataset[1], data)
    shutil.copy(stage1_checkpoint, os.path.join(here, "same.ck"))
    shutil.copy(held_stage2, os.path.join(here, "h1.ck"))
    os.symlink("same.ck", os.path.join(here, "alias.ck"))

    def contents():
        return {name: open(os.path.join(root, name), "rb").read() if os.path.isfile(os.path.join(root, name))
                else None for root, _, names in os.walk(here) for name in names}

    train = ["--data-dir", data] + COMMON + ["--epochs", "1", "--quiet"]
    cases = [
        ("mislas-stage2 --in ./same.ck --out same.ck",
         [stage2, "--in", "./same.ck", "--out", "same.ck", "--method", "lws"] + train, ["./same.ck", "same.ck"]),
        ("mislas-stage2 --in alias.ck --out same.ck (a link)",
         [stage2, "--in", "alias.ck", "--out", "same.ck", "--method", "lws"] + train, ["alias.ck", "same.ck"]),
        ("mislas-calibrate ./h1.ck --out h1.ck",
         [calibrate, "./h1.ck", "--out", "h1.ck", "--holdout", "2", "--imb-factor", str(IMB_FACTOR), "--data-dir",
          data], ["./h1.ck", "h1.ck"]),
        ("mislas-stage1 --out DATA/train-images-idx3-ubyte.gz (the name read first)",
         [stage1, "--arch", "resnet20", "--out", "data/train-images-idx3-ubyte.gz"] + train,
         ["data/train-images-idx3-ubyte.gz"]),
        ("mislas-stage1 --out data/../data/train-labels-idx1-ubyte",
         [stage1, "--arch", "resnet20", "--out", "data/../data/train-labels-idx1-ubyte"] + train,
         ["data/../data/train-labels-idx1-ubyte", "train-labels-idx1-ubyte"]),
        ("mislas-stage2 --eval --out DATA/t10k-images-idx3-ubyte (--eval reads the test split)",
         [stage2, "--in", "same.ck", "--out", "data/t10k-images-idx3-ubyte", "--method", "lws", "--eval"] + train,
         ["data/t10k-images-idx3-ubyte"]),
        ("mislas-eval --json DATA/t10k-labels-idx1-ubyte",
         [evaluate, "same.ck", "--data-dir", data, "--json", "data/t10k-labels-idx1-ubyte"],
         ["data/t10k-labels-idx1-ubyte"]),
        ("mislas-eval alias.ck --json same.ck (a link)",
         [evaluate, "alias.ck", "--data-dir", data, "--json", "same.ck"], ["alias.ck", "same.ck"]),
        ("mislas-eval --svg d.svg --json ./d.svg",
         [evaluate, "same.ck", "--data-dir", data, "--svg", "d.svg", "--json", "./d.svg"], ["d.svg", "./d.svg"]),
    ]
    for what, args, named in cases:
        before = contents()
        result = program(args, cwd=here)
        expect_exit(result, 2, what)
        for path in named:
            check(path.encode() in result.stderr, what + ": the message names " + path)
        check(contents() == before, what + ": nothing is written")
    # the test split is no input of a run without --eval: that name is free
    result = program([stage2, "--in", "same.ck", "--out", "data/t10k-images-idx3-ubyte.gz", "--method", "lws"]
                     + train, cwd=here)
    expect_exit(result, 0, "mislas-stage2 --out DATA/t10k-images-idx3-ubyte.gz without --eval")


def check_output_folders(tmp, programs, checkpoints, dataset):
    """Every output's folder must exist and be writable, checked before any
    work: exit 2 naming it."""
    stage1, stage2, evaluate, calibrate = programs
    stage1_checkpoint, held_stage2 = checkpoints
    missing = os.path.join(tmp, "missing", "dir")
    not_folder = os.path.join(tmp, "a-file")
    with open(not_folder, "w") as f:
        f.write("not a folder\n")
    train = dataset + COMMON + ["--epochs", "1", "--quiet"]
    for folder, why in ((missing, "does not exist"), (not_folder, "not a folder")):
        cases = [
            ("mislas-stage1 --out", [stage1, "--arch", "resnet20", "--out", os.path.join(folder, "o.ck")] + train),
            ("mislas-stage2 --out", [stage2, "--in", stage1_checkpoint, "--out", os.path.join(folder, "o.ck"),
                                     "--method", "lws"] + train),
            ("mislas-calibrate --out", [calibrate, held_stage2, "--out", os.path.join(folder, "o.ck"), "--holdout",
                                        "2", "--imb-factor", str(IMB_FACTOR)] + dataset),
            ("mislas-eval --svg", [evaluate, stage1_checkpoint, "--svg", os.path.join(folder, "o.svg")] + dataset),
            ("mislas-eval --json", [evaluate, stage1_checkpoint, "--json", os.path.join(folder, "o.json")] + dataset),
        ]
        for what, args in cases:
            result = program(args)
            what = "%s into a folder that %s" % (what, why)
            expect_exit(result, 2, what)
            check(folder.encode() in result.stderr and why.encode() in result.stderr, what + ": says so")
            check(b"epoch" not in result.stdout + result.stderr and b"top-1" not in result.stdout,
                  what + ": refused before any work")
    if os.geteuid() != 0:       # root writes anywhere
        locked = os.path.join(tmp, "locked")
        os.mkdir(locked, 0o555)
        result = program([evaluate, stage1_checkpoint, "--json", os.path.join(locked, "o.json")] + dataset)
        expect_exit(result, 2, "mislas-eval --json into a read-only folder")
        check(locked.encode() in result.stderr, "a read-only folder is named")


def check_unicode_names(tmp, evaluate, checkpoint, dataset):
    """A checkpoint name that is not UTF-8, with control characters: the
    JSON is still UTF-8 JSON, the SVG still well-formed XML, each with
    U+FFFD in place of what cannot be written."""
    name = b"bad\xff\x01utf\xed\xa0\x80\xef\xbf\xbe\r.ck"   # bad byte, control, surrogate, U+FFFE, return
    bad = os.path.join(os.fsencode(tmp), name)
    shutil.copy(os.fsencode(checkpoint), bad)
    svg, figures = os.path.join(tmp, "unicode.svg"), os.path.join(tmp, "unicode.json")
    result = program([os.fsdecode(evaluate), os.fsdecode(bad), "--svg", svg, "--json", figures, "--quiet"]
                     + dataset)
    expect_exit(result, 0, "mislas-eval on a checkpoint named with bytes that are not UTF-8")
    try:
        decoded = json.loads(open(figures, "rb").read().decode("utf-8", "strict"))
        check(decoded.get("checkpoint") == bad.decode("utf-8", "replace"),
              "JSON: the name with U+FFFD for each bad sequence (%r)" % decoded.get("checkpoint"))
    except (OSError, ValueError) as e:
        check(False, "the JSON of a non-UTF-8 name is UTF-8 JSON (%s)" % e)
    try:
        root = ET.parse(svg).getroot()
        title = "".join(root.find(SVG + "title").itertext())
        expected = bad.decode("utf-8", "replace").replace("\x01", "\ufffd").replace("\ufffe", "\ufffd")
        check(title.endswith(os.path.basename(expected)), "SVG: the name with U+FFFD (%r)" % title)
    except (OSError, ET.ParseError, AttributeError) as e:
        check(False, "the SVG of a non-UTF-8 name is well-formed XML (%s)" % e)
    os.unlink(bad)


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

        # what is written where: "-", devices, FIFOs and links; no output over an input; folders
        check_special_outputs(tmp, evaluate, stage2, mislas, s1, dataset)
        check_same_files(tmp, (stage1, stage2, evaluate, calibrate), (s1, h2), dataset)
        check_output_folders(tmp, (stage1, stage2, evaluate, calibrate), (s1, h2), dataset)
        check_unicode_names(tmp, evaluate, mislas, dataset)

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
