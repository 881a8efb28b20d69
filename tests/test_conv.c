/* The convolution (lib/nn/conv.c) and its kernels (conv_kernels.h) against
 * independent derivations: the forward against a naive double-precision
 * loop written here, the backward against the exact gradient of
 * L = sum(R * y) for a random R (derived by hand and computed in double) and
 * against central finite differences of the library's own forward. Every
 * output buffer starts as NaN (backward functions write, never add), every
 * buffer ends in a guard that must stay untouched, results must be the same
 * bits for every thread count, and every instruction set's kernels must give
 * the same bits. This suite links the static archive to reach the internals.
 *
 * Tolerances are in units of U = 2^-24, the unit roundoff of float. A float
 * dot product or sum of K terms, in any order and with or without FMA, is
 * within gamma_K = K U / (1 - K U) of the exact value relative to the sum
 * of the terms' magnitudes (Higham, Accuracy and Stability of Numerical
 * Algorithms, 2nd ed., eq. 3.5); we use (K + 2) U, the slack covering the
 * denominator and a final rounding. These are worst-case bounds, so they
 * never fail by bad luck, yet an indexing error is off by whole terms
 * (~0.1 - 1) and fails by orders of magnitude.
 *
 * Activations are NHWC: image n's pixel (r, q) has channel c at
 * ((n h + r) w + q) C + c; the weights keep PyTorch's [co][ci][kh][kw]. */
#include "nn/nn.h"
#include "nn/conv_kernels.h"
#include "layercheck.h"
#include "testutil.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------- the layers as one call each
 * The model calls the layers in pieces (weights prepared once, batch norm's
 * moments per image); these put the pieces together the same way, for
 * checking each layer whole. scratch: conv_scratch_floats. */
static size_t conv_scratch_floats(const mislasi_conv_shape *s, size_t threads)
{
    return mislasi_conv_prepared_floats(s) + mislasi_conv_work_floats(s, threads);
}

static void conv_forward_then(const mislasi_conv_shape *s, const float *x, const float *w, float *y, float *scratch,
        size_t threads, mislasi_image_fn then, void *ctx)
{
    mislasi_conv_prepare(s, w, scratch);
    mislasi_conv_forward_prepared(s, x, scratch, y, scratch + mislasi_conv_prepared_floats(s), threads, then, ctx);
}

static void conv_forward(const mislasi_conv_shape *s, const float *x, const float *w, float *y, float *scratch,
        size_t threads)
{
    conv_forward_then(s, x, w, y, scratch, threads, NULL, NULL);
}

/* (dy is not written: no `before`) */
static void conv_backward(const mislasi_conv_shape *s, const float *x, const float *w, float *dy, float *dw,
        float *dx, float *scratch, size_t threads)
{
    mislasi_conv_prepare(s, w, scratch);
    mislasi_conv_backward_prepared(s, x, scratch, dy, NULL, NULL, NULL, NULL, dw, dx, scratch + mislasi_conv_prepared_floats(s),
            threads);
}

static size_t conv_x_size(const mislasi_conv_shape *s) { return s->n * s->c_in * s->h * s->w; }
static size_t conv_w_size(const mislasi_conv_shape *s) { return s->c_out * s->c_in * s->k * s->k; }
static size_t conv_y_size(const mislasi_conv_shape *s)
{
    return s->n * s->c_out * mislasi_conv_out_h(s) * mislasi_conv_out_w(s);
}

/* The definition in nn.h, in double: y and, per output, the sum of its
 * terms' magnitudes (mag, for the rounding bound). Seven loops. */
static void naive_conv(const mislasi_conv_shape *s, const float *x, const float *w, double *y, double *mag)
{
    size_t oh_n = (s->h + 2 * s->pad - s->k) / s->stride + 1;
    size_t ow_n = (s->w + 2 * s->pad - s->k) / s->stride + 1;
    for (size_t n = 0; n < s->n; n++)
        for (size_t co = 0; co < s->c_out; co++)
            for (size_t oh = 0; oh < oh_n; oh++)
                for (size_t ow = 0; ow < ow_n; ow++) {
                    double acc = 0.0, m = 0.0;
                    for (size_t ci = 0; ci < s->c_in; ci++)
                        for (size_t i = 0; i < s->k; i++)
                            for (size_t j = 0; j < s->k; j++) {
                                long ih = (long)(oh * s->stride + i) - (long)s->pad;
                                long iw = (long)(ow * s->stride + j) - (long)s->pad;
                                if (ih < 0 || iw < 0 || ih >= (long)s->h || iw >= (long)s->w)
                                    continue;
                                double t = (double)w[((co * s->c_in + ci) * s->k + i) * s->k + j] *
                                           x[((n * s->h + (size_t)ih) * s->w + (size_t)iw) * s->c_in + ci];
                                acc += t;
                                m += fabs(t);
                            }
                    size_t o = ((n * oh_n + oh) * ow_n + ow) * s->c_out + co;
                    y[o] = acc;
                    if (mag != NULL)
                        mag[o] = m;
                }
}

/* The exact gradients of L = sum R y: y is linear in x and in w, each term
 * w[co,ci,i,j] x[n,ci,ih,iw] of y[n,co,oh,ow] gives R[n,co,oh,ow] x to dw
 * and R w to dx (dw is the correlation of x with R, dx the transposed
 * convolution of R). Also the sums of the terms' magnitudes. */
static void naive_conv_grads(const mislasi_conv_shape *s, const float *x, const float *w, const float *r,
        double *dw, double *dx, double *dw_mag, double *dx_mag)
{
    size_t oh_n = mislasi_conv_out_h(s), ow_n = mislasi_conv_out_w(s);
    memset(dw, 0, conv_w_size(s) * sizeof *dw);
    memset(dx, 0, conv_x_size(s) * sizeof *dx);
    memset(dw_mag, 0, conv_w_size(s) * sizeof *dw_mag);
    memset(dx_mag, 0, conv_x_size(s) * sizeof *dx_mag);
    for (size_t n = 0; n < s->n; n++)
        for (size_t co = 0; co < s->c_out; co++)
            for (size_t oh = 0; oh < oh_n; oh++)
                for (size_t ow = 0; ow < ow_n; ow++) {
                    double g = r[((n * oh_n + oh) * ow_n + ow) * s->c_out + co];
                    for (size_t ci = 0; ci < s->c_in; ci++)
                        for (size_t i = 0; i < s->k; i++)
                            for (size_t j = 0; j < s->k; j++) {
                                long ih = (long)(oh * s->stride + i) - (long)s->pad;
                                long iw = (long)(ow * s->stride + j) - (long)s->pad;
                                if (ih < 0 || iw < 0 || ih >= (long)s->h || iw >= (long)s->w)
                                    continue;
                                size_t wi = ((co * s->c_in + ci) * s->k + i) * s->k + j;
                                size_t xi = ((n * s->h + (size_t)ih) * s->w + (size_t)iw) * s->c_in + ci;
                                dw[wi] += g * x[xi];
                                dw_mag[wi] += fabs(g * x[xi]);
                                dx[xi] += g * w[wi];
                                dx_mag[xi] += fabs(g * w[wi]);
                            }
                }
}

