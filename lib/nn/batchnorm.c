/* Batch normalisation (nn.h) on NHWC activations: an image is hw rows of c
 * channels, so every loop runs over the channels innermost, where they are
 * contiguous and each vector lane is one channel. No sum ever crosses
 * lanes, so the vector width changes no bit, and the per-channel sums over
 * pixels run in a fixed order: float over blocks of BLOCK rows (short float
 * partial sums keep a few ulps of their largest term, at full vector
 * width), the blocks added in double. Channels are taken CHUNK at a time,
 * so that the per-channel state lives on the stack whatever c is. Work is
 * spread over the threads by rows or by groups of images fixed by the
 * shape, and what spans groups is added up on the caller in group order,
 * so results do not depend on the thread count. */
#include "nn.h"

#include "util/util.h"

#include <math.h>

#define BN_EPS 1e-5
#define BN_MOMENTUM 0.1

/* ROW_GRAIN: floats per piece of a pass over rows, enough to pay for
 * handing the piece to a thread. */
enum { CHUNK = 256, BLOCK = 16, ROW_GRAIN = 1 << 15 };

/* The block sums are added in double at the end of every BLOCK rows, tested
 * row by row in one loop over the rows: in the nested form (a loop over
 * blocks around a loop over their rows) GCC unrolls and jams the rows in
 * pairs, which read memory up to three times slower where measured. */
static bool ends_block(size_t p, size_t hw)
{
    return (p + 1) % BLOCK == 0 || p + 1 == hw;
}

static size_t chunk_width(size_t c, size_t c0)
{
    return c - c0 < CHUNK ? c - c0 : CHUNK;
}

static size_t row_grain(size_t cn)
{
    return ROW_GRAIN / cn + 1;
}

void mislasi_bn_image_moments(const mislasi_bn_shape *s, const float *x_image, double *moments)
{
    for (size_t c0 = 0; c0 < s->c; c0 += CHUNK) {
        size_t cn = chunk_width(s->c, c0);
        const float *x = x_image + c0;
        /* Sums of the deviations from each channel's first value: when the
         * mean is large next to the spread, they are small and nearly
         * exact, and so are the sum (hw shift + their sum) and the
         * squares' cancellation. */
        float shift[CHUNK], bd[CHUNK], bq[CHUNK];
        double dev[CHUNK], squares[CHUNK];
        for (size_t k = 0; k < cn; k++) {
            shift[k] = x[k];
            bd[k] = bq[k] = 0.0f;
            dev[k] = squares[k] = 0.0;
        }
        for (size_t p = 0; p < s->hw; p++) {
            const float *row = x + p * s->c;
            for (size_t k = 0; k < cn; k++) {
                float d = row[k] - shift[k];
                bd[k] += d;
                bq[k] += d * d;
            }
            if (ends_block(p, s->hw))
                for (size_t k = 0; k < cn; k++) {
                    dev[k] += bd[k];
                    squares[k] += bq[k];
                    bd[k] = bq[k] = 0.0f;
                }
        }
        for (size_t k = 0; k < cn; k++) {
            double m2 = squares[k] - dev[k] * dev[k] / (double)s->hw;
            moments[2 * (c0 + k)] = (double)s->hw * shift[k] + dev[k];
            moments[2 * (c0 + k) + 1] = m2 > 0.0 ? m2 : 0.0;
        }
    }
}

/* y = scale x + shift (+ residual), then ReLU, on channels [c0, c0 + cn)
 * of rows of c floats. The ReLU keeps a NaN (as PyTorch's does), so that
 * diverged weights reach the logits and are reported; the convolution's
 * epilogue (conv_kernels.c) rounds the same way, so every affine path gives
 * the same bits. */
typedef struct affine_job {
    const float *x, *residual, *scale, *shift;
    float *y;
    size_t c, c0, cn;
    bool relu;
} affine_job;

static void affine_rows(void *ctx, size_t begin, size_t end)
{
    const affine_job *j = ctx;
    const float *a = j->scale, *b = j->shift;
    for (size_t p = begin; p < end; p++) {
        size_t at = p * j->c + j->c0;
        const float *x = j->x + at;
        float *y = j->y + at;
        if (j->residual != NULL) {
            const float *r = j->residual + at;
            for (size_t k = 0; k < j->cn; k++) {
                float v = a[k] * x[k] + b[k] + r[k];
                y[k] = j->relu && v <= 0.0f ? 0.0f : v;
            }
        } else if (j->relu) {
            for (size_t k = 0; k < j->cn; k++) {
                float v = a[k] * x[k] + b[k];
                y[k] = v <= 0.0f ? 0.0f : v;
            }
        } else {
            for (size_t k = 0; k < j->cn; k++)
                y[k] = a[k] * x[k] + b[k];
        }
    }
}

