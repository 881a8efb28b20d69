#!/usr/bin/env python3
"""The four programs on list-file data sets (--dataset list: the reference's
ImageNet-LT / iNaturalist 2018 / Places-LT lists of "relative/path label"
lines under a root folder).

Usage: list_programs_check.py MISLAS_STAGE1 MISLAS_STAGE2 MISLAS_EVAL MISLAS_CALIBRATE

A tiny long-tailed JPEG set is made with PIL (skipped, exit 77, without it):
4 classes of 12 / 6 / 3 / 2 training images and 2 test images each, of
varied sizes, one greyscale and one CMYK, the labels deliberately not in
the order of their counts (label 2 is the largest class, then 0, 3, 1), so
that the reference's renumbering by training count shows. Checked:
  - stage 1 (ResNet-10 at 32 x 32, --holdout 1, --eval), stage 2 (--eval),
    mislas-eval (--train-list for the class map, --json) and
    mislas-calibrate (--holdout 1) all succeed, and say what they read;
  - the classes follow the training counts: the JSON's train_counts fall,
    its list_labels are the labels by count, the printouts say so;
  - a truncated JPEG in the training list stops stage 1 (exit 1) naming the
    file; --skip-bad trains without it and says 1 file was left out;
  - --imb-factor / --imb-type with a list set are refused (exit 2), as are the
    list flags with another data set, a --test-list stage 1 would not read,
    an output that is a list, a --size the checkpoint's model does not have;
  - a test label outside the training classes is refused, naming the entry;
  - the places-lt preset (with --arch and --size overridden) evaluates by the
    reference's class-index splits [0, 131) [131, 288) [288, 365).
"""
import json
import os
import random
import re
import shutil
import sys
import tempfile

try:
    from PIL import Image
except ImportError:
    print("list_programs: PIL is not installed; skipped")
    sys.exit(77)

from program_check import check, failures, run

COUNTS = {2: 12, 0: 6, 3: 3, 1: 2}      # label: training images, not in label order
BY_COUNT = [2, 0, 3, 1]                 # the labels of classes 0..3 once renumbered by count
TEST_PER_CLASS = 2
SIZES = [(40, 30), (30, 50), (48, 48), (36, 40), (64, 24)]
COLOURS = {0: (200, 40, 40), 1: (40, 200, 40), 2: (40, 40, 200), 3: (200, 200, 40)}
COMMON = ["--size", "32", "--threads", "2"]
TRAIN = ["--arch", "resnet10", "--batch-size", "8", "--lr", "0.02", "--warmup-epochs", "0", "--mixup-alpha", "0"]


