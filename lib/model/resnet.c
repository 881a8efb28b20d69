/* The ResNets of docs/method.md ("Models") as tensors and blocks (model_internal.h): the
 * CIFAR family with option-A shortcuts and the ImageNet family with
 * projection shortcuts, named as the MiSLAS reference's PyTorch modules
 * name them. */
#include "model_internal.h"

#include "util/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Tags that keep the initialisation streams of different purposes apart. */
enum { INIT_TAG = 0x494e4954u /* "INIT" */ };

typedef struct builder {
    mislas_model *m;
    int32_t capacity;
} builder;

static size_t add_tensor(builder *b, mislasi_role role, uint32_t ndim, const uint64_t *dims,
        const char *fmt, ...)
{
    mislas_model *m = b->m;
    mislasi_tensor *t = &m->tensors[m->num_tensors];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->role = role;
    t->ndim = ndim;
    t->count = 1;
    for (uint32_t i = 0; i < ndim; i++) {
        t->dims[i] = dims[i];
        t->count *= (size_t)dims[i];
    }
    t->offset = m->num_values;
    m->num_values += t->count;
    return (size_t)m->num_tensors++;
}

/* A conv + BN unit named prefix "convN" / "bnN" (or the ImageNet
 * projection's "downsample.0" / "downsample.1"). */
static void add_conv_bn(builder *b, mislasi_conv_bn *u, const char *conv_name, const char *bn_name,
        size_t c_in, size_t h, size_t w, size_t c_out, size_t k, size_t stride, size_t pad, bool relu)
{
    u->conv = (mislasi_conv_shape){.n = 0, .c_in = c_in, .h = h, .w = w, .c_out = c_out,
                                   .k = k, .stride = stride, .pad = pad};
    u->out_h = mislasi_conv_out_h(&u->conv);
    u->out_w = mislasi_conv_out_w(&u->conv);
    u->relu = relu;
    uint64_t wdims[4] = {c_out, c_in, k, k}, cdims[1] = {c_out};
    u->weight = add_tensor(b, MISLASI_ROLE_CONV, 4, wdims, "%s.weight", conv_name);
    u->gamma = add_tensor(b, MISLASI_ROLE_BN_AFFINE, 1, cdims, "%s.weight", bn_name);
    u->beta = add_tensor(b, MISLASI_ROLE_BN_AFFINE, 1, cdims, "%s.bias", bn_name);
    u->running_mean = add_tensor(b, MISLASI_ROLE_BN_STAT, 1, cdims, "%s.running_mean", bn_name);
    u->running_var = add_tensor(b, MISLASI_ROLE_BN_STAT, 1, cdims, "%s.running_var", bn_name);
}

