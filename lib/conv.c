/* 2-D convolution as matrix products (layers.h).
 *
 * The batch is cut into groups of whole images small enough that a group's
 * column matrix (c_in*k*k rows, one column per output pixel of the group)
 * stays in the core's cache: about 1024 columns, which is one 32x32 image
 * or several smaller ones. Each group is an independent job: unfold
 * (im2col), one BLIS product, fold back. Unfolding whole batches at once
 * instead streams a column matrix of ~75 MB through memory per layer and
 * runs at a third of the speed (FIELD-NOTES.md).
 *
 * The weight gradient of each group goes to its own slot and the slots are
 * summed in group order, so the result is the same for any thread count. */
#include "layers.h"

#include "blas.h"
#include "threads.h"

#include <mislas/common.h>

#include <string.h>

enum { GROUP_COLUMNS = 1024 };

size_t mislasi_conv_out_h(const mislasi_conv_shape *s)
{
    return (s->h + 2 * s->pad - s->k) / s->stride + 1;
}

size_t mislasi_conv_out_w(const mislasi_conv_shape *s)
{
    return (s->w + 2 * s->pad - s->k) / s->stride + 1;
}

size_t mislasi_conv_threads(void)
{
    return (size_t)mislas_num_threads();
}

typedef struct geometry {
    size_t rows;        /* c_in * k * k */
    size_t pixels;      /* output pixels per image */
    size_t group;       /* images per group */
    size_t groups;
    bool direct;        /* 1x1, stride 1, no padding, one image per group: no unfolding */
} geometry;

static geometry geometry_of(const mislasi_conv_shape *s)
{
    geometry g;
    g.rows = s->c_in * s->k * s->k;
    g.pixels = mislasi_conv_out_h(s) * mislasi_conv_out_w(s);
    g.group = g.pixels >= GROUP_COLUMNS ? 1 : GROUP_COLUMNS / g.pixels;
    if (g.group > s->n)
        g.group = s->n;
    g.groups = (s->n + g.group - 1) / g.group;
    g.direct = s->k == 1 && s->stride == 1 && s->pad == 0 && g.group == 1;
    return g;
}

/* Per thread: the columns, the product (or the gathered output gradient)
 * and the columns' gradient; then one weight-gradient slot per group. */
static size_t per_thread_floats(const mislasi_conv_shape *s, const geometry *g)
{
    size_t columns = g->group * g->pixels;
    return 2 * g->rows * columns + s->c_out * columns;
}

size_t mislasi_conv_scratch_floats(const mislasi_conv_shape *s, size_t threads)
{
    geometry g = geometry_of(s);
    size_t parts = threads < g.groups ? threads : g.groups;
    return parts * per_thread_floats(s, &g) + g.groups * s->c_out * g.rows;
}

/* cols (rows x ld) columns [col0, col0 + pixels) = image x unfolded. */
static void unfold(const mislasi_conv_shape *s, const float *x, float *cols, size_t ld, size_t col0)
{
    size_t oh_n = mislasi_conv_out_h(s), ow_n = mislasi_conv_out_w(s);
    size_t k = s->k, stride = s->stride;
    long pad = (long)s->pad, h = (long)s->h, w = (long)s->w;
    for (size_t ci = 0; ci < s->c_in; ci++) {
        const float *plane = x + ci * s->h * s->w;
        for (size_t i = 0; i < k; i++) {
            for (size_t j = 0; j < k; j++) {
                float *row = cols + ((ci * k + i) * k + j) * ld + col0;
                for (size_t oh = 0; oh < oh_n; oh++) {
                    float *out = row + oh * ow_n;
                    long ih = (long)(oh * stride + i) - pad;
                    if (ih < 0 || ih >= h) {
                        memset(out, 0, ow_n * sizeof *out);
                        continue;
                    }
                    const float *in = plane + ih * w;
                    if (stride == 1) {
                        /* iw = ow + j - pad: a contiguous run with zero edges */
                        long shift = (long)j - pad;
                        long lo = shift < 0 ? -shift : 0;
                        long hi = w - shift < (long)ow_n ? w - shift : (long)ow_n;
                        if (hi < lo)
                            hi = lo;
                        for (long ow = 0; ow < lo; ow++)
                            out[ow] = 0.0f;
                        memcpy(out + lo, in + lo + shift, (size_t)(hi - lo) * sizeof *out);
                        for (long ow = hi; ow < (long)ow_n; ow++)
                            out[ow] = 0.0f;
                    } else {
                        for (size_t ow = 0; ow < ow_n; ow++) {
                            long iw = (long)(ow * stride + j) - pad;
                            out[ow] = iw < 0 || iw >= w ? 0.0f : in[iw];
                        }
                    }
                }
            }
        }
    }
}

