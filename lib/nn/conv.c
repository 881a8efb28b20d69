/* 2-D convolution as matrix products through BLIS (nn.h).
 *
 * The batch is cut into groups of whole images whose working set stays in
 * the core's cache (about 1000-1300 product columns: one 32x32 image or
 * several smaller ones). Each group is an independent job on one thread:
 * unfold, one BLIS product, fold back. Unfolding a whole batch at once
 * streams a ~75 MB column matrix through memory per layer and runs at a
 * third of the speed (docs/models.md, "How the convolutions are computed").
 *
 * Two ways to unfold:
 *   - im2col, any kernel / stride / padding: rows (ci, i, j), one column per
 *     output pixel; y = W * cols. The reference path.
 *   - row shift, for 3x3 stride-1 padding-1 convolutions (nearly all of a
 *     ResNet's work): only the three horizontal taps are unfolded, over the
 *     image's rows plus one zero row above and below, so that a vertical
 *     tap i is a shift by i rows, i.e. by i*w columns. The three vertical
 *     taps go into the product's M dimension instead of K:
 *         Y3 (3 c_out x cols) = W3 (3 c_out x 3 c_in) * rows3 (3 c_in x cols)
 *         y[co, p] = Y3[(0, co), p] + Y3[(1, co), p + w] + Y3[(2, co), p + 2w]
 *     The unfolded matrix is 3x the image instead of 9x, and BLIS runs the
 *     taller, shallower product at 1.2-1.9x the speed on ResNet-32's shapes
 *     (measured here; c_out = 16 wastes half of an AVX-512 kernel's rows).
 *     The backward products have the same shape.
 *
 * Every weight-gradient product writes its group's own slot and the slots
 * are summed in group order, so results are the same for any thread count. */
#include "nn.h"

#include "util/util.h"

#include <mislas/common.h>

#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

/* Product columns a group aims for. */
enum { GROUP_COLUMNS = 1280 };

/* Products run over a multiple of this many columns (the extra ones are
 * zero and their results unused): BLIS's AVX-512 kernel covers 32 columns
 * at a time (MR, after BLIS transposes our row-major products for it) and
 * handles a ragged last block through a slow element-wise copy, which cost
 * ~25 % on a 48 x 840 x 48 product. 32 is also a multiple of the AVX2
 * kernels' 16. */
enum { COLUMN_BLOCK = 32 };

static size_t padded(const mislasi_tile_kernel *t, size_t columns)
{
    size_t cb = t->col_block;
    size_t block = COLUMN_BLOCK % cb == 0 ? COLUMN_BLOCK : COLUMN_BLOCK * cb;
    return (columns + block - 1) / block * block;
}

/* Zeroes columns [from, to) of a rows x ld matrix. */
static void zero_columns(float *m, size_t rows, size_t ld, size_t from, size_t to)
{
    if (to > from)
        for (size_t r = 0; r < rows; r++)
            memset(m + r * ld + from, 0, (to - from) * sizeof *m);
}

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

/* The row-shift layout of one image: rows3 (3 c_in x ld) from column col0
 * on holds (h + 1) w columns: a zero row, then the image's h rows. Stacked
 * images share the zero rows between them (the next image's first row, or
 * the group's closing zero row, ends this one), so a group of g images has
 * g (h + 1) w + w columns. Row (ci, j), column r w + c holds
 * x[ci, r - 1, c + j - 1] (zero outside the image). */
static size_t shared_span(const mislasi_conv_shape *s)
{
    return (s->h + 1) * s->w;
}

typedef struct geometry {
    bool row_shift;
    bool direct;        /* 1x1, stride 1, no padding, one image per group: no unfolding */
    size_t rows;        /* K of the forward product: c_in k k, or 3 c_in */
    size_t outs;        /* M of the forward product: c_out, or 3 c_out */
    size_t pixels;      /* output pixels per image */
    size_t span;        /* product columns per image: pixels, or (h + 1) w */
    size_t tail;        /* product columns after the last image: 0, or w */
    size_t group;       /* images per group */
    size_t groups;
    const mislasi_tile_kernel *tile;
} geometry;