typedef struct conv_case {
    size_t n, c_in, h, w, c_out, k, stride, pad;
} conv_case;

/* Channels come in blocks of 16 lanes (c_out always, c_in where dx is
 * wanted; the stems' c_in of 1 or 3 get no dx). The library cuts a row of
 * outputs into tiles of up to 28 pixels (fewer with more blocks: 14, 9, 6
 * on AVX-512; 6, 3, 2, 1 on AVX2) and groups images for the weight gradient
 * by about 1024 output pixels, so the cases cover one and several tiles per
 * row, one to five blocks, one and several groups with a short last one,
 * every stride / padding / kernel the ResNets use, on odd sizes, and
 * layers whose weights are summed in chunks of channels (k k c > 113 x 9,
 * conv.c's depth_chunk). 1x1 layers run all a thread's images as one row of
 * pixels, cut into stretches of conv.c's STRETCH_FLOATS / depth pixels (at
 * least 64; depth: c_in forward, c_out for the input gradient). */
static const conv_case CONV_CASES[] = {
    { 1, 16, 1, 1, 16, 1, 1, 0 },   /* the smallest */
    { 3, 16, 5, 7, 16, 3, 1, 1 },   /* odd sizes, one group */
    { 20, 16, 8, 8, 32, 3, 1, 1 },  /* 8x8: groups of 16 images, a short last one */
    { 13, 32, 10, 10, 16, 3, 1, 1 },
    { 3, 16, 40, 36, 16, 3, 1, 1 }, /* one image per group; rows of two tiles */
    { 5, 16, 6, 1, 16, 3, 1, 1 },   /* one column */
    { 4, 16, 1, 7, 16, 3, 1, 1 },   /* one row */
    { 3, 16, 2, 2, 16, 3, 1, 1 },   /* image smaller than the kernel */
    { 130, 16, 3, 3, 16, 3, 1, 1 }, /* ~113 images per group */
    { 7, 16, 9, 11, 32, 3, 2, 1 },  /* stride 2 on odd sizes: 5x6 outputs */
    { 50, 16, 9, 11, 16, 3, 2, 1 }, /* the same, two groups */
    { 4, 16, 6, 5, 16, 3, 2, 0 },   /* stride 2, no padding, uneven remainder */
    { 2, 16, 3, 4, 16, 3, 1, 3 },   /* padding >= kernel: outer outputs see only zeros */
    { 2, 16, 4, 3, 16, 3, 2, 3 },   /* the same with stride 2 */
    { 2, 3, 17, 19, 16, 7, 2, 3 },  /* the ImageNet stem's 7x7 / 2 / 3 */
    { 3, 16, 13, 13, 16, 7, 1, 3 }, /* 7x7 stride 1 */
    { 3, 16, 7, 7, 16, 7, 1, 0 },   /* 7x7 without padding: one output pixel */
    { 2, 16, 21, 21, 16, 7, 2, 3 }, /* 7x7 / 2 to 11x11 */
    { 2, 16, 35, 35, 16, 3, 1, 1 }, /* 1225 output pixels, rows of 35 */
    { 3, 16, 32, 32, 16, 1, 1, 0 }, /* 1x1 / 1 / 0 */
    { 2, 32, 33, 31, 16, 1, 1, 0 }, /* the same on odd sizes */
    { 17, 16, 8, 8, 48, 1, 1, 0 },  /* three blocks */
    { 6, 32, 9, 9, 64, 1, 2, 0 },   /* 1x1 / 2 (a projection shortcut) on odd sizes */
    { 2, 64, 8, 8, 80, 3, 1, 1 },   /* five blocks: a tile of four and one of one */
    { 2, 48, 7, 7, 16, 3, 2, 1 },   /* dx in three blocks */
    { 2, 160, 5, 6, 32, 3, 1, 1 },  /* large weights: input channels summed in chunks of 64 */
    { 2, 32, 5, 5, 144, 3, 2, 1 },  /* the input gradient in chunks of output channels, stride 2 */
    { 1, 1040, 3, 3, 16, 1, 1, 0 }, /* 1x1 with chunks */
    /* 1x1 layers run a part's pixels as one run, in stretches of 126
     * pixels at 1040 channels: stretches that end inside an image */
    { 11, 1040, 4, 5, 16, 1, 1, 0 },
    { 13, 1040, 7, 9, 32, 1, 2, 0 }, /* the same through the strided gather */
    { 3, 32, 7, 9, 528, 1, 1, 0 },  /* the input gradient's run: stretches of 64 pixels at 528 */
    { 2, 3, 32, 32, 16, 3, 1, 1 },  /* the CIFAR stem */
    { 3, 1, 28, 28, 16, 3, 1, 1 },  /* the (Fashion-)MNIST stem */
};

/* The input gradient exists for whole blocks of input channels. */
static bool wants_dx(const mislasi_conv_shape *s)
{
    return s->c_in % 16 == 0;
}

static mislasi_conv_shape conv_shape_of(const conv_case *c)
{
    mislasi_conv_shape s = { .n = c->n, .c_in = c->c_in, .h = c->h, .w = c->w,
                             .c_out = c->c_out, .k = c->k, .stride = c->stride, .pad = c->pad };
    return s;
}

#define CONV_FMT "n %zu c_in %zu h %zu w %zu c_out %zu k %zu stride %zu pad %zu"
#define CONV_ARGS(s) (s)->n, (s)->c_in, (s)->h, (s)->w, (s)->c_out, (s)->k, (s)->stride, (s)->pad

START_TEST(conv_output_size)
{
    mislasi_conv_shape s = { .n = 1, .c_in = 1, .h = 32, .w = 31, .c_out = 1, .k = 3, .stride = 1, .pad = 1 };
    ck_assert_uint_eq(mislasi_conv_out_h(&s), 32);
    ck_assert_uint_eq(mislasi_conv_out_w(&s), 31);
    s.stride = 2;       /* (32 + 2 - 3) / 2 + 1 = 16, (31 + 2 - 3) / 2 + 1 = 16 */
    ck_assert_uint_eq(mislasi_conv_out_h(&s), 16);
    ck_assert_uint_eq(mislasi_conv_out_w(&s), 16);
    s.h = 224; s.w = 224; s.k = 7; s.pad = 3;      /* the ImageNet stem: 112 */
    ck_assert_uint_eq(mislasi_conv_out_h(&s), 112);
    ck_assert_uint_eq(mislasi_conv_out_w(&s), 112);
    s.h = 7; s.w = 7; s.k = 7; s.pad = 0; s.stride = 1;
    ck_assert_uint_eq(mislasi_conv_out_h(&s), 1);
}
END_TEST

/* Forward: y against the naive double convolution; each output is a float
 * dot product of c_in k k terms (the padding's zeros add nothing), so it is
 * within (c_in k k + 2) U of the sum of its terms' magnitudes; outputs whose
 * window lies in the padding must be exactly 0. The same call with pools of
 * 1, 2 and 3 threads and threads = 1, 2, 3 (each with the scratch sized for
 * it) must give the same bits; scratch starts as NaN. */
