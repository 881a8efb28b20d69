/* MiSLAS's two training stages and its evaluation, as library calls.
 *
 * mislas_train_stage1 learns the representation: instance-balanced
 * sampling, optional mixup, SGD with a multistep-with-warm-up or cosine
 * schedule. mislas_train_stage2 learns the classifier on the frozen backbone
 * with a class-aware sampler: cRT, LWS or MiSLAS, with label-aware smoothing
 * or cross-entropy and shifted batch norm on or off, which together produce
 * every row of the paper's ablation (mislas/eval.h evaluates the result).
 * docs/method.md is the recipe; docs/training.md says what each option does.
 *
 * Each stage writes a checkpoint after every epoch when given a path (the
 * write is atomic: the file holds the last finished epoch, never a part of
 * one) and, with `resume` set, continues a run from it exactly: the weights,
 * running statistics, momentum and data order of an uninterrupted run, bit
 * for bit. The progress callback sees every step and may cancel.
 *
 * Given a communicator (`comm`, mislas/comm.h), the ranks train one model
 * together: every rank makes the call with the same arguments, runs its
 * share of every batch, and ends with the same model, the same bits as one
 * process training alone (docs/scale.md). batch_size, the learning rate and
 * the checkpoint are the whole batch's, so a run may resume on another
 * number of ranks; rank 0 alone writes the checkpoint, which every rank
 * reads on resume (so its path must be one file every rank sees). */
#ifndef MISLAS_TRAIN_H
#define MISLAS_TRAIN_H

#include <mislas/calib.h>
#include <mislas/comm.h>
#include <mislas/common.h>
#include <mislas/dataset.h>
#include <mislas/loss.h>
#include <mislas/model.h>
#include <mislas/progress.h>
#include <mislas/sampler.h>
#include <mislas/schedule.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ stage 1 */

typedef struct mislas_train_stage1_options {
    size_t struct_size;
    int32_t epochs;             /* default 200 */
    int32_t batch_size;         /* default 128; the last partial batch is used */
    double lr;                  /* default 0.1 */
    double momentum;            /* default 0.9 */
    double weight_decay;        /* default 2e-4 */
    mislas_schedule schedule;   /* default MISLAS_SCHEDULE_MULTISTEP */
    int32_t warmup_epochs;      /* multistep only; default 5 */
    const int32_t *milestones;  /* multistep: lr x gamma once epoch (1-based) passes each;
                                   NULL: mislas_train_stage1_milestones(epochs) */
    int32_t num_milestones;
    double gamma;               /* default 0.1 */
    float mixup_alpha;          /* Beta(alpha, alpha); <= 0 turns mixup off; default 1 */
    int32_t augment;            /* nonzero: pad-4 random crop and flip; default 1 */
    const float *mean, *std;    /* per-channel normalisation (C values); NULL: 0 and 1 */
    uint64_t seed;              /* data order, augmentation, mixup; default 0 */
    const char *checkpoint_path;    /* written after every epoch; NULL: none */
    int32_t resume;             /* nonzero: continue the run checkpoint_path holds */
    mislas_progress_fn progress;    /* NULL: none */
    void *progress_data;
    mislas_comm *comm;          /* NULL: this process alone */
    int32_t bn_per_rank;        /* with comm: nonzero normalises each rank's share with its own
                                   statistics (PyTorch DataParallel's way; rank 0's running
                                   statistics are kept), zero with the whole batch's (default) */
} mislas_train_stage1_options;
MISLAS_API void mislas_train_stage1_options_init(mislas_train_stage1_options *opts);

/* The most milestones mislas_train_stage1_milestones writes. */
#define MISLAS_TRAIN_STAGE1_MILESTONES_MAX 2

/* The milestones mislas_train_stage1 uses for `epochs` when opts->milestones
 * is NULL: the reference's CIFAR decays after epochs 160 and 180 of 200,
 * scaled (epochs * 160 / 200 and epochs * 180 / 200, integer division), less
 * any that come to 0 or repeat the one before (short runs). Writes them to
 * milestones, which has room for MISLAS_TRAIN_STAGE1_MILESTONES_MAX, and their
 * number (0 to 2) to *count. epochs must be at least 1. */
MISLAS_API int mislas_train_stage1_milestones(int32_t *milestones, int32_t *count, int32_t epochs);

/* Trains `model` (head LINEAR, which a new model has) on `train` and records
 * the training set's class counts in it. The model's shape must match the
 * data set's (channels, height, width, classes). With resume set and a
 * checkpoint of an unfinished stage-1 run with the same options and data at
 * checkpoint_path, the model takes its state and the run continues from the
 * next epoch (a finished run returns at once); a checkpoint of another run
 * is MISLAS_ERR_STATE, and no file at all starts from epoch 0. */
MISLAS_API int mislas_train_stage1(mislas_model *model, const mislas_dataset *train,
        const mislas_train_stage1_options *opts);

/* ------------------------------------------------------------------ stage 2 */

typedef enum mislas_stage2_method {
    MISLAS_STAGE2_CRT = 0,      /* re-initialised W and b learn at lr */
    MISLAS_STAGE2_LWS = 1,      /* W and b frozen; the scales s learn at lr */
    MISLAS_STAGE2_MISLAS = 2    /* W and b learn at lr * lr_factor, s at lr */
} mislas_stage2_method;

typedef struct mislas_train_stage2_options {
    size_t struct_size;
    mislas_stage2_method method;    /* default MISLAS_STAGE2_MISLAS */
    int32_t epochs;             /* default 10; cosine schedule */
    int32_t batch_size;         /* default 128 */
    double lr;                  /* default 0.1 */
    double momentum;            /* default 0.9 */
    double weight_decay;        /* default 2e-4 */
    double lr_factor;           /* MISLAS only; default 0.5 (CIFAR-10-LT, IF 100) */
    int32_t label_aware_smoothing;  /* nonzero: LAS; zero: cross-entropy; default 1 */
    float smooth_head;          /* default 0.3 */
    float smooth_tail;          /* default 0.0 */
    mislas_las_shape las_shape; /* default MISLAS_LAS_CONCAVE */
    float las_power;            /* MISLAS_LAS_POWER only; default 1 */
    int32_t shift_bn;           /* nonzero: shifted BN; zero: backbone in eval mode; default 1 */
    mislas_sampler_kind sampler;    /* default MISLAS_SAMPLER_CLASS_AWARE */
    size_t epoch_steps;         /* batches per epoch; 0: the reference's ceil(N / batch) + 1 */
    int32_t augment;            /* default 1 (the reference reuses stage 1's transform) */
    const float *mean, *std;    /* as in stage 1 */
    uint64_t seed;              /* data order, augmentation, cRT's re-initialisation; default 0 */
    const char *checkpoint_path;
    int32_t resume;
    mislas_progress_fn progress;
    void *progress_data;
    mislas_comm *comm;          /* as in stage 1 */
    int32_t bn_per_rank;
} mislas_train_stage2_options;
MISLAS_API void mislas_train_stage2_options_init(mislas_train_stage2_options *opts);

/* Freezes the backbone of a stage-1 model, sets its head (cRT, LWS, MiSLAS)
 * and BN mode (SHIFTED_BN or EVAL), and trains the classifier on `train`
 * (whose class counts give LAS its smoothing and are recorded in the model).
 * Checkpointing and resume as in stage 1. */
MISLAS_API int mislas_train_stage2(mislas_model *model, const mislas_dataset *train,
        const mislas_train_stage2_options *opts);

#ifdef __cplusplus
}
#endif

#endif
