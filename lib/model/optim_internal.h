/* The optimiser's insides, for optimizer.c and checkpoint.c (which saves
 * and loads the momentum buffers). Not installed. */
#ifndef MISLAS_OPTIM_INTERNAL_H
#define MISLAS_OPTIM_INTERNAL_H

#include <mislas/optimizer.h>

#include "model_internal.h"

enum { MISLASI_GROUPS = 3 };

typedef struct mislasi_group {
    int32_t *tensors;           /* indices into the model's tensors */
    int32_t num_tensors;
    size_t size;                /* values in the group */
    float *velocity;            /* momentum buffers, the tensors one after another */
} mislasi_group;

struct mislas_optimizer {
    mislas_model *model;
    mislas_optimizer_sgd_options opts;
    double lr;
    uint64_t steps;
    mislasi_group groups[MISLASI_GROUPS];
};

/* Whether the groups are still those the model's head, mode and freezing
 * give (they are fixed when the optimiser is created). */
bool mislasi_optimizer_groups_current(const mislas_optimizer *o);

/* The factor group g's learning rate is multiplied by. */
double mislasi_group_factor(const mislas_optimizer *o, int g);

#endif