/* dx image = the unfolded gradient folded back (overwrites dx). */
static void fold(const mislasi_conv_shape *s, const float *cols, size_t ld, size_t col0, float *dx)
{
    size_t oh_n = mislasi_conv_out_h(s), ow_n = mislasi_conv_out_w(s);
    size_t k = s->k, stride = s->stride;
    long pad = (long)s->pad, h = (long)s->h, w = (long)s->w;
    memset(dx, 0, s->c_in * s->h * s->w * sizeof *dx);
    for (size_t ci = 0; ci < s->c_in; ci++) {
        float *plane = dx + ci * s->h * s->w;
        for (size_t i = 0; i < k; i++) {
            for (size_t j = 0; j < k; j++) {
                const float *row = cols + ((ci * k + i) * k + j) * ld + col0;
                for (size_t oh = 0; oh < oh_n; oh++) {
                    const float *in = row + oh * ow_n;
                    long ih = (long)(oh * stride + i) - pad;
                    if (ih < 0 || ih >= h)
                        continue;
                    float *out = plane + ih * w;
                    if (stride == 1) {
                        long shift = (long)j - pad;
                        long lo = shift < 0 ? -shift : 0;
                        long hi = w - shift < (long)ow_n ? w - shift : (long)ow_n;
                        for (long ow = lo; ow < hi; ow++)
                            out[ow + shift] += in[ow];
                    } else {
                        for (size_t ow = 0; ow < ow_n; ow++) {
                            long iw = (long)(ow * stride + j) - pad;
                            if (iw >= 0 && iw < w)
                                out[iw] += in[ow];
                        }
                    }
                }
            }
        }
    }
}

typedef struct job {
    const mislasi_conv_shape *s;
    geometry g;
    const float *x, *w, *dy;
    float *y, *dw, *dx;
    float *scratch;     /* parts per-thread areas, then the weight-gradient slots */
    size_t parts;
} job;

static void forward_group(const job *jb, float *area, size_t group)
{
    const mislasi_conv_shape *s = jb->s;
    const geometry *g = &jb->g;
    size_t first = group * g->group;
    size_t count = s->n - first < g->group ? s->n - first : g->group;
    size_t in_size = s->c_in * s->h * s->w, out_size = s->c_out * g->pixels;
    size_t columns = count * g->pixels;
    if (g->direct) {
        mislasi_sgemm(false, false, s->c_out, g->pixels, g->rows, 1.0f, jb->w, g->rows,
                jb->x + first * in_size, g->pixels, 0.0f, jb->y + first * out_size, g->pixels);
        return;
    }
    float *cols = area, *product = area + 2 * g->rows * g->group * g->pixels;
    for (size_t i = 0; i < count; i++)
        unfold(s, jb->x + (first + i) * in_size, cols, columns, i * g->pixels);
    if (count == 1) {
        mislasi_sgemm(false, false, s->c_out, columns, g->rows, 1.0f, jb->w, g->rows,
                cols, columns, 0.0f, jb->y + first * out_size, columns);
        return;
    }
    mislasi_sgemm(false, false, s->c_out, columns, g->rows, 1.0f, jb->w, g->rows,
            cols, columns, 0.0f, product, columns);
    for (size_t i = 0; i < count; i++)
        for (size_t co = 0; co < s->c_out; co++)
            memcpy(jb->y + (first + i) * out_size + co * g->pixels,
                    product + co * columns + i * g->pixels, g->pixels * sizeof(float));
}

