/* The validation split: images held out of the training set (--holdout). */
#ifndef MISLAS_EXAMPLES_CLI_HOLDOUT_H
#define MISLAS_EXAMPLES_CLI_HOLDOUT_H

#include <mislas/mislas.h>

#include <stdbool.h>

/* The training split's long-tailed subset as docs/method.md builds it, less
 * `holdout` images of every class, a seeded random draw kept for validation
 * (choosing hyper-parameters, fitting a temperature: never the test split).
 * *train comes in as the subset mislas_dataset_long_tail made and leaves as
 * the rest of it (unchanged when holdout is 0); *held_out (may be NULL)
 * receives the held-out images, or NULL when holdout is 0.
 * Which images are held out depends on subset_seed too, which the class
 * counts a model records cannot show: every program must be given the same.
 * A subset with a class of no image (an --imb-factor too small for the
 * data) is a bad command line: says so, naming the class, and exits with
 * CLI_EXIT_USAGE. A holdout that leaves a class no training image fails.
 * On failure prints why, frees *train, sets it to NULL and returns false. */
bool cli_hold_out(mislas_dataset **train, mislas_dataset **held_out, int32_t holdout);

/* A checkpoint's recorded class counts differ from `rebuilt`, the ones the
 * flags (imb_factor, imb_type, holdout; or a list set's train_list, NULL
 * for the others) leave: says so on stderr, naming --holdout, with the
 * --holdout the recorded counts imply when they differ from rebuilt by the
 * same number in every class (a subset of another --imb-factor or
 * --imb-type never does). */
void cli_report_count_mismatch(const char *checkpoint, const int64_t *recorded, const int64_t *rebuilt, int32_t k,
        const char *train_list, double imb_factor, mislas_imbalance imb_type, int32_t holdout);

#endif