static void check_conv_forward(const mislasi_conv_shape *s)
{
    size_t xs = conv_x_size(s), ws = conv_w_size(s), ys = conv_y_size(s);
    float *x = alloc_floats(xs), *w = alloc_floats(ws);
    fill_uniform(x, xs, -1, 1);
    fill_uniform(w, ws, -1, 1);
    float *x0 = copy_floats(x, xs), *w0 = copy_floats(w, ws);
    double *want = alloc_doubles(ys), *mag = alloc_doubles(ys);
    naive_conv(s, x, w, want, mag);
    double terms = (double)(s->c_in * s->k * s->k);
    float *first = NULL;
    for (int32_t pool = 1; pool <= 3; pool++) {
        set_threads(pool);
        ck_assert_uint_eq(mislasi_conv_threads(), (size_t)pool);
        for (size_t t = 1; t <= 3; t++) {
            size_t scratch_n = conv_scratch_floats(s, t);
            float *scratch = alloc_guarded(scratch_n), *y = alloc_guarded(ys);
            conv_forward(s, x, w, y, scratch, t);
            check_guard(y, ys, "conv y");
            check_guard(scratch, scratch_n, "conv scratch");
            if (first == NULL) {
                for (size_t o = 0; o < ys; o++)
                    if (!(fabs(y[o] - want[o]) <= (terms + 2) * U * mag[o]))
                        ck_abort_msg("conv forward, " CONV_FMT ": y[%zu] = %.9g, expected %.9g (tolerance %.3g)",
                            CONV_ARGS(s), o, (double)y[o], want[o], (terms + 2) * U * mag[o]);
                first = copy_floats(y, ys);
            } else {
                expect_same_bits("conv y (threads)", y, first, ys);
            }
            free(scratch);
            free(y);
        }
    }
    expect_same_bits("conv x (input)", x, x0, xs);
    expect_same_bits("conv w (input)", w, w0, ws);
    free(first);
    free(x); free(w); free(x0); free(w0); free(want); free(mag);
}

START_TEST(conv_forward_matches_the_definition)
{
    for (size_t i = 0; i < sizeof CONV_CASES / sizeof CONV_CASES[0]; i++) {
        mislasi_conv_shape s = conv_shape_of(&CONV_CASES[i]);
        check_conv_forward(&s);
    }
}
END_TEST

/* Backward: dw and dx against the exact gradients of L = sum R y. dw[w_i]
 * is a float sum of n oh ow products (a column of each image; padded
 * positions contribute exact zeros), taken per group and then added over
 * the groups: n oh ow + groups <= 2 n oh ow additions, so (2 n oh ow + 2) U
 * of the sum of magnitudes. dx is W^T R (c_out terms) folded back (up to
 * k k of those per input), c_out k k terms: (c_out k k + 2) U. dx = NULL
 * gives the same dw (and is all the stems get: dx stays untouched). Same bits for every thread count. */
static void check_conv_backward(const mislasi_conv_shape *s)
{
    size_t xs = conv_x_size(s), ws = conv_w_size(s), ys = conv_y_size(s);
    size_t pixels = mislasi_conv_out_h(s) * mislasi_conv_out_w(s);
    float *x = alloc_floats(xs), *w = alloc_floats(ws), *r = alloc_floats(ys);
    fill_uniform(x, xs, -1, 1);
    fill_uniform(w, ws, -1, 1);
    fill_uniform(r, ys, -1, 1);
    float *x0 = copy_floats(x, xs), *w0 = copy_floats(w, ws), *r0 = copy_floats(r, ys);
    double *dw_want = alloc_doubles(ws), *dx_want = alloc_doubles(xs);
    double *dw_mag = alloc_doubles(ws), *dx_mag = alloc_doubles(xs);
    naive_conv_grads(s, x, w, r, dw_want, dx_want, dw_mag, dx_mag);
    double dw_terms = 2.0 * (double)(s->n * pixels), dx_terms = (double)(s->c_out * s->k * s->k);
    float *dw_first = NULL, *dx_first = NULL;
    for (int32_t pool = 1; pool <= 3; pool++) {
        set_threads(pool);
        for (size_t t = 1; t <= 3; t++) {
            size_t scratch_n = conv_scratch_floats(s, t);
            float *scratch = alloc_guarded(scratch_n), *dw = alloc_guarded(ws), *dx = alloc_guarded(xs);
            conv_backward(s, x, w, r, dw, wants_dx(s) ? dx : NULL, scratch, t);
            check_guard(dw, ws, "conv dw");
            check_guard(dx, xs, "conv dx");
            check_guard(scratch, scratch_n, "conv scratch");
            if (dw_first == NULL) {
                for (size_t i = 0; i < ws; i++)
                    if (!(fabs(dw[i] - dw_want[i]) <= (dw_terms + 2) * U * dw_mag[i]))
                        ck_abort_msg("conv backward, " CONV_FMT ": dw[%zu] = %.9g, expected %.9g (tolerance %.3g)",
                            CONV_ARGS(s), i, (double)dw[i], dw_want[i], (dw_terms + 2) * U * dw_mag[i]);
                for (size_t i = 0; i < xs && wants_dx(s); i++)
                    if (!(fabs(dx[i] - dx_want[i]) <= (dx_terms + 2) * U * dx_mag[i]))
                        ck_abort_msg("conv backward, " CONV_FMT ": dx[%zu] = %.9g, expected %.9g (tolerance %.3g)",
                            CONV_ARGS(s), i, (double)dx[i], dx_want[i], (dx_terms + 2) * U * dx_mag[i]);
                dw_first = copy_floats(dw, ws);
                dx_first = copy_floats(dx, xs);
            } else {
                expect_same_bits("conv dw (threads)", dw, dw_first, ws);
                expect_same_bits("conv dx (threads)", dx, dx_first, xs);
            }
            /* without dx */
            refill_nan(scratch, scratch_n);
            refill_nan(dw, ws);
            conv_backward(s, x, w, r, dw, NULL, scratch, t);
            check_guard(dw, ws, "conv dw");
            check_guard(scratch, scratch_n, "conv scratch");
            expect_same_bits("conv dw (dx = NULL)", dw, dw_first, ws);
            free(scratch);
            free(dw);
            free(dx);
        }
    }
    expect_same_bits("conv x (input)", x, x0, xs);
    expect_same_bits("conv w (input)", w, w0, ws);
    expect_same_bits("conv dy (input)", r, r0, ys);
    free(dw_first); free(dx_first);
    free(x); free(w); free(r); free(x0); free(w0); free(r0);
    free(dw_want); free(dx_want); free(dw_mag); free(dx_mag);
}

START_TEST(conv_backward_matches_the_exact_gradients)
{
    for (size_t i = 0; i < sizeof CONV_CASES / sizeof CONV_CASES[0]; i++) {
        mislasi_conv_shape s = conv_shape_of(&CONV_CASES[i]);
        check_conv_backward(&s);
    }
}
END_TEST

