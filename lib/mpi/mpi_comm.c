/* mislas/comm.h's transport over MPI (mislas/mpi.h): each operation one MPI
 * call on the library's own duplicate of the caller's communicator, whose
 * errors are returned (MPI_ERRORS_RETURN) rather than fatal, so that the
 * rank reports them through mislas_last_error; a rank that stops then ends
 * the job through mpirun. Uses only the public API. */
#include <mislas/mpi.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct transport {
    MPI_Comm comm;
    int rank, size;
    int *counts, *displacements;    /* size each, for allgather */
    MPI_Request *pending;           /* started sends and broadcasts */
    int num_pending, capacity;
    char message[MPI_MAX_ERROR_STRING + 128];
} transport;

static int failed(transport *t, int code, const char *call)
{
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error %d", code);
    snprintf(t->message, sizeof t->message, "%s: %s", call, text);
    return MISLAS_ERR_IO;
}

static int too_large(transport *t, size_t bytes)
{
    snprintf(t->message, sizeof t->message, "%zu bytes in one message: MPI counts stop at %d", bytes, INT_MAX);
    return MISLAS_ERR_UNSUPPORTED;
}

static int allgather(void *impl, void *buffer, const size_t *offsets)
{
    transport *t = impl;
    if (offsets[t->size] > (size_t)INT_MAX)
        return too_large(t, offsets[t->size]);
    for (int r = 0; r < t->size; r++) {
        t->counts[r] = (int)(offsets[r + 1] - offsets[r]);
        t->displacements[r] = (int)offsets[r];
    }
    int code = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer, t->counts, t->displacements, MPI_BYTE,
            t->comm);
    return code == MPI_SUCCESS ? MISLAS_OK : failed(t, code, "MPI_Allgatherv");
}

/* A slot for one more started request. */
static MPI_Request *next_request(transport *t)
{
    if (t->num_pending == t->capacity) {
        int capacity = t->capacity > 0 ? 2 * t->capacity : 64;
        MPI_Request *grown = realloc(t->pending, (size_t)capacity * sizeof *grown);
        if (grown == NULL)
            return NULL;
        t->pending = grown;
        t->capacity = capacity;
    }
    return &t->pending[t->num_pending];
}

static int start(transport *t, int code, const char *call)
{
    if (code != MPI_SUCCESS)
        return failed(t, code, call);
    t->num_pending++;
    return MISLAS_OK;
}

static int out_of_memory(transport *t)
{
    snprintf(t->message, sizeof t->message, "out of memory for a request");
    return MISLAS_ERR_OUT_OF_MEMORY;
}

/* The request of an operation of `bytes` bytes about to start, or NULL with
 * *status saying why not. */
static MPI_Request *request_for(transport *t, size_t bytes, int *status)
{
    if (bytes > (size_t)INT_MAX) {
        *status = too_large(t, bytes);
        return NULL;
    }
    MPI_Request *request = next_request(t);
    if (request == NULL)
        *status = out_of_memory(t);
    return request;
}

static int send_next(void *impl, const void *buffer, size_t bytes, int32_t tag)
{
    transport *t = impl;
    int status = MISLAS_OK;
    MPI_Request *request = request_for(t, bytes, &status);
    if (request == NULL)
        return status;
    return start(t, MPI_Isend(buffer, (int)bytes, MPI_BYTE, t->rank + 1, tag, t->comm, request), "MPI_Isend");
}

static int receive_previous(void *impl, void *buffer, size_t bytes, int32_t tag)
{
    transport *t = impl;
    if (bytes > (size_t)INT_MAX)
        return too_large(t, bytes);
    int code = MPI_Recv(buffer, (int)bytes, MPI_BYTE, t->rank - 1, tag, t->comm, MPI_STATUS_IGNORE);
    return code == MPI_SUCCESS ? MISLAS_OK : failed(t, code, "MPI_Recv");
}

static int broadcast_start(void *impl, void *buffer, size_t bytes, int32_t root)
{
    transport *t = impl;
    int status = MISLAS_OK;
    MPI_Request *request = request_for(t, bytes, &status);
    if (request == NULL)
        return status;
    return start(t, MPI_Ibcast(buffer, (int)bytes, MPI_BYTE, root, t->comm, request), "MPI_Ibcast");
}

static int wait_all(void *impl)
{
    transport *t = impl;
    int code = MPI_Waitall(t->num_pending, t->pending, MPI_STATUSES_IGNORE);
    t->num_pending = 0;
    return code == MPI_SUCCESS ? MISLAS_OK : failed(t, code, "MPI_Waitall");
}

static const char *message(void *impl)
{
    transport *t = impl;
    return t->message;
}

static void release(void *impl)
{
    transport *t = impl;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && t->comm != MPI_COMM_NULL)
        MPI_Comm_free(&t->comm);
    free(t->counts);
    free(t->displacements);
    free(t->pending);
    free(t);
}

static const mislas_comm_ops OPS = {
    .struct_size = sizeof(mislas_comm_ops),
    .allgather = allgather,
    .send_next = send_next,
    .receive_previous = receive_previous,
    .broadcast_start = broadcast_start,
    .wait = wait_all,
    .message = message,
    .release = release,
};

int mislas_mpi_comm_new(mislas_comm **out, MPI_Comm comm)
{
    static const char fn[] = "mislas_mpi_comm_new";
    char text[sizeof ((transport *)0)->message + sizeof fn + 2];
    if (out == NULL)
        return mislas_comm_fail(MISLAS_ERR_INVALID_ARGUMENT, "mislas_mpi_comm_new: out is NULL");
    *out = NULL;
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (!initialized || finalized)
        return mislas_comm_fail(MISLAS_ERR_STATE, "mislas_mpi_comm_new: MPI is not initialised (call MPI_Init_thread "
                "first) or already finalised");
    if (comm == MPI_COMM_NULL)
        return mislas_comm_fail(MISLAS_ERR_INVALID_ARGUMENT, "mislas_mpi_comm_new: comm is MPI_COMM_NULL");
    transport *t = calloc(1, sizeof *t);
    if (t == NULL)
        return mislas_comm_fail(MISLAS_ERR_OUT_OF_MEMORY, "mislas_mpi_comm_new: out of memory");
    t->comm = MPI_COMM_NULL;
    int code = MPI_Comm_dup(comm, &t->comm);
    if (code != MPI_SUCCESS) {
        failed(t, code, "MPI_Comm_dup");
        snprintf(text, sizeof text, "%s: %s", fn, t->message);
        release(t);
        return mislas_comm_fail(MISLAS_ERR_IO, text);
    }
    MPI_Comm_set_errhandler(t->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(t->comm, &t->rank);
    MPI_Comm_size(t->comm, &t->size);
    t->counts = calloc((size_t)t->size, sizeof *t->counts);
    t->displacements = calloc((size_t)t->size, sizeof *t->displacements);
    int status = t->counts == NULL || t->displacements == NULL
            ? mislas_comm_fail(MISLAS_ERR_OUT_OF_MEMORY, "mislas_mpi_comm_new: out of memory")
            : mislas_comm_new(out, t->rank, t->size, &OPS, t);
    if (status != MISLAS_OK)
        release(t);
    return status;
}
