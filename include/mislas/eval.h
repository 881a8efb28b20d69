/* Evaluation of a trained model on a test set: top-1, Many / Medium / Few
 * accuracy and the calibration figures (docs/training.md). */
#ifndef MISLAS_EVAL_H
#define MISLAS_EVAL_H

#include <mislas/calib.h>
#include <mislas/comm.h>
#include <mislas/common.h>
#include <mislas/dataset.h>
#include <mislas/model.h>
#include <mislas/progress.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mislas_eval_options {
    size_t struct_size;
    int32_t batch_size;         /* default 256 */
    const float *mean, *std;    /* as in training */
    const int64_t *train_counts;    /* K training counts that split Many (> 100), Medium
                                       (20..100), Few (< 20); NULL: the model's */
    mislas_progress_fn progress;
    void *progress_data;
    int32_t medium_from, few_from;  /* nonzero: the splits by class index instead, Many
                                       [0, medium_from), Medium [medium_from, few_from), Few
                                       [few_from, K), as the large sets' papers count them on
                                       classes numbered by training count (docs/data.md) */
    mislas_comm *comm;          /* NULL: this process alone; else every rank predicts its share of
                                   each batch and gets the whole report */
} mislas_eval_options;
MISLAS_API void mislas_eval_options_init(mislas_eval_options *opts);

typedef struct mislas_eval_report {
    size_t struct_size;
    uint64_t count;             /* test images */
    double top1;                /* fraction of all test images */
    double many, medium, few;   /* mean per-class accuracy of each split; NaN when the split
                                   has no class (or no training counts are known) */
    int32_t many_classes, medium_classes, few_classes;
    double ece, mce, nll, brier;    /* from the calibration state, as mislas_calib_summarize */
} mislas_eval_report;
MISLAS_API void mislas_eval_report_init(mislas_eval_report *report);

/* Runs `model` (inference: BN's running statistics) over all of `test`.
 * calib (may be NULL: a 15-bin one is used inside) receives every logit, so
 * its bins give the reliability diagram; it is not reset first.
 * class_accuracy (K values, may be NULL) receives each class's accuracy,
 * NaN for a class with no test image. */
MISLAS_API int mislas_eval_run(mislas_model *model, const mislas_dataset *test,
        const mislas_eval_options *opts, mislas_calib *calib, double *class_accuracy,
        mislas_eval_report *report);

/* Every image's logits: `model` run as mislas_eval_run runs it (inference,
 * in batches of opts->batch_size, normalised by opts->mean and std; the
 * split options are not used) over all of `data`, written to logits
 * (size x K floats, the data set's order): the validation logits a fit of
 * mislas_calib_fit_temperature or _vector_scaling takes. With opts->comm
 * every rank predicts its share of each batch and every rank receives all
 * the logits, the same bits as one process. */
MISLAS_API int mislas_eval_logits(mislas_model *model, const mislas_dataset *data,
        const mislas_eval_options *opts, float *logits);

#ifdef __cplusplus
}
#endif

#endif
