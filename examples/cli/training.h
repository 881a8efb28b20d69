/* What surrounds mislas_train_stage1 and mislas_train_stage2 in the
 * training programs: the checkpoint announced, the progress line and clock
 * around the call, and its outcome in one line. */
#ifndef MISLAS_EXAMPLES_CLI_TRAINING_H
#define MISLAS_EXAMPLES_CLI_TRAINING_H

#include "datasets.h"
#include "progress.h"

#include <mislas/mislas.h>

#include <stdbool.h>

/* Before a training call: says on stderr (unless quiet) whether the run
 * continues `checkpoint` (--resume) or replaces it. False, after printing
 * why, when an existing checkpoint to resume cannot be read. */
bool cli_announce_checkpoint(const char *checkpoint, bool resume, bool quiet);

/* Unless quiet, one line on stderr on the long-tailed training set: its
 * images and its largest and smallest classes (a list set's line comes as
 * its list is read: nothing here). */
void cli_describe_training_set(const mislas_dataset *train, const cli_dataset *dataset, double imb_factor,
        mislas_imbalance imb_type, bool quiet);

/* A training call's progress line and clock: cli_training_start, then the
 * call with progress = cli_progress_callback and progress_data =
 * &run.progress, then cli_training_finish with what it returned. */
typedef struct cli_training {
    cli_progress progress;
    double start;
    int stage;                  /* 1 or 2, for the summary */
    const char *checkpoint;
    int32_t epochs;
} cli_training;

void cli_training_start(cli_training *run, int stage, const char *checkpoint, int32_t epochs, bool quiet);
/* Ends the progress line. 0 after the one-line summary on stdout, or the
 * exit code after printing why: CLI_EXIT_FAILURE, or 128 + the signal's
 * number when a signal stopped the run (the checkpoint then holds the last
 * finished epoch, which --resume continues). */
int cli_training_finish(cli_training *run, int status);

#endif
