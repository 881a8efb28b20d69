#!/usr/bin/env python3
"""The four programs under mpirun: the same flags as one process, the same
bits, one rank printing and writing.

Usage: mpi_programs_check.py MISLAS_STAGE1 MISLAS_STAGE2 MISLAS_EVAL MISLAS_CALIBRATE

The programs must be built with MPI (examples/meson.build does when the
library's MPI component is); skipped (exit 77) without Open MPI's mpirun.
A Fashion-MNIST-shaped set of 721 tiny images (program_check's bars, 100 to
50 per class) with 30 of each class held out. Checked, on one process
(no mpirun) and on 2 and 3 ranks:
  - stage 1 (ResNet-56, 3 epochs), stage 2 (2 epochs, --eval), mislas-eval (--json)
    and mislas-calibrate (--out; its 300 held-out images are two batches of
    logits, shared between the ranks): the checkpoints are the same bytes,
    the JSON the same figures, stdout the same text; the progress lines come
    once (rank 0's), the same as one process's bar the speed;
  - --bn-per-rank reaches the library: on 2 ranks it changes stage 1's and
    stage 2's bits, alone it changes nothing;
  - --help and a bad flag under mpirun: printed once;
  - mislas-eval --json - on 3 ranks: stdout is the JSON document alone;
  - rank 1 of a 3-rank stage 1 killed (SIGKILL) during its second epoch: the
    job ends with a non-zero status, no rank is left running, the checkpoint
    still holds the first epoch, and --resume on 2 ranks finishes with the
    bytes of the uninterrupted one-process run.
(A build without MPI refusing to run under mpirun cannot be checked here,
where MPI is built in.) About a minute on two cores.
"""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from program_check import check, failures, make_dataset

MPIRUN = shutil.which("mpirun")
# CI runs as root in a container: Open MPI must be told that is fine, and to
# use shared memory without the kernel's cross-memory attach
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_btl": "self,vader",
           "OMPI_MCA_btl_vader_single_copy_mechanism": "none"}
TIMEOUT = 300

TRAIN_MAX, PROFILE = 100, 0.5
DATA = ["--imb-factor", str(PROFILE), "--holdout", "30"]
STAGE1 = ["--arch", "resnet56", "--epochs", "3", "--batch-size", "32"]
STAGE2 = ["--epochs", "2", "--batch-size", "32"]


def command(args, ranks):
    """One process alone (two threads), or `ranks` ranks under mpirun (one thread each)."""
    if ranks == 1:
        return args + ["--threads", "2"]
    return [MPIRUN, "--oversubscribe", "-np", str(ranks)] + args + ["--threads", "1"]


def environment():
    env = dict(os.environ)
    env.pop("MISLAS_NUM_THREADS", None)
    env.update(MPI_ENV)
    # the sanitizers' leak check would report Open MPI's own allocations
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    return env


def launch(args, ranks, cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE):
    # a session of its own: whatever is left of it can be ended as a group
    return subprocess.Popen(command(args, ranks), cwd=cwd, env=environment(), stdout=stdout, stderr=stderr,
                            text=True, start_new_session=True)