static void add_block(builder *b, mislasi_block *blk, int stage, int index, size_t c_in,
        size_t h, size_t w, size_t planes, size_t stride, bool bottleneck, bool imagenet)
{
    char conv[3][64], bn[3][64];
    for (int i = 0; i < 3; i++) {
        snprintf(conv[i], sizeof conv[i], "layer%d.%d.conv%d", stage, index, i + 1);
        snprintf(bn[i], sizeof bn[i], "layer%d.%d.bn%d", stage, index, i + 1);
    }
    blk->in_c = c_in;
    blk->in_h = h;
    blk->in_w = w;
    if (bottleneck) {
        blk->units = 3;
        add_conv_bn(b, &blk->unit[0], conv[0], bn[0], c_in, h, w, planes, 1, 1, 0, true);
        add_conv_bn(b, &blk->unit[1], conv[1], bn[1], planes, h, w, planes, 3, stride, 1, true);
        mislasi_conv_bn *mid = &blk->unit[1];
        add_conv_bn(b, &blk->unit[2], conv[2], bn[2], planes, mid->out_h, mid->out_w, planes * 4,
                1, 1, 0, false);
    } else {
        blk->units = 2;
        add_conv_bn(b, &blk->unit[0], conv[0], bn[0], c_in, h, w, planes, 3, stride, 1, true);
        mislasi_conv_bn *first = &blk->unit[0];
        add_conv_bn(b, &blk->unit[1], conv[1], bn[1], planes, first->out_h, first->out_w, planes,
                3, 1, 1, false);
    }
    mislasi_conv_bn *last = &blk->unit[blk->units - 1];
    blk->out_c = last->conv.c_out;
    blk->out_h = last->out_h;
    blk->out_w = last->out_w;
    if (stride == 1 && c_in == blk->out_c) {
        blk->shortcut = MISLASI_SHORTCUT_IDENTITY;
    } else if (imagenet) {
        char pconv[64], pbn[64];
        snprintf(pconv, sizeof pconv, "layer%d.%d.downsample.0", stage, index);
        snprintf(pbn, sizeof pbn, "layer%d.%d.downsample.1", stage, index);
        blk->shortcut = MISLASI_SHORTCUT_PROJECTION;
        add_conv_bn(b, &blk->proj, pconv, pbn, c_in, h, w, blk->out_c, 1, stride, 0, false);
    } else {
        blk->shortcut = MISLASI_SHORTCUT_OPTION_A;
        blk->option_a = (mislasi_shortcut_shape){.n = 0, .c_in = c_in, .h = h, .w = w,
                                                 .c_out = blk->out_c};
    }
}

typedef struct arch_plan {
    bool imagenet, bottleneck;
    int stages;
    int blocks[4];
} arch_plan;

static arch_plan plan_of(mislas_arch arch)
{
    switch (arch) {
    case MISLAS_RESNET20: return (arch_plan){false, false, 3, {3, 3, 3, 0}};
    case MISLAS_RESNET32: return (arch_plan){false, false, 3, {5, 5, 5, 0}};
    case MISLAS_RESNET44: return (arch_plan){false, false, 3, {7, 7, 7, 0}};
    case MISLAS_RESNET56: return (arch_plan){false, false, 3, {9, 9, 9, 0}};
    case MISLAS_RESNET110: return (arch_plan){false, false, 3, {18, 18, 18, 0}};
    case MISLAS_RESNET10: return (arch_plan){true, false, 4, {1, 1, 1, 1}};
    case MISLAS_RESNET50: return (arch_plan){true, true, 4, {3, 4, 6, 3}};
    case MISLAS_RESNET101: return (arch_plan){true, true, 4, {3, 4, 23, 3}};
    default: return (arch_plan){true, true, 4, {3, 8, 36, 3}};
    }
}

static void kaiming_normal(float *w, size_t count, size_t fan_in, uint64_t seed, uint64_t index)
{
    mislasi_rng r;
    mislasi_rng_init(&r, seed, INIT_TAG, index);
    double std = sqrt(2.0 / (double)fan_in);
    for (size_t i = 0; i < count; i++)
        w[i] = (float)(std * mislasi_rng_normal(&r));
}

void mislasi_init_classifier(mislas_model *m, uint64_t seed)
{
    const mislasi_tensor *w = &m->tensors[m->fc_weight];
    size_t d = (size_t)w->dims[1];
    kaiming_normal(mislasi_tensor_values(m, m->fc_weight), w->count, d, seed, m->fc_weight);
    mislasi_rng r;
    mislasi_rng_init(&r, seed, INIT_TAG, m->fc_bias);
    double bound = 1.0 / sqrt((double)d);
    float *bias = mislasi_tensor_values(m, m->fc_bias);
    for (size_t i = 0; i < m->tensors[m->fc_bias].count; i++)
        bias[i] = (float)(bound * (2.0 * mislasi_rng_uniform(&r) - 1.0));
}

