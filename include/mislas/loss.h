/* Losses for long-tailed training: cross-entropy, label smoothing and
 * MiSLAS's label-aware smoothing (LAS), focal loss, LDAM, logit-adjusted
 * cross-entropy (Balanced Softmax), any of them re-weighted per class
 * (class-balanced by effective number, deferred re-weighting), with the
 * mixup criterion.
 *
 * They are all one loss. With u = s (z + o) - s Delta_y e_y (the logits z
 * scaled by s, offset per class by o and, for the target y only, lowered by
 * a margin Delta_y) and p = softmax(u), a sample costs
 *   L(z, y) = w_y [ (1 - eps_y) (1 - p_y)^gamma (-log p_y) + eps_y mean_i(-log p_i) ]
 * Each constructor sets some of these: cross-entropy has none (s = 1,
 * o = Delta = eps = gamma = 0, w = 1); label smoothing eps_c = epsilon, LAS
 * eps_c from the class counts (mislas_las_options); focal gamma; LDAM Delta
 * and s; logit adjustment o. Class weights w (mislas_loss_set_class_weights)
 * apply to any of them. The batch loss is the mean over the batch's n
 * samples, or their w_y-weighted mean (MISLAS_REDUCE_WEIGHTED_MEAN, what
 * PyTorch's cross_entropy(weight=...) computes).
 *
 * A loss object keeps scratch memory: use one object from one thread at a time
 * (create one per thread to compute in parallel). */
#ifndef MISLAS_LOSS_H
#define MISLAS_LOSS_H

#include <mislas/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mislas_loss mislas_loss;

typedef enum mislas_las_shape {
    MISLAS_LAS_CONCAVE = 0, MISLAS_LAS_LINEAR = 1, MISLAS_LAS_CONVEX = 2, MISLAS_LAS_POWER = 3
} mislas_las_shape;

/* With t = (N_c - N_min) / (N_max - N_min) for class c:
 *   concave: tail + (head - tail) * sin(pi t / 2)
 *   linear:  tail + (head - tail) * t
 *   convex:  head + (head - tail) * sin(3 pi / 2 + pi t / 2)
 *   power:   tail + (head - tail) * t^power
 * When every class has the same count, t = 1 for all classes, so every shape
 * gives smooth_head. Smoothing factors must lie in [0, 1]. */
typedef struct mislas_las_options {
    size_t struct_size;
    float smooth_head;        /* default 0.4 */
    float smooth_tail;        /* default 0.1 */
    mislas_las_shape shape;   /* default MISLAS_LAS_CONCAVE */
    float power;              /* used by MISLAS_LAS_POWER; > 0, default 1 */
} mislas_las_options;
MISLAS_API void mislas_las_options_init(mislas_las_options *opts);

MISLAS_API int mislas_loss_new_cross_entropy(mislas_loss **out, int32_t num_classes);
/* epsilon in [0, 1] */
MISLAS_API int mislas_loss_new_label_smoothing(mislas_loss **out, int32_t num_classes, float epsilon);
/* class_counts: num_classes non-negative counts, at least one positive;
 * opts NULL = defaults. */
MISLAS_API int mislas_loss_new_label_aware_smoothing(mislas_loss **out, const int64_t *class_counts,
        int32_t num_classes, const mislas_las_options *opts);
/* Copies the per-class smoothing factors eps_c into smoothing[num_classes]. */
MISLAS_API int mislas_loss_class_smoothing(const mislas_loss *loss, float *smoothing);
/* The class count K the loss was made for, or -1 for NULL. */
MISLAS_API int32_t mislas_loss_num_classes(const mislas_loss *loss);

/* Focal loss (Lin et al.): w_y (1 - p_y)^gamma (-log p_y), gamma >= 0
 * (0 is cross-entropy). */
MISLAS_API int mislas_loss_new_focal(mislas_loss **out, int32_t num_classes, float gamma);

/* LDAM (Cao et al.): Delta_c proportional to N_c^(-1/4), the largest (the
 * rarest class's) equal to max_margin, and the logits scaled by `scale`. */
