/* Batch normalisation (layers.h). Work is split by channel; each channel's
 * sums run in a fixed order (16 float lanes across a plane, the planes
 * added in double), so results do not depend on the thread count and the
 * lanes vectorise. */
#include "nn.h"

#include "util/util.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define BN_EPS 1e-5
#define BN_MOMENTUM 0.1

/* Sums over a plane run in 16 float lanes (four 4-wide vectors, written
 * with the compilers' vector extension so that they vectorise on every
 * x86-64 and stay in one fixed order); the lanes then add up in double. */
typedef float vf4 __attribute__((vector_size(16)));
typedef int32_t vi4 __attribute__((vector_size(16)));
enum { LANES = 16 };

static inline vf4 load4(const float *p)
{
    vf4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* g where y > 0, else 0 */
static inline vf4 mask_positive(vf4 g, vf4 y)
{
    const vf4 zero = {0.0f, 0.0f, 0.0f, 0.0f};
    return (vf4)((vi4)g & (vi4)(y > zero));
}

static double lanes_total(const vf4 acc[4])
{
    double t = 0.0;
    for (int v = 0; v < 4; v++)
        for (int l = 0; l < 4; l++)
            t += acc[v][l];
    return t;
}

/* sum of p[i] and of (p[i] - shift)^2 over one plane */
static void plane_moments(const float *p, size_t len, float shift, double *sum, double *squares)
{
    vf4 s[4] = {{0}}, q[4] = {{0}};
    const vf4 c = {shift, shift, shift, shift};
    size_t i = 0;
    for (; i + LANES <= len; i += LANES)
        for (int v = 0; v < 4; v++) {
            vf4 x = load4(p + i + 4 * v), d = x - c;
            s[v] += x;
            q[v] += d * d;
        }
    double ts = lanes_total(s), tq = lanes_total(q);
    for (; i < len; i++) {
        double d = (double)p[i] - shift;
        ts += p[i];
        tq += d * d;
    }
    *sum += ts;
    *squares += tq;
}


void mislasi_bn_image_moments(const mislasi_bn_shape *s, const float *x_image, double *moments)
{
    for (size_t c = 0; c < s->c; c++) {
        const float *p = x_image + c * s->hw;
        /* shifted by the plane's first value, which keeps the squares'
         * cancellation small when the mean is large next to the spread */
        double sum = 0.0, squares = 0.0;
        plane_moments(p, s->hw, p[0], &sum, &squares);
        double off = sum - (double)s->hw * p[0];
        double m2 = squares - off * off / (double)s->hw;
        moments[2 * c] = sum;
        moments[2 * c + 1] = m2 > 0.0 ? m2 : 0.0;
    }
}

typedef struct fwd_job {
    const mislasi_bn_shape *s;
    const float *x, *gamma, *beta;
    const double *moments;
    float *running_mean, *running_var, *mean, *invstd, *y;
    bool relu;
    const float *residual;
} fwd_job;

static void forward_train_channels(void *ctx, size_t begin, size_t end)
{
    const fwd_job *j = ctx;
    const mislasi_bn_shape *s = j->s;
    double hw = (double)s->hw;
    for (size_t c = begin; c < end; c++) {
        /* the images' moments combined in image order (Chan et al.) */
        double count = 0.0, mean = 0.0, m2 = 0.0;
        for (size_t i = 0; i < s->n; i++) {
            const double *mo = j->moments + (i * s->c + c) * 2;
            double mean_i = mo[0] / hw, delta = mean_i - mean, total = count + hw;
            mean += delta * hw / total;
            m2 += mo[1] + delta * delta * count * hw / total;
            count = total;
        }
        double var = m2 / count;
        double invstd = 1.0 / sqrt(var + BN_EPS);
        j->mean[c] = (float)mean;
        j->invstd[c] = (float)invstd;
        double unbiased = count > 1.0 ? m2 / (count - 1.0) : var;
        j->running_mean[c] = (float)((1.0 - BN_MOMENTUM) * j->running_mean[c] + BN_MOMENTUM * mean);
        j->running_var[c] = (float)((1.0 - BN_MOMENTUM) * j->running_var[c] + BN_MOMENTUM * unbiased);
        float a = (float)(j->gamma[c] * invstd);
        float b = (float)(j->beta[c] - mean * j->gamma[c] * invstd);
        for (size_t i = 0; i < s->n; i++) {
            size_t off = (i * s->c + c) * s->hw;
            mislasi_affine_plane(j->x + off, j->y + off, s->hw, a, b, j->relu, j->residual == NULL ? NULL : j->residual + off);
        }
    }
}

void mislasi_bn_forward_train_moments(const mislasi_bn_shape *s, const float *x, const double *moments,
        const float *gamma, const float *beta, float *running_mean, float *running_var,
        float *mean, float *invstd, float *y, bool relu, const float *residual)
{
    fwd_job j = {.s = s, .x = x, .moments = moments, .gamma = gamma, .beta = beta,
                 .running_mean = running_mean, .running_var = running_var, .mean = mean,
                 .invstd = invstd, .y = y, .relu = relu, .residual = residual};
    mislasi_parallel_for(s->c, 1, forward_train_channels, &j);
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
    for (size_t c = 0; c < s->c; c++)
        mislasi_affine_plane(x_image + c * s->hw, y_image + c * s->hw, s->hw, scale[c], shift[c], relu,
                residual == NULL ? NULL : residual + c * s->hw);
}

void mislasi_bn_eval_invstd(size_t c, const float *running_var, float *invstd)
{
    for (size_t i = 0; i < c; i++)
        invstd[i] = (float)(1.0 / sqrt((double)running_var[i] + BN_EPS));
}

typedef struct bwd_job {
    const mislasi_bn_shape *s;
    const float *x, *y, *dy, *gamma, *mean, *invstd;
    bool batch_stats;
    float *dx, *dgamma, *dbeta;
} bwd_job;

/* Over one plane: sum of g and of g * (x - mean), g = dy masked by y > 0
 * when y is given (a fused ReLU). */
static void plane_grad_sums(const float *x, const float *y, const float *dy, size_t len,
        float mean, double *sum_g, double *sum_gx)
{
    vf4 s[4] = {{0}}, q[4] = {{0}};
    const vf4 m = {mean, mean, mean, mean};
    size_t i = 0;
    for (; i + LANES <= len; i += LANES)
        for (int v = 0; v < 4; v++) {
            size_t at = i + 4 * (size_t)v;
            vf4 g = load4(dy + at);
            if (y != NULL)
                g = mask_positive(g, load4(y + at));
            s[v] += g;
            q[v] += g * (load4(x + at) - m);
        }
    double ts = lanes_total(s), tq = lanes_total(q);
    for (; i < len; i++) {
        float g = y == NULL || y[i] > 0.0f ? dy[i] : 0.0f;
        ts += g;
        tq += (double)g * ((double)x[i] - mean);
    }
    *sum_g += ts;
    *sum_gx += tq;
}

/* dx = a g + bx (x - mean) + b0 over one plane. */
static void plane_grad(const float *x, const float *y, const float *dy, float *dx, size_t len,
        float mean, float a, float bx, float b0)
{
    if (y != NULL) {
        for (size_t p = 0; p < len; p++) {
            float d = dy[p];
            float g = y[p] > 0.0f ? d : 0.0f;
            dx[p] = a * g + bx * (x[p] - mean) + b0;
        }
    } else {
        for (size_t p = 0; p < len; p++)
            dx[p] = a * dy[p] + bx * (x[p] - mean) + b0;
    }
}

static void backward_channels(void *ctx, size_t begin, size_t end)
{
    const bwd_job *j = ctx;
    const mislasi_bn_shape *s = j->s;
    double m = (double)(s->n * s->hw);
    for (size_t c = begin; c < end; c++) {
        float mean = j->mean[c];
        double invstd = j->invstd[c];
        double sum_g = 0.0, sum_gx = 0.0;
        for (size_t i = 0; i < s->n; i++) {
            size_t off = (i * s->c + c) * s->hw;
            plane_grad_sums(j->x + off, j->y == NULL ? NULL : j->y + off, j->dy + off, s->hw,
                    mean, &sum_g, &sum_gx);
        }
        if (j->dbeta != NULL)
            j->dbeta[c] = (float)sum_g;
        if (j->dgamma != NULL)
            j->dgamma[c] = (float)(sum_gx * invstd);
        if (j->dx == NULL)
            continue;
        /* dx = gamma invstd (g - mean(g) - xhat mean(g xhat)) with batch
         * statistics, gamma invstd g with fixed ones; as a g + b (x - mean) + c. */
        float a = (float)(j->gamma[c] * invstd);
        float bx = 0.0f, b0 = 0.0f;
        if (j->batch_stats) {
            bx = (float)(-j->gamma[c] * invstd * sum_gx * invstd * invstd / m);
            b0 = (float)(-j->gamma[c] * invstd * sum_g / m);
        }
        for (size_t i = 0; i < s->n; i++) {
            size_t off = (i * s->c + c) * s->hw;
            plane_grad(j->x + off, j->y == NULL ? NULL : j->y + off, j->dy + off, j->dx + off, s->hw,
                    mean, a, bx, b0);
        }
    }
}

void mislasi_bn_backward(const mislasi_bn_shape *s, const float *x, const float *y,
        const float *dy, const float *gamma, const float *mean, const float *invstd,
        bool batch_stats, float *dx, float *dgamma, float *dbeta)
{
    bwd_job j = {.s = s, .x = x, .y = y, .dy = dy, .gamma = gamma, .mean = mean, .invstd = invstd,
                 .batch_stats = batch_stats, .dx = dx, .dgamma = dgamma, .dbeta = dbeta};
    mislasi_parallel_for(s->c, 1, backward_channels, &j);
}
