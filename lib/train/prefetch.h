/* The next batch made on a thread of its own while the model computes the
 * current one, so that decoding a list-file set's JPEGs overlaps training
 * (docs/data.md, "Streaming"). Two batch buffers, no more: memory stays at
 * two batches whatever the data set's size. The batch is made on that one
 * thread alone; the model's calls keep the library's worker threads (with
 * mislas_num_threads() at 1 no thread is started: the batch is made when it
 * is started, on the caller's thread). A batch
 * is a pure function of its indices and id, so results are the same bits as
 * making it in place. Not installed. */
#ifndef MISLAS_PREFETCH_H
#define MISLAS_PREFETCH_H

#include <mislas/dataset.h>

#include <pthread.h>
#include <stdbool.h>

typedef struct mislasi_prefetch {
    const mislas_dataset *d;
    mislas_dataset_batch_options opts;
    float *images[2];           /* the capacity's images each */
    int32_t *labels[2];
    size_t *indices;            /* the batch being made */
    size_t *positions;          /* their places in the batch, when given */
    bool placed;                /* positions given */
    size_t n;
    uint64_t batch_id;
    int back;                   /* the buffer being filled */
    bool running;               /* a thread is making a batch */
    pthread_t thread;
    int status;                 /* the batch's; its message below */
    char message[512];
    double waited;              /* seconds take() spent waiting, since the last reset */
} mislasi_prefetch;

/* Allocates the buffers; `fn` names the public call in messages. */
int mislasi_prefetch_init(mislasi_prefetch *p, const char *fn, const mislas_dataset *d,
        const mislas_dataset_batch_options *opts, size_t capacity);

/* Starts making batch `batch_id` of the n <= capacity images at indices
 * (copied), image i drawn as place positions[i] of the batch (positions
 * NULL: i; copied). A batch started must be taken before the next is
 * started. */
void mislasi_prefetch_start(mislasi_prefetch *p, const size_t *indices, const size_t *positions, size_t n,
        uint64_t batch_id);

/* Waits for the batch started last and gives its buffers, valid until the
 * next start-and-take; its failure (with the message) if it failed. */
int mislasi_prefetch_take(mislasi_prefetch *p, float **images, int32_t **labels);

/* Waits for a batch still being made, then releases everything. */
void mislasi_prefetch_free(mislasi_prefetch *p);

#endif
