#!/usr/bin/env python3
"""The programs' command lines: what they refuse, what they say, what they print.

Usage: cli_check.py MISLAS_STAGE1 MISLAS_STAGE2 MISLAS_EVAL MISLAS_CALIBRATE

On the tiny synthetic Fashion-MNIST-shaped folder of program_check.py (the
one examples_check.py trains on too), one short stage-1 run gives the
checkpoint the rest use. Checked, each a defect once:
  - --print-schedule says what the per-epoch rates are, a warm-up longer than
    the run included (the rates the progress line shows are the ones printed);
  - flags given on the command line that other flags would silently ignore
    are refused with exit 2, naming both; a preset's own values never are;
  - a MISLAS_NUM_THREADS the library cannot use is reported in one line;
  - stage 2 on a checkpoint of another --holdout names --holdout and the
    value the checkpoint's counts imply;
  - --version, -h and "--" in every program;
  - an --imb-factor that leaves a class without an image is refused (exit 2).
"""
import os
import re
import sys
import tempfile

from program_check import COMMON, IMB_FACTOR, check, failures, make_dataset, run


def refused(args, flags, what):
    """Exit 2 with one message naming every flag of `flags`."""
    result = run(args, 2)
    for flag in flags:
        check(flag in result.stderr, "%s: the message names %s (%r)" % (what, flag, result.stderr.strip()))
    return result


# ------------------------------------------------------------------------ the checks

def check_schedule(stage1, dataset, tmp):
    """1. --print-schedule tells the rates the run uses."""
    printed = run([stage1, "--epochs", "3", "--print-schedule"], 0).stdout
    check("5-epoch linear warm-up," not in printed and "divided by 10" not in printed
          and "0.02" in printed and "0.06" in printed and "cut short" in printed,
          "a 5-epoch warm-up in a 3-epoch run prints the rates 0.02 to 0.06, cut short: %r" % printed)
    # the rates the library really uses: the progress line's lr at each epoch's end
    s1 = os.path.join(tmp, "stage1.ckpt")
    trained = run([stage1, "--arch", "resnet20", "--epochs", "3", "--out", s1] + dataset + COMMON, 0)
    used = [float(lr) for lr in re.findall(r"epoch \d+/3 .* lr ([0-9.]+)", trained.stderr)]
    check(used == [0.02, 0.04, 0.06], "stage 1 of 3 epochs runs at 0.02, 0.04, 0.06 (%r)" % used)
    for args, phrase in (
            (["--preset", "fmnist"], "lr 0.1 after a 5-epoch linear warm-up, divided by 10 after epochs 24 and 27"),
            (["--epochs", "5"], "lr rising linearly from 0.02 to 0.1 (a 5-epoch linear warm-up)"),
            # a milestone inside the warm-up shows as the decay after it
            (["--epochs", "8", "--warmup-epochs", "4", "--milestones", "2,6"],
             "lr 0.1 after a 4-epoch linear warm-up, divided by 10 after epochs 4 and 6"),
            (["--epochs", "8", "--warmup-epochs", "0", "--milestones", "2,3"],
             "lr 0.1, divided by 10 after epochs 2 and 3"),
            # a warm-up of one epoch starts at the full rate
            (["--preset", "fmnist-demo"], "10 epochs of lr 0.1, divided by 10 after epochs 8 and 9,"),
            # a preset's milestone-free cosine row, and a preset's warm-up longer than the run
            (["--preset", "imagenet-lt"], "180 epochs of cosine decay from lr 0.1"),
            (["--preset", "fmnist", "--epochs", "2"],
             "lr rising linearly from 0.02 to 0.04 (a 5-epoch linear warm-up to lr 0.1, cut short")):
        printed = run([stage1] + args + ["--print-schedule"], 0).stdout
        check(phrase in printed, "%s --print-schedule says %r (%r)" % (" ".join(args), phrase, printed))
    # the rule, in --help: a warm-up given on the command line must fit the run
    refused([stage1, "--epochs", "3", "--warmup-epochs", "5", "--print-schedule"],
            ["--warmup-epochs", "--epochs"], "a warm-up longer than the run")
    run([stage1, "--epochs", "3", "--warmup-epochs", "3", "--print-schedule"], 0)
    help_text = run([stage1, "--help"], 0).stdout
    check("at most --epochs" in help_text and "cut short" in help_text,
          "mislas-stage1 --help says what a warm-up longer than the run does")
    return s1


