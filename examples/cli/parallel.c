/* The programs as the ranks of an MPI job (parallel.h). The MPI calls are
 * compiled with -DMISLAS_CLI_MPI only; without it, one process alone. */
#define _POSIX_C_SOURCE 200809L

#include "parallel.h"

#include "messages.h"

#ifdef MISLAS_CLI_MPI
#include <mislas/mpi.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static struct {
    bool launched;          /* started by an MPI launcher */
    const char *variable;   /* the environment variable that said so */
    int32_t rank, size;     /* size 0: not known (a PMIx launch names no size in the environment) */
    bool started;           /* MPI initialised here */
    mislas_comm *comm;
} state = {.size = 1};

/* The variables launchers set for each process, rank and size: Open MPI's
 * mpirun; MPICH's and Intel MPI's Hydra and Slurm's srun --mpi=pmi2;
 * MVAPICH2's mpirun_rsh; PMIx's (Open MPI 5, srun --mpi=pmix), which names
 * the rank alone. */
static const struct {
    const char *rank, *size;
} LAUNCHERS[] = {
    {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
    {"PMI_RANK", "PMI_SIZE"},
    {"MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE"},
    {"PMIX_RANK", NULL},
};

/* A variable holding a whole number from 0 to INT32_MAX. */
static bool read_number(const char *name, int32_t *value)
{
    const char *text = name != NULL ? getenv(name) : NULL;
    if (text == NULL || text[0] == '\0')
        return false;
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0 || v > INT32_MAX)
        return false;
    *value = (int32_t)v;
    return true;
}

/* What another rank prints to the standard output goes nowhere. */
static void silence_stdout(void)
{
    fflush(stdout);
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        if (fd != STDOUT_FILENO)
            close(fd);
    }
}

void cli_parallel_detect(void)
{
    for (size_t i = 0; i < sizeof LAUNCHERS / sizeof LAUNCHERS[0] && !state.launched; i++) {
        int32_t rank = 0, size = 0;
        bool has_rank = read_number(LAUNCHERS[i].rank, &rank);
        bool has_size = read_number(LAUNCHERS[i].size, &size);
        if (!has_rank && !has_size)
            continue;
        state.launched = true;
        state.variable = has_size ? LAUNCHERS[i].size : LAUNCHERS[i].rank;
        state.rank = rank;
        state.size = has_size ? size : 0;
    }
    if (!state.launched)
        return;
    if (state.rank != 0)
        silence_stdout();
#ifndef MISLAS_CLI_MPI
    if (state.size > 1 || state.rank > 0) {
        /* every rank refuses; rank 0 says why (any rank, when the launcher names no size) */
        if (state.rank == 0 || state.size == 0) {
            char of[32] = "";
            if (state.size > 0)
                snprintf(of, sizeof of, " of %d", (int)state.size);
            fprintf(stderr, "%s: started as rank %d%s by an MPI launcher (%s is set), but built without MPI: "
                    "each process would run alone and overwrite the others' files. Run one process, or use "
                    "programs built with the library's MPI component (meson setup -Dmpi=enabled)\n",
                    cli_program_name, (int)state.rank, of, state.variable);
        }
        exit(CLI_EXIT_USAGE);
    }
    /* one rank, alone: a plain run */
    state.launched = false;
    state.size = 1;
#endif
}

#ifdef MISLAS_CLI_MPI
static const char *mpi_error(int code, char *text)
{
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
        snprintf(text, MPI_MAX_ERROR_STRING, "MPI error %d", code);
    return text;
}

/* On every way out once MPI is up: the communicator, then MPI. */
static void finish(void)
{
    mislas_comm_free(state.comm);
    state.comm = NULL;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized)
        MPI_Finalize();
}
#endif

bool cli_parallel_start(void)
{
    if (!state.launched || state.started)
        return true;
#ifdef MISLAS_CLI_MPI
    char text[MPI_MAX_ERROR_STRING];
    int provided = MPI_THREAD_SINGLE;
    int code = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (code != MPI_SUCCESS) {
        cli_report_failure("MPI_Init_thread: %s", mpi_error(code, text));
        return false;
    }
    state.started = true;
    atexit(finish);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rank != 0 && state.rank == 0)
        silence_stdout();   /* the environment said otherwise */
    state.rank = rank;
    state.size = size;
    if (provided < MPI_THREAD_FUNNELED) {
        cli_report_failure("this MPI gives thread level %d; the library needs MPI_THREAD_FUNNELED (%d)", provided,
                (int)MPI_THREAD_FUNNELED);
        return false;
    }
    /* a rank that cannot go on stops them all here, not in the first call they make together */
    return cli_parallel_agree(cli_succeeded(mislas_mpi_comm_new(&state.comm, MPI_COMM_WORLD),
            "cannot make the communicator"));
#else
    return true;    /* unreachable: detect refused several ranks */
#endif
}

mislas_comm *cli_parallel_comm(void)
{
    return state.comm;
}

int32_t cli_parallel_rank(void)
{
    return state.rank;
}

int32_t cli_parallel_size(void)
{
    return state.size > state.rank ? state.size : state.rank + 1;
}

bool cli_parallel_leader(void)
{
    return state.rank == 0;
}

bool cli_parallel_agree(bool ok)
{
#ifdef MISLAS_CLI_MPI
    if (!state.started)
        return ok;
    int mine = ok ? INT_MAX : (int)state.rank, first = INT_MAX;
    char text[MPI_MAX_ERROR_STRING];
    int code = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (code != MPI_SUCCESS) {
        cli_report_failure("MPI_Allreduce: %s", mpi_error(code, text));
        return false;
    }
    if (first == INT_MAX)
        return true;
    if (ok && state.rank == 0)
        cli_report_failure("rank %d of %d failed (its message says why); every rank stops", first,
                (int)state.size);
    return false;
#else
    return ok;
#endif
}