static geometry geometry_of(const mislasi_conv_shape *s)
{
    geometry g;
    g.tile = mislasi_tile_kernel_get();
    g.row_shift = s->k == 3 && s->stride == 1 && s->pad == 1;
    g.pixels = mislasi_conv_out_h(s) * mislasi_conv_out_w(s);
    if (g.row_shift) {
        g.rows = 3 * s->c_in;
        g.outs = 3 * s->c_out;
        g.span = shared_span(s);
    } else {
        g.rows = s->c_in * s->k * s->k;
        g.outs = s->c_out;
        g.span = g.pixels;
    }
    g.tail = g.row_shift ? s->w : 0;
    g.group = g.span >= GROUP_COLUMNS ? 1 : GROUP_COLUMNS / g.span;
    if (g.group > s->n)
        g.group = s->n > 0 ? s->n : 1;     /* n = 0: a shape for preparing weights only */
    g.groups = (s->n + g.group - 1) / g.group;
    g.direct = s->k == 1 && s->stride == 1 && s->pad == 0 && g.group == 1;
    return g;
}

/* The weights as the products read them ("prepared"): for im2col, W^T
 * (rows x outs; BLIS packs a transposed left operand with unit-stride
 * copies but a row-major one element by element); for the row shift, W3
 * in the tile kernel's panels (ceil(outs / out_block) panels of rows x
 * out_block) for the forward product, and W3 itself (outs x rows) for the
 * input gradient's. */
/* Kernels load their operands with aligned vector moves: every panel and
 * buffer starts on a 64-byte boundary (mislasi_align_floats). */
static size_t panel_stride(const geometry *g)
{
    return mislasi_align_floats(g->tile->out_block * g->rows);
}

static size_t panels_floats(const geometry *g)
{
    size_t ob = g->tile->out_block;
    return (g->outs + ob - 1) / ob * panel_stride(g);
}

/* The input gradient's panels: W3^T, outputs = rows, depth = outs. */
static size_t back_panel_stride(const geometry *g)
{
    return mislasi_align_floats(g->tile->out_block * g->outs);
}

static size_t back_panels_floats(const geometry *g)
{
    size_t ob = g->tile->out_block;
    return (g->rows + ob - 1) / ob * back_panel_stride(g);
}

static size_t prepared_floats(const geometry *g)
{
    if (!g->row_shift)
        return mislasi_align_floats(g->outs * g->rows);
    return panels_floats(g) + mislasi_align_floats(g->outs * g->rows) + back_panels_floats(g);
}

/* Callers' buffers need not be aligned: the layer starts its own areas on
 * the next 64-byte boundary, which the sizes below leave room for. */
