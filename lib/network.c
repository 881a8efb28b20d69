/* Forward and backward through a model's network (model_internal.h): the
 * layers of layers.h called in order over buffers the model owns. */
#include "model_internal.h"

#include "internal.h"
#include "threads.h"

#include <math.h>
#include <string.h>

/* Buffers start on 64-byte boundaries. */
static size_t round_up(size_t floats)
{
    return (floats + 15) & ~(size_t)15;
}

static size_t unit_out_floats(const mislasi_conv_bn *u)
{
    return u->conv.c_out * u->out_h * u->out_w;
}

/* Visits every conv + BN unit in forward order. */
typedef void (*unit_visit)(mislas_model *m, mislasi_conv_bn *u, void *ctx);
static void for_each_unit(mislas_model *m, unit_visit fn, void *ctx)
{
    fn(m, &m->stem, ctx);
    for (int32_t b = 0; b < m->num_blocks; b++) {
        mislasi_block *blk = &m->blocks[b];
        for (int i = 0; i < blk->units; i++)
            fn(m, &blk->unit[i], ctx);
        if (blk->shortcut == MISLASI_SHORTCUT_PROJECTION)
            fn(m, &blk->proj, ctx);
    }
}

typedef struct sizing {
    size_t n, threads;
    size_t total;           /* floats of activations */
    size_t widest;          /* largest per-image tensor */
    size_t scratch;         /* conv scratch floats */
    float *base;            /* when assigning */
} sizing;

static float *take(sizing *z, size_t floats)
{
    float *p = z->base == NULL ? NULL : z->base + z->total;
    z->total += round_up(floats);
    return p;
}

static void size_unit(mislas_model *m, mislasi_conv_bn *u, void *ctx)
{
    (void)m;
    sizing *z = ctx;
    size_t per_image = unit_out_floats(u);
    u->raw = take(z, z->n * per_image);
    u->out = take(z, z->n * per_image);
    u->mean = take(z, u->conv.c_out);
    u->invstd = take(z, u->conv.c_out);
    u->scale = take(z, u->conv.c_out);
    u->shift = take(z, u->conv.c_out);
    u->moments = (double *)take(z, 2 * 2 * z->n * u->conv.c_out);   /* doubles, 64-byte aligned */
    if (per_image > z->widest)
        z->widest = per_image;
    mislasi_conv_shape s = u->conv;
    s.n = z->n;
    size_t need = mislasi_conv_scratch_floats(&s, z->threads);
    if (need > z->scratch)
        z->scratch = need;
}

/* Lays the activations out for n images (z->base NULL: only measures). */
static void lay_out(mislas_model *m, sizing *z)
{
    size_t k = (size_t)m->opts.num_classes;
    size_t in_per_image = (size_t)m->opts.in_channels * (size_t)m->opts.height * (size_t)m->opts.width;
    z->total = 0;
    z->widest = in_per_image;
    m->input = take(z, z->n * in_per_image);
    for_each_unit(m, size_unit, z);
    if (m->imagenet) {
        size_t pooled = m->pool.c * mislasi_pool_out_h(&m->pool) * mislasi_pool_out_w(&m->pool);
        m->pool_out = take(z, z->n * pooled);
        m->pool_arg = (int32_t *)take(z, z->n * pooled);   /* int32 and float have one size */
    }
    for (int32_t b = 0; b < m->num_blocks; b++) {
        mislasi_block *blk = &m->blocks[b];
        if (blk->shortcut == MISLASI_SHORTCUT_OPTION_A)
            blk->shortcut_out = take(z, z->n * blk->out_c * blk->out_h * blk->out_w);
    }
    m->features = take(z, z->n * m->feat_c);
    m->linear = take(z, z->n * k);
    if (k > z->widest)
        z->widest = k;
    if (m->feat_c > z->widest)
        z->widest = m->feat_c;
    m->work_floats = z->n * z->widest;
    for (int i = 0; i < 4; i++)
        m->work[i] = take(z, m->work_floats);
}

void mislasi_model_drop_activations(mislas_model *m)
{
    mislasi_free(m->activations);
    mislasi_free(m->scratch);
    m->activations = NULL;
    m->scratch = NULL;
    m->capacity = 0;
    m->scratch_floats = 0;
    m->scratch_threads = 0;
    m->batch = 0;
}