/* The test's exact gradients against central differences of its own double
 * convolution: L is linear in each entry, so the difference quotient is
 * exact but for double rounding (~1e-16 of L's terms), which makes this a
 * check of the derivation (indices, transposition), not of the library. */
START_TEST(conv_exact_gradients_are_the_derivative_of_the_definition)
{
    for (size_t c = 0; c < sizeof CONV_CASES / sizeof CONV_CASES[0]; c++) {
        mislasi_conv_shape s = conv_shape_of(&CONV_CASES[c]);
        size_t xs = conv_x_size(&s), ws = conv_w_size(&s), ys = conv_y_size(&s);
        float *x = alloc_floats(xs), *w = alloc_floats(ws), *r = alloc_floats(ys);
        fill_uniform(x, xs, -1, 1);
        fill_uniform(w, ws, -1, 1);
        fill_uniform(r, ys, -1, 1);
        double *dw = alloc_doubles(ws), *dx = alloc_doubles(xs), *m1 = alloc_doubles(ws), *m2 = alloc_doubles(xs);
        double *yp = alloc_doubles(ys), *ym = alloc_doubles(ys);
        naive_conv_grads(&s, x, w, r, dw, dx, m1, m2);
        for (int e = 0; e < 6; e++) {
            bool on_w = e % 2 == 1;
            float *v = on_w ? w : x;
            size_t i = pick(on_w ? ws : xs);
            float keep = v[i];
            v[i] = keep + 0.5f;
            naive_conv(&s, x, w, yp, NULL);
            v[i] = keep - 0.5f;
            naive_conv(&s, x, w, ym, NULL);
            double step = ((double)(keep + 0.5f) - (double)(keep - 0.5f));
            v[i] = keep;
            double lp = 0, lm = 0, lmag = 0;
            for (size_t o = 0; o < ys; o++) {
                lp += r[o] * yp[o];
                lm += r[o] * ym[o];
                lmag += fabs(r[o] * yp[o]) + fabs(r[o] * ym[o]);
            }
            expect_close(on_w ? "exact dw vs its difference quotient" : "exact dx vs its difference quotient",
                i, (lp - lm) / step, on_w ? dw[i] : dx[i], 1e-12 * (1 + lmag));
        }
        free(x); free(w); free(r); free(dw); free(dx); free(m1); free(m2); free(yp); free(ym);
    }
}
END_TEST

/* The library's backward against central differences of the library's
 * forward, on random entries of x and w. L = sum R y is linear in each
 * entry, so there is no truncation error whatever the step; the step is
 * 1 (the perturbed value is exact in float for |v| < 1, and the quotient
 * divides by the step actually taken). Each output's rounding is within
 * (c_in k k + 2) U mag (see the forward test), so L's error at each
 * evaluation is within sum |R| (c_in k k + 2) U mag, and the quotient is
 * within twice that over the step; the analytic gradient's own bound (as in
 * the backward test) is added. */
START_TEST(conv_backward_matches_finite_differences)
{
    set_threads(2);
    for (size_t c = 0; c < sizeof CONV_CASES / sizeof CONV_CASES[0]; c++) {
        mislasi_conv_shape s = conv_shape_of(&CONV_CASES[c]);
        size_t xs = conv_x_size(&s), ws = conv_w_size(&s), ys = conv_y_size(&s);
        size_t pixels = mislasi_conv_out_h(&s) * mislasi_conv_out_w(&s);
        size_t threads = mislasi_conv_threads();
        float *x = alloc_floats(xs), *w = alloc_floats(ws), *r = alloc_floats(ys);
        fill_uniform(x, xs, -1, 1);
        fill_uniform(w, ws, -1, 1);
        fill_uniform(r, ys, -1, 1);
        float *scratch = alloc_floats(conv_scratch_floats(&s, threads));
        float *y = alloc_floats(ys), *dw = alloc_floats(ws), *dx = alloc_floats(xs);
        double *dw_want = alloc_doubles(ws), *dx_want = alloc_doubles(xs);
        double *dw_mag = alloc_doubles(ws), *dx_mag = alloc_doubles(xs);
        double *ye = alloc_doubles(ys), *mag = alloc_doubles(ys);
        naive_conv_grads(&s, x, w, r, dw_want, dx_want, dw_mag, dx_mag);
        conv_backward(&s, x, w, r, dw, wants_dx(&s) ? dx : NULL, scratch, threads);
        double terms = (double)(s.c_in * s.k * s.k);
        for (int e = 0; e < 8; e++) {
            bool on_w = e % 2 == 1 || !wants_dx(&s);
            float *v = on_w ? w : x;
            size_t i = pick(on_w ? ws : xs);
            float keep = v[i];
            double l[2], err = 0.0;
            const float steps[2] = { keep + 1.0f, keep - 1.0f };
            for (int side = 0; side < 2; side++) {
                v[i] = steps[side];
                conv_forward(&s, x, w, y, scratch, threads);
                l[side] = dot_rf(r, y, ys);
                naive_conv(&s, x, w, ye, mag);
                for (size_t o = 0; o < ys; o++)
                    err += fabs((double)r[o]) * (terms + 2) * U * mag[o];
            }
            v[i] = keep;
            double step = (double)steps[0] - (double)steps[1];
            double fd = (l[0] - l[1]) / step;
            double grad = on_w ? dw[i] : dx[i];
            double grad_tol = on_w ? (2.0 * (double)(s.n * pixels) + 2) * U * dw_mag[i]
                                   : ((double)(s.c_out * s.k * s.k) + 2) * U * dx_mag[i];
            if (!(fabs(fd - grad) <= err / step + grad_tol))
                ck_abort_msg("conv, " CONV_FMT ": %s[%zu] = %.9g, finite difference %.9g (tolerance %.3g)",
                    CONV_ARGS(&s), on_w ? "dw" : "dx", i, grad, fd, err / step + grad_tol);
        }
        free(x); free(w); free(r); free(scratch); free(y); free(dw); free(dx);
        free(dw_want); free(dx_want); free(dw_mag); free(dx_mag); free(ye); free(mag);
    }
}
END_TEST

/* forward_then gives the forward's bits and calls then() exactly once per
 * image, with that image's slice of y, already complete (a copy taken in
 * the callback equals the final output). The callback may run on worker
 * threads: it only sets flags and fills its image's own slot. */
/* What a per-image callback saw: how often each image came, and whether
 * one came with a wrong index or pointer (into images). `data`: the
 * callback's own (then: a snapshot to fill; before: the dy to write). */
typedef struct image_log {
    size_t n, out_size;
    float *images, *data;
    _Atomic int *calls;
    _Atomic int bad;
} image_log;

static image_log image_log_new(size_t n, size_t out_size, float *images, float *data)
{
    image_log l = {.n = n, .out_size = out_size, .images = images, .data = data};
    l.calls = malloc(n * sizeof *l.calls);
    ck_assert_ptr_nonnull(l.calls);
    for (size_t i = 0; i < n; i++)
        atomic_init(&l.calls[i], 0);
    atomic_init(&l.bad, 0);
    return l;
}

