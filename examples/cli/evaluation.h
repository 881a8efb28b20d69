/* What surrounds mislas_eval_run in the programs: the training counts that
 * split Many / Medium / Few, the calibration state, the block of figures
 * printed afterwards, and --eval of the training programs. */
#ifndef MISLAS_EXAMPLES_CLI_EVALUATION_H
#define MISLAS_EXAMPLES_CLI_EVALUATION_H

#include "datasets.h"

#include <mislas/mislas.h>

#include <stdbool.h>
#include <stdio.h>

/* The test split's figures and the training counts that split them. */
typedef struct cli_evaluation {
    const cli_dataset *dataset;
    int32_t num_classes;
    mislas_eval_report report;
    mislas_calib *calib;
    double *class_accuracy;     /* num_classes values, NaN for a class with no test image */
    int64_t *train_counts;      /* num_classes values */
    int32_t *list_labels;       /* a list set: the training list's label of each class; else NULL */
    int32_t medium_from, few_from;  /* > 0: Many / Medium / Few by class index (mislas_eval_options) */
    char counts_source[160];    /* where train_counts came from, for the reader */
    char splits[200];           /* how Many / Medium / Few were split, for the reader */
} cli_evaluation;

/* How Many / Medium / Few are decided: a list set's class-index ranges
 * (a preset's), else by training count: the model's recorded training
 * counts, unless it has none or `imb_factor` > 0 asks for the counts of
 * that long-tailed profile of the data set instead (a list set: its
 * training list's counts). */
typedef struct cli_eval_request {
    const cli_dataset *dataset;
    double imb_factor;          /* <= 0: the model's counts when it has them, else 0.01 */
    mislas_imbalance imb_type;
    int32_t bins;
    const mislas_dataset *train;    /* a list set: its training list (or a subset), for the class map
                                       and the counts when the model has none */
} cli_eval_request;

/* Before mislas_eval_run: checks the model's classes against the data
 * set's, and gives *e its arrays, the training counts and a calibration
 * state of request->bins bins (e->calib, e->class_accuracy and
 * e->report are mislas_eval_run's outputs). 0, or CLI_EXIT_FAILURE after
 * printing why. *e needs cli_evaluation_free either way. */
int cli_evaluation_prepare(mislas_model *model, const cli_eval_request *request, cli_evaluation *e);
/* The options mislas_eval_run takes from *e: the normalisation, the
 * training counts, the class-index splits; and the ranks' communicator
 * (parallel.h; NULL alone). */
void cli_evaluation_options(const cli_evaluation *e, mislas_eval_options *options);
/* After mislas_eval_run returned `status`: 0, or the exit code after
 * printing why (CLI_EXIT_FAILURE, or 128 + the signal's number when a
 * signal stopped it). */
int cli_evaluation_outcome(int status);
void cli_evaluation_free(cli_evaluation *e);

/* The block of figures every program prints after an evaluation. */
void cli_print_evaluation(FILE *out, const char *checkpoint, const cli_evaluation *e);
/* mislas-eval's --svg and --json, each written when not NULL: 0, or
 * CLI_EXIT_FAILURE after printing why. */
int cli_write_evaluation_files(const cli_evaluation *e, const char *checkpoint, const char *svg,
        const char *json);

/* --eval of the training programs: the test split (a list set's test
 * list, in the class map of `train`, the training set) evaluated with the
 * model's own training counts and the paper's 15 bins, the block on
 * stdout. 0 or an exit code, as cli_evaluation_outcome. Every rank of a job
 * calls it (cli_parallel_start first). */
int cli_evaluate_and_print(mislas_model *model, const cli_dataset *dataset, const cli_lists *lists,
        const char *data_dir, const mislas_dataset *train, bool quiet, const char *checkpoint);

#endif
