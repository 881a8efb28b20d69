/* mislas-eval --json: every figure of an evaluation (accuracies, ECE and
 * MCE in percent; bins in fractions). */
#ifndef MISLAS_EXAMPLES_CLI_FIGURES_JSON_H
#define MISLAS_EXAMPLES_CLI_FIGURES_JSON_H

#include "evaluation.h"

#include <mislas/mislas.h>

#include <stdbool.h>

/* Writes them to path, atomically; false after printing why. bins are the
 * evaluation's calibration bins (mislas_calib_bins). */
bool cli_write_figures_json(const char *path, const char *checkpoint, const cli_evaluation *e,
        const mislas_calib_bin *bins, int32_t num_bins);

#endif