/* Counts the call; false (and the log marked bad) for a wrong one. */
static bool image_log_call(image_log *l, size_t image, const float *pointer)
{
    if (image >= l->n || pointer != l->images + image * l->out_size) {
        atomic_store(&l->bad, 1);
        return false;
    }
    atomic_fetch_add(&l->calls[image], 1);
    return true;
}

/* Every image came exactly once, as itself; frees the log. */
static void image_log_check(image_log *l, const char *what, const mislasi_conv_shape *s)
{
    ck_assert_msg(atomic_load(&l->bad) == 0, "%s, " CONV_FMT ": a call with a wrong image or pointer", what,
        CONV_ARGS(s));
    for (size_t i = 0; i < l->n; i++)
        ck_assert_msg(atomic_load(&l->calls[i]) == 1, "%s, " CONV_FMT ": image %zu came %d times", what,
            CONV_ARGS(s), i, atomic_load(&l->calls[i]));
    free(l->calls);
}

static void record_image(void *ctx, size_t image, float *y_image)
{
    image_log *l = ctx;
    if (image_log_call(l, image, y_image))
        memcpy(l->data + image * l->out_size, y_image, l->out_size * sizeof(float));
}

START_TEST(conv_forward_then_reports_each_finished_image)
{
    for (size_t c = 0; c < sizeof CONV_CASES / sizeof CONV_CASES[0]; c++) {
        mislasi_conv_shape s = conv_shape_of(&CONV_CASES[c]);
        size_t xs = conv_x_size(&s), ws = conv_w_size(&s), ys = conv_y_size(&s);
        float *x = alloc_floats(xs), *w = alloc_floats(ws);
        fill_uniform(x, xs, -1, 1);
        fill_uniform(w, ws, -1, 1);
        set_threads(1);
        float *want = alloc_floats(ys), *scratch1 = alloc_floats(conv_scratch_floats(&s, 1));
        conv_forward(&s, x, w, want, scratch1, 1);
        free(scratch1);
        for (int32_t pool = 1; pool <= 3; pool++) {
            set_threads(pool);
            size_t t = (size_t)pool;
            size_t scratch_n = conv_scratch_floats(&s, t);
            float *scratch = alloc_guarded(scratch_n), *y = alloc_guarded(ys), *snap = alloc_floats(ys);
            image_log log = image_log_new(s.n, ys / s.n, y, snap);
            conv_forward_then(&s, x, w, y, scratch, t, record_image, &log);
            check_guard(y, ys, "conv forward_then y");
            check_guard(scratch, scratch_n, "conv forward_then scratch");
            image_log_check(&log, "conv forward_then: then()", &s);
            expect_same_bits("conv forward_then y", y, want, ys);
            expect_same_bits("conv forward_then y at the callback", snap, want, ys);
            free(scratch); free(y); free(snap);
        }
        free(x); free(w); free(want);
    }
}
END_TEST

/* forward_affine is the forward followed by batch norm's evaluation form
 * (mislasi_bn_affine_image), bit for bit, with and without a residual and
 * a ReLU, for every thread count: the model's prediction and its forward
 * pass in evaluation mode must agree exactly. */
START_TEST(conv_forward_affine_is_the_forward_then_the_affine_step)
{
    for (size_t c = 0; c < sizeof CONV_CASES / sizeof CONV_CASES[0]; c++) {
        mislasi_conv_shape s = conv_shape_of(&CONV_CASES[c]);
        size_t xs = conv_x_size(&s), ws = conv_w_size(&s), ys = conv_y_size(&s), per_image = ys / s.n;
        float *x = alloc_floats(xs), *w = alloc_floats(ws), *res = alloc_floats(ys);
        float *scale = alloc_floats(s.c_out), *shift = alloc_floats(s.c_out);
        fill_uniform(x, xs, -1, 1);
        fill_uniform(w, ws, -1, 1);
        fill_uniform(res, ys, -1, 1);
        fill_uniform(scale, s.c_out, -2, 2);
        fill_uniform(shift, s.c_out, -1, 1);
        float *raw = alloc_floats(ys), *want = alloc_floats(ys);
        set_threads(1);
        float *scratch1 = alloc_floats(conv_scratch_floats(&s, 1));
        conv_forward(&s, x, w, raw, scratch1, 1);
        free(scratch1);
        mislasi_bn_shape b = {.n = s.n, .c = s.c_out, .hw = per_image / s.c_out};
        for (int variant = 0; variant < 3; variant++) {
            const float *r = variant == 2 ? res : NULL;
            bool relu = variant >= 1;
            for (size_t i = 0; i < s.n; i++)
                mislasi_bn_affine_image(&b, raw + i * per_image, scale, shift, want + i * per_image, relu,
                        r == NULL ? NULL : r + i * per_image);
            for (int32_t t = 1; t <= 3; t++) {
                set_threads(t);
                size_t scratch_n = conv_scratch_floats(&s, (size_t)t);
                float *scratch = alloc_guarded(scratch_n), *y = alloc_guarded(ys);
                mislasi_conv_affine af = {.scale = scale, .shift = shift, .residual = r, .relu = relu};
                mislasi_conv_prepare(&s, w, scratch);
                mislasi_conv_forward_affine(&s, x, scratch, y, scratch + mislasi_conv_prepared_floats(&s),
                        (size_t)t, &af);
                check_guard(y, ys, "conv forward_affine y");
                check_guard(scratch, scratch_n, "conv forward_affine scratch");
                expect_same_bits("conv forward_affine", y, want, ys);
                free(scratch);
                free(y);
            }
        }
        free(x); free(w); free(res); free(scale); free(shift); free(raw); free(want);
    }
}
END_TEST

/* backward's `before` runs once per image, on that image's dy, before the
 * image is read: a before() that writes dy = 2 r - 1 from a copy gives the
 * bits of the backward run on that dy outright, for every thread count
 * (one pass per group, or, with fewer groups than threads, a pass of its
 * own). */
static void transform_image(void *ctx, size_t image, float *dy_image)
{
    image_log *l = ctx;
    if (image_log_call(l, image, dy_image))
        for (size_t e = 0; e < l->out_size; e++)
            dy_image[e] = 2.0f * l->data[image * l->out_size + e] - 1.0f;
}

