/* What lib/model offers the layers above (lib/train): checkpoints that also
 * record the training run that wrote them, and the few operations on a model
 * and its optimiser that a training run needs beyond the public API. The
 * structs themselves are defined in model_internal.h and optim_internal.h,
 * which only lib/model's own files include. Not installed. */
#ifndef MISLAS_MODEL_LAYER_H
#define MISLAS_MODEL_LAYER_H

#include <mislas/checkpoint.h>
#include <mislas/dataset.h>
#include <mislas/model.h>
#include <mislas/optim.h>

#include <stdbool.h>

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

/* MISLAS_ERR_INVALID_ARGUMENT, naming both shapes, unless the data set's
 * images (channels, height, width) and classes are the model's; fn names
 * the public call. */
int mislasi_model_fits_data(const char *fn, const mislas_model *m, const mislas_dataset *d);

/* Whether two models have the same architecture, input shape, classes, head,
 * mode and freezing: whether one can take the other's state. */
bool mislasi_model_same_kind(const mislas_model *a, const mislas_model *b);

/* `to` takes every tensor of `from`, a model of the same kind. */
int mislasi_model_take_state(mislas_model *to, const mislas_model *from);

/* `to` takes the momentum buffers of `from`'s groups where the two groups
 * are the same size, and its step count and learning rate. */
void mislasi_optimizer_take_state(mislas_optimizer *to, const mislas_optimizer *from);

#endif
