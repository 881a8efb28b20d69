"""What the checks of the programs share (examples_check.py, cli_check.py):
running a program and recording failures, and the tiny data set they train
on, a Fashion-MNIST-shaped folder (four IDX files, 28x28, 10 classes) whose
training split is already a long tail of a few hundred images, learnable in
seconds."""
import os
import random
import shlex
import struct
import subprocess
import sys

CLASSES = 10
TRAIN_MAX = 60          # images of the largest class
IMB_FACTOR = 0.1        # the split below is already this long tail
TEST_PER_CLASS = 20
# Options every training run shares: small and fast, and the same long tail
# in stage 1 and stage 2.
COMMON = ["--imb-factor", str(IMB_FACTOR), "--batch-size", "32", "--threads", "2"]


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


def make_dataset(folder, seed=7, train_max=TRAIN_MAX, profile=IMB_FACTOR):
    """IDX files of CLASSES classes in a long tail from train_max images down by profile, TEST_PER_CLASS each to test."""
    rng = random.Random(seed)
    counts = [int(train_max * profile ** (c / (CLASSES - 1))) for c in range(CLASSES)]
    train = [c for c in range(CLASSES) for _ in range(counts[c])]
    test = [c for c in range(CLASSES) for _ in range(TEST_PER_CLASS)]
    rng.shuffle(train)
    rng.shuffle(test)
    write_idx(folder, "train", train, rng)
    write_idx(folder, "t10k", test, rng)


failures = []
# MISLAS_TEST_WRAPPER (e.g. "valgrind --error-exitcode=99") runs every program
# under a checker, with ample time.
WRAPPER = shlex.split(os.environ.get("MISLAS_TEST_WRAPPER", ""))
TIMEOUT = 120 * (30 if WRAPPER else 1)


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(args, expect=None, env=None, cwd=None):
    """The program's result; a failure unless it exited `expect` (None: any).
    MISLAS_NUM_THREADS is not passed on unless env sets it."""
    full_env = dict(os.environ)
    full_env.pop("MISLAS_NUM_THREADS", None)
    full_env.update(env or {})
    result = subprocess.run(WRAPPER + args, capture_output=True, text=True, timeout=TIMEOUT, env=full_env, cwd=cwd)
    name = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(args))
    if expect is not None and result.returncode != expect:
        failures.append(name)
        print("FAIL: %s exited %d, not %d\nstdout: %s\nstderr: %s"
              % (name, result.returncode, expect, result.stdout, result.stderr), file=sys.stderr)
    return result
