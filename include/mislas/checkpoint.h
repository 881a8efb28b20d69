/* Checkpoints: a model (and optionally its optimiser's state) in one file.
 *
 * The format (docs/checkpoint.md) is versioned, zlib-compressed and
 * checksummed (CRC-32 of the header and of the content). A file is written
 * to a temporary file beside the target, flushed to disk, then renamed over
 * it, so the target holds either the old or the new checkpoint, never a
 * part of one. A truncated, corrupt, foreign or future-version file is
 * MISLAS_ERR_FORMAT with a message, and nothing is returned.
 *
 * Loading a checkpoint and continuing gives exactly the numbers that
 * training without the interruption gives (the model's weights, running
 * statistics, head, mode and the optimiser's momentum, lr and step count are
 * all kept; the data order is the caller's, e.g. mislas_sampler_set_epoch). */
#ifndef MISLAS_CHECKPOINT_H
#define MISLAS_CHECKPOINT_H

#include <mislas/common.h>
#include <mislas/model.h>
#include <mislas/optimizer.h>

#ifdef __cplusplus
extern "C" {
#endif

/* optimizer may be NULL (model only); when given it must be the model's.
 * Nothing is written (and the previous file stays) when a value is not
 * finite (MISLAS_ERR_NUMERIC), when the optimiser's groups no longer match
 * the model's head, mode and freezing (MISLAS_ERR_STATE), or when writing
 * fails (MISLAS_ERR_IO). The file is replaced atomically (a temporary file
 * beside it, renamed over it); a symbolic link at path stays a link and the
 * file it leads to is replaced; a device, FIFO or socket is written in
 * place, never replaced by a file. */
MISLAS_API int mislas_checkpoint_save(const mislas_model *model, const mislas_optimizer *optimizer,
        const char *path);

/* A new model as saved. optimizer may be NULL; otherwise *optimizer
 * receives the saved optimiser bound to the new model, or NULL if the file
 * holds none. */
MISLAS_API int mislas_checkpoint_load(mislas_model **model, mislas_optimizer **optimizer,
        const char *path);

/* The training run that wrote a checkpoint (mislas_train_stage1 and
 * mislas_train_stage2 write one after every epoch): *stage receives 1 or 2,
 * or 0 for a file written by mislas_checkpoint_save; *epochs_done the epochs
 * finished and *epochs the run's length (both 0 for stage 0). Any output may
 * be NULL. The whole file is checked as mislas_checkpoint_load checks it. */
MISLAS_API int mislas_checkpoint_training(int32_t *stage, int32_t *epochs_done, int32_t *epochs,
        const char *path);

#ifdef __cplusplus
}
#endif

#endif
