/* The convolution kernels against the machine's limit: the measured peak of
 * fused multiply-adds in the instruction set the library uses (a loop of
 * independent FMAs on every thread), then each layer kind of the ResNets,
 * forward and backward (weight and input gradients), as GFLOP/s and as a
 * fraction of that peak, on 1 and 2 threads.
 *
 * It calls lib/nn directly (the static archive), so it measures the layers
 * alone: what bench_resnet's whole steps add on top is batch norm, the
 * element-wise passes and the classifier.
 *
 * Usage: bench_conv [--quick] [TEXT]   (TEXT: only the layers whose name holds it) */
#define _POSIX_C_SOURCE 200809L

#include "nn/nn.h"
#include "util/util.h"

#include "benchutil.h"

#include <mislas/mislas.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the layers -------------------------------------------------------------- */

typedef struct layer {
    const char *name;
    size_t n, c_in, hw, c_out, k, stride, pad;
} layer;

static const layer LAYERS[] = {
    {"ResNet-32 stem 3->16 @32", 128, 3, 32, 16, 3, 1, 1},
    {"3x3 16->16 @32", 128, 16, 32, 16, 3, 1, 1},
    {"3x3/2 16->32 @32", 128, 16, 32, 32, 3, 2, 1},
    {"3x3 32->32 @16", 128, 32, 16, 32, 3, 1, 1},
    {"3x3 64->64 @8", 128, 64, 8, 64, 3, 1, 1},
    {"3x3 16->16 @28", 128, 16, 28, 16, 3, 1, 1},
    {"3x3 32->32 @14", 128, 32, 14, 32, 3, 1, 1},
    {"3x3 64->64 @7", 128, 64, 7, 64, 3, 1, 1},
    {"ResNet-50 stem 7x7/2 3->64 @224", 8, 3, 224, 64, 7, 2, 3},
    {"1x1 64->256 @56", 8, 64, 56, 256, 1, 1, 0},
    {"3x3 64->64 @56", 8, 64, 56, 64, 3, 1, 1},
    {"1x1 256->64 @56", 8, 256, 56, 64, 1, 1, 0},
    {"1x1/2 256->512 @56", 8, 256, 56, 512, 1, 2, 0},
    {"3x3 256->256 @14", 8, 256, 14, 256, 3, 1, 1},
    {"3x3 512->512 @7", 8, 512, 7, 512, 3, 1, 1},
    {"1x1 2048->512 @7", 8, 2048, 7, 512, 1, 1, 0},
};

static float *buffer(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (p == NULL) {
        fprintf(stderr, "bench_conv: out of memory\n");
        exit(EXIT_FAILURE);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((i * 2654435761u) % 1000) * 0.001f - 0.5f;
    return p;
}

/* median seconds of reps calls of forward (backward = false) or backward */
static double time_layer(const mislasi_conv_shape *s, bool backward, size_t threads, int reps)
{
    size_t oh = mislasi_conv_out_h(s), ow = mislasi_conv_out_w(s);
    size_t xs = s->n * s->c_in * s->h * s->w, ys = s->n * oh * ow * s->c_out;
    size_t ws = s->c_out * s->c_in * s->k * s->k;
    float *x = buffer(xs), *w = buffer(ws), *y = buffer(ys), *dw = buffer(ws);
    float *dx = s->c_in % 16 == 0 ? buffer(xs) : NULL;
    float *prepared = buffer(mislasi_conv_prepared_floats(s)), *work = buffer(mislasi_conv_work_floats(s, threads));
    mislasi_conv_prepare(s, w, prepared);
    double times[64];
    for (int r = -1; r < reps; r++) {
        double t0 = bench_now();
        if (backward)
            mislasi_conv_backward_prepared(s, x, prepared, y, NULL, NULL, NULL, NULL, dw, dx, work, threads);
        else
            mislasi_conv_forward_prepared(s, x, prepared, y, work, threads, NULL, NULL);
        if (r >= 0)
            times[r] = bench_now() - t0;
    }
    qsort(times, (size_t)reps, sizeof times[0], bench_by_value);
    free(x); free(w); free(y); free(dw); free(dx); free(prepared); free(work);
    return times[reps / 2];
}

int main(int argc, char **argv)
{
    int quick = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else
            only = argv[i];
    }
    int reps = quick ? 3 : 9;
    const char *isa = mislasi_isa_name(mislasi_isa_get());
    double peak[3] = {0, bench_fma_peak(isa, 1), bench_fma_peak(isa, 2)};
    printf("Convolution kernels: %s; FMA peak %.0f GFLOP/s on 1 thread, %.0f on 2\n", isa, peak[1], peak[2]);
    printf("  %-34s %3s  %12s %6s  %12s %6s\n", "layer (batch)", "thr", "forward", "peak", "backward", "peak");
    for (size_t l = 0; l < sizeof LAYERS / sizeof LAYERS[0]; l++) {
        const layer *ly = &LAYERS[l];
        if (only != NULL && strstr(ly->name, only) == NULL)
            continue;
        mislasi_conv_shape s = {.n = ly->n, .c_in = ly->c_in, .h = ly->hw, .w = ly->hw, .c_out = ly->c_out,
                                .k = ly->k, .stride = ly->stride, .pad = ly->pad};
        double flops = 2.0 * (double)(s.n * mislasi_conv_out_h(&s) * mislasi_conv_out_w(&s)) *
                       (double)(s.c_out * s.c_in * s.k * s.k);
        /* the stems' input gradient is never computed */
        double back_flops = flops * (s.c_in % 16 == 0 ? 2.0 : 1.0);
        for (int t = 1; t <= 2; t++) {
            mislas_set_num_threads(t);
            double f = flops / time_layer(&s, false, (size_t)t, reps) * 1e-9;
            double b = back_flops / time_layer(&s, true, (size_t)t, reps) * 1e-9;
            char label[48];
            snprintf(label, sizeof label, "%s (%zu)", ly->name, ly->n);
            printf("  %-34s %3d  %7.0f GF/s %5.0f%%  %7.0f GF/s %5.0f%%\n", label, t, f, 100 * f / peak[t], b,
                    100 * b / peak[t]);
        }
    }
    return 0;
}
