/* The option-A shortcut of the CIFAR ResNets (nn.h): where a block
 * halves the resolution and widens the channels, the identity becomes
 * "every second pixel, zero channels on both sides", which has no
 * parameters. In NHWC each output pixel is one contiguous run of channels
 * (zeros, the input pixel's channels, zeros). Images are independent and
 * spread over the threads. */
#include "nn.h"

#include "util/util.h"

#include <string.h>

typedef struct shortcut_job {
    const mislasi_shortcut_shape *s;
    const float *in;
    float *out;
} shortcut_job;

static void forward_images(void *ctx, size_t begin, size_t end)
{
    const shortcut_job *j = ctx;
    const mislasi_shortcut_shape *s = j->s;
    size_t oh = (s->h + 1) / 2, ow = (s->w + 1) / 2, pad = (s->c_out - s->c_in) / 2;
    size_t after = s->c_out - pad - s->c_in;
    for (size_t i = begin; i < end; i++)
        for (size_t r = 0; r < oh; r++)
            for (size_t q = 0; q < ow; q++) {
                const float *in = j->in + ((i * s->h + 2 * r) * s->w + 2 * q) * s->c_in;
                float *out = j->out + ((i * oh + r) * ow + q) * s->c_out;
                memset(out, 0, pad * sizeof *out);
                memcpy(out + pad, in, s->c_in * sizeof *out);
                memset(out + pad + s->c_in, 0, after * sizeof *out);
            }
}

void mislasi_shortcut_a_forward(const mislasi_shortcut_shape *s, const float *x, float *y)
{
    shortcut_job j = {.s = s, .in = x, .out = y};
    mislasi_parallel_for(s->n, 8, forward_images, &j);
}

static void backward_images(void *ctx, size_t begin, size_t end)
{
    const shortcut_job *j = ctx;
    const mislasi_shortcut_shape *s = j->s;
    size_t oh = (s->h + 1) / 2, ow = (s->w + 1) / 2, pad = (s->c_out - s->c_in) / 2;
    for (size_t i = begin; i < end; i++)
        for (size_t r = 0; r < oh; r++)
            for (size_t q = 0; q < ow; q++) {
                const float *g = j->in + ((i * oh + r) * ow + q) * s->c_out + pad;
                float *d = j->out + ((i * s->h + 2 * r) * s->w + 2 * q) * s->c_in;
                for (size_t c = 0; c < s->c_in; c++)
                    d[c] += g[c];
            }
}

void mislasi_shortcut_a_backward_add(const mislasi_shortcut_shape *s, const float *dy, float *dx)
{
    shortcut_job j = {.s = s, .in = dy, .out = dx};
    mislasi_parallel_for(s->n, 8, backward_images, &j);
}
