/* Max pooling (the ImageNet stem) and global average pooling (layers.h). */
#include "layers.h"

#include <math.h>
#include <string.h>

size_t mislasi_pool_out_h(const mislasi_pool_shape *s)
{
    return (s->h + 2 * s->pad - s->k) / s->stride + 1;
}

size_t mislasi_pool_out_w(const mislasi_pool_shape *s)
{
    return (s->w + 2 * s->pad - s->k) / s->stride + 1;
}

void mislasi_maxpool_forward(const mislasi_pool_shape *s, const float *x, float *y, int32_t *argmax)
{
    size_t oh_n = mislasi_pool_out_h(s), ow_n = mislasi_pool_out_w(s);
    for (size_t plane = 0; plane < s->n * s->c; plane++) {
        const float *in = x + plane * s->h * s->w;
        float *out = y + plane * oh_n * ow_n;
        int32_t *arg = argmax + plane * oh_n * ow_n;
        for (size_t oh = 0; oh < oh_n; oh++) {
            for (size_t ow = 0; ow < ow_n; ow++) {
                float best = -INFINITY;
                int32_t at = -1;
                for (size_t i = 0; i < s->k; i++) {
                    long ih = (long)(oh * s->stride + i) - (long)s->pad;
                    if (ih < 0 || ih >= (long)s->h)
                        continue;
                    for (size_t j = 0; j < s->k; j++) {
                        long iw = (long)(ow * s->stride + j) - (long)s->pad;
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

void mislasi_maxpool_backward(const mislasi_pool_shape *s, const float *dy, const int32_t *argmax,
        float *dx)
{
    size_t out_plane = mislasi_pool_out_h(s) * mislasi_pool_out_w(s);
    memset(dx, 0, s->n * s->c * s->h * s->w * sizeof *dx);
    for (size_t plane = 0; plane < s->n * s->c; plane++)
        for (size_t p = 0; p < out_plane; p++)
            dx[plane * s->h * s->w + (size_t)argmax[plane * out_plane + p]] += dy[plane * out_plane + p];
}

void mislasi_avgpool_forward(size_t n, size_t c, size_t hw, const float *x, float *y)
{
    for (size_t plane = 0; plane < n * c; plane++) {
        double sum = 0.0;
        for (size_t p = 0; p < hw; p++)
            sum += x[plane * hw + p];
        y[plane] = (float)(sum / (double)hw);
    }
}

void mislasi_avgpool_backward(size_t n, size_t c, size_t hw, const float *dy, float *dx)
{
    for (size_t plane = 0; plane < n * c; plane++) {
        float g = (float)((double)dy[plane] / (double)hw);
        for (size_t p = 0; p < hw; p++)
            dx[plane * hw + p] = g;
    }
}
