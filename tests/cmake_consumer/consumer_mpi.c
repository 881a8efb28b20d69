/* An MPI program built against the installed MPI component through the CMake
 * package (mislas::mpi, which brings MPI and mislas::mislas): a communicator
 * over MPI_COMM_WORLD has the world's size. Run it under mpirun. */
#include <mislas/mislas.h>
#include <mislas/mpi.h>

#include <stdio.h>

int main(int argc, char **argv)
{
    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return 1;
    int rank = 0, size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    int failed = 0;
    mislas_comm *comm = NULL;
    int status = mislas_mpi_comm_new(&comm, MPI_COMM_WORLD);
    if (status != MISLAS_OK) {
        fprintf(stderr, "consumer_mpi: rank %d: %s\n", rank, mislas_status_string(status));
        failed = 1;
    } else if (mislas_comm_size(comm) != size) {
        fprintf(stderr, "consumer_mpi: rank %d: communicator of %d ranks, world of %d\n", rank,
                (int)mislas_comm_size(comm), size);
        failed = 1;
    } else {
        printf("consumer_mpi: rank %d of %d, libmislas %s\n", rank, (int)mislas_comm_size(comm),
               mislas_version());
    }
    mislas_comm_free(comm);

    int any_failed = 0;
    MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any_failed;
}