def check_conflicts(stage1, stage2, calibrate, s1, dataset, tmp):
    """2. Settings that others would silently ignore are refused; presets' never.
    (--print-schedule and the tiny data set: a program that took a conflict
    would not start a long run.)"""
    out = os.path.join(tmp, "never.ckpt")
    for args, flags in (
            (["--schedule", "cosine", "--milestones", "5,8"], ["--milestones", "--schedule"]),
            (["--schedule", "cosine", "--warmup-epochs", "2"], ["--warmup-epochs", "--schedule"]),
            (["--warmup-epochs", "2", "--schedule", "cosine"], ["--warmup-epochs", "--schedule"]),
            (["--milestones", "100", "--epochs", "3"], ["--milestones", "--epochs"]),
            (["--milestones", "1,3", "--epochs", "3"], ["--milestones", "--epochs"]),
            (["--milestones", "250"], ["--milestones", "--epochs"])):      # the default 200 epochs
        refused([stage1, "--print-schedule"] + args, flags, "mislas-stage1 " + " ".join(args))
    refused([stage1, "--out", out, "--arch", "resnet20", "--epochs", "2", "--milestones", "2"] + dataset + COMMON,
            ["--milestones", "--epochs"], "mislas-stage1 --epochs 2 --milestones 2")
    for args, flags in (
            (["--method", "crt", "--lr-factor", "0.3"], ["--lr-factor", "--method"]),
            (["--lr-factor", "0.3", "--method", "lws"], ["--lr-factor", "--method"]),
            (["--loss", "ce", "--smooth-head", "0.2"], ["--smooth-head", "--loss"]),
            (["--method", "crt", "--smooth-tail", "0.1"], ["--smooth-tail", "--method"]),
            (["--las-power", "2"], ["--las-power", "--las-shape"])):
        refused([stage2, "--print-schedule"] + args, flags, "mislas-stage2 " + " ".join(args))
    refused([stage2, "--in", s1, "--out", out, "--method", "crt", "--lr-factor", "0.3", "--epochs", "1"] + dataset
            + COMMON, ["--lr-factor", "--method"], "mislas-stage2 --method crt --lr-factor 0.3")
    for args, flags in ((["--method", "temperature", "--l2", "5"], ["--l2", "--method"]),
                        (["--method", "none", "--l2", "1"], ["--l2", "--method"]),
                        (["--l2", "5"], ["--l2", "--method"])):             # the default temperature
        refused([calibrate, s1, "--holdout", "2"] + dataset + args, flags, "mislas-calibrate " + " ".join(args))
    check(not os.path.exists(out), "a refused command line writes nothing")
    # a preset's values never conflict, among themselves or with a flag
    for args in ([stage1, "--preset", "imagenet-lt"], [stage1, "--preset", "fmnist", "--schedule", "cosine"],
                 [stage1, "--preset", "fmnist", "--epochs", "3"], [stage1, "--schedule", "multistep", "--epochs", "3"],
                 [stage1, "--preset", "fmnist", "--milestones", "40"],
                 [stage2, "--preset", "fmnist-calibrated", "--lr-factor", "0.2"],
                 [stage2, "--preset", "fmnist-calibrated", "--smooth-head", "0.2"],
                 [stage2, "--method", "crt", "--loss", "las", "--smooth-head", "0.1", "--smooth-tail", "0"],
                 [stage2, "--las-shape", "power", "--las-power", "2"]):
        run(args + ["--print-schedule"], 0)
    # (s1 was trained without a hold-out: refused later, for that)
    result = run([calibrate, s1, "--preset", "fmnist-calibrated", "--l2", "5", "--holdout", "1", "--imb-factor",
                  str(IMB_FACTOR)] + dataset, 1)
    check("conflict" not in result.stderr, "a preset's calibration method never conflicts with --l2")


def check_thread_variable(evaluate, stage1, s1, dataset):
    """3. A MISLAS_NUM_THREADS the library ignores is reported, once."""
    default = min(len(os.sched_getaffinity(0)), 256)
    for value in ("abc", "-4", "100000", "257", "0"):
        result = run([evaluate, s1, "--quiet"] + dataset, 0, env={"MISLAS_NUM_THREADS": value})
        lines = [line for line in result.stderr.splitlines() if "MISLAS_NUM_THREADS" in line]
        check(len(lines) == 1 and "MISLAS_NUM_THREADS=%s" % value in lines[0]
              and "using the default (%d)" % default in lines[0] and lines[0].startswith("mislas-eval: "),
              "MISLAS_NUM_THREADS=%s is reported in one line (%r)" % (value, result.stderr))
    result = run([stage1, "--out", s1 + ".never", "--bogus"], 2, env={"MISLAS_NUM_THREADS": "abc"})
    check("MISLAS_NUM_THREADS" not in result.stderr, "a bad command line is the only message")
    # a good value, --threads (which wins over the variable) and an empty value: nothing
    for env, args in (({"MISLAS_NUM_THREADS": "3"}, []), ({"MISLAS_NUM_THREADS": "abc"}, ["--threads", "2"]),
                      ({"MISLAS_NUM_THREADS": ""}, [])):
        result = run([evaluate, s1, "--quiet"] + dataset + args, 0, env=env)
        check("MISLAS_NUM_THREADS" not in result.stderr, "nothing said for %r %r" % (env, args))
    result = run([evaluate, s1, "--quiet"] + dataset, 0, env={"MISLAS_NUM_THREADS": "2x"})
    check("MISLAS_NUM_THREADS=2x is read as 2" in result.stderr, "a number with a tail is read as the number")