static void backward_group(const job *jb, float *area, size_t group)
{
    const mislasi_conv_shape *s = jb->s;
    const geometry *g = &jb->g;
    size_t first = group * g->group;
    size_t count = s->n - first < g->group ? s->n - first : g->group;
    size_t in_size = s->c_in * s->h * s->w, out_size = s->c_out * g->pixels;
    size_t columns = count * g->pixels;
    float *slot = jb->scratch + jb->parts * per_thread_floats(s, g) + group * s->c_out * g->rows;
    float *cols = area, *dcols = area + g->rows * g->group * g->pixels;
    float *gathered = area + 2 * g->rows * g->group * g->pixels;

    const float *dy;
    if (count == 1) {
        dy = jb->dy + first * out_size;
    } else {
        for (size_t i = 0; i < count; i++)
            for (size_t co = 0; co < s->c_out; co++)
                memcpy(gathered + co * columns + i * g->pixels,
                        jb->dy + (first + i) * out_size + co * g->pixels, g->pixels * sizeof(float));
        dy = gathered;
    }
    const float *x_cols;
    if (g->direct) {
        x_cols = jb->x + first * in_size;
    } else {
        for (size_t i = 0; i < count; i++)
            unfold(s, jb->x + (first + i) * in_size, cols, columns, i * g->pixels);
        x_cols = cols;
    }
    /* The group's dW, transposed: cols (rows x columns) * dY^T. BLIS packs
     * this orientation 2-3x faster than dY * cols^T (measured on ResNet-32's
     * shapes), and the reduction below transposes for free. */
    mislasi_sgemm(false, true, g->rows, s->c_out, columns, 1.0f, x_cols, columns,
            dy, columns, 0.0f, slot, s->c_out);
    if (jb->dx == NULL)
        return;
    if (g->direct) {
        mislasi_sgemm(true, false, g->rows, columns, s->c_out, 1.0f, jb->w, g->rows,
                dy, columns, 0.0f, jb->dx + first * in_size, columns);
        return;
    }
    /* dcols (rows x columns) = W^T * dY */
    mislasi_sgemm(true, false, g->rows, columns, s->c_out, 1.0f, jb->w, g->rows,
            dy, columns, 0.0f, dcols, columns);
    for (size_t i = 0; i < count; i++)
        fold(s, dcols, columns, i * g->pixels, jb->dx + (first + i) * in_size);
}

/* Part p of jb->parts takes a contiguous run of groups with its own area. */
static void run_parts(void *ctx, size_t begin, size_t end, bool backward)
{
    const job *jb = ctx;
    for (size_t p = begin; p < end; p++) {
        float *area = jb->scratch + p * per_thread_floats(jb->s, &jb->g);
        size_t g0 = jb->g.groups * p / jb->parts, g1 = jb->g.groups * (p + 1) / jb->parts;
        for (size_t group = g0; group < g1; group++) {
            if (backward)
                backward_group(jb, area, group);
            else
                forward_group(jb, area, group);
        }
    }
}

static void forward_parts(void *ctx, size_t begin, size_t end)
{
    run_parts(ctx, begin, end, false);
}

static void backward_parts(void *ctx, size_t begin, size_t end)
{
    run_parts(ctx, begin, end, true);
}

void mislasi_conv_forward(const mislasi_conv_shape *s, const float *x, const float *w,
        float *y, float *scratch, size_t threads)
{
    job jb = {.s = s, .g = geometry_of(s), .x = x, .w = w, .y = y, .scratch = scratch};
    jb.parts = threads < jb.g.groups ? threads : jb.g.groups;
    mislasi_parallel_for(jb.parts, 1, forward_parts, &jb);
}

typedef struct reduce_job {
    const float *slots;         /* per group: dW^T, rows x c_out */
    size_t groups, rows, c_out;
    float *dw;                  /* c_out x rows */
} reduce_job;

/* dw = the sum of the groups' slots in group order, for output channels
 * [begin, end). */
static void reduce_slots(void *ctx, size_t begin, size_t end)
{
    const reduce_job *r = ctx;
    size_t size = r->rows * r->c_out;
    for (size_t co = begin; co < end; co++) {
        float *out = r->dw + co * r->rows;
        for (size_t i = 0; i < r->rows; i++)
            out[i] = r->slots[i * r->c_out + co];
        for (size_t g = 1; g < r->groups; g++) {
            const float *slot = r->slots + g * size;
            for (size_t i = 0; i < r->rows; i++)
                out[i] += slot[i * r->c_out + co];
        }
    }
}

void mislasi_conv_backward(const mislasi_conv_shape *s, const float *x, const float *w,
        const float *dy, float *dw, float *dx, float *scratch, size_t threads)
{
    job jb = {.s = s, .g = geometry_of(s), .x = x, .w = w, .dy = dy, .dw = dw, .dx = dx,
              .scratch = scratch};
    jb.parts = threads < jb.g.groups ? threads : jb.g.groups;
    mislasi_parallel_for(jb.parts, 1, backward_parts, &jb);
    reduce_job r = {.slots = scratch + jb.parts * per_thread_floats(s, &jb.g),
                    .groups = jb.g.groups, .rows = jb.g.rows, .c_out = s->c_out, .dw = dw};
    mislasi_parallel_for(s->c_out, 1, reduce_slots, &r);
}
