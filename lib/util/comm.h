/* The communicator handle (mislas/comm.h) and what the layers above do with
 * it: share a batch between the ranks in whole quanta of images, and move
 * bytes with failures reported as the library reports its own. */
#ifndef MISLAS_UTIL_COMM_H
#define MISLAS_UTIL_COMM_H

#include <mislas/comm.h>

#include <stddef.h>

struct mislas_comm {
    int32_t rank, size;
    mislas_comm_ops ops;
    void *impl;
    size_t *offsets;            /* size + 1, for the calls below */
    char *records;              /* size status records, for mislasi_comm_agree */
    double waited;              /* seconds spent in the transport's calls (mislas_progress) */
};

/* Rank `rank`'s images [*first, *first + *n) of a batch of `total`, shared
 * by `size` ranks in whole quanta of `quantum` images (the last may be
 * short): as even as whole quanta allow, in rank order; a rank may get none
 * when the batch has fewer quanta than there are ranks. */
void mislasi_share_of(size_t total, size_t quantum, int32_t size, int32_t rank, size_t *first, size_t *n);

/* Allgathers `unit` bytes per image of a batch of `total` images shared in
 * quanta of `quantum` (every rank holds its share's at image first * unit). */
int mislasi_comm_gather_images(const char *fn, mislas_comm *c, void *buffer, size_t total, size_t quantum,
        size_t unit);
/* The transport's operations, a failure reported through mislasi_fail
 * naming fn and the rank. */
int mislasi_comm_send_next(const char *fn, mislas_comm *c, const void *buffer, size_t bytes, int32_t tag);
int mislasi_comm_receive_previous(const char *fn, mislas_comm *c, void *buffer, size_t bytes, int32_t tag);
int mislasi_comm_broadcast_start(const char *fn, mislas_comm *c, void *buffer, size_t bytes, int32_t root);
int mislasi_comm_wait(const char *fn, mislas_comm *c);

/* MISLAS_OK when every rank's `bytes` bytes at value equal rank 0's, else
 * MISLAS_ERR_INVALID_ARGUMENT naming the first rank whose differ and `what`
 * they are ("... differs from rank 0 in its <what>"): ranks given different arguments would wait for one another
 * forever, or part with different models. */
int mislasi_comm_same(const char *fn, mislas_comm *c, const void *value, size_t bytes, const char *what);

/* Every rank's `status` made one: MISLAS_OK when all are; else this rank's
 * own failure as it stands, or the first failing rank's status with its
 * message ("rank 2: ..."). A step where one rank may fail alone (its batch's
 * files, its memory) passes through here before the ranks next exchange
 * anything, so that none waits for a rank that has stopped. */
int mislasi_comm_agree(const char *fn, mislas_comm *c, int status);

#endif
