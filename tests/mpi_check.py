"""Data-parallel training over MPI gives one process's bits: tests/mpi_train
(a ResNet-32, stage 1 with mixup, stage 2 MiSLAS with shifted BN, then an
evaluation) run alone without MPI, then under mpirun on 1, 2 and 3 ranks,
must print the same model digests and figures on every rank. Then: a run
killed mid-epoch on 3 ranks resumes on 2 to the uninterrupted run's bits;
per-rank batch norm is reproducible run to run, equals the synchronised
form on one rank and differs from it on two; ranks given different data or
models are refused.

  mpi_check.py MPI_TRAIN        (exit 77, skipped, without mpirun)

MISLAS_MPI_QUICK=1 checks alone against 2 and 3 ranks only (scripts/test's
sanitizer run, where each run takes a minute)."""
import os
import shutil
import subprocess
import sys
import tempfile

exe = os.path.abspath(sys.argv[1])
mpirun = shutil.which("mpirun")
if mpirun is None:
    print("mpirun not found: skipped")
    sys.exit(77)

env = dict(os.environ)
# CI runs as root in a container: Open MPI refuses root without these, and
# shared memory without the single-copy mechanism works where ptrace is barred
env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_btl="self,vader",
           OMPI_MCA_btl_vader_single_copy_mechanism="none", OMPI_MCA_rmaps_base_oversubscribe="1",
           MISLAS_NUM_THREADS="1")
# the sanitizers' leak check would report Open MPI's own allocations
env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"


def run(args, ranks=None, check=True):
    cmd = [exe] + args if ranks is None else [mpirun, "--oversubscribe", "-np", str(ranks), exe, "--mpi"] + args
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def results(p, ranks):
    """{rank: [lines]} of the run's output, each line without its rank."""
    out = {}
    for line in p.stdout.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "rank":
            out.setdefault(int(words[1]), []).append(" ".join(words[2:]))
    if sorted(out) != list(range(ranks)):
        sys.exit(f"expected output from ranks 0..{ranks - 1}, got {sorted(out)}:\n{p.stdout}\n{p.stderr}")
    return out


failures = []
alone = results(run([]), 1)[0]
print("alone:", *alone, sep="\n  ")
if [line.split()[0] for line in alone] != ["stage1", "stage2", "eval"]:
    sys.exit(f"unexpected output alone: {alone}")
quick = os.environ.get("MISLAS_MPI_QUICK") == "1"
for ranks in (2, 3) if quick else (1, 2, 3):
    for rank, lines in results(run([], ranks), ranks).items():
        if lines != alone:
            failures.append(f"{ranks} ranks, rank {rank}: {lines} != alone {alone}")
    print(f"{ranks} ranks: the same bits" if not failures else f"{ranks} ranks: DIFFERENT")

if quick:
    if failures:
        sys.exit("\n".join(failures))
    print("mpi (quick): 2 and 3 ranks give one process's bits")
    sys.exit(0)

with tempfile.TemporaryDirectory() as tmp:
    checkpoint = os.path.join(tmp, "stage1.ck")
    killed = run(["--checkpoint", checkpoint, "--kill-at", "1:2:2"], 3, check=False)
    if killed.returncode == 0:
        failures.append("killing rank 1 mid-epoch did not end the job with a failure")
    if not os.path.isfile(checkpoint):
        failures.append("no checkpoint after the first epoch of the killed run")
    else:
        resumed = results(run(["--checkpoint", checkpoint, "--resume"], 2), 2)
        for rank, lines in resumed.items():
            if lines != alone:
                failures.append(f"killed on 3 ranks, resumed on 2, rank {rank}: {lines} != alone {alone}")
        print("killed mid-epoch on 3 ranks, resumed on 2: the same bits" if not failures else "resume: DIFFERENT")

# per-rank BN needs images of every batch on every rank: 320 images make a
# last batch of 32 (two quanta of 16)
per_rank = [results(run(["--per-rank", "--images", "320"], 2), 2) for _ in range(2)]
synchronised = results(run(["--images", "320"], 2), 2)
one_rank = results(run(["--per-rank", "--images", "320"], 1), 1)
if per_rank[0] != per_rank[1]:
    failures.append("per-rank BN differs from one run to the next")
if per_rank[0][0] != per_rank[0][1]:
    failures.append("per-rank BN: the ranks end with different models")
if per_rank[0][0] == synchronised[0]:
    failures.append("per-rank BN on 2 ranks gives the synchronised bits: the option does nothing")
if one_rank[0] != synchronised[0]:
    failures.append("per-rank BN on one rank differs from synchronised BN")
for what, message in (("data", "differs from rank 0 in its options or data"),
                      ("model", "differs from rank 0 in its model")):
    differing = run(["--differ", what], 2, check=False)
    if differing.returncode == 0 or message not in differing.stderr:
        failures.append(f"ranks given different {what} were not refused:\n{differing.stderr}")
refused = run(["--per-rank"], 3, check=False)
if refused.returncode == 0 or "bn_per_rank needs images of every batch" not in refused.stderr:
    failures.append(f"per-rank BN with a batch too small for 3 ranks was not refused:\n{refused.stderr}")
print("per-rank BN: reproducible, differs from synchronised on 2 ranks" if not failures else "per-rank: FAILED")

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print("mpi: every rank count gives one process's bits")
