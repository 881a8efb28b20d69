/* What the four programs (mislas-stage1, mislas-stage2, mislas-calibrate,
 * mislas-eval) share: the command-line plumbing around their library
 * calls, one concern a file. Compiled into each program; not part of the
 * library, which the programs reach only through <mislas/mislas.h>.
 * (mislas-import-reference, a Python tool, uses none of it.)
 *
 *   messages.h         messages on stderr, exit statuses, cli_succeeded
 *   flags.h            strict flag parsing, --help, the choice tables
 *   datasets.h         the data sets the programs know, list-file sets (--dataset list),
 *                      the training and test sets opened
 *   presets.h          --preset: the paper's Table 5 and our recipes
 *   holdout.h          the validation split held out of the training set
 *   progress.h         the progress line; SIGINT and SIGTERM stop a call cleanly
 *   parallel.h         the ranks of an MPI job (mpirun -np N): who prints and writes, MPI's start
 *   training.h         around mislas_train_stage1 and mislas_train_stage2
 *   evaluation.h       around mislas_eval_run, and --eval
 *   output.h           output files written atomically; "-", devices and FIFOs in place
 *   paths.h            the files a run reads and writes, checked before it starts
 *   reliability_svg.h  mislas-eval --svg
 *   figures_json.h     mislas-eval --json
 */
#ifndef MISLAS_EXAMPLES_CLI_H
#define MISLAS_EXAMPLES_CLI_H

#include "datasets.h"
#include "evaluation.h"
#include "figures_json.h"
#include "flags.h"
#include "holdout.h"
#include "messages.h"
#include "output.h"
#include "parallel.h"
#include "paths.h"
#include "presets.h"
#include "progress.h"
#include "reliability_svg.h"
#include "training.h"

#endif