def finish(process, timeout=TIMEOUT):
    """(stdout, stderr) once it ends; on a timeout it is stopped (mpirun ends its job on SIGTERM)."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            out, err = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
        check(False, "%s ran past %d s" % (" ".join(process.args), timeout))
        return out, err


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run(args, ranks, cwd, expect=0):
    process = launch(args, ranks, cwd)
    out, err = finish(process)
    name = "%s on %d rank%s" % (" ".join([os.path.basename(args[0])] + args[1:]), ranks, "s" if ranks > 1 else "")
    if expect is not None and process.returncode != expect:
        check(False, "%s exited %d, not %d\nstdout: %s\nstderr: %s" % (name, process.returncode, expect, out, err))
    return Result(process.returncode, out, err)


def contents(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def plain(text):
    """Output without what changes from run to run: durations, speeds and waits."""
    text = re.sub(r" in [0-9.]+s| in \d+m\d+s", " in T", text)
    return re.sub(r"  \d+ img/s.*", "", text)


def check_pipeline(programs, data, tmp):
    """Stage 1, stage 2, mislas-eval and mislas-calibrate alone and on 2 and 3 ranks, each in a folder of its
    own with the same file names; the one-process folder for the others."""
    stage1, stage2, evaluate, calibrate = programs
    outputs = {}
    for ranks in (1, 2, 3):
        folder = os.path.join(tmp, "ranks%d" % ranks)
        os.mkdir(folder)
        s1 = run([stage1, "--out", "s1.ck"] + STAGE1 + data, ranks, folder)
        s2 = run([stage2, "--in", "s1.ck", "--out", "s2.ck", "--eval"] + STAGE2 + data, ranks, folder)
        ev = run([evaluate, "s2.ck", "--json", "figures.json"] + data[:2], ranks, folder)
        cal = run([calibrate, "s2.ck", "--out", "cal.ck"] + data, ranks, folder)
        outputs[ranks] = (folder, s1, s2, ev, cal)
    one = outputs[1]
    for ranks in (2, 3):
        folder, *results = outputs[ranks]
        for name in ("s1.ck", "s2.ck", "cal.ck"):
            mine, alone = contents(os.path.join(folder, name)), contents(os.path.join(one[0], name))
            check(mine is not None and mine == alone, "%s on %d ranks is the one-process run's, byte for byte"
                  % (name, ranks))
        try:
            with open(os.path.join(folder, "figures.json")) as f, open(os.path.join(one[0], "figures.json")) as g:
                figures, alone = json.load(f), json.load(g)
            check(figures == alone, "mislas-eval's figures on %d ranks are the one-process run's:\n%r\n%r"
                  % (ranks, figures, alone))
        except (OSError, ValueError) as e:
            check(False, "mislas-eval's JSON on %d ranks: %s" % (ranks, e))
        for what, result, result_alone in zip(("stage 1", "stage 2", "mislas-eval", "mislas-calibrate"), results,
                                              one[1:]):
            check(plain(result.stdout) == plain(result_alone.stdout),
                  "%s prints the same on %d ranks as alone:\n%s---\n%s" % (what, ranks, result.stdout,
                                                                         result_alone.stdout))
            check(plain(result.stderr) == plain(result_alone.stderr),
                  "%s's progress and messages come once on %d ranks, the same as alone's:\n%s---\n%s"
                  % (what, ranks, result.stderr, result_alone.stderr))
        s1 = results[0]
        check(len(re.findall(r"^epoch 1/3 ", s1.stderr, re.M)) == 1
              and len(re.findall(r"^stage 1: epochs 1-3 of 3 ", s1.stdout, re.M)) == 1,
              "stage 1 on %d ranks: one progress line per epoch, one summary (%r, %r)" % (ranks, s1.stderr,
                                                                                           s1.stdout))
        ev = results[2]
        check(ev.stdout.count("top-1") == 1, "mislas-eval on %d ranks prints its figures once (%r)"
              % (ranks, ev.stdout))
        # what only rank 0 writes: no temporary file of another rank left beside the outputs
        check(sorted(os.listdir(folder)) == sorted(os.listdir(one[0])), "the same files on %d ranks as alone: %r"
              % (ranks, sorted(os.listdir(folder))))
    return one[0]


def check_bn_per_rank(programs, data, tmp, alone):
    """--bn-per-rank: each rank's statistics on 2 ranks (other bits), nothing alone."""
    stage1, stage2 = programs[:2]
    folder = os.path.join(tmp, "bn")
    os.mkdir(folder)
    # batches of 40 (the last of 421 images, 21): images for both ranks in every batch, in the groups of 16 a
    # 28x28 ResNet's batch is cut in
    short = ["--arch", "resnet20", "--epochs", "1", "--batch-size", "40", "--quiet"] + data
    run([stage1, "--out", "whole.ck"] + short, 2, folder)
    run([stage1, "--out", "per-rank.ck", "--bn-per-rank"] + short, 2, folder)
    whole, per_rank = contents(os.path.join(folder, "whole.ck")), contents(os.path.join(folder, "per-rank.ck"))
    check(whole is not None and per_rank is not None and whole != per_rank,
          "stage 1 --bn-per-rank on 2 ranks trains other bits than the whole batch's statistics")
    s1 = os.path.join(alone, "s1.ck")
    run([stage2, "--in", s1, "--out", "per-rank.ck", "--bn-per-rank", "--quiet"] + STAGE2 + data, 2, folder)
    per_rank = contents(os.path.join(folder, "per-rank.ck"))
    check(per_rank is not None and per_rank != contents(os.path.join(alone, "s2.ck")),
          "stage 2 --bn-per-rank (shifted BN) on 2 ranks trains other bits than the whole batch's statistics")
    run([stage2, "--in", s1, "--out", "alone.ck", "--bn-per-rank", "--quiet"] + STAGE2 + data, 1, folder)
    check(contents(os.path.join(folder, "alone.ck")) == contents(os.path.join(alone, "s2.ck")),
          "stage 2 --bn-per-rank alone is stage 2 without it")