/* Activations for n images and conv scratch for the current thread count. */
static int reserve(mislas_model *m, size_t n, size_t threads)
{
    if (n <= m->capacity && threads <= m->scratch_threads)
        return MISLAS_OK;
    size_t cap = n > m->capacity ? n : m->capacity;
    sizing z = {.n = cap, .threads = threads};
    lay_out(m, &z);
    if (z.total > SIZE_MAX / sizeof(float) / 2)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "mislas_model_forward: a batch of %zu images is too large", n);
    float *act = mislasi_alloc(z.total * sizeof(float));
    float *scratch = mislasi_alloc(z.scratch * sizeof(float));
    if (act == NULL || scratch == NULL) {
        mislasi_free(act);
        mislasi_free(scratch);
        /* the old layout's pointers were overwritten by the measuring pass */
        mislasi_model_drop_activations(m);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY,
                "mislas_model_forward: out of memory for the activations of %zu images (%zu MB)",
                n, (z.total + z.scratch) * sizeof(float) >> 20);
    }
    mislasi_free(m->activations);
    mislasi_free(m->scratch);
    m->activations = act;
    m->scratch = scratch;
    z.base = act;
    lay_out(m, &z);
    m->capacity = cap;
    m->scratch_floats = z.scratch;
    m->scratch_threads = threads;
    return MISLAS_OK;
}

typedef struct unit_pass {
    const mislasi_conv_bn *u;
    mislasi_bn_shape bn;
} unit_pass;

/* Run on each image as soon as the convolution has produced it. */
static void bn_moments_of_image(void *ctx, size_t image, float *raw)
{
    const unit_pass *p = ctx;
    mislasi_bn_image_moments(&p->bn, raw, p->u->moments + image * 2 * p->bn.c);
}

static void bn_eval_image(void *ctx, size_t image, float *raw)
{
    const unit_pass *p = ctx;
    mislasi_bn_affine_image(&p->bn, raw, p->u->scale, p->u->shift, p->u->out + image * p->bn.c * p->bn.hw,
            p->u->relu);
}

static void unit_forward(mislas_model *m, mislasi_conv_bn *u, const float *x, size_t n, size_t threads)
{
    mislasi_conv_shape s = u->conv;
    s.n = n;
    unit_pass pass = {.u = u, .bn = {.n = n, .c = u->conv.c_out, .hw = u->out_h * u->out_w}};
    const float *gamma = mislasi_tensor_values(m, u->gamma), *beta = mislasi_tensor_values(m, u->beta);
    float *rmean = mislasi_tensor_values(m, u->running_mean), *rvar = mislasi_tensor_values(m, u->running_var);
    const float *w = mislasi_tensor_values(m, u->weight);
    if (m->mode == MISLAS_MODE_EVAL) {
        mislasi_bn_eval_affine(pass.bn.c, gamma, beta, rmean, rvar, u->scale, u->shift);
        mislasi_conv_forward_then(&s, x, w, u->raw, m->scratch, threads, bn_eval_image, &pass);
        memcpy(u->mean, rmean, pass.bn.c * sizeof(float));
        mislasi_bn_eval_invstd(pass.bn.c, rvar, u->invstd);
    } else {
        mislasi_conv_forward_then(&s, x, w, u->raw, m->scratch, threads, bn_moments_of_image, &pass);
        mislasi_bn_forward_train_moments(&pass.bn, u->raw, u->moments, gamma, beta, rmean, rvar, u->mean,
                u->invstd, u->out, u->relu);
    }
}

static const float *block_forward(mislas_model *m, mislasi_block *blk, const float *x, size_t n,
        size_t threads)
{
    const float *in = x;
    for (int i = 0; i < blk->units; i++) {
        unit_forward(m, &blk->unit[i], in, n, threads);
        in = blk->unit[i].out;
    }
    const float *r = x;
    if (blk->shortcut == MISLASI_SHORTCUT_OPTION_A) {
        mislasi_shortcut_shape s = blk->option_a;
        s.n = n;
        mislasi_shortcut_a_forward(&s, x, blk->shortcut_out);
        r = blk->shortcut_out;
    } else if (blk->shortcut == MISLASI_SHORTCUT_PROJECTION) {
        unit_forward(m, &blk->proj, x, n, threads);
        r = blk->proj.out;
    }
    float *out = blk->unit[blk->units - 1].out;
    mislasi_add_relu_forward(n * blk->out_c * blk->out_h * blk->out_w, out, r);
    return out;
}

