/* The MPI component (libmislas-mpi, pkg-config mislas-mpi): a communicator
 * (mislas/comm.h) over an MPI communicator, so that `mpirun -np N` trains one
 * model on N processes, on one machine or many (docs/scale.md). The only
 * header of the library that includes mpi.h; the core library and its other
 * users never need MPI.
 *
 * MPI must be initialised first (MPI_Init_thread with at least
 * MPI_THREAD_FUNNELED when the training calls run on the main thread,
 * MPI_THREAD_SERIALIZED otherwise: the library calls MPI only from the thread
 * that called it, never from its worker threads). */
#ifndef MISLAS_MPI_H
#define MISLAS_MPI_H

#include <mpi.h>

#include <mislas/comm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A communicator over a duplicate of `comm` (the library's messages never
 * meet the caller's), rank and size as comm's. Release it with
 * mislas_comm_free before MPI_Finalize. Every rank of comm must call it:
 * MPI_Comm_dup is collective. */
MISLAS_API int mislas_mpi_comm_new(mislas_comm **out, MPI_Comm comm);

#ifdef __cplusplus
}
#endif

#endif
