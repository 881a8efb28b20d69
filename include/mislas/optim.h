/* SGD for a mislas_model, and the learning-rate schedules
 * (docs/method.md, "Optimiser" and "Learning-rate schedules").
 *
 * The update is PyTorch's (torch.optim.SGD, dampening 0, no Nesterov), per
 * parameter w with gradient g:
 *
 *     g' = g + weight_decay * w;   v = momentum * v + g';   w -= lr_g * v
 *
 * where lr_g = lr * the parameter group's factor. The optimiser takes the
 * model's learnable parameters at creation, in groups:
 *
 *     MISLAS_GROUP_BACKBONE    conv weights, BN gamma and beta      factor 1
 *     MISLAS_GROUP_CLASSIFIER  W and b                              factor 1,
 *                              or lr_factor under MISLAS_HEAD_MISLAS
 *     MISLAS_GROUP_SCALES      s (LWS and MiSLAS heads)             factor 1
 *
 * A frozen part (a frozen backbone, BN affine under SHIFTED_BN, W and b
 * under LWS) is in no group: no update, no weight decay, no momentum. So set
 * the model's head, mode and freezing first, then create the optimiser (as
 * the reference builds a new one for stage 2). */
#ifndef MISLAS_OPTIM_H
#define MISLAS_OPTIM_H

#include <mislas/common.h>
#include <mislas/model.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mislas_optimizer mislas_optimizer;

typedef enum mislas_param_group {
    MISLAS_GROUP_BACKBONE = 0,
    MISLAS_GROUP_CLASSIFIER = 1,
    MISLAS_GROUP_SCALES = 2
} mislas_param_group;

typedef struct mislas_sgd_options {
    size_t struct_size;
    double lr;              /* default 0.1 */
    double momentum;        /* default 0.9 */
    double weight_decay;    /* default 2e-4 (CIFAR) */
    double lr_factor;       /* the classifier's factor under MISLAS_HEAD_MISLAS; default 1 */
} mislas_sgd_options;
MISLAS_API void mislas_sgd_options_init(mislas_sgd_options *opts);

/* The model must outlive the optimiser. opts NULL = defaults. */
MISLAS_API int mislas_optimizer_new_sgd(mislas_optimizer **out, mislas_model *model,
        const mislas_sgd_options *opts);
MISLAS_API void mislas_optimizer_free(mislas_optimizer *opt);

/* One update from the gradients of the model's last backward.
 * MISLAS_ERR_STATE when there are none, or when the model's head,
 * shifted-BN mode or freezing changed since the optimiser was created (its
 * groups would be out of date: create a new one); MISLAS_ERR_NUMERIC
 * (nothing updated) when a gradient is not finite. */
MISLAS_API int mislas_optimizer_step(mislas_optimizer *opt);

/* The base learning rate (set it each epoch from a schedule below). */
MISLAS_API int mislas_optimizer_set_lr(mislas_optimizer *opt, double lr);
MISLAS_API double mislas_optimizer_lr(const mislas_optimizer *opt);
/* Steps taken so far. */
MISLAS_API uint64_t mislas_optimizer_steps(const mislas_optimizer *opt);
/* Parameter values in a group (0 if the group is absent) and the learning
 * rate it is updated with now (lr times its factor; 0 if absent). */
MISLAS_API size_t mislas_optimizer_group_size(const mislas_optimizer *opt, mislas_param_group group);
MISLAS_API double mislas_optimizer_group_lr(const mislas_optimizer *opt, mislas_param_group group);

/* Multistep with linear warm-up, for 0-based epoch `epoch` (e = epoch + 1):
 * base_lr * e / warmup_epochs while e <= warmup_epochs, then base_lr times
 * gamma for every milestone m with e > m (CIFAR: warm-up 5, milestones
 * 160 and 180, gamma 0.1). */
MISLAS_API double mislas_lr_multistep(double base_lr, int32_t epoch, int32_t warmup_epochs,
        const int32_t *milestones, int32_t num_milestones, double gamma);
/* Per-epoch cosine: 0.5 * base_lr * (1 + cos(pi * epoch / total_epochs)),
 * epoch = 0 .. total_epochs - 1. */
MISLAS_API double mislas_lr_cosine(double base_lr, int32_t epoch, int32_t total_epochs);

#ifdef __cplusplus
}
#endif

#endif
