/* Max pooling (the ImageNet stem) and global average pooling (layers.h).
 * Planes are independent: they are spread over the library's threads. */
#include "nn.h"

#include "util/util.h"

#include <math.h>
#include <string.h>

enum { PLANE_GRAIN = 16 };

size_t mislasi_pool_out_h(const mislasi_pool_shape *s)
{
    return (s->h + 2 * s->pad - s->k) / s->stride + 1;
}

size_t mislasi_pool_out_w(const mislasi_pool_shape *s)
{
    return (s->w + 2 * s->pad - s->k) / s->stride + 1;
}

typedef struct pool_job {
    const mislasi_pool_shape *s;
    const float *in;
    float *out;
    int32_t *argmax;
    const int32_t *arg_in;
    size_t hw;              /* global average: pixels per plane */
} pool_job;

static void maxpool_planes(void *ctx, size_t begin, size_t end)
{
    const pool_job *j = ctx;
    const mislasi_pool_shape *s = j->s;
    size_t oh_n = mislasi_pool_out_h(s), ow_n = mislasi_pool_out_w(s);
    for (size_t plane = begin; plane < end; plane++) {
        const float *in = j->in + plane * s->h * s->w;
        float *out = j->out + plane * oh_n * ow_n;
        int32_t *arg = j->argmax + plane * oh_n * ow_n;
        for (size_t oh = 0; oh < oh_n; oh++) {
            for (size_t ow = 0; ow < ow_n; ow++) {
                float best = -INFINITY;
                int32_t at = -1;
                for (size_t i = 0; i < s->k; i++) {
                    long ih = (long)(oh * s->stride + i) - (long)s->pad;
                    if (ih < 0 || ih >= (long)s->h)
                        continue;
                    for (size_t jj = 0; jj < s->k; jj++) {
                        long iw = (long)(ow * s->stride + jj) - (long)s->pad;
                        if (iw < 0 || iw >= (long)s->w)
                            continue;
                        float v = in[ih * (long)s->w + iw];
                        if (at < 0 || v > best) {
                            best = v;
                            at = (int32_t)(ih * (long)s->w + iw);
                        }
                    }
                }
                out[oh * ow_n + ow] = best;
                arg[oh * ow_n + ow] = at;
            }
        }
    }
}

void mislasi_maxpool_forward(const mislasi_pool_shape *s, const float *x, float *y, int32_t *argmax)
{
    pool_job j = {.s = s, .in = x, .out = y, .argmax = argmax};
    mislasi_parallel_for(s->n * s->c, PLANE_GRAIN, maxpool_planes, &j);
}

static void maxpool_back_planes(void *ctx, size_t begin, size_t end)
{
    const pool_job *j = ctx;
    const mislasi_pool_shape *s = j->s;
    size_t out_plane = mislasi_pool_out_h(s) * mislasi_pool_out_w(s), in_plane = s->h * s->w;
    for (size_t plane = begin; plane < end; plane++) {
        float *dx = j->out + plane * in_plane;
        memset(dx, 0, in_plane * sizeof *dx);
        for (size_t p = 0; p < out_plane; p++)
            dx[(size_t)j->arg_in[plane * out_plane + p]] += j->in[plane * out_plane + p];
    }
}

void mislasi_maxpool_backward(const mislasi_pool_shape *s, const float *dy, const int32_t *argmax,
        float *dx)
{
    pool_job j = {.s = s, .in = dy, .out = dx, .arg_in = argmax};
    mislasi_parallel_for(s->n * s->c, PLANE_GRAIN, maxpool_back_planes, &j);
}

static void avgpool_planes(void *ctx, size_t begin, size_t end)
{
    const pool_job *j = ctx;
    for (size_t plane = begin; plane < end; plane++) {
        double sum = 0.0;
        for (size_t p = 0; p < j->hw; p++)
            sum += j->in[plane * j->hw + p];
        j->out[plane] = (float)(sum / (double)j->hw);
    }
}

void mislasi_avgpool_forward(size_t n, size_t c, size_t hw, const float *x, float *y)
{
    pool_job j = {.in = x, .out = y, .hw = hw};
    mislasi_parallel_for(n * c, PLANE_GRAIN, avgpool_planes, &j);
}

static void avgpool_back_planes(void *ctx, size_t begin, size_t end)
{
    const pool_job *j = ctx;
    for (size_t plane = begin; plane < end; plane++) {
        float g = (float)((double)j->in[plane] / (double)j->hw);
        for (size_t p = 0; p < j->hw; p++)
            j->out[plane * j->hw + p] = g;
    }
}

void mislasi_avgpool_backward(size_t n, size_t c, size_t hw, const float *dy, float *dx)
{
    pool_job j = {.in = dy, .out = dx, .hw = hw};
    mislasi_parallel_for(n * c, PLANE_GRAIN, avgpool_back_planes, &j);
}
