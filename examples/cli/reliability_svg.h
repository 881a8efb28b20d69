/* mislas-eval --svg: the reliability diagram of an evaluation, as the
 * paper's Figures 1 and 4 draw it. */
#ifndef MISLAS_EXAMPLES_CLI_RELIABILITY_SVG_H
#define MISLAS_EXAMPLES_CLI_RELIABILITY_SVG_H

#include "evaluation.h"

#include <mislas/mislas.h>

#include <stdbool.h>

/* Writes it to path, atomically; false after printing why. bins are the
 * evaluation's calibration bins (mislas_calib_bins). */
bool cli_write_reliability_svg(const char *path, const char *checkpoint, const cli_evaluation *e,
        const mislas_calib_bin *bins, int32_t num_bins);

#endif
