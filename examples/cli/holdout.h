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
 * On failure prints why, frees *train, sets it to NULL and returns false. */
bool cli_hold_out(mislas_dataset **train, mislas_dataset **held_out, int32_t holdout);

#endif