def check_once(programs, data, alone):
    """What every rank would print: --help, a bad flag, and --json - on the standard output."""
    stage1, evaluate = programs[0], programs[2]
    result = run([stage1, "--help"], 3, alone)
    check(result.stdout.count("Usage: mislas-stage1") == 1 and "--bn-per-rank" in result.stdout,
          "--help on 3 ranks prints once, with --bn-per-rank (%r)" % result.stdout[:300])
    result = run([stage1, "--bogus"], 3, alone, expect=None)
    check(result.returncode != 0 and result.stderr.count("unknown flag --bogus") == 1,
          "a bad flag on 3 ranks fails, said once (exit %d, %r)" % (result.returncode, result.stderr))
    result = run([evaluate, "s2.ck", "--json", "-", "--quiet"] + data[:2], 3, alone)
    try:
        figures = json.loads(result.stdout)
        with open(os.path.join(alone, "figures.json")) as f:
            check(figures == json.load(f), "mislas-eval --json - on 3 ranks: the one-process figures")
    except ValueError:
        check(False, "mislas-eval --json - on 3 ranks: stdout is one JSON document (%r)" % result.stdout)
    check(result.stderr.count("top-1") == 1, "mislas-eval --json - on 3 ranks: the figures once on stderr (%r)"
          % result.stderr)


def descendants(root):
    """The processes below `root`, by their parents in /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    stat = f.read()
                parents[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def ranks_of(mpirun, program):
    """{rank: pid} of the program's processes under this mpirun, from their environment."""
    ranks = {}
    for pid in descendants(mpirun):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv0 = f.read().split(b"\0")[0].decode()
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
        except (OSError, ValueError):
            continue
        if os.path.basename(argv0) == os.path.basename(program) and b"OMPI_COMM_WORLD_RANK" in env:
            ranks[int(env[b"OMPI_COMM_WORLD_RANK"])] = pid
    return ranks


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def check_killed_rank(stage1, data, tmp, alone):
    """Rank 1 of 3 killed during stage 1's second epoch; the job ends; --resume on 2 ranks finishes it."""
    folder = os.path.join(tmp, "killed")
    os.mkdir(folder)
    checkpoint = os.path.join(folder, "s1.ck")
    with open(os.path.join(folder, "log"), "w") as log:
        process = launch([stage1, "--out", "s1.ck"] + STAGE1 + data, 3, folder, stdout=log, stderr=log)
        deadline, ranks, first = time.time() + TIMEOUT, {}, None
        while process.poll() is None and time.time() < deadline:
            if len(ranks) < 3:
                ranks = ranks_of(process.pid, stage1)
            if os.path.exists(checkpoint) and len(ranks) == 3:
                first = contents(checkpoint)    # written atomically: all of epoch 1
                break
            time.sleep(0.01)
        if first is None or 1 not in ranks:
            finish(process)
            check(False, "stage 1 on 3 ranks wrote its first checkpoint, its ranks found (%r)" % ranks)
            return
        time.sleep(0.2)     # into epoch 2 (an epoch takes seconds)
        os.kill(ranks[1], signal.SIGKILL)
        finish(process, 120)
    with open(os.path.join(folder, "log")) as f:
        log = f.read()
    check(process.returncode != 0, "the job of a killed rank ends non-zero (%d)" % process.returncode)
    end = time.time() + 10
    while any(alive(pid) for pid in ranks.values()) and time.time() < end:
        time.sleep(0.1)
    check(not any(alive(pid) for pid in ranks.values()), "no rank is left running after the job ended")
    check(contents(checkpoint) == first, "the checkpoint still holds epoch 1 when rank 1 is killed during epoch 2 "
          "(the kill came too late on a slow machine?); the log:\n%s" % log)
    result = run([stage1, "--out", "s1.ck", "--resume"] + STAGE1 + data, 2, folder)
    check("s1.ck holds stage 1 at epoch 1 of 3; continuing" in result.stderr,
          "--resume on 2 ranks continues after epoch 1 (%r)" % result.stderr)
    check("stage 1: epochs 2-3 of 3" in result.stdout, "--resume trains epochs 2-3 (%r)" % result.stdout)
    check(contents(checkpoint) == contents(os.path.join(alone, "s1.ck")),
          "the resumed run's checkpoint is the uninterrupted one-process run's, byte for byte")


def main():
    if MPIRUN is None:
        print("mpi_programs: no mpirun; skipped")
        return 77
    programs = [os.path.abspath(p) for p in sys.argv[1:5]]
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="mislas-mpi-programs-") as tmp:
        folder = os.path.join(tmp, "data")
        os.mkdir(folder)
        # 721 training images (100 to 50 per class: --imb-factor 0.5 keeps them all) and 200 test images
        make_dataset(folder, seed=17, train_max=TRAIN_MAX, profile=PROFILE)
        data = ["--data-dir", folder] + DATA
        alone = check_pipeline(programs, data, tmp)
        print("the pipeline alone and on 2 and 3 ranks: %.0f s" % (time.time() - start))
        check_bn_per_rank(programs, data, tmp, alone)
        check_once(programs, data, alone)
        print("--bn-per-rank, --help, a bad flag, --json -: %.0f s" % (time.time() - start))
        check_killed_rank(programs[0], data, tmp, alone)
    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
        return 1
    print("mpi_programs: all checks passed in %.0f s" % (time.time() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
