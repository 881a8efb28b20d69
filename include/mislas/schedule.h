/* The learning-rate schedules of the two stages (docs/method.md,
 * "Learning-rate schedules"): the rate for each epoch, set on the optimiser
 * with mislas_optimizer_set_lr. */
#ifndef MISLAS_SCHEDULE_H
#define MISLAS_SCHEDULE_H

#include <mislas/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mislas_schedule {
    MISLAS_SCHEDULE_MULTISTEP = 0,  /* linear warm-up, then x gamma at each milestone */
    MISLAS_SCHEDULE_COSINE = 1      /* per epoch (docs/method.md) */
} mislas_schedule;

/* Multistep with linear warm-up, for 0-based epoch `epoch` (e = epoch + 1):
 * base_lr * e / warmup_epochs while e <= warmup_epochs, then base_lr times
 * gamma for every milestone m with e > m (CIFAR: warm-up 5, milestones
 * 160 and 180, gamma 0.1). NaN for an epoch or warm-up below 0, a negative
 * num_milestones, or milestones NULL with num_milestones > 0. */
MISLAS_API double mislas_schedule_multistep(double base_lr, int32_t epoch, int32_t warmup_epochs,
        const int32_t *milestones, int32_t num_milestones, double gamma);
/* Per-epoch cosine: 0.5 * base_lr * (1 + cos(pi * epoch / total_epochs)),
 * epoch = 0 .. total_epochs - 1; NaN for an epoch below 0 or total_epochs < 1. */
MISLAS_API double mislas_schedule_cosine(double base_lr, int32_t epoch, int32_t total_epochs);

#ifdef __cplusplus
}
#endif

#endif
