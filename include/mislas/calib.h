/* Calibration: streaming metrics (add batches, then read), metrics that
 * need every sample, and post-hoc temperature and vector scaling.
 *
 * Confidence is the largest softmax probability, the prediction its arg-max
 * (the first one on ties). Confidences are binned into num_bins equal-width
 * bins exactly as the MiSLAS reference does: bin b holds confidences in
 * (b/B, (b+1)/B], the last edge being exactly 1.0; a confidence of exactly 0
 * is in no bin. ECE = sum_b |acc_b - conf_b| n_b / sum_b n_b and
 * MCE = max_b |acc_b - conf_b| over the non-empty bins.
 *
 * The object keeps O(num_bins) sums, whatever the number of samples, and
 * accumulates each sample in the order given, so adding the same samples in
 * any batch split gives bit-identical results. One object may be read from
 * several threads at once but written (add, merge, reset) by one thread at a
 * time; to spread evaluation over threads, give each its own object and
 * merge them (mislas_calib_merge). An empty batch (n = 0, the arrays may then
 * be NULL) adds nothing and succeeds. */
#ifndef MISLAS_CALIB_H
#define MISLAS_CALIB_H

#include <mislas/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mislas_calib mislas_calib;

/* num_classes >= 1 (>= 2 for logits to be meaningful), num_bins >= 1 (15 in the paper). */
MISLAS_API int mislas_calib_new(mislas_calib **out, int32_t num_classes, int32_t num_bins);
/* n rows of num_classes logits. Confidences are computed as a float32 softmax
 * would give them. NaN or infinite logits: MISLAS_ERR_NUMERIC. */
MISLAS_API int mislas_calib_add_logits(mislas_calib *c, const float *logits, const int32_t *targets, size_t n);
/* n rows of num_classes probabilities, each in [0, 1]. For the NLL, p_y is
 * clamped below at FLT_MIN (so NLL <= 87.34 per sample). */
MISLAS_API int mislas_calib_add_probs(mislas_calib *c, const float *probs, const int32_t *targets, size_t n);
/* Precomputed confidences in [0, 1] with their predictions; NLL and Brier
 * cannot be computed from these and become NaN in the summary. */
MISLAS_API int mislas_calib_add_confidences(mislas_calib *c, const double *confidences,
        const int32_t *predictions, const int32_t *targets, size_t n);

typedef struct mislas_calib_summary {
    size_t struct_size;
    uint64_t count;           /* samples added */
    double accuracy;          /* fraction in [0,1] */
    double avg_confidence;
    double ece;               /* fraction, not percent */
    double mce;
    double nll;               /* NaN when only confidences were added */
    double brier;             /* NaN when only confidences were added */
    /* since 0.4 (filled only when struct_size covers it): */
    double rms;               /* RMS calibration error: sqrt(sum_b n_b (acc_b - conf_b)^2 / sum_b n_b) */
} mislas_calib_summary;
MISLAS_API void mislas_calib_summary_init(mislas_calib_summary *s);
/* With no samples every figure is NaN. nll is the mean of -log p_y, brier the
 * mean over samples of sum_k (p_k - [k == y])^2; both cover the samples added
 * as logits or probabilities and are NaN if any sample came as a confidence. */
MISLAS_API int mislas_calib_summarize(const mislas_calib *c, mislas_calib_summary *out);

typedef struct mislas_calib_bin {
    double lower, upper;      /* the bin holds confidences in (lower, upper] */
    uint64_t count;
    double accuracy, confidence;   /* means over the bin, 0 when empty */
} mislas_calib_bin;
/* Fills bins[0..num_bins-1]; num_bins must equal the object's bin count. */
MISLAS_API int mislas_calib_bins(const mislas_calib *c, mislas_calib_bin *bins, int32_t num_bins);
/* The bin count the object was made with, or -1 for NULL. */
MISLAS_API int32_t mislas_calib_num_bins(const mislas_calib *c);
/* The class count K the object was made with, or -1 for NULL. */
MISLAS_API int32_t mislas_calib_num_classes(const mislas_calib *c);
/* Adds everything src has seen to dst, as if src's samples had been added to
 * dst after its own: counts are exact, the sums equal up to the rounding of
 * one double addition each. Both must have the same num_classes and num_bins.
 * This is how per-thread or per-process objects are combined. */
