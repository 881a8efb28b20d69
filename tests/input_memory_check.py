#!/usr/bin/env python3
"""Inputs cost what their header says, not what the file could hold.

Usage: input_memory_check.py MISLAS_STAGE1 MISLAS_STAGE2

Three inputs that once made the programs take gigabytes before refusing
them, each run under /usr/bin/time -v, whose "Maximum resident set size" must
stay under 64 MB while the message stays what the file's first bytes earn:
  - the training images as a symlink to /dev/zero (an endless
    stream of zeros: a bad magic number in its first four bytes);
  - a checkpoint that is a symlink to /dev/zero (no MISLASCK header);
  - a 1 MB gzip file whose IDX header announces 2^31 - 1 images (it
    decompresses to 1 GB: short data, said with the true length).
Skipped (77) without /usr/bin/time or /dev/zero.
"""
import gzip
import os
import re
import struct
import subprocess
import sys
import tempfile

LIMIT_KB = 64 * 1024
failures = []


def peak_kb_and_stderr(args):
    result = subprocess.run(["/usr/bin/time", "-v"] + args, capture_output=True, text=True, timeout=300)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    return result.returncode, int(peak.group(1)) if peak else None, result.stderr


def expect(name, args, message):
    rc, peak, stderr = peak_kb_and_stderr(args)
    ok = rc == 1 and peak is not None and peak < LIMIT_KB and message in stderr
    print(f"{'ok' if ok else 'FAIL'}: {name}: exit {rc}, peak {peak} kB (limit {LIMIT_KB})")
    if not ok:
        print(stderr, file=sys.stderr)
        failures.append(name)


def gzip_claiming_too_many_images(path):
    """An IDX header for 2^31 - 1 images of 28 x 28, then 1000 MiB of zeros,
    as 1000 gzip members of 1 MiB each (gzip -c joins them the same way)."""
    header = struct.pack(">IIII", 0x803, 2**31 - 1, 28, 28)
    mib = bytes(1 << 20)
    member = gzip.compress(mib, compresslevel=9)
    with open(path, "wb") as f:
        f.write(gzip.compress(header + mib, compresslevel=9))
        for _ in range(999):
            f.write(member)
    return 16 + 1000 * (1 << 20)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    if not os.path.exists("/usr/bin/time") or not os.path.exists("/dev/zero"):
        print("skipped: needs /usr/bin/time and /dev/zero")
        sys.exit(77)
    stage1, stage2 = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        zero = os.path.join(tmp, "zero")
        os.mkdir(zero)
        for name in ("train-images-idx3-ubyte", "model.ck"):
            os.symlink("/dev/zero", os.path.join(zero, name))
        with open(os.path.join(zero, "train-labels-idx1-ubyte"), "wb") as f:
            f.write(struct.pack(">II", 0x801, 10) + bytes(10))
        out = os.path.join(tmp, "out.ck")
        expect("IDX files that are /dev/zero",
               [stage1, "--dataset", "fashion-mnist", "--data-dir", zero, "--out", out],
               "bad magic number 00 00 00 00 at byte offset 0")
        expect("a checkpoint that is /dev/zero",
               [stage2, "--in", os.path.join(zero, "model.ck"), "--out", out],
               "is not a libmislas checkpoint (no MISLASCK header)")
        big = os.path.join(tmp, "big")
        os.mkdir(big)
        length = gzip_claiming_too_many_images(os.path.join(big, "train-images-idx3-ubyte.gz"))
        with open(os.path.join(big, "train-labels-idx1-ubyte"), "wb") as f:
            f.write(struct.pack(">II", 0x801, 10) + bytes(10))
        size = os.path.getsize(os.path.join(big, "train-images-idx3-ubyte.gz"))
        print(f"the gzip file: {size} bytes, {length} decompressed")
        expect("a 1 MB gzip file announcing 2^31 - 1 images",
               [stage1, "--dataset", "fashion-mnist", "--data-dir", big, "--out", out],
               f"short data: the header announces {(2**31 - 1) * 784} bytes of data but the file ends at "
               f"byte offset {length} of the decompressed data")
        if os.path.exists(out):
            failures.append("an output was written")
    if failures:
        sys.exit("failed: " + "; ".join(failures))
    print("all inputs refused within the memory limit")


main()