START_TEST(conv_backward_before_prepares_each_image)
{
    for (size_t c = 0; c < sizeof CONV_CASES / sizeof CONV_CASES[0]; c++) {
        mislasi_conv_shape s = conv_shape_of(&CONV_CASES[c]);
        size_t xs = conv_x_size(&s), ws = conv_w_size(&s), ys = conv_y_size(&s);
        float *x = alloc_floats(xs), *w = alloc_floats(ws), *r = alloc_floats(ys), *direct = alloc_floats(ys);
        fill_uniform(x, xs, -1, 1);
        fill_uniform(w, ws, -1, 1);
        fill_uniform(r, ys, -1, 1);
        for (size_t e = 0; e < ys; e++)
            direct[e] = 2.0f * r[e] - 1.0f;
        float *dw_want = alloc_floats(ws), *dx_want = alloc_floats(xs);
        set_threads(1);
        float *scratch1 = alloc_floats(conv_scratch_floats(&s, 1));
        conv_backward(&s, x, w, direct, dw_want, wants_dx(&s) ? dx_want : NULL, scratch1, 1);
        free(scratch1);
        for (int32_t t = 1; t <= 3; t++) {
            set_threads(t);
            size_t scratch_n = conv_scratch_floats(&s, (size_t)t);
            float *scratch = alloc_guarded(scratch_n), *dy = alloc_guarded(ys);
            float *dw = alloc_guarded(ws), *dx = alloc_guarded(xs);
            image_log log = image_log_new(s.n, ys / s.n, dy, r);
            mislasi_conv_prepare(&s, w, scratch);
            mislasi_conv_backward_prepared(&s, x, scratch, dy, transform_image, &log, NULL, NULL, dw, wants_dx(&s) ? dx : NULL,
                    scratch + mislasi_conv_prepared_floats(&s), (size_t)t);
            check_guard(dy, ys, "conv backward before: dy");
            check_guard(scratch, scratch_n, "conv backward before: scratch");
            image_log_check(&log, "conv backward: before()", &s);
            expect_same_bits("conv backward before: dy", dy, direct, ys);
            expect_same_bits("conv backward before: dw", dw, dw_want, ws);
            if (wants_dx(&s))
                expect_same_bits("conv backward before: dx", dx, dx_want, xs);
            free(scratch); free(dy); free(dw); free(dx);
        }
        free(x); free(w); free(r); free(direct); free(dw_want); free(dx_want);
    }
}
END_TEST

/* A batch cut in two at a multiple of mislasi_conv_group_images, the second
 * piece's backward given the first's weight gradient through `partial`,
 * gives the whole batch's weight gradient bit for bit (the chain a batch
 * shared between processes sums), and each image's dx unchanged; -0.0
 * everywhere as the sum before a first piece is the chain's neutral start,
 * the same bits as no partial at all. */
typedef struct partial_source {
    const float *before;
    int calls;
} partial_source;

static const float *give_partial(void *ctx)
{
    partial_source *p = ctx;
    p->calls++;
    return p->before;
}

START_TEST(conv_backward_of_a_cut_batch_chains_to_the_whole)
{
    for (size_t c = 0; c < sizeof CONV_CASES / sizeof CONV_CASES[0]; c++) {
        mislasi_conv_shape s = conv_shape_of(&CONV_CASES[c]);
        size_t group = mislasi_conv_group_images(&s);
        ck_assert_msg((group & (group - 1)) == 0, "group %zu is not a power of two", group);
        if (s.n <= group)
            continue;
        size_t xs = conv_x_size(&s), ws = conv_w_size(&s), ys = conv_y_size(&s);
        float *x = alloc_floats(xs), *w = alloc_floats(ws), *r = alloc_floats(ys);
        fill_uniform(x, xs, -1, 1);
        fill_uniform(w, ws, -1, 1);
        fill_uniform(r, ys, -1, 1);
        float *dw_whole = alloc_floats(ws), *dx_whole = alloc_floats(xs);
        float *dw_a = alloc_floats(ws), *dw_b = alloc_floats(ws), *dx_cut = alloc_floats(xs);
        float *neutral = alloc_floats(ws), *dw_neutral = alloc_floats(ws);
        for (size_t e = 0; e < ws; e++)
            neutral[e] = -0.0f;
        for (int32_t t = 1; t <= 2; t++) {
            set_threads(t);
            float *scratch = alloc_floats(conv_scratch_floats(&s, (size_t)t));
            conv_backward(&s, x, w, r, dw_whole, wants_dx(&s) ? dx_whole : NULL, scratch, (size_t)t);
            /* cut after the first group, and at the last multiple of it */
            size_t cuts[2] = {group, (s.n - 1) / group * group};
            for (int k = 0; k < 2; k++) {
                size_t a = cuts[k];
                mislasi_conv_shape sa = s, sb = s;
                sa.n = a;
                sb.n = s.n - a;
                size_t x_image = xs / s.n, y_image = ys / s.n;
                float *dy = copy_floats(r, ys);
                partial_source none = {.before = neutral}, chain = {.before = dw_a};
                mislasi_conv_prepare(&s, w, scratch);
                float *work = scratch + mislasi_conv_prepared_floats(&s);
                mislasi_conv_backward_prepared(&sa, x, scratch, dy, NULL, NULL, give_partial, &none, dw_a,
                        wants_dx(&s) ? dx_cut : NULL, work, (size_t)t);
                mislasi_conv_backward_prepared(&sb, x + a * x_image, scratch, dy + a * y_image, NULL, NULL,
                        give_partial, &chain, dw_b, wants_dx(&s) ? dx_cut + a * x_image : NULL, work, (size_t)t);
                ck_assert_int_eq(none.calls, 1);
                ck_assert_int_eq(chain.calls, 1);
                expect_same_bits("conv backward cut: dw", dw_b, dw_whole, ws);
                if (wants_dx(&s))
                    expect_same_bits("conv backward cut: dx", dx_cut, dx_whole, xs);
                mislasi_conv_backward_prepared(&sa, x, scratch, dy, NULL, NULL, NULL, NULL, dw_neutral, NULL, work,
                        (size_t)t);
                expect_same_bits("conv backward: a -0 partial is no partial", dw_a, dw_neutral, ws);
                free(dy);
            }
            free(scratch);
        }
        free(x); free(w); free(r); free(dw_whole); free(dx_whole); free(dw_a); free(dw_b); free(dx_cut);
        free(neutral); free(dw_neutral);
    }
}
END_TEST

/* ---------------------------------------------------------------- kernels */

/* Kernel set k of the three: generic, then AVX2 and AVX-512 when built and
 * run by this CPU (NULL otherwise). */
static const mislasi_conv_kernels *kernel_set(size_t k)
{
    static const char *const names[] = { "generic", "avx2", "avx512" };
    return mislasi_conv_kernels_named(names[k]);
}

/* A tile problem with random operands: taps panels of depth x lanes weights
 * and inputs read with a pixel step, as conv.c lays them out. */
typedef struct tile_case {
    size_t taps, depth, in_step, lanes;
    float *in, *w;
    const float *in_ptr[9], *w_ptr[9];
} tile_case;

static void tile_case_init(tile_case *c, size_t taps, size_t depth, size_t lanes, size_t pixels)
{
    c->taps = taps;
    c->depth = depth;
    c->lanes = lanes;
    c->in_step = depth + 3;     /* pixels apart by more than their channels, as with a stride */
    size_t in_n = pixels * c->in_step, w_n = depth * lanes;
    c->in = alloc_floats(taps * in_n);
    c->w = alloc_floats(taps * w_n);
    fill_uniform(c->in, taps * in_n, -1, 1);
    fill_uniform(c->w, taps * w_n, -1, 1);
    for (size_t t = 0; t < taps; t++) {
        c->in_ptr[t] = c->in + t * in_n;
        c->w_ptr[t] = c->w + t * w_n;
    }
}