def check_holdout_message(stage2, s1, dataset, tmp):
    """4. Stage 2 with another --holdout than stage 1's says so."""
    out = os.path.join(tmp, "held.ckpt")
    result = run([stage2, "--in", s1, "--out", out, "--holdout", "1", "--epochs", "1", "--quiet"]
                 + dataset + COMMON, 1)
    check("--holdout" in result.stderr, "a checkpoint of another --holdout: the message names --holdout (%r)"
          % result.stderr)
    check("--holdout 0" in result.stderr, "the message gives the --holdout the checkpoint's counts imply")
    check(not os.path.exists(out), "nothing written")


def check_version_help_dashes(programs, evaluate, s1, dataset, tmp):
    """5. --version, -h and "--" in every program."""
    for program in programs:
        name = os.path.basename(program)
        result = run([program, "--version"], 0)
        check(result.stdout.startswith(name) and re.search(r"\b\d+\.\d+\.\d+\b", result.stdout)
              and "BLIS kernels: " in result.stdout, "%s --version: %r" % (name, result.stdout))
        help_text = run([program, "--help"], 0).stdout
        check(run([program, "-h"], 0).stdout == help_text, name + " -h is --help")
        check("--version" in help_text and "-h, --help" in help_text and "\n  --  " in help_text,
              name + " --help lists --version, -h and --")
    weird = os.path.join(tmp, "-weird.ckpt")
    with open(s1, "rb") as f, open(weird, "wb") as g:
        g.write(f.read())
    result = run([evaluate, "--quiet"] + dataset + ["--", "-weird.ckpt"], 0, cwd=tmp)
    check("top-1" in result.stdout, "mislas-eval -- -weird.ckpt evaluates it")
    run([evaluate, "--quiet", "--", "-weird.ckpt", "--bins"], 2, cwd=tmp)      # "--bins" is an argument now


def check_empty_classes(stage1, stage2, calibrate, s1, dataset, tmp):
    """6. A long-tailed subset with an empty class is refused, naming it."""
    out = os.path.join(tmp, "empty.ckpt")
    tiny = ["--imb-factor", "1e-9", "--batch-size", "32", "--threads", "2"]
    # 60 x (1e-9)^(c/9) rounds down to 0 from class 2 on
    for args in ([stage1, "--arch", "resnet20", "--epochs", "1", "--out", out] + dataset + tiny,
                 [stage2, "--in", s1, "--out", out, "--epochs", "1"] + dataset + tiny,
                 [calibrate, s1, "--holdout", "1"] + dataset + tiny[:2]):
        result = run(args, 2)
        check("--imb-factor" in result.stderr and "class 2 with 0" in result.stderr,
              "%s: an empty class is refused, naming --imb-factor and the class (%r)"
              % (os.path.basename(args[0]), result.stderr))
    check(not os.path.exists(out), "nothing written")
    # a holdout that leaves a class no training image was already refused
    result = run([stage1, "--arch", "resnet20", "--epochs", "1", "--out", out, "--holdout", "6"] + dataset
                 + COMMON, 1)
    check("class 9 has only 6" in result.stderr, "a holdout that empties a class is refused (%r)" % result.stderr)


def main():
    stage1, stage2, evaluate, calibrate = (os.path.abspath(p) for p in sys.argv[1:5])
    with tempfile.TemporaryDirectory(prefix="mislas-cli-") as tmp:
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        make_dataset(data)
        dataset = ["--data-dir", data]
        s1 = check_schedule(stage1, dataset, tmp)
        if not os.path.isfile(s1):
            print("stage 1 wrote no checkpoint: the other checks need one", file=sys.stderr)
            return 1
        check_conflicts(stage1, stage2, calibrate, s1, dataset, tmp)
        check_thread_variable(evaluate, stage1, s1, dataset)
        check_holdout_message(stage2, s1, dataset, tmp)
        check_version_help_dashes((stage1, stage2, evaluate, calibrate), evaluate, s1, dataset, tmp)
        check_empty_classes(stage1, stage2, calibrate, s1, dataset, tmp)
    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
        return 1
    print("cli: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
