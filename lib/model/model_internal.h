/* The model's insides, for lib/model's own files only: resnet.c (building
 * the networks), network.c (forward and backward), model.c (the public
 * handle), optimizer.c (the parameter groups) and checkpoint.c (the tensors
 * saved and loaded). The layers above see the model through the public API
 * and model.h. Not installed. */
#ifndef MISLAS_MODEL_INTERNAL_H
#define MISLAS_MODEL_INTERNAL_H

#include <mislas/dataset.h>
#include <mislas/model.h>

#include "model.h"
#include "nn/nn.h"

#include <stdbool.h>

/* What a tensor is, which decides who may change it. */
typedef enum mislasi_role {
    MISLASI_ROLE_CONV,          /* backbone conv weight */
    MISLASI_ROLE_BN_AFFINE,     /* backbone BN gamma or beta */
    MISLASI_ROLE_BN_STAT,       /* running mean or variance (not learned) */
    MISLASI_ROLE_FC,            /* classifier W or b */
    MISLASI_ROLE_SCALES         /* the K scales s */
} mislasi_role;

enum { MISLASI_NAME_MAX = 40, MISLASI_MAX_DIMS = 4 };

typedef struct mislasi_tensor {
    char name[MISLASI_NAME_MAX];
    mislasi_role role;
    size_t offset;              /* into model->values and model->grads */
    size_t count;
    uint32_t ndim;
    uint64_t dims[MISLASI_MAX_DIMS];
} mislasi_tensor;

/* A convolution followed by batch norm, with the activations of the last
 * forward (sized for model->capacity images). */
typedef struct mislasi_conv_bn {
    mislasi_conv_shape conv;    /* n set per call */
    size_t out_h, out_w;
    size_t weight, gamma, beta, running_mean, running_var;   /* tensor indices */
    float *raw;                 /* conv output */
    float *out;                 /* after BN (and ReLU when `relu`) */
    float *mean, *invstd;       /* the statistics BN normalised with */
    float *scale, *shift;       /* eval form: BN as one affine step */
    float *coef;                /* backward: BN's dx coefficients (3 c_out) */
    float *prepared;            /* the weights as the conv's products read them */
    bool relu;
} mislasi_conv_bn;

typedef enum mislasi_shortcut {
    MISLASI_SHORTCUT_IDENTITY,
    MISLASI_SHORTCUT_OPTION_A,
    MISLASI_SHORTCUT_PROJECTION
} mislasi_shortcut;

/* Basic block: a (3x3, stride) -> b (3x3); bottleneck: a (1x1) -> b (3x3,
 * stride) -> c (1x1, 4x wider). The last unit's `out` receives the block's
 * output: relu(bn(last) + shortcut). */
typedef struct mislasi_block {
    mislasi_conv_bn unit[3];
    int units;
    mislasi_shortcut shortcut;
    mislasi_conv_bn proj;
    mislasi_shortcut_shape option_a;
    float *shortcut_out;        /* option A's output */
    size_t in_c, in_h, in_w, out_c, out_h, out_w;
} mislasi_block;

struct mislas_model {
    mislas_model_options opts;
    bool imagenet;
    mislas_mode mode;
    mislas_head head;
    bool frozen;

    mislasi_tensor *tensors;
    int32_t num_tensors;
    float *values, *grads;      /* every tensor's values, and gradients alongside */
    size_t num_values;
    size_t value_limit;         /* refuse to build more values than this */

    mislasi_conv_bn stem;
    mislasi_pool_shape pool;    /* ImageNet stem's max pool */
    float *pool_out;
    int32_t *pool_arg;
    mislasi_block *blocks;
    int32_t num_blocks;
    size_t feat_c, feat_h, feat_w;  /* the last block's output */
    size_t fc_weight, fc_bias, scales;  /* tensor indices */

    /* activations: allocated for `capacity` images */
    size_t capacity;
    float *activations;         /* one allocation holding every buffer below and above */
    float *input, *features, *linear, *work[4];
    /* Images in the largest weight-gradient group, a power of two: the
     * convolutions' groups and batch norm's backward slots all tile its
     * multiples, where a batch may be cut between processes. */
    size_t quantum;
    double *moments;            /* BN training form: per image and channel, sum and squares */
    double *bn_slots;           /* batch norm's backward slots, any unit's */
    float *head_grad;           /* the classifier's output gradient, whole batch */
    size_t whole_capacity;      /* images of a whole (shared) batch the buffers above hold */
    mislasi_share share;        /* the last forward's batch */
    float *chain;               /* a shared batch's gradients passed between ranks (num_values) */
    size_t work_floats;
    float *scratch;             /* convolution scratch, for scratch_threads threads */
    size_t scratch_floats, scratch_threads;
    size_t slice_scratch_floats;    /* one thread's share in evaluation */

    size_t batch;               /* the last forward's n; 0 = none since the last change */
    bool prepared_current;      /* the units' prepared weights match the weights */
    bool backward_ready;        /* that forward kept what backward needs */
    bool have_grads;            /* a backward since the last optimiser step */

    int64_t *class_counts;
    int32_t num_class_counts;
};

static inline float *mislasi_tensor_values(const mislas_model *m, size_t t)
{
    return m->values + m->tensors[t].offset;
}

static inline float *mislasi_tensor_grads(const mislas_model *m, size_t t)
{
    return m->grads + m->tensors[t].offset;
}

/* Builds the tensors and the network (no activations yet) and initialises
 * the weights from opts->seed. */
int mislasi_model_build(mislas_model *m);
/* mislas_model_new for a checkpoint whose content holds at most
 * max_values floats: a model with more values than the file could hold is
 * MISLAS_ERR_FORMAT before its memory is taken (a tiny forged file cannot
 * make the loader allocate gigabytes). */
int mislasi_model_new_limited(mislas_model **out, const mislas_model_options *opts, size_t max_values);

/* Kaiming normal into W, uniform +-1/sqrt(D) into b, from seed. */
void mislasi_init_classifier(mislas_model *m, uint64_t seed);
/* Releases the activations (the next forward makes them again). */
void mislasi_model_drop_activations(mislas_model *m);
/* The tensor named `name`, or -1. */
int32_t mislasi_model_find_tensor(const mislas_model *m, const char *name);
/* The index of the first negative value when tensor t is a batch norm's
 * running variance (which cannot be negative: evaluation would take the
 * square root of it), else count. */
size_t mislasi_first_negative_variance(const mislas_model *m, int32_t t, const float *values, size_t count);
/* Whether a tensor learns under the model's head, mode and freezing. */
bool mislasi_tensor_learns(const mislas_model *m, const mislasi_tensor *t);

#endif
