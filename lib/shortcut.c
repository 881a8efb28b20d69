/* The option-A shortcut of the CIFAR ResNets (layers.h): where a block
 * halves the resolution and widens the channels, the identity becomes
 * "every second pixel, zero channels on both sides", which has no
 * parameters. */
#include "layers.h"

#include <string.h>

void mislasi_shortcut_a_forward(const mislasi_shortcut_shape *s, const float *x, float *y)
{
    size_t oh = (s->h + 1) / 2, ow = (s->w + 1) / 2, pad = (s->c_out - s->c_in) / 2;
    for (size_t i = 0; i < s->n; i++) {
        float *out = y + i * s->c_out * oh * ow;
        memset(out, 0, pad * oh * ow * sizeof *out);
        memset(out + (pad + s->c_in) * oh * ow, 0, (s->c_out - pad - s->c_in) * oh * ow * sizeof *out);
        for (size_t c = 0; c < s->c_in; c++) {
            const float *in = x + (i * s->c_in + c) * s->h * s->w;
            float *o = out + (pad + c) * oh * ow;
            for (size_t r = 0; r < oh; r++)
                for (size_t q = 0; q < ow; q++)
                    o[r * ow + q] = in[2 * r * s->w + 2 * q];
        }
    }
}

void mislasi_shortcut_a_backward_add(const mislasi_shortcut_shape *s, const float *dy, float *dx)
{
    size_t oh = (s->h + 1) / 2, ow = (s->w + 1) / 2, pad = (s->c_out - s->c_in) / 2;
    for (size_t i = 0; i < s->n; i++) {
        for (size_t c = 0; c < s->c_in; c++) {
            const float *g = dy + (i * s->c_out + pad + c) * oh * ow;
            float *d = dx + (i * s->c_in + c) * s->h * s->w;
            for (size_t r = 0; r < oh; r++)
                for (size_t q = 0; q < ow; q++)
                    d[2 * r * s->w + 2 * q] += g[r * ow + q];
        }
    }
}