int mislasi_model_build(mislas_model *m)
{
    arch_plan plan = plan_of(m->opts.arch);
    m->imagenet = plan.imagenet;
    int32_t blocks = 0;
    for (int s = 0; s < plan.stages; s++)
        blocks += plan.blocks[s];
    builder b = {.m = m, .capacity = 5 + 20 * blocks + 3};
    m->tensors = mislasi_calloc((size_t)b.capacity, sizeof *m->tensors);
    m->blocks = mislasi_calloc((size_t)blocks, sizeof *m->blocks);
    if (m->tensors == NULL || m->blocks == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "mislas_model_new: out of memory for the network");
    m->num_blocks = blocks;

    size_t c = (size_t)m->opts.in_channels, h = (size_t)m->opts.height, w = (size_t)m->opts.width;
    if (plan.imagenet) {
        add_conv_bn(&b, &m->stem, "conv1", "bn1", c, h, w, 64, 7, 2, 3, true);
        m->pool = (mislasi_pool_shape){.n = 0, .c = 64, .h = m->stem.out_h, .w = m->stem.out_w,
                                       .k = 3, .stride = 2, .pad = 1};
        c = 64;
        h = mislasi_pool_out_h(&m->pool);
        w = mislasi_pool_out_w(&m->pool);
    } else {
        add_conv_bn(&b, &m->stem, "conv1", "bn1", c, h, w, 16, 3, 1, 1, true);
        c = 16;
    }
    int32_t at = 0;
    for (int s = 0; s < plan.stages; s++) {
        size_t planes = plan.imagenet ? (size_t)64 << s : (size_t)16 << s;
        for (int i = 0; i < plan.blocks[s]; i++) {
            mislasi_block *blk = &m->blocks[at++];
            size_t stride = i == 0 && s > 0 ? 2 : 1;
            add_block(&b, blk, s + 1, i, c, h, w, planes, stride, plan.bottleneck, plan.imagenet);
            c = blk->out_c;
            h = blk->out_h;
            w = blk->out_w;
        }
    }
    m->feat_c = c;
    m->feat_h = h;
    m->feat_w = w;
    uint64_t wdims[2] = {(uint64_t)m->opts.num_classes, c}, kdims[1] = {(uint64_t)m->opts.num_classes};
    m->fc_weight = add_tensor(&b, MISLASI_ROLE_FC, 2, wdims, "fc.weight");
    m->fc_bias = add_tensor(&b, MISLASI_ROLE_FC, 1, kdims, "fc.bias");
    m->scales = add_tensor(&b, MISLASI_ROLE_SCALES, 1, kdims, "learned_norm");

    if (m->num_values > m->value_limit)
        return mislasi_fail(MISLAS_ERR_FORMAT,
                "the model described has %zu values, more than the file holds (%zu)", m->num_values, m->value_limit);
    m->values = mislasi_calloc(m->num_values, sizeof *m->values);
    m->grads = mislasi_calloc(m->num_values, sizeof *m->grads);
    if (m->values == NULL || m->grads == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY,
                "mislas_model_new: out of memory for %zu parameters", m->num_values);

    for (int32_t t = 0; t < m->num_tensors; t++) {
        const mislasi_tensor *tensor = &m->tensors[t];
        float *v = mislasi_tensor_values(m, (size_t)t);
        size_t len = strlen(tensor->name);
        if (tensor->role == MISLASI_ROLE_CONV) {
            size_t fan_in = (size_t)(tensor->dims[1] * tensor->dims[2] * tensor->dims[3]);
            kaiming_normal(v, tensor->count, fan_in, m->opts.seed, (uint64_t)t);
        } else if (tensor->role == MISLASI_ROLE_SCALES
                || (tensor->role == MISLASI_ROLE_BN_AFFINE && strcmp(tensor->name + len - 7, ".weight") == 0)
                || (tensor->role == MISLASI_ROLE_BN_STAT && strcmp(tensor->name + len - 4, "_var") == 0)) {
            for (size_t i = 0; i < tensor->count; i++)
                v[i] = 1.0f;
        }
    }
    mislasi_init_classifier(m, m->opts.seed);
    return MISLAS_OK;
}
