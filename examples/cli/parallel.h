/* The programs as the ranks of an MPI job: `mpirun -np N mislas-stage1 ...`
 * trains one model on N processes, with the same flags as one process and
 * the same bits (the library's communicator, mislas/comm.h).
 *
 * A process knows it was started by an MPI launcher from its environment
 * (Open MPI's OMPI_COMM_WORLD_SIZE, PMI_RANK / PMI_SIZE of MPICH, Intel MPI
 * and Slurm's PMI-2, MVAPICH2's MV2_COMM_WORLD_SIZE, PMIX_RANK); only then is
 * MPI initialised, so a plain run never touches MPI. The MPI calls are
 * compiled with -DMISLAS_CLI_MPI (examples/meson.build, when the library's
 * MPI component is built: they need <mislas/mpi.h> and libmislas-mpi);
 * without it the file still builds, a plain run works as before, and a
 * launch on several ranks is refused, since N processes would each train
 * alone and overwrite one another's files.
 *
 * What each rank does: rank 0 prints (the progress line, the summaries, the
 * figures, stdout as a whole) and writes every file the program writes
 * itself; the library's checkpoint is rank 0's too. Every rank opens the
 * data and makes the same library calls, and prints its own errors (prefixed
 * with its rank when there are several). --threads is per rank. */
#ifndef MISLAS_EXAMPLES_CLI_PARALLEL_H
#define MISLAS_EXAMPLES_CLI_PARALLEL_H

#include <mislas/mislas.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* First thing in main: reads the launcher's environment. A build without
 * MPI started as one of several ranks says why it cannot run and exits
 * CLI_EXIT_USAGE (rank 0 says it; the others exit without a word). Any rank
 * but 0 sends its standard output to /dev/null, so that --help, summaries
 * and figures come once. No MPI call. */
void cli_parallel_detect(void);

/* Before the run's first call that needs the other ranks (training,
 * evaluation), once the data and the model are ready: under a launcher,
 * MPI_Init_thread (MPI_THREAD_FUNNELED: the library calls MPI from the
 * calling thread only), the communicator over MPI_COMM_WORLD, and, with
 * atexit, its release and MPI_Finalize on every way out. A failure before
 * this point ends the process without MPI, and the launcher then ends the
 * job. Every rank must call it. Alone: nothing. False after saying why,
 * on every rank.
 *
 * From then on no rank may stop alone: MPI_Finalize waits for every rank,
 * so one stopped there and the others waiting for it in a call they make
 * together would wait forever. The library's calls fail on every rank
 * together; a step of the program's own that one rank may fail (a file, a
 * fit) is followed by cli_parallel_agree before the next call together. */
bool cli_parallel_start(void);

/* The communicator for the library's options; NULL alone (or before
 * cli_parallel_start). */
mislas_comm *cli_parallel_comm(void);
/* This process's rank and the number of ranks (0 and 1 alone), from the
 * launcher's environment until MPI starts, then MPI's. */
int32_t cli_parallel_rank(void);
int32_t cli_parallel_size(void);
/* Whether this process prints and writes: rank 0, or alone. */
bool cli_parallel_leader(void);

/* Collective: true when `ok` is true on every rank. Between the failures a
 * rank may meet alone (a file it cannot read) and a call every rank makes
 * together, so that all stop together rather than wait for one that has
 * stopped. The failing rank has said why; rank 0 says which rank failed.
 * Alone: ok. */
bool cli_parallel_agree(bool ok);

#endif
