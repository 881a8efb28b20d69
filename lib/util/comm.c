/* The communicator handle (mislas/comm.h): the caller's transport, checked
 * once, and the few things the training layers do with it. */
#include "util.h"

#include <stdio.h>
#include <string.h>

/* A rank's part of mislasi_comm_agree's exchange. */
enum { RECORD_BYTES = 512 };

int mislas_comm_new(mislas_comm **out, int32_t rank, int32_t size, const mislas_comm_ops *ops, void *impl)
{
    static const char fn[] = "mislas_comm_new";
    MISLASI_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    MISLASI_CHECK_NOT_NULL(fn, ops);
    mislas_comm_ops o;
    memset(&o, 0, sizeof o);
    int status = mislasi_read_options(fn, &o, sizeof o, ops);
    if (status != MISLAS_OK)
        return status;
    if (size < 1 || rank < 0 || rank >= size)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: rank %d of %d ranks", fn, (int)rank, (int)size);
    if (o.allgather == NULL || o.send_next == NULL || o.receive_previous == NULL || o.broadcast_start == NULL ||
            o.wait == NULL)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: ops lacks one of allgather, send_next, receive_previous, broadcast_start, wait", fn);
    mislas_comm *c = mislasi_calloc(1, sizeof *c);
    if (c != NULL) {
        c->offsets = mislasi_calloc((size_t)size + 1, sizeof *c->offsets);
        c->records = mislasi_calloc((size_t)size, RECORD_BYTES);
    }
    if (c == NULL || c->offsets == NULL || c->records == NULL) {
        if (c != NULL) {
            mislasi_free(c->offsets);
            mislasi_free(c->records);
        }
        mislasi_free(c);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    c->rank = rank;
    c->size = size;
    c->ops = o;
    c->impl = impl;
    *out = c;
    return MISLAS_OK;
}

void mislas_comm_free(mislas_comm *c)
{
    if (c == NULL)
        return;
    if (c->ops.release != NULL)
        c->ops.release(c->impl);
    mislasi_free(c->offsets);
    mislasi_free(c->records);
    mislasi_free(c);
}

int mislas_comm_fail(int status, const char *message)
{
    if (status >= 0)
        status = MISLAS_ERR_INVALID_ARGUMENT;
    return mislasi_fail(status, "%s", message != NULL ? message : mislas_status_string(status));
}

int32_t mislas_comm_rank(const mislas_comm *c)
{
    return c == NULL ? 0 : c->rank;
}

int32_t mislas_comm_size(const mislas_comm *c)
{
    return c == NULL ? 1 : c->size;
}

void mislasi_share_of(size_t total, size_t quantum, int32_t size, int32_t rank, size_t *first, size_t *n)
{
    size_t quanta = (total + quantum - 1) / quantum;
    size_t q0 = quanta * (size_t)rank / (size_t)size, q1 = quanta * ((size_t)rank + 1) / (size_t)size;
    size_t begin = q0 * quantum < total ? q0 * quantum : total, end = q1 * quantum < total ? q1 * quantum : total;
    *first = begin;
    *n = end - begin;
}

/* A transport's failure, named. */
static int transport_failed(const char *fn, const mislas_comm *c, int status, const char *what)
{
    const char *text = c->ops.message != NULL ? c->ops.message(c->impl) : NULL;
    if (status >= 0)
        status = MISLAS_ERR_IO;
    return mislasi_fail(status, "%s: rank %d of %d: %s failed: %s", fn, (int)c->rank, (int)c->size, what,
            text != NULL ? text : mislas_status_string(status));
}

static int allgather(const char *fn, mislas_comm *c, void *buffer)
{
    double start = mislasi_seconds();
    int status = c->ops.allgather(c->impl, buffer, c->offsets);
    c->waited += mislasi_seconds() - start;
    return status == MISLAS_OK ? MISLAS_OK : transport_failed(fn, c, status, "allgather");
}

int mislasi_comm_gather_images(const char *fn, mislas_comm *c, void *buffer, size_t total, size_t quantum,
        size_t unit)
{
    for (int32_t r = 0; r < c->size; r++) {
        size_t first, n;
        mislasi_share_of(total, quantum, c->size, r, &first, &n);
        c->offsets[r] = first * unit;
    }
    c->offsets[c->size] = total * unit;
    return allgather(fn, c, buffer);
}

int mislasi_comm_send_next(const char *fn, mislas_comm *c, const void *buffer, size_t bytes, int32_t tag)
{
    double start = mislasi_seconds();
    int status = c->ops.send_next(c->impl, buffer, bytes, tag);
    c->waited += mislasi_seconds() - start;
    return status == MISLAS_OK ? MISLAS_OK : transport_failed(fn, c, status, "send");
}

int mislasi_comm_receive_previous(const char *fn, mislas_comm *c, void *buffer, size_t bytes, int32_t tag)
{
    double start = mislasi_seconds();
    int status = c->ops.receive_previous(c->impl, buffer, bytes, tag);
    c->waited += mislasi_seconds() - start;
    return status == MISLAS_OK ? MISLAS_OK : transport_failed(fn, c, status, "receive");
}

int mislasi_comm_broadcast_start(const char *fn, mislas_comm *c, void *buffer, size_t bytes, int32_t root)
{
    double start = mislasi_seconds();
    int status = c->ops.broadcast_start(c->impl, buffer, bytes, root);
    c->waited += mislasi_seconds() - start;
    return status == MISLAS_OK ? MISLAS_OK : transport_failed(fn, c, status, "broadcast");
}

int mislasi_comm_wait(const char *fn, mislas_comm *c)
{
    double start = mislasi_seconds();
    int status = c->ops.wait(c->impl);
    c->waited += mislasi_seconds() - start;
    return status == MISLAS_OK ? MISLAS_OK : transport_failed(fn, c, status, "wait");
}

int mislasi_comm_same(const char *fn, mislas_comm *c, const void *value, size_t bytes, const char *what)
{
    unsigned char *all = mislasi_calloc((size_t)c->size, bytes);
    if (all == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    memcpy(all + (size_t)c->rank * bytes, value, bytes);
    for (int32_t r = 0; r <= c->size; r++)
        c->offsets[r] = (size_t)r * bytes;
    int status = allgather(fn, c, all);
    for (int32_t r = 1; status == MISLAS_OK && r < c->size; r++)
        if (memcmp(all + (size_t)r * bytes, all, bytes) != 0)
            status = mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: rank %d of %d differs from rank 0 in its %s "
                    "(every rank must make the same call with the same arguments)", fn, (int)r, (int)c->size, what);
    mislasi_free(all);
    return status;
}

int mislasi_comm_agree(const char *fn, mislas_comm *c, int status)
{
    /* a record: the status, then this rank's message */
    char *mine = c->records + (size_t)c->rank * RECORD_BYTES;
    int32_t s = status;
    memcpy(mine, &s, sizeof s);
    snprintf(mine + sizeof s, RECORD_BYTES - sizeof s, "%s", status == MISLAS_OK ? "" : mislas_last_error());
    for (int32_t r = 0; r <= c->size; r++)
        c->offsets[r] = (size_t)r * RECORD_BYTES;
    int moved = allgather(fn, c, c->records);
    if (status != MISLAS_OK || moved != MISLAS_OK)
        return status != MISLAS_OK ? status : moved;
    for (int32_t r = 0; r < c->size; r++) {
        const char *record = c->records + (size_t)r * RECORD_BYTES;
        memcpy(&s, record, sizeof s);
        if (s != MISLAS_OK)
            return mislasi_fail(s, "rank %d of %d failed: %.*s", (int)r, (int)c->size,
                    (int)(RECORD_BYTES - sizeof s), record + sizeof s);
    }
    return MISLAS_OK;
}