typedef struct mislas_ldam_options {
    size_t struct_size;
    float max_margin;         /* default 0.5 */
    float scale;              /* s, default 30 */
} mislas_ldam_options;
MISLAS_API void mislas_ldam_options_init(mislas_ldam_options *opts);
/* class_counts: num_classes positive counts; opts NULL = defaults. */
MISLAS_API int mislas_loss_new_ldam(mislas_loss **out, const int64_t *class_counts,
        int32_t num_classes, const mislas_ldam_options *opts);

/* Logit-adjusted cross-entropy (Menon et al.): o_c = tau log(pi_c), pi_c =
 * N_c / sum N, so the softmax sees z_c + tau log pi_c. tau = 1 is Balanced
 * Softmax (Ren et al.). class_counts: num_classes positive counts; tau >= 0. */
MISLAS_API int mislas_loss_new_logit_adjusted(mislas_loss **out, const int64_t *class_counts,
        int32_t num_classes, float tau);

/* How a weighted batch is reduced (see the top of this file). */
typedef enum mislas_reduction {
    MISLAS_REDUCE_MEAN = 0,           /* sum_i w_yi L_i / n */
    MISLAS_REDUCE_WEIGHTED_MEAN = 1   /* sum_i w_yi L_i / sum_i w_yi; under mixup each
                                         criterion term over its own targets' weights */
} mislas_reduction;
/* Per-class weights w (num_classes finite values >= 0, not all 0) for any
 * loss; NULL restores w = 1 (and the reduction then does not matter). The
 * weights may change between batches, e.g. for DRW. */
MISLAS_API int mislas_loss_set_class_weights(mislas_loss *loss, const float *weights,
        mislas_reduction reduction);
/* Class-balanced weights by effective number (Cui et al.):
 * w_c = (1 - beta) / (1 - beta^N_c), scaled so that sum_c w_c = num_classes.
 * beta in [0, 1) (0 gives w = 1); counts positive. */
MISLAS_API int mislas_loss_class_balanced_weights(float *weights, const int64_t *class_counts,
        int32_t num_classes, double beta);
/* Deferred re-weighting (Cao et al.'s DRW): w = 1 before epoch start_epoch
 * (0-based epochs), the class-balanced weights with beta from then on.
 * LDAM-DRW on CIFAR: beta 0.9999, start_epoch 160 of 200. */
MISLAS_API int mislas_loss_drw_weights(float *weights, const int64_t *class_counts, int32_t num_classes,
        double beta, int32_t epoch, int32_t start_epoch);

/* Mean loss over the batch of n rows of K logits; grad_logits (n x K, may be
 * NULL) receives d(mean loss)/d(logits). grad_logits may be logits itself
 * (the gradient then replaces the logits); it must not overlap them otherwise.
 * Losses with a scale, offsets, margins, focusing or class weights keep
 * mislas_num_threads() x K floats of scratch; for them, finite logits whose
 * scaled and offset values s (z + o) would overflow float are
 * MISLAS_ERR_NUMERIC too.
 * loss_out may be NULL when only the gradient is wanted. Stable for logits of any finite
 * magnitude (up to FLT_MAX): *loss_out is +inf only when the exact mean loss
 * itself exceeds FLT_MAX. A target outside [0, K) is MISLAS_ERR_INVALID_ARGUMENT, a NaN or
 * infinite logit MISLAS_ERR_NUMERIC; on any failure neither *loss_out nor
 * grad_logits is touched. */
MISLAS_API int mislas_loss_compute(mislas_loss *loss, const float *logits, const int32_t *targets,
        size_t n, float *loss_out, float *grad_logits);
/* mixup criterion: lambda * L(z, targets_a) + (1 - lambda) * L(z, targets_b),
 * lambda in [0, 1]; gradients as for mislas_loss_compute. */
MISLAS_API int mislas_loss_compute_mixup(mislas_loss *loss, const float *logits,
        const int32_t *targets_a, const int32_t *targets_b, float lambda,
        size_t n, float *loss_out, float *grad_logits);
MISLAS_API void mislas_loss_free(mislas_loss *loss);

#ifdef __cplusplus
}
#endif

#endif
