/* SGD for a mislas_model (docs/method.md, "Optimiser"; the learning-rate
 * schedules are in mislas/schedule.h).
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
#ifndef MISLAS_OPTIMIZER_H
#define MISLAS_OPTIMIZER_H

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

typedef struct mislas_optimizer_sgd_options {
    size_t struct_size;
    double lr;              /* default 0.1 */
    double momentum;        /* default 0.9 */
    double weight_decay;    /* default 2e-4 (CIFAR) */
    double lr_factor;       /* the classifier's factor under MISLAS_HEAD_MISLAS; default 1 */
} mislas_optimizer_sgd_options;
MISLAS_API void mislas_optimizer_sgd_options_init(mislas_optimizer_sgd_options *opts);

/* The model must outlive the optimiser. opts NULL = defaults. */
MISLAS_API int mislas_optimizer_new_sgd(mislas_optimizer **out, mislas_model *model,
        const mislas_optimizer_sgd_options *opts);
MISLAS_API void mislas_optimizer_free(mislas_optimizer *opt);

/* One update from the gradients of the model's last backward.
 * MISLAS_ERR_STATE when there are none, or when the model's head,
 * shifted-BN mode or freezing changed since the optimiser was created (its
 * groups would be out of date: create a new one); MISLAS_ERR_NUMERIC
 * (nothing updated) when a gradient is not finite. */
MISLAS_API int mislas_optimizer_step(mislas_optimizer *opt);

/* The base learning rate (set it each epoch from a schedule of
 * mislas/schedule.h); mislas_optimizer_lr(NULL) is NaN. */
MISLAS_API int mislas_optimizer_set_lr(mislas_optimizer *opt, double lr);
MISLAS_API double mislas_optimizer_lr(const mislas_optimizer *opt);
/* Steps taken so far. */
MISLAS_API uint64_t mislas_optimizer_steps(const mislas_optimizer *opt);
/* Parameter values in a group (0 if the group is absent) and the learning
 * rate it is updated with now (lr times its factor; 0 if absent, NaN for a
 * NULL optimiser or a group that does not exist). */
MISLAS_API size_t mislas_optimizer_group_size(const mislas_optimizer *opt, mislas_param_group group);
MISLAS_API double mislas_optimizer_group_lr(const mislas_optimizer *opt, mislas_param_group group);

#ifdef __cplusplus
}
#endif

#endif