/* out (pixels x lanes) through kernels kn in tiles of `blocks` x `rows`. */
static void run_tiles(const mislasi_conv_kernels *kn, const tile_case *c, size_t pixels, size_t blocks,
        size_t rows, float *out)
{
    mislasi_conv_tile t = {.taps = c->taps, .depth = c->depth, .in = c->in_ptr, .w = c->w_ptr,
                           .in_step = c->in_step, .w_step = c->lanes, .out_step = c->lanes};
    for (size_t b0 = 0; b0 < c->lanes / 16; b0 += blocks)
        for (size_t p0 = 0; p0 < pixels; p0 += rows) {
            t.blocks = blocks;
            t.pixels = pixels - p0 < rows ? pixels - p0 : rows;
            t.in_shift = p0 * c->in_step;
            t.w_shift = b0 * 16;
            t.out = out + p0 * c->lanes + b0 * 16;
            kn->tile(&t);
        }
}

/* Every instruction set built and runnable here gives the generic kernels'
 * bits, for every tile shape; the outputs are the definition's sums within
 * (taps depth + 2) U of their magnitudes; and a tile's shape does not change
 * an output's bits (each is one chain of fused multiply-adds, taps then
 * depth in order). */
START_TEST(conv_kernels_agree_across_instruction_sets_and_tile_shapes)
{
    const mislasi_conv_kernels *generic = kernel_set(0);
    ck_assert_ptr_nonnull(generic);
    const size_t pixels = 30, lanes = 64;
    for (size_t taps = 1; taps <= 9; taps += 4)
        for (size_t depth = 1; depth <= 37; depth += 12) {
            tile_case c;
            tile_case_init(&c, taps, depth, lanes, pixels);
            float *want = alloc_floats(pixels * lanes), *got = alloc_floats(pixels * lanes);
            run_tiles(generic, &c, pixels, 1, 1, want);
            for (size_t p = 0; p < pixels; p++)
                for (size_t l = 0; l < lanes; l++) {
                    double sum = 0, mag = 0;
                    for (size_t t = 0; t < taps; t++)
                        for (size_t d = 0; d < depth; d++) {
                            double term = (double)c.in_ptr[t][p * c.in_step + d] * c.w_ptr[t][d * lanes + l];
                            sum += term;
                            mag += fabs(term);
                        }
                    expect_close("tile output", p * lanes + l, want[p * lanes + l], sum,
                            ((double)(taps * depth) + 2) * U * mag);
                }
            for (size_t k = 0; k < 3; k++) {
                const mislasi_conv_kernels *kn = kernel_set(k);
                if (kn == NULL)
                    continue;       /* not built for, or not run by, this CPU */
                for (size_t blocks = 1; blocks <= 4; blocks *= 2)
                    for (size_t rows = 1; rows <= kn->max_rows[blocks]; rows++) {
                        refill_nan(got, pixels * lanes);
                        run_tiles(kn, &c, pixels, blocks, rows, got);
                        expect_same_bits("tile output (instruction set, tile shape)", got, want, pixels * lanes);
                    }
            }
            free(want); free(got); free(c.in); free(c.w);
        }
}
END_TEST

/* The row-tap kernel likewise: 16 lanes, each input row's value feeding
 * three outputs through three panels; every instruction set and every
 * tile width gives the generic kernel's bits, and the sums are the
 * definition's within (3 rows depth + 2) U of their magnitudes. */
START_TEST(conv_row_tap_kernels_agree)
{
    enum { PIXELS = 30, LANES = 16 };
    for (size_t rows = 1; rows <= 3; rows++)
        for (size_t depth = 1; depth <= 33; depth += 16) {
            size_t in_step = depth + 1, in_n = (PIXELS + 2) * in_step, w_n = depth * LANES;
            float *in = alloc_floats(rows * in_n), *w = alloc_floats(rows * 3 * w_n);
            fill_uniform(in, rows * in_n, -1, 1);
            fill_uniform(w, rows * 3 * w_n, -1, 1);
            const float *in_ptr[3], *w_ptr[9];
            for (size_t r = 0; r < rows; r++) {
                in_ptr[r] = in + r * in_n;
                for (size_t i = 0; i < 3; i++)
                    w_ptr[3 * r + i] = w + (3 * r + i) * w_n;
            }
            float want[PIXELS * LANES], got[PIXELS * LANES];
            for (size_t k = 0; k < 3; k++) {
                const mislasi_conv_kernels *kn = kernel_set(k);
                if (kn == NULL)
                    continue;
                for (size_t width = 1; width <= kn->max_row_pixels; width++) {
                    refill_nan(got, PIXELS * LANES);
                    for (size_t p0 = 0; p0 < PIXELS; p0 += width) {
                        mislasi_conv_tile t = {.taps = rows, .depth = depth, .in = in_ptr, .w = w_ptr,
                                               .in_shift = p0 * in_step, .in_step = in_step, .w_step = LANES,
                                               .out = got + p0 * LANES, .out_step = LANES, .blocks = 1,
                                               .pixels = PIXELS - p0 < width ? PIXELS - p0 : width};
                        kn->row_tile(&t);
                    }
                    if (k == 0 && width == 1) {
                        memcpy(want, got, sizeof want);
                        for (size_t p = 0; p < PIXELS; p++)
                            for (size_t l = 0; l < LANES; l++) {
                                double sum = 0, mag = 0;
                                for (size_t r = 0; r < rows; r++)
                                    for (size_t i = 0; i < 3; i++)
                                        for (size_t d = 0; d < depth; d++) {
                                            double term = (double)in_ptr[r][(p + i) * in_step + d] *
                                                          w_ptr[3 * r + i][d * LANES + l];
                                            sum += term;
                                            mag += fabs(term);
                                        }
                                expect_close("row-tap tile", p * LANES + l, want[p * LANES + l], sum,
                                        ((double)(3 * rows * depth) + 2) * U * mag);
                            }
                    } else {
                        expect_same_bits("row-tap tile (instruction set, width)", got, want, PIXELS * LANES);
                    }
                }
            }
            free(in);
            free(w);
        }
}
END_TEST

/* The weight-gradient kernel likewise: out (rows x lanes) = sum over runs,
 * then pixels, of x dy, split over calls that go on accumulating. */
