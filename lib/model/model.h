/* What lib/model offers the layers above (lib/train): checkpoints that also
 * record the training run that wrote them, and the few operations on a model
 * and its optimiser that a training run needs beyond the public API. The
 * structs themselves are defined in model_internal.h and optim_internal.h,
 * which only lib/model's own files include. Not installed. */
#ifndef MISLAS_MODEL_LAYER_H
#define MISLAS_MODEL_LAYER_H

#include <mislas/checkpoint.h>
#include <mislas/comm.h>
#include <mislas/dataset.h>
#include <mislas/model.h>
#include <mislas/optimizer.h>

#include <stdbool.h>
#include <stddef.h>

/* A training batch of `whole` images shared between the ranks of comm:
 * this rank holds images [first, first + n), whole quanta of
 * mislasi_model_quantum (util/comm.h's mislasi_share_of). The network runs
 * on this rank's images; batch norm's statistics (unless bn_per_rank) and
 * the sums of the backward pass are exchanged so that every rank computes
 * what one process computes for the whole batch, bit for bit; the
 * classifier runs on the whole batch everywhere. comm NULL: one process. */
typedef struct mislasi_share {
    mislas_comm *comm;
    size_t whole, first, n;
    bool bn_per_rank;           /* each rank normalises with its own images' statistics */
} mislasi_share;

/* Images in the model's quantum: the largest group its sums run over. */
size_t mislasi_model_quantum(mislas_model *m);

/* mislas_model_forward (keep) or _predict on this rank's images (n of
 * them, NCHW), writing the whole batch's logits (whole x K) on every rank. */
int mislasi_model_forward_shared(mislas_model *m, const float *images, const mislasi_share *share, float *logits,
        bool keep);
/* mislas_model_backward after a shared forward, from the whole batch's
 * grad_logits: every rank ends with the whole batch's gradients. */
int mislasi_model_backward_shared(mislas_model *m, const float *grad_logits);

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

/* An FNV-1a digest of every tensor's values (weights and running
 * statistics): ranks that train together check they start from the same. */
uint64_t mislasi_model_digest(const mislas_model *m);

/* `to` takes every tensor of `from`, a model of the same kind. */
int mislasi_model_take_state(mislas_model *to, const mislas_model *from);

/* `to` takes the momentum buffers of `from`'s groups where the two groups
 * are the same size, and its step count and learning rate. */
void mislasi_optimizer_take_state(mislas_optimizer *to, const mislas_optimizer *from);

#endif