void mislasi_bn_forward_train_moments(const mislasi_bn_shape *s, const float *x, const double *moments,
        size_t images, const float *gamma, const float *beta, float *running_mean, float *running_var,
        float *mean, float *invstd, float *y, bool relu, const float *residual)
{
    double hw = (double)s->hw;
    for (size_t c0 = 0; c0 < s->c; c0 += CHUNK) {
        size_t cn = chunk_width(s->c, c0);
        /* the images' moments combined in image order (Chan et al.) */
        double count = 0.0, mu[CHUNK], m2[CHUNK];
        for (size_t k = 0; k < cn; k++)
            mu[k] = m2[k] = 0.0;
        for (size_t i = 0; i < images; i++) {
            const double *mo = moments + 2 * (i * s->c + c0);
            double total = count + hw;
            for (size_t k = 0; k < cn; k++) {
                double mean_i = mo[2 * k] / hw, delta = mean_i - mu[k];
                mu[k] += delta * hw / total;
                m2[k] += mo[2 * k + 1] + delta * delta * count * hw / total;
            }
            count = total;
        }
        float scale[CHUNK], shift[CHUNK];
        for (size_t k = 0; k < cn; k++) {
            size_t c = c0 + k;
            double var = m2[k] / count;
            double is = 1.0 / sqrt(var + BN_EPS);
            mean[c] = (float)mu[k];
            invstd[c] = (float)is;
            double unbiased = count > 1.0 ? m2[k] / (count - 1.0) : var;
            running_mean[c] = (float)((1.0 - BN_MOMENTUM) * running_mean[c] + BN_MOMENTUM * mu[k]);
            running_var[c] = (float)((1.0 - BN_MOMENTUM) * running_var[c] + BN_MOMENTUM * unbiased);
            scale[k] = (float)(gamma[c] * is);
            shift[k] = (float)(beta[c] - mu[k] * gamma[c] * is);
        }
        affine_job j = {.x = x, .residual = residual, .scale = scale, .shift = shift, .y = y,
                        .c = s->c, .c0 = c0, .cn = cn, .relu = relu};
        mislasi_parallel_for(s->n * s->hw, row_grain(cn), affine_rows, &j);
    }
}

void mislasi_bn_eval_affine(size_t c, const float *gamma, const float *beta, const float *running_mean,
        const float *running_var, float *scale, float *shift)
{
    for (size_t i = 0; i < c; i++) {
        double invstd = 1.0 / sqrt((double)running_var[i] + BN_EPS);
        scale[i] = (float)(gamma[i] * invstd);
        shift[i] = (float)(beta[i] - running_mean[i] * gamma[i] * invstd);
    }
}

void mislasi_bn_affine_image(const mislasi_bn_shape *s, const float *x_image, const float *scale,
        const float *shift, float *y_image, bool relu, const float *residual)
{
    affine_job j = {.x = x_image, .residual = residual, .scale = scale, .shift = shift, .y = y_image,
                    .c = s->c, .c0 = 0, .cn = s->c, .relu = relu};
    affine_rows(&j, 0, s->hw);
}

void mislasi_bn_eval_invstd(size_t c, const float *running_var, float *invstd)
{
    for (size_t i = 0; i < c; i++)
        invstd[i] = (float)(1.0 / sqrt((double)running_var[i] + BN_EPS));
}

/* The backward's sums run over groups of `group` consecutive images, each
 * group into a slot of its own, so that the threads can share the groups
 * out and the slots still be added in group order. The caller picks the
 * group size (the network: its share quantum, model_internal.h) so that a
 * batch cut between processes at group boundaries gives every process
 * whole slots, which are then added in the same order (lib/train's data
 * parallelism). dx is written image by image by whoever reads it next (the
 * convolution's backward), while it is in cache. */

/* The backward's sums on channels [c0, c0 + cn). g = dy, masked by y > 0
 * when y is given (a fused ReLU). */
typedef struct bwd_job {
    const mislasi_bn_shape *s;
    const float *x, *y, *dy, *mean;
    size_t c0, cn, group;
    double *slots;                      /* per group: c sums of g, c of g (x - mean) */
} bwd_job;