int mislas_model_forward(mislas_model *m, const float *images, size_t n, float *logits)
{
    MISLASI_CHECK_NOT_NULL("mislas_model_forward", m);
    MISLASI_CHECK_NOT_NULL("mislas_model_forward", images);
    MISLASI_CHECK_NOT_NULL("mislas_model_forward", logits);
    if (n == 0)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "mislas_model_forward: n is 0");
    if (n < 2 && m->mode != MISLAS_MODE_EVAL)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "mislas_model_forward: batch statistics need n >= 2 images (n = 1; use MISLAS_MODE_EVAL)");
    size_t threads = mislasi_conv_threads();
    m->batch = 0;
    m->have_grads = false;
    int status = reserve(m, n, threads);
    if (status != MISLAS_OK)
        return status;
    size_t k = (size_t)m->opts.num_classes;
    size_t in_count = n * (size_t)m->opts.in_channels * (size_t)m->opts.height * (size_t)m->opts.width;
    memcpy(m->input, images, in_count * sizeof(float));

    unit_forward(m, &m->stem, m->input, n, threads);
    const float *x = m->stem.out;
    if (m->imagenet) {
        mislasi_pool_shape p = m->pool;
        p.n = n;
        mislasi_maxpool_forward(&p, x, m->pool_out, m->pool_arg);
        x = m->pool_out;
    }
    for (int32_t b = 0; b < m->num_blocks; b++)
        x = block_forward(m, &m->blocks[b], x, n, threads);
    mislasi_avgpool_forward(n, m->feat_c, m->feat_h * m->feat_w, x, m->features);
    mislasi_linear_forward(n, m->feat_c, k, m->features, mislasi_tensor_values(m, m->fc_weight),
            mislasi_tensor_values(m, m->fc_bias), m->linear);
    const float *s = mislasi_tensor_values(m, m->scales);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < k; j++) {
            float z = m->linear[i * k + j] * s[j];
            if (!isfinite(z))
                return mislasi_fail(MISLAS_ERR_NUMERIC,
                        "mislas_model_forward: logit [%zu][%zu] is not finite (non-finite input, or weights diverged)",
                        i, j);
            logits[i * k + j] = z;
        }
    m->batch = n;
    return MISLAS_OK;
}

/* The gradient of u's output is in dy (ReLU mask not yet applied when
 * u->relu); writes u's parameter gradients and, unless dx is NULL, the
 * gradient of its input x. dy is overwritten. */
/* Backward through u: dy is the gradient of u's output, taken where
 * mask > 0 (mask = the output of the ReLU that follows, or NULL); dz
 * receives the gradient of the convolution's output (it may be dy), dx
 * that of u's input x (NULL: not wanted); u's parameter gradients are
 * written. */
static void unit_backward(mislas_model *m, mislasi_conv_bn *u, const float *x, const float *mask,
        const float *dy, float *dz, float *dx, size_t n, size_t threads)
{
    mislasi_bn_shape b = {.n = n, .c = u->conv.c_out, .hw = u->out_h * u->out_w};
    mislasi_bn_backward(&b, u->raw, mask, dy, mislasi_tensor_values(m, u->gamma),
            u->mean, u->invstd, m->mode != MISLAS_MODE_EVAL, dz,
            mislasi_tensor_grads(m, u->gamma), mislasi_tensor_grads(m, u->beta));
    mislasi_conv_shape s = u->conv;
    s.n = n;
    mislasi_conv_backward(&s, x, mislasi_tensor_values(m, u->weight), dz,
            mislasi_tensor_grads(m, u->weight), dx, m->scratch, threads);
}

/* dout (the gradient of the block's output; overwritten by the shortcut
 * paths) -> dx. The block's final ReLU is applied as a mask on the way in,
 * never as a pass of its own. */
