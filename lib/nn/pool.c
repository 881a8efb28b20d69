/* Max pooling (the ImageNet stem) and global average pooling (nn.h) on
 * NHWC activations: every loop runs over the channels innermost, where
 * they are contiguous, so one vector lane serves one channel and the
 * per-channel arithmetic is what a plane-by-plane loop would do. Max
 * pooling's output rows, or whole images (where one image's outputs meet
 * in its input gradient, or its pixels in one sum), are spread over the
 * library's threads. */
#include "nn.h"

#include "util/util.h"

#include <math.h>
#include <string.h>

/* CHUNK: the channels whose double sums the average pool keeps on the
 * stack at once. */
enum { ROW_GRAIN = 4, IMAGE_GRAIN = 4, CHUNK = 256 };

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
    size_t c, hw;           /* global average: channels, pixels per image */
} pool_job;

/* Output rows [begin, end) of all images (row = image * oh + oh index). The
 * window's pixels are scanned row by row and after the first only a
 * strictly greater value takes over, so the first maximum wins and a NaN
 * wins only as the first pixel (the padding is no candidate). */
static void maxpool_rows(void *ctx, size_t begin, size_t end)
{
    const pool_job *j = ctx;
    const mislasi_pool_shape *s = j->s;
    size_t oh_n = mislasi_pool_out_h(s), ow_n = mislasi_pool_out_w(s), c = s->c;
    for (size_t row = begin; row < end; row++) {
        size_t image = row / oh_n, oh = row % oh_n;
        const float *in = j->in + image * s->h * s->w * c;
        for (size_t ow = 0; ow < ow_n; ow++) {
            size_t o = (row * ow_n + ow) * c;
            float *best = j->out + o;
            int32_t *at = j->argmax + o;
            for (size_t ch = 0; ch < c; ch++) {
                best[ch] = -INFINITY;
                at[ch] = -1;
            }
            for (size_t i = 0; i < s->k; i++) {
                long ih = (long)(oh * s->stride + i) - (long)s->pad;
                if (ih < 0 || ih >= (long)s->h)
                    continue;
                for (size_t jj = 0; jj < s->k; jj++) {
                    long iw = (long)(ow * s->stride + jj) - (long)s->pad;
                    if (iw < 0 || iw >= (long)s->w)
                        continue;
                    int32_t pixel = (int32_t)(ih * (long)s->w + iw);
                    const float *v = in + (size_t)pixel * c;
                    for (size_t ch = 0; ch < c; ch++) {
                        bool take = (at[ch] < 0) | (v[ch] > best[ch]);
                        best[ch] = take ? v[ch] : best[ch];
                        at[ch] = take ? pixel : at[ch];
                    }
                }
            }
        }
    }
}

void mislasi_maxpool_forward(const mislasi_pool_shape *s, const float *x, float *y, int32_t *argmax)
{
    pool_job j = {.s = s, .in = x, .out = y, .argmax = argmax};
    mislasi_parallel_for(s->n * mislasi_pool_out_h(s), ROW_GRAIN, maxpool_rows, &j);
}

/* By image: overlapping windows send several outputs to one input. */
static void maxpool_back_images(void *ctx, size_t begin, size_t end)
{
    const pool_job *j = ctx;
    const mislasi_pool_shape *s = j->s;
    size_t c = s->c, out_plane = mislasi_pool_out_h(s) * mislasi_pool_out_w(s), in_plane = s->h * s->w;
    for (size_t image = begin; image < end; image++) {
        float *dx = j->out + image * in_plane * c;
        memset(dx, 0, in_plane * c * sizeof *dx);
        const float *dy = j->in + image * out_plane * c;
        const int32_t *arg = j->arg_in + image * out_plane * c;
        for (size_t o = 0; o < out_plane * c; o += c)
            for (size_t ch = 0; ch < c; ch++)
                dx[(size_t)arg[o + ch] * c + ch] += dy[o + ch];
    }
}

void mislasi_maxpool_backward(const mislasi_pool_shape *s, const float *dy, const int32_t *argmax,
        float *dx)
{
    pool_job j = {.s = s, .in = dy, .out = dx, .arg_in = argmax};
    mislasi_parallel_for(s->n, 1, maxpool_back_images, &j);
}

/* Each channel's pixels are summed in double, in pixel order. */
static void avgpool_images(void *ctx, size_t begin, size_t end)
{
    const pool_job *j = ctx;
    size_t c = j->c;
    for (size_t image = begin; image < end; image++) {
        const float *in = j->in + image * j->hw * c;
        for (size_t c0 = 0; c0 < c; c0 += CHUNK) {
            size_t cn = c - c0 < CHUNK ? c - c0 : CHUNK;
            double sum[CHUNK];
            for (size_t k = 0; k < cn; k++)
                sum[k] = 0.0;
            for (size_t p = 0; p < j->hw; p++)
                for (size_t k = 0; k < cn; k++)
                    sum[k] += in[p * c + c0 + k];
            for (size_t k = 0; k < cn; k++)
                j->out[image * c + c0 + k] = (float)(sum[k] / (double)j->hw);
        }
    }
}

void mislasi_avgpool_forward(size_t n, size_t c, size_t hw, const float *x, float *y)
{
    pool_job j = {.in = x, .out = y, .c = c, .hw = hw};
    mislasi_parallel_for(n, IMAGE_GRAIN, avgpool_images, &j);
}

/* The image's first pixel gets dy / hw, the others a copy of it. */
static void avgpool_back_images(void *ctx, size_t begin, size_t end)
{
    const pool_job *j = ctx;
    size_t c = j->c;
    for (size_t image = begin; image < end; image++) {
        float *out = j->out + image * j->hw * c;
        for (size_t ch = 0; ch < c; ch++)
            out[ch] = (float)((double)j->in[image * c + ch] / (double)j->hw);
        for (size_t p = 1; p < j->hw; p++)
            memcpy(out + p * c, out, c * sizeof *out);
    }
}

void mislasi_avgpool_backward(size_t n, size_t c, size_t hw, const float *dy, float *dx)
{
    pool_job j = {.in = dy, .out = dx, .c = c, .hw = hw};
    mislasi_parallel_for(n, IMAGE_GRAIN, avgpool_back_images, &j);
}
