/* Checkpoints that also record the training run that wrote them (train.c). */
#ifndef MISLAS_CHECKPOINT_INTERNAL_H
#define MISLAS_CHECKPOINT_INTERNAL_H

#include <mislas/checkpoint.h>

/* Where a run stands: a resume continues only a run with the same digest
 * (its options and data), from epoch epochs_done. stage 0: no run. */
typedef struct mislasi_run_record {
    int32_t stage;
    int32_t epochs_done;
    int32_t epochs;
    uint64_t digest;
} mislasi_run_record;

/* mislas_checkpoint_save with a PROG section when run is not NULL; fn names
 * the public call in messages. */
int mislasi_checkpoint_write(const char *fn, const char *path, const mislas_model *m,
        const mislas_optimizer *o, const mislasi_run_record *run);

/* mislas_checkpoint_load that also returns the run record (stage 0 when the
 * file has none). */
int mislasi_checkpoint_read(const char *path, mislas_model **model, mislas_optimizer **optimizer,
        mislasi_run_record *run);

#endif