/* Group g's sums, over its images' rows in order, into its slot. */
static void group_grad_sums(const bwd_job *j, size_t g)
{
    const mislasi_bn_shape *s = j->s;
    size_t cn = j->cn, first = g * j->group, last = first + j->group < s->n ? first + j->group : s->n;
    size_t begin = first * s->hw, end = last * s->hw;
    const float *m = j->mean + j->c0;
    double *sum_g = j->slots + 2 * s->c * g + j->c0, *sum_gx = sum_g + s->c;
    float bg[CHUNK], bq[CHUNK];
    for (size_t k = 0; k < cn; k++) {
        bg[k] = bq[k] = 0.0f;
        sum_g[k] = sum_gx[k] = 0.0;
    }
    for (size_t p = begin; p < end; p++) {
        size_t at = p * s->c + j->c0;
        const float *x = j->x + at, *dy = j->dy + at;
        if (j->y != NULL) {
            const float *y = j->y + at;
            for (size_t k = 0; k < cn; k++) {
                float d = dy[k];
                float g = y[k] > 0.0f ? d : 0.0f;
                bg[k] += g;
                bq[k] += g * (x[k] - m[k]);
            }
        } else {
            for (size_t k = 0; k < cn; k++) {
                bg[k] += dy[k];
                bq[k] += dy[k] * (x[k] - m[k]);
            }
        }
        if (ends_block(p - begin, end - begin))
            for (size_t k = 0; k < cn; k++) {
                sum_g[k] += bg[k];
                sum_gx[k] += bq[k];
                bg[k] = bq[k] = 0.0f;
            }
    }
}

static void grad_sums_groups(void *ctx, size_t begin, size_t end)
{
    const bwd_job *j = ctx;
    for (size_t g = begin; g < end; g++)
        group_grad_sums(j, g);
}

size_t mislasi_bn_groups(size_t n, size_t group)
{
    return (n + group - 1) / group;
}

void mislasi_bn_backward_slots(const mislasi_bn_shape *s, size_t group, const float *x, const float *y,
        const float *dy, const float *mean, double *slots)
{
    size_t groups = mislasi_bn_groups(s->n, group);
    for (size_t c0 = 0; c0 < s->c; c0 += CHUNK) {
        bwd_job j = {.s = s, .x = x, .y = y, .dy = dy, .mean = mean, .c0 = c0, .cn = chunk_width(s->c, c0),
                     .group = group, .slots = slots};
        mislasi_parallel_for(groups, 1, grad_sums_groups, &j);
    }
}

void mislasi_bn_backward_finish(size_t c, double count, size_t groups, const double *slots, const float *gamma,
        const float *invstd, bool batch_stats, float *coef, float *dgamma, float *dbeta)
{
    float *a = coef, *bx = coef + c, *b0 = coef + 2 * c;
    for (size_t ch = 0; ch < c; ch++) {
        double sum_g = 0.0, sum_gx = 0.0;
        for (size_t g = 0; g < groups; g++) {
            sum_g += slots[2 * c * g + ch];
            sum_gx += slots[2 * c * g + c + ch];
        }
        double is = invstd[ch];
        if (dbeta != NULL)
            dbeta[ch] = (float)sum_g;
        if (dgamma != NULL)
            dgamma[ch] = (float)(sum_gx * is);
        /* dx = gamma invstd (g - mean(g) - xhat mean(g xhat)) with batch
         * statistics, gamma invstd g with fixed ones; as a g + bx (x -
         * mean) + b0. */
        a[ch] = (float)(gamma[ch] * is);
        bx[ch] = b0[ch] = 0.0f;
        if (batch_stats) {
            bx[ch] = (float)(-gamma[ch] * is * sum_gx * is * is / count);
            b0[ch] = (float)(-gamma[ch] * is * sum_g / count);
        }
    }
}

/* dx = a g + bx (x - mean) + b0, a pixel at a time: each pixel's dy is
 * read before its dx is written, so dx may be dy. */
void mislasi_bn_backward_image(const mislasi_bn_shape *s, const float *x_image, const float *y_image,
        const float *dy_image, const float *mean, const float *coef, float *dx_image)
{
    size_t c = s->c;
    const float *a = coef, *bx = coef + c, *b0 = coef + 2 * c;
    for (size_t p = 0; p < s->hw; p++) {
        size_t at = p * c;
        const float *x = x_image + at, *dy = dy_image + at;
        float *dx = dx_image + at;
        if (y_image != NULL) {
            const float *y = y_image + at;
            for (size_t k = 0; k < c; k++) {
                float d = dy[k];
                float g = y[k] > 0.0f ? d : 0.0f;
                dx[k] = a[k] * g + bx[k] * (x[k] - mean[k]) + b0[k];
            }
        } else {
            for (size_t k = 0; k < c; k++)
                dx[k] = a[k] * dy[k] + bx[k] * (x[k] - mean[k]) + b0[k];
        }
    }
}
