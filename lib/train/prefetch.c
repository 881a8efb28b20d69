/* Prefetching of the next batch (prefetch.h). */
#include "prefetch.h"

#include "data/data.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

int mislasi_prefetch_init(mislasi_prefetch *p, const char *fn, const mislas_dataset *d,
        const mislas_dataset_batch_options *opts, size_t capacity)
{
    memset(p, 0, sizeof *p);
    p->d = d;
    p->opts = *opts;
    int32_t c, h, w;
    mislas_dataset_shape(d, &c, &h, &w);
    size_t image_size = (size_t)c * (size_t)h * (size_t)w;
    p->indices = mislasi_calloc(capacity, sizeof *p->indices);
    p->positions = mislasi_calloc(capacity, sizeof *p->positions);
    for (int b = 0; b < 2; b++) {
        p->images[b] = mislasi_calloc(capacity, image_size * sizeof *p->images[b]);
        p->labels[b] = mislasi_calloc(capacity, sizeof *p->labels[b]);
    }
    if (p->indices == NULL || p->positions == NULL || p->images[0] == NULL || p->images[1] == NULL || p->labels[0] == NULL
            || p->labels[1] == NULL) {
        mislasi_prefetch_free(p);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for the batch buffers", fn);
    }
    return MISLAS_OK;
}

static void make_batch(mislasi_prefetch *p)
{
    if (p->n == 0) {    /* a rank with no image in a shared batch */
        p->status = MISLAS_OK;
        return;
    }
    p->status = mislasi_dataset_batch_serial(p->d, p->indices, p->placed ? p->positions : NULL, p->n, &p->opts,
            p->batch_id, p->images[p->back], p->labels[p->back]);
    if (p->status != MISLAS_OK)     /* the message is this thread's: carry it over */
        snprintf(p->message, sizeof p->message, "%s", mislas_last_error());
}

static void *thread_main(void *arg)
{
    make_batch(arg);
    return NULL;
}

void mislasi_prefetch_start(mislasi_prefetch *p, const size_t *indices, const size_t *positions, size_t n,
        uint64_t batch_id)
{
    memcpy(p->indices, indices, n * sizeof *indices);
    p->placed = positions != NULL;
    if (p->placed)
        memcpy(p->positions, positions, n * sizeof *positions);
    p->n = n;
    p->batch_id = batch_id;
    /* On one thread, or without a thread to start, the batch is made here
     * and now: slower, same bits. */
    p->running = mislas_num_threads() > 1 && pthread_create(&p->thread, NULL, thread_main, p) == 0;
    if (!p->running)
        make_batch(p);
}

int mislasi_prefetch_take(mislasi_prefetch *p, float **images, int32_t **labels)
{
    if (p->running) {
        double start = mislasi_seconds();
        pthread_join(p->thread, NULL);
        p->waited += mislasi_seconds() - start;
        p->running = false;
    }
    *images = p->images[p->back];
    *labels = p->labels[p->back];
    p->back ^= 1;
    return p->status == MISLAS_OK ? MISLAS_OK : mislasi_fail(p->status, "%s", p->message);
}

void mislasi_prefetch_free(mislasi_prefetch *p)
{
    if (p->running)
        pthread_join(p->thread, NULL);
    mislasi_free(p->indices);
    mislasi_free(p->positions);
    for (int b = 0; b < 2; b++) {
        mislasi_free(p->images[b]);
        mislasi_free(p->labels[b]);
    }
    memset(p, 0, sizeof *p);
}