static float *align64(float *p)
{
    return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

size_t mislasi_conv_prepared_floats(const mislasi_conv_shape *s)
{
    geometry g = geometry_of(s);
    return prepared_floats(&g) + 16;
}

/* Work: [per thread: unfolded (rows x columns), unfolded gradient (the
 * same), product or output gradient (outs x columns), the output gradient
 * in the tile kernel's panels (the same)] [per group: a weight-gradient
 * slot, rows x outs]. Columns are padded to whole panels. */
static size_t per_thread_floats(const geometry *g)
{
    size_t columns = padded(g->tile, g->group * g->span + g->tail);
    size_t ob = g->tile->out_block, cb = g->tile->col_block;
    size_t transposed = mislasi_align_floats((g->rows + ob - 1) / ob * ob * columns) + (g->outs + cb - 1) / cb * cb * columns;
    return 2 * g->rows * columns + 2 * g->outs * columns + (g->row_shift ? transposed : 0);
}

size_t mislasi_conv_work_floats(const mislasi_conv_shape *s, size_t threads)
{
    geometry g = geometry_of(s);
    size_t parts = threads < g.groups ? threads : g.groups;
    return parts * per_thread_floats(&g) + g.groups * g.outs * g.rows + 16;
}

/* ---- im2col ---------------------------------------------------------------- */

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
                    for (size_t ow = 0; ow < ow_n; ow++) {
                        long iw = (long)(ow * stride + j) - pad;
                        out[ow] = iw < 0 || iw >= w ? 0.0f : in[iw];
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

/* ---- row shift (3x3, stride 1, padding 1) ----------------------------------- */

static void unfold_rows(const mislasi_conv_shape *s, const float *x, float *rows3, size_t ld, size_t col0,
        bool last)
{
    size_t h = s->h, w = s->w, hw = h * w;
    for (size_t ci = 0; ci < s->c_in; ci++) {
        const float *plane = x + ci * hw;
        float *left = rows3 + (ci * 3 + 0) * ld + col0;
        float *mid = rows3 + (ci * 3 + 1) * ld + col0;
        float *right = rows3 + (ci * 3 + 2) * ld + col0;
        memset(left, 0, w * sizeof(float));
        memset(mid, 0, w * sizeof(float));
        memset(right, 0, w * sizeof(float));
        /* whole-plane copies shifted by one pixel, then the columns that
         * wrapped around from the neighbouring row set to zero */
        memcpy(mid + w, plane, hw * sizeof(float));
        memcpy(left + w + 1, plane, (hw - 1) * sizeof(float));
        memcpy(right + w, plane + 1, (hw - 1) * sizeof(float));
        for (size_t r = 1; r <= h; r++) {
            left[r * w] = 0.0f;
            right[r * w + w - 1] = 0.0f;
        }
        if (last) {
            memset(left + (h + 1) * w, 0, w * sizeof(float));
            memset(mid + (h + 1) * w, 0, w * sizeof(float));
            memset(right + (h + 1) * w, 0, w * sizeof(float));
        }
    }
}

/* The same rows in the tile kernel's data panels: column q of row k is at
 * panels[(q / cb) * rows * cb + k * cb + q % cb] (cb = col_block). */
typedef struct panel_rows {
    float *base;
    size_t rows, cb;
} panel_rows;

static float *panel_at(const panel_rows *p, size_t k, size_t q)
{
    return p->base + (q / p->cb) * p->rows * p->cb + k * p->cb + q % p->cb;
}

/* Row k, columns [q, q + len) = src[0 .. len) (src NULL: zeros). */
static void panel_write(const panel_rows *p, size_t k, size_t q, const float *src, size_t len)
{
    size_t off = q % p->cb, stride = p->rows * p->cb;
    float *dst = panel_at(p, k, q);
    while (len > 0) {
        size_t run = p->cb - off;
        if (run > len)
            run = len;
        if (src != NULL) {
            memcpy(dst, src, run * sizeof(float));
            src += run;
        } else {
            memset(dst, 0, run * sizeof(float));
        }
        len -= run;
        dst += stride - off;    /* the next panel's first column of this row */
        off = 0;
    }
}

/* Zeroes row k at columns q, q + step, q + step * 2, ... (count of them),
 * walking the panels without dividing. */
static void panel_zero_every(const panel_rows *p, size_t k, size_t q, size_t step, size_t count)
{
    size_t panel = q / p->cb, off = q % p->cb;
    for (size_t i = 0; i < count; i++) {
        p->base[panel * p->rows * p->cb + k * p->cb + off] = 0.0f;
        off += step;
        while (off >= p->cb) {
            off -= p->cb;
            panel++;
        }
    }
}

/* unfold_rows into panels: the image's (h + 1) w columns from col0 on. */
static void unfold_rows_panels(const mislasi_conv_shape *s, const float *x, const panel_rows *p, size_t col0,
        bool last)
{
    size_t h = s->h, w = s->w, hw = h * w;
    for (size_t ci = 0; ci < s->c_in; ci++) {
        const float *plane = x + ci * hw;
        size_t left = ci * 3, mid = ci * 3 + 1, right = ci * 3 + 2;
        for (size_t k = left; k <= right; k++)
            panel_write(p, k, col0, NULL, w);
        panel_write(p, mid, col0 + w, plane, hw);
        panel_write(p, left, col0 + w + 1, plane, hw - 1);
        panel_write(p, right, col0 + w, plane + 1, hw - 1);
        /* the columns that wrapped around from the neighbouring row */
        panel_zero_every(p, left, col0 + w, w, h);
        panel_zero_every(p, right, col0 + w + w - 1, w, h);
        if (last)
            for (size_t k = left; k <= right; k++)
                panel_write(p, k, col0 + (h + 1) * w, NULL, w);
    }
}

/* y image (c_out x h w) = the three vertical taps of Y3 added, in tap order. */
static void combine_taps(const mislasi_conv_shape *s, const float *y3, size_t ld, size_t col0, float *y)
{
    size_t hw = s->h * s->w, w = s->w;
    for (size_t co = 0; co < s->c_out; co++) {
        const float *t0 = y3 + co * ld + col0;
        const float *t1 = y3 + (s->c_out + co) * ld + col0 + w;
        const float *t2 = y3 + (2 * s->c_out + co) * ld + col0 + 2 * w;
        float *out = y + co * hw;
        for (size_t p = 0; p < hw; p++)
            out[p] = t0[p] + t1[p] + t2[p];
    }
}

/* The same with the affine step fused in (r: this image's residual or
 * NULL); the same arithmetic as combine_taps then mislasi_affine_plane, so
 * the same bits. */
static void combine_taps_affine(const mislasi_conv_shape *s, const float *y3, size_t ld, size_t col0, float *y,
        const mislasi_conv_affine *af, const float *r)
{
    size_t hw = s->h * s->w, w = s->w;
    for (size_t co = 0; co < s->c_out; co++) {
        const float *t0 = y3 + co * ld + col0;
        const float *t1 = y3 + (s->c_out + co) * ld + col0 + w;
        const float *t2 = y3 + (2 * s->c_out + co) * ld + col0 + 2 * w;
        const float *rc = r == NULL ? NULL : r + co * hw;
        float *out = y + co * hw;
        float a = af->scale[co], b = af->shift[co];
        if (rc != NULL) {
            for (size_t p = 0; p < hw; p++) {
                float v = a * (t0[p] + t1[p] + t2[p]) + b + rc[p];
                out[p] = af->relu && v <= 0.0f ? 0.0f : v;
            }
        } else if (af->relu) {
            for (size_t p = 0; p < hw; p++) {
                float v = a * (t0[p] + t1[p] + t2[p]) + b;
                out[p] = v <= 0.0f ? 0.0f : v;
            }
        } else {
            for (size_t p = 0; p < hw; p++)
                out[p] = a * (t0[p] + t1[p] + t2[p]) + b;
        }
    }
}

/* dY3 (3 c_out rows) in the tile kernel's panels: row (i, co) holds the
 * image's dy[co] at columns col0 + i w .. col0 + i w + h w - 1 and zeros
 * around it: between two stacked images a row has w zero columns, before
 * the first one i w and after the last one (2 - i) w. */
static void spread_taps_panels(const mislasi_conv_shape *s, const float *dy, const panel_rows *p, size_t col0,
        bool first, bool last)
{
    size_t hw = s->h * s->w, w = s->w;
    for (size_t i = 0; i < 3; i++)
        for (size_t co = 0; co < s->c_out; co++) {
            size_t k = i * s->c_out + co;
            if (first)
                panel_write(p, k, col0, NULL, i * w);
            panel_write(p, k, col0 + i * w, dy + co * hw, hw);
            panel_write(p, k, col0 + i * w + hw, NULL, last ? (2 - i) * w : w);
        }
}

/* dx image = the unfolded rows' gradient folded back (overwrites dx), the
 * three horizontal taps added in tap order. */
static void fold_rows(const mislasi_conv_shape *s, const float *drows3, size_t ld, size_t col0, float *dx)
{
    size_t h = s->h, w = s->w, hw = h * w;
    for (size_t ci = 0; ci < s->c_in; ci++) {
        /* x[r, c] fed left[r + 1, c + 1], mid[r + 1, c] and right[r + 1, c - 1] */
        const float *l = drows3 + (ci * 3 + 0) * ld + col0 + w + 1;
        const float *m = drows3 + (ci * 3 + 1) * ld + col0 + w;
        const float *q = drows3 + (ci * 3 + 2) * ld + col0 + w - 1;
        float *out = dx + ci * hw;
        for (size_t p = 0; p < hw; p++)
            out[p] = l[p] + m[p] + q[p];
        /* a row's first pixel has no left tap's partner, its last no right one */
        for (size_t r = 0; r < h; r++) {
            size_t first = r * w, last = r * w + w - 1;
            out[first] = (w > 1 ? l[first] : 0.0f) + m[first] + 0.0f;
            if (w > 1)
                out[last] = 0.0f + m[last] + q[last];
        }
    }
}

/* W3[(i, co), (ci, j)] = w[co, ci, i, j] */
static void arrange_taps(const mislasi_conv_shape *s, const float *w, float *w3)
{
    size_t rows = 3 * s->c_in;
    for (size_t co = 0; co < s->c_out; co++)
        for (size_t ci = 0; ci < s->c_in; ci++)
            for (size_t i = 0; i < 3; i++)
                for (size_t j = 0; j < 3; j++)
                    w3[(i * s->c_out + co) * rows + ci * 3 + j] = w[((co * s->c_in + ci) * 3 + i) * 3 + j];
}

/* dst (depth-major panel: dst[p * block + i]) = rows [r0, r0 + nr) of the
 * row-major src (ld), columns [0, columns); rows nr .. block - 1 zero. A
 * transpose, 4 x 4 at a time with SSE where there is SSE. */
static void transpose_panel(const float *src, size_t ld, size_t r0, size_t nr, size_t columns, float *dst,
        size_t block)
{
    size_t i = 0;
#if defined(__SSE2__)
    for (; i + 4 <= nr; i += 4) {
        const float *s0 = src + (r0 + i) * ld;
        size_t p = 0;
        for (; p + 4 <= columns; p += 4) {
            __m128 a = _mm_loadu_ps(s0 + p), b = _mm_loadu_ps(s0 + ld + p);
            __m128 c = _mm_loadu_ps(s0 + 2 * ld + p), d = _mm_loadu_ps(s0 + 3 * ld + p);
            _MM_TRANSPOSE4_PS(a, b, c, d);
            _mm_storeu_ps(dst + p * block + i, a);
            _mm_storeu_ps(dst + (p + 1) * block + i, b);
            _mm_storeu_ps(dst + (p + 2) * block + i, c);
            _mm_storeu_ps(dst + (p + 3) * block + i, d);
        }
        for (; p < columns; p++)
            for (size_t j = 0; j < 4; j++)
                dst[p * block + i + j] = s0[j * ld + p];
    }
#endif
    for (; i < nr; i++)
        for (size_t p = 0; p < columns; p++)
            dst[p * block + i] = src[(r0 + i) * ld + p];
    for (size_t p = 0; p < columns; p++)
        for (size_t j = nr; j < block; j++)
            dst[p * block + j] = 0.0f;
}

/* slot (rows x outs) = cols (rows x columns, row-major) * dY3^T through the
 * tile kernel, on both operands transposed into its panels (depth = the
 * columns): BLIS's own packing of these operands is an element-by-element
 * loop. dY3 comes in the kernel's panels already, and is transposed one
 * 32 x 32 block at a time. */
static void weight_gradient_tiles(const geometry *g, const float *cols, size_t ld, const panel_rows *dy3,
        size_t columns, float *panels, float *slot)
{
    const mislasi_tile_kernel *t = g->tile;
    size_t ob = t->out_block, cb = t->col_block;
    float *wp = panels, *dp = panels + mislasi_align_floats((g->rows + ob - 1) / ob * ob * columns);
    for (size_t r = 0; r < g->rows; r += ob)
        transpose_panel(cols, ld, r, g->rows - r < ob ? g->rows - r : ob, columns, wp + r * columns, ob);
    for (size_t o = 0; o < g->outs; o += cb)
        for (size_t q = 0; q < columns; q += dy3->cb)
            transpose_panel(dy3->base + q * dy3->rows, dy3->cb, o, g->outs - o < cb ? g->outs - o : cb,
                    columns - q < dy3->cb ? columns - q : dy3->cb, dp + o * columns + q * cb, cb);
    for (size_t r = 0; r < g->rows; r += ob)
        for (size_t o = 0; o < g->outs; o += cb)
            mislasi_tile(t, columns, g->rows - r < ob ? g->rows - r : ob, g->outs - o < cb ? g->outs - o : cb,
                    wp + r * columns, dp + o * columns, slot + r * g->outs + o, g->outs);
}

/* ---- the jobs ---------------------------------------------------------------- */

typedef struct job {
    const mislasi_conv_shape *s;
    geometry g;
    const float *x, *w, *dy;
    float *y, *dw, *dx;
    const float *weights;       /* w, or W3 when row-shifting (outs x rows) */
    const float *forward_weights;   /* W^T (rows x outs), or W3 in tile panels */
    const float *back_weights;      /* W3^T in tile panels (row shift) */
    float *scratch;             /* the work area */
    float *slots;
    size_t parts;
    mislasi_image_fn then;
    void *then_ctx;
    const mislasi_conv_affine *affine;
} job;

static size_t images_in(const job *jb, size_t group, size_t *first)
{
    *first = group * jb->g.group;
    return jb->s->n - *first < jb->g.group ? jb->s->n - *first : jb->g.group;
}

static void finish_images(const job *jb, size_t first, size_t count)
{
    size_t pixels = jb->g.pixels;
    if (jb->affine != NULL && !jb->g.row_shift)
        for (size_t i = first; i < first + count; i++)
            for (size_t co = 0; co < jb->s->c_out; co++) {
                float *y = jb->y + (i * jb->s->c_out + co) * pixels;
                mislasi_affine_plane(y, y, pixels, jb->affine->scale[co], jb->affine->shift[co], jb->affine->relu,
                        jb->affine->residual == NULL ? NULL : jb->affine->residual + (i * jb->s->c_out + co) * pixels);
            }
    if (jb->then == NULL)
        return;
    size_t out_size = jb->s->c_out * jb->g.pixels;
    for (size_t i = first; i < first + count; i++)
        jb->then(jb->then_ctx, i, jb->y + i * out_size);
}

static void produce_group(const job *jb, float *area, size_t group);

static void forward_group(const job *jb, float *area, size_t group)
{
    size_t first, count = images_in(jb, group, &first);
    produce_group(jb, area, group);
    finish_images(jb, first, count);
}

static void produce_group(const job *jb, float *area, size_t group)
{
    const mislasi_conv_shape *s = jb->s;
    const geometry *g = &jb->g;
    size_t first, count = images_in(jb, group, &first);
    size_t in_size = s->c_in * s->h * s->w, out_size = s->c_out * g->pixels;
    size_t columns = count * g->span + g->tail;
    const float *x = jb->x + first * in_size;
    float *y = jb->y + first * out_size;
    if (g->direct) {
        mislasi_sgemm(true, false, s->c_out, g->pixels, g->rows, 1.0f, jb->forward_weights, g->outs,
                x, g->pixels, 0.0f, y, g->pixels);
        return;
    }
    size_t capacity = padded(g->tile, g->group * g->span + g->tail);
    float *cols = area, *product = area + 2 * g->rows * capacity;
    size_t ld = padded(g->tile, columns);
    if (g->row_shift) {
        /* unfold straight into the tile kernel's panels, then one tile per
         * (column panel, output panel) */
        const mislasi_tile_kernel *t = g->tile;
        panel_rows p = {.base = cols, .rows = g->rows, .cb = t->col_block};
        for (size_t i = 0; i < count; i++)
            unfold_rows_panels(s, x + i * in_size, &p, i * g->span, i + 1 == count);
        for (size_t k = 0; k < g->rows; k++)
            panel_write(&p, k, columns, NULL, ld - columns);
        for (size_t q = 0; q < ld; q += t->col_block)
            for (size_t o = 0; o < g->outs; o += t->out_block) {
                size_t no = g->outs - o < t->out_block ? g->outs - o : t->out_block;
                mislasi_tile(t, g->rows, no, t->col_block, jb->forward_weights + o / t->out_block * panel_stride(g),
                        cols + q * g->rows, product + o * ld + q, ld);
            }
        for (size_t i = 0; i < count; i++) {
            if (jb->affine != NULL)
                combine_taps_affine(s, product, ld, i * g->span, y + i * out_size, jb->affine,
                        jb->affine->residual == NULL ? NULL : jb->affine->residual + (first + i) * out_size);
            else
                combine_taps(s, product, ld, i * g->span, y + i * out_size);
        }
        return;
    }
    for (size_t i = 0; i < count; i++)
        unfold(s, x + i * in_size, cols, ld, i * g->span);
    if (count == 1 && ld == columns) {
        mislasi_sgemm(true, false, s->c_out, columns, g->rows, 1.0f, jb->forward_weights, g->outs,
                cols, columns, 0.0f, y, columns);
        return;
    }
    zero_columns(cols, g->rows, ld, columns, ld);
    mislasi_sgemm(true, false, g->outs, ld, g->rows, 1.0f, jb->forward_weights, g->outs,
            cols, ld, 0.0f, product, ld);
    for (size_t i = 0; i < count; i++)
        for (size_t co = 0; co < s->c_out; co++)
            memcpy(y + i * out_size + co * g->pixels, product + co * ld + i * g->pixels,
                    g->pixels * sizeof(float));
}

/* The row shift's backward: dY3 straight into the tile kernel's panels;
 * the weight gradient from them and the unfolded input; the input gradient
 * by tiles, folded back. */
static void backward_group_rows(const job *jb, float *area, size_t group)
{
    const mislasi_conv_shape *s = jb->s;
    const geometry *g = &jb->g;
    const mislasi_tile_kernel *t = g->tile;
    size_t first, count = images_in(jb, group, &first);
    size_t in_size = s->c_in * s->h * s->w, out_size = s->c_out * g->pixels;
    size_t columns = count * g->span + g->tail;
    size_t capacity = padded(t, g->group * g->span + g->tail), ld = padded(t, columns);
    const float *x = jb->x + first * in_size, *dy = jb->dy + first * out_size;
    float *cols = area, *dcols = area + g->rows * capacity;
    panel_rows dy3 = {.base = area + 2 * g->rows * capacity, .rows = g->outs, .cb = t->col_block};
    float *transposed = dy3.base + 2 * g->outs * capacity;

    for (size_t i = 0; i < count; i++)
        spread_taps_panels(s, dy + i * out_size, &dy3, i * g->span, i == 0, i + 1 == count);
    for (size_t k = 0; k < g->outs; k++)
        panel_write(&dy3, k, columns, NULL, ld - columns);
    for (size_t i = 0; i < count; i++)
        unfold_rows(s, x + i * in_size, cols, ld, i * g->span, i + 1 == count);
    weight_gradient_tiles(g, cols, ld, &dy3, columns, transposed, jb->slots + group * g->outs * g->rows);
    if (jb->dx == NULL)
        return;
    for (size_t q = 0; q < ld; q += t->col_block)
        for (size_t r = 0; r < g->rows; r += t->out_block) {
            size_t nr = g->rows - r < t->out_block ? g->rows - r : t->out_block;
            mislasi_tile(t, g->outs, nr, t->col_block, jb->back_weights + r / t->out_block * back_panel_stride(g),
                    dy3.base + q * g->outs, dcols + r * ld + q, ld);
        }
    for (size_t i = 0; i < count; i++)
        fold_rows(s, dcols, ld, i * g->span, jb->dx + (first + i) * in_size);
}

/* im2col's backward through bli_sgemm. */
static void backward_group(const job *jb, float *area, size_t group)
{
    const mislasi_conv_shape *s = jb->s;
    const geometry *g = &jb->g;
    if (g->row_shift) {
        backward_group_rows(jb, area, group);
        return;
    }
    size_t first, count = images_in(jb, group, &first);
    size_t in_size = s->c_in * s->h * s->w, out_size = s->c_out * g->pixels;
    size_t columns = count * g->span;
    const float *x = jb->x + first * in_size, *dy_images = jb->dy + first * out_size;
    float *dx = jb->dx == NULL ? NULL : jb->dx + first * in_size;
    float *slot = jb->slots + group * g->outs * g->rows;
    size_t capacity = padded(g->tile, g->group * g->span), ld = padded(g->tile, columns);
    float *cols = area, *dcols = area + g->rows * capacity;
    float *spread = area + 2 * g->rows * capacity;

    /* the output gradient as the product's columns */
    const float *dy = dy_images;
    size_t dy_ld = g->pixels;
    if (count > 1) {
        for (size_t i = 0; i < count; i++)
            for (size_t co = 0; co < s->c_out; co++)
                memcpy(spread + co * ld + i * g->pixels, dy_images + i * out_size + co * g->pixels,
                        g->pixels * sizeof(float));
        zero_columns(spread, g->outs, ld, columns, ld);
        dy = spread;
        dy_ld = ld;
    }
    const float *x_cols = x;
    size_t x_ld = g->pixels;
    if (!g->direct) {
        for (size_t i = 0; i < count; i++)
            unfold(s, x + i * in_size, cols, ld, i * g->span);
        x_cols = cols;
        x_ld = ld;
    }
    /* The group's weight gradient, transposed: cols (rows x columns) times
     * dY^T. BLIS packs this orientation 2-3x faster than dY * cols^T on
     * these shapes; the reduction transposes back. */
    mislasi_sgemm(false, true, g->rows, g->outs, columns, 1.0f, x_cols, x_ld,
            dy, dy_ld, 0.0f, slot, g->outs);
    if (dx == NULL)
        return;
    if (g->direct) {
        mislasi_sgemm(true, false, g->rows, columns, s->c_out, 1.0f, jb->weights, g->rows,
                dy, dy_ld, 0.0f, dx, columns);
        return;
    }
    /* dcols (rows x columns) = W^T * dY, over the padded columns when dY has them */
    size_t n = dy == spread ? ld : columns;
    mislasi_sgemm(true, false, g->rows, n, g->outs, 1.0f, jb->weights, g->rows,
            dy, dy_ld, 0.0f, dcols, ld);
    for (size_t i = 0; i < count; i++)
        fold(s, dcols, ld, i * g->span, dx + i * in_size);
}

/* Part p of jb->parts takes a contiguous run of groups with its own area. */
static void run_parts(void *ctx, size_t begin, size_t end, bool backward)
{
    const job *jb = ctx;
    for (size_t p = begin; p < end; p++) {
        float *area = jb->scratch + p * per_thread_floats(&jb->g);
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

void mislasi_conv_prepare(const mislasi_conv_shape *s, const float *w, float *prepared)
{
    geometry g = geometry_of(s);
    prepared = align64(prepared);
    if (!g.row_shift) {
        for (size_t o = 0; o < g.outs; o++)
            for (size_t r = 0; r < g.rows; r++)
                prepared[r * g.outs + o] = w[o * g.rows + r];
        return;
    }
    float *panels = prepared, *w3 = prepared + panels_floats(&g);
    float *back = w3 + mislasi_align_floats(g.outs * g.rows);
    arrange_taps(s, w, w3);
    size_t ob = g.tile->out_block;
    for (size_t o0 = 0; o0 < g.outs; o0 += ob)
        for (size_t r = 0; r < g.rows; r++)
            for (size_t o = 0; o < ob; o++)
                panels[o0 / ob * panel_stride(&g) + r * ob + o] = o0 + o < g.outs ? w3[(o0 + o) * g.rows + r] : 0.0f;
    for (size_t r0 = 0; r0 < g.rows; r0 += ob)
        for (size_t o = 0; o < g.outs; o++)
            for (size_t r = 0; r < ob; r++)
                back[r0 / ob * back_panel_stride(&g) + o * ob + r] = r0 + r < g.rows ? w3[o * g.rows + r0 + r] : 0.0f;
}

static job make_job(const mislasi_conv_shape *s, const float *x, const float *w, const float *given,
        float *work, size_t threads)
{
    const float *prepared = align64((float *)given);
    work = align64(work);
    job jb = {.s = s, .g = geometry_of(s), .x = x, .w = w, .weights = w, .forward_weights = prepared,
              .scratch = work};
    jb.parts = threads < jb.g.groups ? threads : jb.g.groups;
    jb.slots = work + jb.parts * per_thread_floats(&jb.g);
    if (jb.g.row_shift) {
        jb.weights = prepared + panels_floats(&jb.g);
        jb.back_weights = jb.weights + mislasi_align_floats(jb.g.outs * jb.g.rows);
    }
    return jb;
}

void mislasi_conv_forward_prepared(const mislasi_conv_shape *s, const float *x, const float *prepared,
        float *y, float *work, size_t threads, mislasi_image_fn then, void *ctx)
{
    job jb = make_job(s, x, NULL, prepared, work, threads);
    jb.y = y;
    jb.then = then;
    jb.then_ctx = ctx;
    mislasi_parallel_for(jb.parts, 1, forward_parts, &jb);
}

void mislasi_conv_forward_affine(const mislasi_conv_shape *s, const float *x, const float *prepared,
        float *y, float *work, size_t threads, const mislasi_conv_affine *affine)
{
    job jb = make_job(s, x, NULL, prepared, work, threads);
    jb.y = y;
    jb.affine = affine;
    mislasi_parallel_for(jb.parts, 1, forward_parts, &jb);
}

/* Slot 0 += every other group's slot, in group order, over slot entries
 * [begin, end) (contiguous, so the additions vectorise). */
static void sum_slots(void *ctx, size_t begin, size_t end)
{
    const job *jb = ctx;
    size_t size = jb->g.rows * jb->g.outs;
    for (size_t group = 1; group < jb->g.groups; group++) {
        const float *slot = jb->slots + group * size;
        for (size_t e = begin; e < end; e++)
            jb->slots[e] += slot[e];
    }
}

/* dw from the summed slot, which is rows x outs: (ci k k) x co for
 * im2col, (ci 3 + j) x (i c_out + co) when row-shifting. */
static void slot_to_dw(const job *jb)
{
    const mislasi_conv_shape *s = jb->s;
    const geometry *g = &jb->g;
    size_t per_co = s->c_in * s->k * s->k;
    for (size_t co = 0; co < s->c_out; co++) {
        float *out = jb->dw + co * per_co;
        for (size_t e = 0; e < per_co; e++) {
            size_t at;
            if (g->row_shift) {
                size_t ci = e / 9, i = e / 3 % 3, j = e % 3;
                at = (ci * 3 + j) * g->outs + i * s->c_out + co;
            } else {
                at = e * g->outs + co;
            }
            out[e] = jb->slots[at];
        }
    }
}

void mislasi_conv_backward_prepared(const mislasi_conv_shape *s, const float *x, const float *w,
        const float *prepared, const float *dy, float *dw, float *dx, float *work, size_t threads)
{
    job jb = make_job(s, x, w, prepared, work, threads);
    jb.dy = dy;
    jb.dw = dw;
    jb.dx = dx;
    mislasi_parallel_for(jb.parts, 1, backward_parts, &jb);
    mislasi_parallel_for(jb.g.rows * jb.g.outs, 4096, sum_slots, &jb);
    slot_to_dw(&jb);
}