static void block_backward(mislas_model *m, mislasi_block *blk, const float *x, float *dout, float *dx,
        size_t n, size_t threads)
{
    float *other[2] = {m->work[0], m->work[1]};
    mislasi_conv_bn *last = &blk->unit[blk->units - 1];
    const float *block_out = last->out;
    float *dz = other[0];   /* the gradient of the current unit's convolution output */
    for (int i = blk->units - 1; i >= 0; i--) {
        mislasi_conv_bn *u = &blk->unit[i];
        const float *in = i == 0 ? x : blk->unit[i - 1].out;
        float *target = i == 0 ? dx : dz == other[0] ? other[1] : other[0];
        if (i == blk->units - 1)
            unit_backward(m, u, in, block_out, dout, dz, target, n, threads);
        else
            unit_backward(m, u, in, u->out, dz, dz, target, n, threads);
        dz = target;
    }
    size_t in_count = n * blk->in_c * blk->in_h * blk->in_w;
    size_t out_count = n * blk->out_c * blk->out_h * blk->out_w;
    if (blk->shortcut == MISLASI_SHORTCUT_IDENTITY) {
        mislasi_add_masked(in_count, dx, dout, block_out);
    } else if (blk->shortcut == MISLASI_SHORTCUT_OPTION_A) {
        mislasi_relu_backward(out_count, block_out, dout);
        mislasi_shortcut_shape s = blk->option_a;
        s.n = n;
        mislasi_shortcut_a_backward_add(&s, dout, dx);
    } else {
        unit_backward(m, &blk->proj, x, block_out, dout, dout, m->work[0], n, threads);
        mislasi_add(in_count, dx, m->work[0]);
    }
}

int mislas_model_backward(mislas_model *m, const float *grad_logits)
{
    MISLASI_CHECK_NOT_NULL("mislas_model_backward", m);
    MISLASI_CHECK_NOT_NULL("mislas_model_backward", grad_logits);
    if (m->batch == 0)
        return mislasi_fail(MISLAS_ERR_STATE,
                "mislas_model_backward: no forward pass to go back through (call mislas_model_forward first; a change of mode, head or weights discards it)");
    size_t n = m->batch, k = (size_t)m->opts.num_classes, d = m->feat_c;
    for (size_t i = 0; i < n * k; i++)
        if (!isfinite(grad_logits[i]))
            return mislasi_fail(MISLAS_ERR_NUMERIC, "mislas_model_backward: grad_logits[%zu] is not finite", i);
    size_t threads = mislasi_conv_threads();
    if (threads > m->scratch_threads)
        threads = m->scratch_threads;   /* the scratch was sized at forward time */

    const float *s = mislasi_tensor_values(m, m->scales);
    float *ds = mislasi_tensor_grads(m, m->scales);
    float *dlin = m->work[0];
    for (size_t j = 0; j < k; j++) {
        double sum = 0.0;
        for (size_t i = 0; i < n; i++)
            sum += (double)grad_logits[i * k + j] * m->linear[i * k + j];
        ds[j] = (float)sum;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < k; j++)
            dlin[i * k + j] = grad_logits[i * k + j] * s[j];
    float *dfeat = m->frozen ? NULL : m->work[1];
    mislasi_linear_backward(n, d, k, m->features, mislasi_tensor_values(m, m->fc_weight), dlin,
            mislasi_tensor_grads(m, m->fc_weight), mislasi_tensor_grads(m, m->fc_bias), dfeat);
    if (m->frozen) {
        m->have_grads = true;
        return MISLAS_OK;
    }
    float *a = m->work[2], *b = m->work[3];
    mislasi_avgpool_backward(n, d, m->feat_h * m->feat_w, dfeat, a);
    for (int32_t i = m->num_blocks - 1; i >= 0; i--) {
        mislasi_block *blk = &m->blocks[i];
        const float *x = i > 0 ? m->blocks[i - 1].unit[m->blocks[i - 1].units - 1].out
                       : m->imagenet ? m->pool_out : m->stem.out;
        block_backward(m, blk, x, a, b, n, threads);
        float *swap = a;
        a = b;
        b = swap;
    }
    if (m->imagenet) {
        mislasi_pool_shape p = m->pool;
        p.n = n;
        mislasi_maxpool_backward(&p, a, m->pool_arg, b);
        float *swap = a;
        a = b;
        b = swap;
    }
    unit_backward(m, &m->stem, m->input, m->stem.out, a, a, NULL, n, threads);
    m->have_grads = true;
    return MISLAS_OK;
}

int mislas_model_features(const mislas_model *m, float *features, size_t n)
{
    MISLASI_CHECK_NOT_NULL("mislas_model_features", m);
    MISLASI_CHECK_NOT_NULL("mislas_model_features", features);
    if (m->batch == 0)
        return mislasi_fail(MISLAS_ERR_STATE, "mislas_model_features: no forward pass yet");
    if (n != m->batch)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "mislas_model_features: n = %zu but the last forward had %zu images", n, m->batch);
    memcpy(features, m->features, n * m->feat_c * sizeof(float));
    return MISLAS_OK;
}
