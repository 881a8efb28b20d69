/* The presets (--preset NAME): the paper's Table 5 and our own recipes. */
#ifndef MISLAS_EXAMPLES_CLI_PRESETS_H
#define MISLAS_EXAMPLES_CLI_PRESETS_H

#include "datasets.h"

#include <mislas/mislas.h>

#include <stddef.h>
#include <stdio.h>

/* Our own recipes add to a preset what the paper's rows leave to the
 * program defaults: a validation split held out of training, the stage-2
 * method and loss, and the post-hoc calibration fitted on that split. */
typedef struct cli_recipe {
    int32_t holdout;                /* images per class kept out of training */
    mislas_stage2_method method;
    int32_t label_aware_smoothing;  /* 1: LAS, 0: cross-entropy */
    int32_t shift_bn;
    const char *calibration;        /* mislas-calibrate --method */
} cli_recipe;

/* A row of the paper's Table 5 with the reference's stage-2 configuration
 * for it (docs/method.md, "Hyper-parameters"). Milestones are not part of
 * a preset: every multistep row decays at the library's default milestones
 * (mislas_train_stage1_milestones). */
typedef struct cli_preset {
    const char *name;
    const char *summary;            /* one line for --help */
    const cli_dataset *dataset;     /* a list set (cli_large_sets) for the large sets */
    mislas_arch arch;
    double imb_factor;
    struct {
        int32_t epochs, batch_size, warmup_epochs;
        double lr, weight_decay;
        mislas_schedule schedule;
        float mixup_alpha;          /* the reference's: 1 for CIFAR, 0.2 for the large sets */
    } stage1;
    struct {
        int32_t epochs, batch_size;
        double lr, weight_decay, lr_factor;
        float smooth_head, smooth_tail;
        int32_t shift_bn;
    } stage2;
    const cli_recipe *recipe;       /* NULL for the paper's rows */
} cli_preset;

/* The preset of that name, or NULL. */
const cli_preset *cli_preset_named(const char *name);
/* The i-th preset, or NULL past the last. */
const cli_preset *cli_preset_at(size_t i);

/* --help's list of the presets, each with the flags it sets. */
void cli_print_presets(FILE *out);

/* "epoch 5", "epochs 4 and 5" or "epochs 1, 2, 3 and 4" (count >= 1): the
 * decays of a multistep schedule in words. */
void cli_print_epochs(FILE *out, const int32_t *epochs, int32_t count);

#endif
