/* Losses for long-tailed training: cross-entropy, label smoothing and
 * MiSLAS's label-aware smoothing (LAS), with the mixup criterion.
 *
 * All three are one loss with a per-class smoothing factor eps_c:
 *   L(z, y) = (1 - eps_y) * (-log p_y) + eps_y * mean_i(-log p_i),  p = softmax(z)
 * cross-entropy has eps_c = 0, label smoothing eps_c = epsilon, LAS takes
 * eps_c from the class counts (see mislas_las_options). The batch loss is the
 * mean over the batch's n samples.
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

/* Mean loss over the batch of n rows of K logits; grad_logits (n x K, may be
 * NULL) receives d(mean loss)/d(logits). grad_logits may be logits itself
 * (the gradient then replaces the logits); it must not overlap them otherwise.
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