MISLAS_API int mislas_calib_merge(mislas_calib *dst, const mislas_calib *src);
/* Forget every sample added (NULL is a no-op). */
MISLAS_API void mislas_calib_reset(mislas_calib *c);
MISLAS_API void mislas_calib_free(mislas_calib *c);

/* --------------------------------------------- metrics that need all samples
 * The object above keeps O(num_bins) sums and so cannot rank samples or fit
 * anything; these functions take the whole set of n rows of K logits
 * (confidences and predictions as mislas_calib_add_logits computes them).
 * Each keeps O(n) memory (O(K x num_bins) for classwise ECE) and is
 * single-threaded and deterministic. */

/* Equal-mass (adaptive) ECE: samples sorted by confidence are cut into
 * num_bins bins of n / num_bins samples (the cut before bin b at sorted
 * position floor(b n / num_bins)); a cut that would split samples of equal
 * confidence moves up to the end of their run, so tied samples always share
 * a bin and the result does not depend on the samples' order; bins left
 * empty are dropped. ECE = sum_b |correct_b - confidence_b| / n. */
MISLAS_API int mislas_calib_adaptive_ece(double *ece, const float *logits, const int32_t *targets,
        size_t n, int32_t num_classes, int32_t num_bins);

/* Classwise ECE (Kull et al.): for every class k, its probability p_k over
 * all samples in num_bins equal-width bins [b/B, (b+1)/B) (the last one
 * closed), ECE_k = sum_b n_b / n |freq_b(y == k) - mean_b p_k|; the result
 * is the mean of ECE_k over the K classes. */
MISLAS_API int mislas_calib_classwise_ece(double *ece, const float *logits, const int32_t *targets,
        size_t n, int32_t num_classes, int32_t num_bins);

/* ------------------------------------------------------- post-hoc scaling
 * Fitted on logits of a validation split (never the test split) by
 * minimising the mean NLL; apply the result to a model with
 * mislas_model_scale_logits, or to logits yourself. */
typedef struct mislas_calib_fit_options {
    size_t struct_size;
    int32_t max_iterations;   /* default 500 */
    double tolerance;         /* stop when every partial derivative of the objective is
                                 below this (vector scaling: each scale's taken per unit
                                 of its logit's RMS size); default 1e-7 */
    double l2;                /* vector scaling: adds l2 / 2 sum_j ((scale_j - 1/T)^2 + bias_j^2),
                                 pulling it toward temperature scaling's 1/T; default 0 */
} mislas_calib_fit_options;
MISLAS_API void mislas_calib_fit_options_init(mislas_calib_fit_options *opts);

/* Temperature scaling (Guo et al.): the T > 0 minimising the mean NLL of
 * softmax(z / T), by safeguarded Newton steps on 1 / T (the NLL is convex
 * in it). Logits that no positive T fits (no better than chance at T -> inf,
 * or separable so that the NLL falls all the way to T -> 0) are
 * MISLAS_ERR_INVALID_ARGUMENT with the reason; MISLAS_ERR_STATE if the
 * iteration limit comes first (nothing is written then). opts NULL =
 * defaults. */
MISLAS_API int mislas_calib_fit_temperature(double *temperature, const float *logits,
        const int32_t *targets, size_t n, int32_t num_classes, const mislas_calib_fit_options *opts);

/* Vector scaling (Guo et al.): z_j -> scale_j z_j + bias_j (K scales and K
 * biases) minimising the mean NLL (plus the l2 term of the options), by
 * L-BFGS from temperature scaling's solution. The problem is convex, but
 * with few samples per class it over-fits and may have no finite minimum
 * (samples that the logits separate): the NLL then keeps falling as the
 * parameters grow, and the result is where the gradient first drops below
 * the tolerance. opts->l2 > 0 gives a finite minimum close to temperature
 * scaling. MISLAS_ERR_STATE if the iteration limit is reached first,
 * MISLAS_ERR_NUMERIC if the parameters overflow float (nothing is written
 * in either case). */
MISLAS_API int mislas_calib_fit_vector_scaling(float *scale, float *bias, const float *logits,
        const int32_t *targets, size_t n, int32_t num_classes, const mislas_calib_fit_options *opts);

#ifdef __cplusplus
}
#endif

#endif