def image(rng, label, i):
    """A colour that tells the class, with noise, at one of several sizes."""
    w, h = SIZES[i % len(SIZES)]
    im = Image.new("RGB", (w, h), COLOURS[label])
    pixels = im.load()
    for _ in range(w * h // 4):
        x, y = rng.randrange(w), rng.randrange(h)
        pixels[x, y] = tuple(min(255, max(0, c + rng.randrange(-60, 60))) for c in COLOURS[label])
    return im


def make_lists(root, folder):
    """train.txt and test.txt in folder, their images under root."""
    rng = random.Random(11)
    for sub in ("train", "test"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    lines, n = [], 0
    for label, count in COUNTS.items():
        for i in range(count):
            im = image(rng, label, n)
            if n == 3:
                im = im.convert("L")        # greyscale: replicated to RGB
            elif n == 5:
                im = im.convert("CMYK")     # a CMYK JPEG
            path = "train/%d_%02d.jpg" % (label, i)
            im.save(os.path.join(root, path), quality=90)
            lines.append("%s %d" % (path, label))
            n += 1
    rng.shuffle(lines)
    with open(os.path.join(folder, "train.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    lines = []
    for label in sorted(COUNTS):
        for i in range(TEST_PER_CLASS):
            path = "test/%d_%d.jpg" % (label, i)
            image(rng, label, i + label).save(os.path.join(root, path), quality=90)
            lines.append("%s %d" % (path, label))
    with open(os.path.join(folder, "test.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def refused(args, flags, what, code=2):
    result = run(args, code)
    for flag in flags:
        check(flag in result.stderr, "%s: the message names %s (%r)" % (what, flag, result.stderr.strip()))
    return result


def check_pipeline(stage1, stage2, evaluate, calibrate, lists, tmp):
    """Stage 1, stage 2, mislas-eval and mislas-calibrate on the lists."""
    s1, s2, cal = (os.path.join(tmp, n) for n in ("s1.ck", "s2.ck", "cal.ck"))
    figures = os.path.join(tmp, "figures.json")
    result = run([stage1, "--out", s1, "--epochs", "2", "--holdout", "1", "--eval"] + lists + TRAIN + COMMON, 0)
    check(re.search(r"checked the 23 files of \S*train\.txt in", result.stderr) is not None,
          "stage 1 reports the file check (%r)" % result.stderr)
    check("23 images in 4 classes, 12 to 2 per class" in result.stderr
          and "class 0 is the list's label 2, class 3 its label 1" in result.stderr,
          "stage 1 describes the training list and its class map (%r)" % result.stderr)
    check("stage 1: epochs 1-2 of 2" in result.stdout and "test set    list, 8 images" in result.stdout,
          "stage 1 trains and evaluates on the test list (%r)" % result.stdout)
    check("class 0 is the training list's label 2, class 3 its label 1" in result.stdout,
          "stage 1's figures say how classes are numbered (%r)" % result.stdout)
    result = run([stage2, "--in", s1, "--out", s2, "--epochs", "1", "--holdout", "1", "--eval", "--batch-size",
                  "8"] + lists + COMMON, 0)
    check("stage 2: epoch 1 of 1" in result.stdout and "test set    list, 8 images" in result.stdout,
          "stage 2 trains and evaluates (%r)" % result.stdout)
    # mislas-eval reads the training list for its class map only (no file check)
    result = run([evaluate, s2, "--json", figures] + lists + COMMON, 0)
    check("train.txt" not in result.stderr, "mislas-eval does not check the training list's files (%r)"
          % result.stderr)
    with open(figures) as f:
        fig = json.load(f)
    check(fig["dataset"] == "list" and fig["count"] == 4 * TEST_PER_CLASS,
          "the JSON names the set and counts the test list (%r, %r)" % (fig["dataset"], fig["count"]))
    # the checkpoint's counts: the list's less --holdout 1, classes by count
    expected = [COUNTS[label] - 1 for label in BY_COUNT]
    check(fig["train_counts"] == expected, "train_counts %r are the list's by count less the hold-out (%r)"
          % (fig["train_counts"], expected))
    check(fig.get("list_labels") == BY_COUNT, "list_labels %r are the labels in count order %r"
          % (fig.get("list_labels"), BY_COUNT))
    check(fig["splits_by"] == "the model's training counts" and len(fig["class_accuracy"]) == 4,
          "the splits come from the checkpoint's counts (%r)" % fig["splits_by"])
    check(fig["many_classes"] + fig["medium_classes"] + fig["few_classes"] == 4
          and fig["top1"] is not None and 0 <= fig["top1"] <= 100, "the figures are sensible (%r)" % fig)
    result = run([calibrate, s2, "--holdout", "1", "--out", cal] + lists[:-2] + COMMON, 0)
    check("4 held-out images (1 per class)" in result.stdout and "temperature" in result.stdout
          and "after" in result.stdout, "mislas-calibrate fits on the held-out images (%r)" % result.stdout)
    check(os.path.isfile(cal), "mislas-calibrate writes the model")
    # the checks between the data set and the checkpoint's model: the size, K
    refused([evaluate, s2] + lists + ["--threads", "2"], ["--size", "3x32x32", "3x224x224"],
            "mislas-eval without stage 1's --size", 1)
    refused([evaluate, s2, "--num-classes", "5"] + lists + COMMON, ["4 classes", "--num-classes"],
            "mislas-eval with another --num-classes", 1)
    refused([calibrate, s2, "--holdout", "2"] + lists[:-2] + COMMON, ["hold out fewer"],
            "mislas-calibrate --holdout 2 with a class of 2 images", 1)
    return s2


def check_bad_files(stage1, lists, root, tmp):
    """A truncated JPEG stops stage 1, naming it; --skip-bad leaves it out."""
    bad_root = os.path.join(tmp, "bad-root")
    shutil.copytree(root, bad_root)
    victim = os.path.join(bad_root, "train", "0_03.jpg")
    with open(victim, "rb") as f:
        head = f.read(200)
    with open(victim, "wb") as f:
        f.write(head)
    args = [stage1, "--out", os.path.join(tmp, "bad.ck"), "--epochs", "1"] + lists + ["--data-dir", bad_root] \
        + TRAIN + COMMON
    result = refused(args, ["train/0_03.jpg", "--skip-bad"], "a truncated JPEG in the training list", 1)
    check(not os.path.exists(os.path.join(tmp, "bad.ck")), "a refused list writes no checkpoint")
    result = run(args + ["--skip-bad"], 0)
    check("1 file of" in result.stderr and "left out" in result.stderr and "22 images" in result.stderr,
          "--skip-bad says 1 file was left out (%r)" % result.stderr)


def check_refusals(stage1, stage2, evaluate, calibrate, s2, lists, folder, tmp):
    out = os.path.join(tmp, "refused.ck")
    for flag, value in (("--imb-factor", "0.1"), ("--imb-type", "step")):
        refused([stage1, "--out", out, flag, value] + lists + COMMON, [flag, "--dataset list"],
                "stage 1 %s with a list set" % flag)
        refused([evaluate, s2, flag, value] + lists + COMMON, [flag], "mislas-eval %s with a list set" % flag)
    refused([stage2, "--in", s2, "--out", out, "--preset", "imagenet-lt", "--imb-factor", "0.1"]
            + lists[2:] + COMMON, ["--imb-factor", "--preset imagenet-lt"], "stage 2 --imb-factor with a list preset")
    refused([stage1, "--out", out, "--dataset", "cifar10", "--data-dir", tmp, "--size", "32"], ["--size", "cifar10"],
            "a list flag with another data set")
    refused([calibrate, s2, "--holdout", "1", "--dataset", "mnist", "--train-list", "x.txt"], ["--train-list"],
            "--train-list with --dataset mnist")
    refused([stage1, "--out", out] + lists + COMMON, ["--test-list", "--eval"], "--test-list without --eval")
    refused([stage1, "--out", os.path.join(folder, "train.txt")] + lists[:-2] + COMMON, ["--train-list"],
            "an --out that is the training list")
    refused([stage1, "--out", out, "--dataset", "list", "--data-dir", tmp], ["--train-list"], "a list set without one")
    refused([stage1, "--out", out, "--resize", "16"] + lists[:-2] + COMMON, ["--resize", "--size"],
            "a --resize below --size")
    refused([stage1, "--out", out, "--normalize", "0.5,0.5,0.5,0,1,1"] + lists[:-2] + COMMON, ["--normalize"],
            "a standard deviation of 0")
    check(not os.path.exists(out), "a refused command line writes nothing")
    # a test label outside the training classes
    outside = os.path.join(folder, "outside.txt")
    with open(outside, "w") as f:
        f.write("test/0_0.jpg 0\ntest/1_0.jpg 4\n")
    refused([evaluate, s2] + lists[:-2] + ["--test-list", outside] + COMMON,
            ["outside.txt", "entry 2", "label 4", "outside [0, 4)", "training set's classes"],
            "a test label outside the training classes", 1)
    # a preset's list settings never conflict, and a preset alone needs no files to print its schedule
    result = run([stage1, "--preset", "inat2018", "--print-schedule"], 0)
    check("200 epochs of cosine decay" in result.stdout and "inat2018" in result.stdout,
          "--preset inat2018 --print-schedule (%r)" % result.stdout)
    for program in (stage1, stage2, evaluate, calibrate):
        result = run([program, "--help"], 0)
        check("--train-list" in result.stdout and "--normalize" in result.stdout and "--skip-bad" in result.stdout,
              "%s --help has the list flags" % os.path.basename(program))


def check_preset_splits(stage1, evaluate, tmp):
    """places-lt: K 365 and the reference's class-index splits."""
    root = os.path.join(tmp, "places")
    os.makedirs(os.path.join(root, "img"))
    rng = random.Random(5)
    lines = []
    for label in range(365):
        path = "img/%03d.jpg" % label
        Image.new("RGB", (16 + label % 7, 16), (label % 256, rng.randrange(256), 100)).save(os.path.join(root, path))
        lines.append("%s %d" % (path, label))
    for name in ("train.txt", "test.txt"):
        with open(os.path.join(root, name), "w") as f:
            f.write("\n".join(lines) + "\n")
    lists = ["--preset", "places-lt", "--data-dir", root, "--train-list", os.path.join(root, "train.txt")]
    ck = os.path.join(tmp, "places.ck")
    run([stage1, "--out", ck, "--arch", "resnet10", "--epochs", "1", "--batch-size", "64", "--quiet"] + lists
        + COMMON, 0)
    figures = os.path.join(tmp, "places.json")
    run([evaluate, ck, "--json", figures, "--test-list", os.path.join(root, "test.txt"), "--quiet"] + lists
        + COMMON, 0)
    with open(figures) as f:
        fig = json.load(f)
    check((fig["dataset"], fig["many_classes"], fig["medium_classes"], fig["few_classes"])
          == ("places-lt", 131, 157, 77) and "class index" in fig["splits_by"],
          "places-lt splits by class index (%r, %r)" % (fig["splits_by"],
                                                         (fig["many_classes"], fig["medium_classes"],
                                                          fig["few_classes"])))


def main():
    stage1, stage2, evaluate, calibrate = (os.path.abspath(p) for p in sys.argv[1:5])
    with tempfile.TemporaryDirectory(prefix="mislas-lists-") as tmp:
        root, folder = os.path.join(tmp, "root"), os.path.join(tmp, "lists")
        os.makedirs(folder)
        make_lists(root, folder)
        lists = ["--dataset", "list", "--data-dir", root, "--train-list", os.path.join(folder, "train.txt"),
                 "--test-list", os.path.join(folder, "test.txt")]
        s2 = check_pipeline(stage1, stage2, evaluate, calibrate, lists, tmp)
        if not os.path.isfile(s2):
            print("stage 2 wrote no checkpoint: the other checks need one", file=sys.stderr)
            return 1
        check_bad_files(stage1, lists[:-2], root, tmp)
        check_refusals(stage1, stage2, evaluate, calibrate, s2, lists, folder, tmp)
        check_preset_splits(stage1, evaluate, tmp)
    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
        return 1
    print("list_programs: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