START_TEST(conv_weight_gradient_kernels_agree)
{
    enum { RUNS = 5, LENGTH = 11, CHANNELS = 30, LANES = 64 };
    size_t x_step = CHANNELS + 2, dy_step = LANES;
    float *x = alloc_floats(RUNS * LENGTH * x_step), *dy = alloc_floats(RUNS * LENGTH * dy_step);
    fill_uniform(x, RUNS * LENGTH * x_step, -1, 1);
    fill_uniform(dy, RUNS * LENGTH * dy_step, -1, 1);
    const float *xs[RUNS], *dys[RUNS];
    for (size_t r = 0; r < RUNS; r++) {
        xs[r] = x + r * LENGTH * x_step;
        dys[r] = dy + r * LENGTH * dy_step;
    }
    float want[CHANNELS * LANES], got[CHANNELS * LANES];
    for (size_t k = 0; k < 3; k++) {
        const mislasi_conv_kernels *kn = kernel_set(k);
        if (kn == NULL)
            continue;
        for (size_t blocks = 1; blocks <= 4; blocks++)
            for (size_t rows = 1; rows <= kn->max_rows[blocks]; rows++)
                for (size_t split = 1; split <= 2; split++) {
                    refill_nan(got, CHANNELS * LANES);
                    for (size_t b0 = 0; b0 < LANES / 16; b0 += blocks)
                        for (size_t i0 = 0; i0 < CHANNELS; i0 += rows) {
                            mislasi_conv_wgrad g = {.length = LENGTH, .x_step = x_step, .dy_step = dy_step,
                                                    .out_step = LANES, .x_shift = i0, .dy_shift = b0 * 16,
                                                    .blocks = LANES / 16 - b0 < blocks ? LANES / 16 - b0 : blocks,
                                                    .rows = CHANNELS - i0 < rows ? CHANNELS - i0 : rows,
                                                    .out = got + i0 * LANES + b0 * 16};
                            /* split = 2: the runs in two calls, the second accumulating */
                            size_t first = split == 1 ? RUNS : 2;
                            g.x = xs;
                            g.dy = dys;
                            g.runs = first;
                            kn->wgrad(&g);
                            if (first < RUNS) {
                                g.x = xs + first;
                                g.dy = dys + first;
                                g.runs = RUNS - first;
                                g.accumulate = true;
                                kn->wgrad(&g);
                            }
                        }
                    if (k == 0 && blocks == 1 && rows == 1 && split == 1) {
                        memcpy(want, got, sizeof want);
                        for (size_t i = 0; i < CHANNELS; i++)
                            for (size_t l = 0; l < LANES; l++) {
                                double sum = 0, mag = 0;
                                for (size_t r = 0; r < RUNS; r++)
                                    for (size_t q = 0; q < LENGTH; q++) {
                                        double term = (double)xs[r][q * x_step + i] * dys[r][q * dy_step + l];
                                        sum += term;
                                        mag += fabs(term);
                                    }
                                expect_close("weight-gradient tile", i * LANES + l, want[i * LANES + l], sum,
                                        (RUNS * LENGTH + 2) * U * mag);
                            }
                    } else {
                        expect_same_bits("weight-gradient tile (instruction set, shape, split)", got, want,
                                CHANNELS * LANES);
                    }
                }
    }
    free(x);
    free(dy);
}
END_TEST

/* The row-tap weight gradient likewise: three taps' sums from one
 * broadcast, dy read up to two pixels before each run (zeros there). */
START_TEST(conv_row_tap_weight_gradient_kernels_agree)
{
    enum { RUNS = 4, LENGTH = 13, CHANNELS = 19, LANES = 16, MARGIN = 2 };
    size_t x_step = CHANNELS + 1, dy_step = LANES, dy_run = (LENGTH + MARGIN) * dy_step;
    float *x = alloc_floats(RUNS * LENGTH * x_step), *dy = alloc_floats(RUNS * dy_run);
    fill_uniform(x, RUNS * LENGTH * x_step, -1, 1);
    fill_uniform(dy, RUNS * dy_run, -1, 1);
    const float *xs[RUNS], *dys[RUNS];
    for (size_t r = 0; r < RUNS; r++) {
        xs[r] = x + r * LENGTH * x_step;
        dys[r] = dy + r * dy_run + MARGIN * dy_step;
    }
    float want[3 * CHANNELS * LANES], got[3 * CHANNELS * LANES];
    for (size_t k = 0; k < 3; k++) {
        const mislasi_conv_kernels *kn = kernel_set(k);
        if (kn == NULL)
            continue;
        for (size_t rows = 1; rows <= kn->max_row_wgrad_rows; rows++)
            for (size_t split = 1; split <= 2; split++) {
                memset(got, 0, sizeof got);
                for (size_t j0 = 0; j0 < CHANNELS; j0 += rows) {
                    mislasi_conv_wgrad g = {.length = LENGTH, .x_step = x_step, .dy_step = dy_step,
                                            .out_step = LANES, .out_tap = CHANNELS * LANES, .x_shift = j0,
                                            .blocks = 1, .rows = CHANNELS - j0 < rows ? CHANNELS - j0 : rows,
                                            .out = got + j0 * LANES, .x = xs, .dy = dys};
                    size_t first = split == 1 ? RUNS : 1;
                    g.runs = first;
                    kn->row_wgrad(&g);
                    if (first < RUNS) {
                        g.x = xs + first;
                        g.dy = dys + first;
                        g.runs = RUNS - first;
                        g.accumulate = true;
                        kn->row_wgrad(&g);
                    }
                }
                if (k == 0 && rows == 1 && split == 1) {
                    memcpy(want, got, sizeof want);
                    for (size_t i = 0; i < 3; i++)
                        for (size_t j = 0; j < CHANNELS; j++)
                            for (size_t l = 0; l < LANES; l++) {
                                double sum = 0, mag = 0;
                                for (size_t r = 0; r < RUNS; r++)
                                    for (size_t q = 0; q < LENGTH; q++) {
                                        double term = (double)xs[r][q * x_step + j] *
                                                      dys[r][((long)q - (long)i) * (long)dy_step + (long)l];
                                        sum += term;
                                        mag += fabs(term);
                                    }
                                size_t at = (i * CHANNELS + j) * LANES + l;
                                expect_close("row-tap weight gradient", at, want[at], sum,
                                        (RUNS * LENGTH + 2) * U * mag);
                            }
                } else {
                    expect_same_bits("row-tap weight gradient (instruction set, rows, split)", got, want,
                            3 * CHANNELS * LANES);
                }
            }
    }
    free(x);
    free(dy);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conv");
    TCase *conv = tcase_create("conv");
    tcase_add_test(conv, conv_output_size);
    tcase_add_test(conv, conv_forward_matches_the_definition);
    tcase_add_test(conv, conv_backward_matches_the_exact_gradients);
    tcase_add_test(conv, conv_exact_gradients_are_the_derivative_of_the_definition);
    tcase_add_test(conv, conv_backward_matches_finite_differences);
    tcase_add_test(conv, conv_forward_then_reports_each_finished_image);
    tcase_add_test(conv, conv_forward_affine_is_the_forward_then_the_affine_step);
    tcase_add_test(conv, conv_backward_before_prepares_each_image);
    tcase_add_test(conv, conv_backward_of_a_cut_batch_chains_to_the_whole);
    suite_add_tcase(s, conv);
    TCase *kernels = tcase_create("kernels");
    tcase_add_test(kernels, conv_kernels_agree_across_instruction_sets_and_tile_shapes);
    tcase_add_test(kernels, conv_row_tap_kernels_agree);
    tcase_add_test(kernels, conv_weight_gradient_kernels_agree);
    tcase_add_test(kernels, conv_row_tap_weight_gradient_kernels_agree);
    suite_add_tcase(s, kernels);
    return test_run_suite(s);
}
