/* What the long calls (the training stages, evaluation) tell a progress
 * callback, and how the callback cancels them. */
#ifndef MISLAS_PROGRESS_H
#define MISLAS_PROGRESS_H

#include <mislas/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a progress callback is told, after every step and once more at the
 * end of every epoch (epoch_done nonzero, after its checkpoint is written). */
typedef struct mislas_progress {
    size_t struct_size;
    int32_t stage;              /* 1 or 2; 0 while evaluating */
    int32_t epoch;              /* 0-based */
    int32_t epochs;             /* in the run */
    size_t step;                /* steps (batches) done in this epoch */
    size_t steps;               /* steps in this epoch */
    double loss;                /* mean loss per image over the epoch so far (0 evaluating) */
    double accuracy;            /* top-1 over the epoch's images so far, fraction;
                                   under mixup lambda * hit(y_a) + (1 - lambda) * hit(y_b) */
    double images_per_second;   /* over the epoch so far */
    double lr;                  /* the epoch's base learning rate (0 evaluating) */
    int32_t epoch_done;         /* nonzero on the call that closes an epoch */
    double data_wait_seconds;   /* of the epoch so far, spent waiting for batches to be
                                   decoded and assembled (the next is made during each step) */
    double comm_wait_seconds;   /* of the epoch so far, with a communicator: spent waiting for
                                   the other ranks (communication not hidden behind compute) */
} mislas_progress;

/* Returning nonzero cancels: the running call stops after the current step
 * and returns MISLAS_ERR_CANCELLED. The model then holds that step's
 * weights; the checkpoint file (if any) holds the last finished epoch. */
typedef int32_t (*mislas_progress_fn)(const mislas_progress *progress, void *user);

#ifdef __cplusplus
}
#endif

#endif
