/* Processes that train one model together: the communicator handle that
 * mislas_train_stage1, mislas_train_stage2 and mislas_eval_run take in their
 * options (`comm`; NULL: one process, as without it).
 *
 * Every process of a communicator runs the same call with the same
 * arguments. Each takes its own share of every batch (whole groups of
 * images, docs/scale.md) and the processes exchange what the batch sums, in
 * an order fixed by the batch alone, so that the model comes out the same
 * bits on any number of processes as on one.
 *
 * The library moves bytes through a transport the caller supplies: a table
 * of a few operations over its own channel. The MPI component
 * (mislas/mpi.h, libmislas-mpi) makes one from an MPI communicator; the core
 * library never needs MPI. A transport's operations are called from the
 * thread that called the training function, never from the library's
 * worker threads. */
#ifndef MISLAS_COMM_H
#define MISLAS_COMM_H

#include <mislas/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mislas_comm mislas_comm;

/* A transport's operations, each returning MISLAS_OK or a mislas_status
 * (the text for it then comes from `message`). `impl` is the pointer given
 * to mislas_comm_new. Ranks are numbered 0 to size - 1. */
typedef struct mislas_comm_ops {
    size_t struct_size;
    /* Every rank holds its own bytes [offsets[rank], offsets[rank + 1]) of
     * `buffer`; on return every rank holds all of [0, offsets[size]). */
    int (*allgather)(void *impl, void *buffer, const size_t *offsets);
    /* Starts sending `bytes` bytes to rank + 1 under `tag`; the buffer is
     * left alone until `wait` returns. */
    int (*send_next)(void *impl, const void *buffer, size_t bytes, int32_t tag);
    /* Receives `bytes` bytes from rank - 1 under `tag`, waiting for them. */
    int (*receive_previous)(void *impl, void *buffer, size_t bytes, int32_t tag);
    /* Starts copying root's `bytes` bytes of buffer to every other rank's
     * buffer; every rank starts the broadcasts in the same order. */
    int (*broadcast_start)(void *impl, void *buffer, size_t bytes, int32_t root);
    /* Completes every send and broadcast started. */
    int (*wait)(void *impl);
    /* The last failure's text; may be NULL. */
    const char *(*message)(void *impl);
    /* Called by mislas_comm_free; may be NULL. */
    void (*release)(void *impl);
} mislas_comm_ops;

/* A communicator of `size` ranks seen from rank `rank`, over the transport
 * (ops, impl). ops is copied; impl must stay valid until mislas_comm_free.
 * Every operation but message and release is required. */
MISLAS_API int mislas_comm_new(mislas_comm **out, int32_t rank, int32_t size, const mislas_comm_ops *ops,
        void *impl);
/* Calls the transport's release; NULL is ignored. */
MISLAS_API void mislas_comm_free(mislas_comm *comm);

/* Records `message` as this thread's last error (mislas_last_error) and
 * returns status: for a transport's maker to report its own failures as the
 * library reports its own. */
MISLAS_API int mislas_comm_fail(int status, const char *message);

/* This process's rank (0 for NULL: one process) and the number of ranks
 * (1 for NULL). */
MISLAS_API int32_t mislas_comm_rank(const mislas_comm *comm);
MISLAS_API int32_t mislas_comm_size(const mislas_comm *comm);

#ifdef __cplusplus
}
#endif

#endif
