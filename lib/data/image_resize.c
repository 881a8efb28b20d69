/* PIL's bilinear resize (Pillow 9.4, libImaging/Resample.c as Image.resize
 * reaches it for an RGB image), reproduced from its rules:
 *
 *   - The box arrives as single-precision floats (PIL parses it as "f").
 *     If its left and top are whole numbers and its width and height (in
 *     float arithmetic) equal the output's, the result is a plain crop.
 *   - Otherwise, per axis of input size n, box [b0, b1), output size m:
 *     scale = (double)(b1 - b0) / m (the difference taken in float),
 *     fs = max(scale, 1) (the antialiasing stretch when downscaling), support
 *     = fs; ksize = 2 * ceil(support) + 1 taps at most. Output i has centre
 *     c = b0 + (i + 0.5) * scale and takes inputs xmin = (int)(c - support +
 *     0.5) (at least 0) to xmax = (int)(c + support + 0.5) (at most n),
 *     exclusive, weighted w(x) = tent((x - c + 0.5) / fs) with tent(t) =
 *     max(0, 1 - |t|), then divided by their sum (unless it is 0).
 *   - Weights become fixed point with 22 fraction bits, rounded half away
 *     from zero: (int)(w * 2^22 + 0.5). A sum starts at 2^21 (a half) and
 *     its value is sum >> 22, clipped to 0..255.
 *   - The horizontal pass runs first (when needed: the output width differs
 *     from the input's, or b0 != 0, or b1 != the output width), over only the
 *     rows the vertical pass reads, into 8-bit pixels; then the vertical pass
 *     (when the output height differs, or the box's top != 0, or its bottom
 *     != the output height). With neither, the result is a copy.
 * Every sum is an exact integer sum, so the order of the additions is free:
 * the vertical pass runs tap by tap over whole rows (vectorised), the
 * horizontal pass over a fixed number of taps per pixel. */
#include "image.h"
#include "util/util.h"

#include <math.h>
#include <string.h>

enum { PRECISION_BITS = 32 - 8 - 2 };

/* The weights of one axis: for output i, inputs first[i] .. first[i] +
 * ksize - 1 with weights k[i * ksize ..] (zero past the filter's end). */
typedef struct axis {
    int32_t ksize;
    int32_t *first;     /* first input of output i */
    int32_t *count;     /* inputs with a weight of the filter (Pillow's xmax) */
    int32_t *k;
} axis;

static void axis_free(axis *a)
{
    mislasi_free(a->first);
    mislasi_free(a->count);
    mislasi_free(a->k);
}

static inline double tent(double x)
{
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow's precompute_coeffs and normalize_coeffs_8bpc for the bilinear
 * filter. The window of each output is then moved left where it would pass
 * the input's end (its weights shifted to match), so that every output reads
 * exactly ksize inputs when the input has that many. */
static int axis_make(axis *a, int32_t in_size, float in0, float in1, int32_t out_size)
{
    memset(a, 0, sizeof *a);
    double scale = (double)(in1 - in0) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    double ss = 1.0 / filterscale;
    double ksize_d = ceil(support) * 2 + 1;
    if (!(ksize_d <= (double)INT32_MAX / 2) || (size_t)ksize_d > SIZE_MAX / sizeof(int32_t) / (size_t)out_size)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "mislasi_image_resize: out of memory for the filter");
    const int32_t ksize = (int32_t)ksize_d;
    a->ksize = ksize;
    a->first = mislasi_alloc((size_t)out_size * sizeof(int32_t));
    a->count = mislasi_alloc((size_t)out_size * sizeof(int32_t));
    a->k = mislasi_calloc((size_t)out_size * (size_t)ksize, sizeof(int32_t));
    double *w = mislasi_alloc((size_t)ksize * sizeof(double));
    if (a->first == NULL || a->count == NULL || a->k == NULL || w == NULL) {
        mislasi_free(w);
        axis_free(a);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "mislasi_image_resize: out of memory for the filter");
    }
    for (int32_t xx = 0; xx < out_size; xx++) {
        /* One operation a statement, so that no compiler fuses them. */
        double offset = (xx + 0.5) * scale;
        double center = in0 + offset;
        double ww = 0.0;
        int32_t xmin = (int32_t)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int32_t xmax = (int32_t)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        for (int32_t x = 0; x < xmax; x++) {
            double t = x + xmin - center + 0.5;
            double v = tent(t * ss);
            w[x] = v;
            ww += v;
        }
        int32_t *k = a->k + (size_t)xx * (size_t)ksize;
        /* Moved left so that ksize inputs fit (the weights follow). */
        int32_t shift = 0;
        if (xmin + ksize > in_size)
            shift = xmin - (in_size >= ksize ? in_size - ksize : 0);
        for (int32_t x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            double f = v * (1 << PRECISION_BITS);
            k[x + shift] = (int32_t)(v < 0 ? -0.5 + f : 0.5 + f);
        }
        a->first[xx] = xmin - shift;
        a->count[xx] = xmax;
    }
    mislasi_free(w);
    return MISLAS_OK;
}

static inline uint8_t clip8(int32_t v)
{
    v >>= PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One output pixel of the horizontal pass: `taps` inputs from p. */
static inline __attribute__((always_inline)) void pixel3(const uint8_t *p, const int32_t *k, int32_t taps, uint8_t *out)
{
    int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
    for (int32_t x = 0; x < taps; x++) {
        s0 += p[3 * x + 0] * k[x];
        s1 += p[3 * x + 1] * k[x];
        s2 += p[3 * x + 2] * k[x];
    }
    out[0] = clip8(s0);
    out[1] = clip8(s1);
    out[2] = clip8(s2);
}

/* Horizontal pass: rows [row0, row0 + rows) of src into tmp (out_w pixels a
 * row, contiguous), taps inputs per output. */
static inline __attribute__((always_inline)) void rows_horizontal(const uint8_t *src, size_t stride,
        int32_t row0, int32_t rows, const axis *a, uint8_t *tmp, int32_t out_w, const int32_t taps)
{
    const int32_t ksize = a->ksize;
    for (int32_t y = 0; y < rows; y++) {
        const uint8_t *in = src + (size_t)(row0 + y) * stride;
        uint8_t *out = tmp + (size_t)y * (size_t)out_w * 3;
        for (int32_t xx = 0; xx < out_w; xx++)
            pixel3(in + (size_t)a->first[xx] * 3, a->k + (size_t)xx * (size_t)ksize, taps, out + 3 * xx);
    }
}

static void pass_horizontal(const uint8_t *src, size_t stride, int32_t in_w, int32_t row0, int32_t rows,
        const axis *a, uint8_t *tmp, int32_t out_w)
{
    const int32_t taps = a->ksize < in_w ? a->ksize : in_w;
    /* The usual widths of the filter as constants, for unrolled loops. */
    switch (taps) {
    case 3: rows_horizontal(src, stride, row0, rows, a, tmp, out_w, 3); break;
    case 5: rows_horizontal(src, stride, row0, rows, a, tmp, out_w, 5); break;
    case 7: rows_horizontal(src, stride, row0, rows, a, tmp, out_w, 7); break;
    default: rows_horizontal(src, stride, row0, rows, a, tmp, out_w, taps); break;
    }
}

/* The vertical pass's loops over a row, which the compilers vectorise. */
static void row_start(int32_t *restrict acc, size_t n)
{
    for (size_t x = 0; x < n; x++)
        acc[x] = 1 << (PRECISION_BITS - 1);
}

static void row_add(int32_t *restrict acc, const uint8_t *restrict in, int32_t w, size_t n)
{
    for (size_t x = 0; x < n; x++)
        acc[x] += in[x] * w;
}

static void row_end(uint8_t *restrict out, const int32_t *restrict acc, size_t n)
{
    for (size_t x = 0; x < n; x++)
        out[x] = clip8(acc[x]);
}

/* Vertical pass: output rows from rows of src (`stride` apart, row 0 being
 * the axis's input row0), each a weighted sum of whole rows. */
static void pass_vertical(const uint8_t *src, size_t stride, int32_t row0, const axis *a, uint8_t *dst,
        int32_t out_h, size_t row_len, int32_t *acc)
{
    for (int32_t yy = 0; yy < out_h; yy++) {
        const int32_t *k = a->k + (size_t)yy * (size_t)a->ksize;
        const int32_t first = a->first[yy] - row0;
        /* Taps past the filter's end have weight 0: skipped. */
        int32_t lo = 0, hi = a->ksize;
        while (hi > lo && k[hi - 1] == 0)
            hi--;
        while (lo < hi && k[lo] == 0)
            lo++;
        const uint8_t *in = src + (size_t)(first + lo) * stride;
        const int32_t *w = k + lo;
        const int32_t taps = hi - lo;
        uint8_t *out = dst + (size_t)yy * row_len;
        row_start(acc, row_len);
        for (int32_t t = 0; t < taps; t++)
            row_add(acc, in + (size_t)t * stride, w[t], row_len);
        row_end(out, acc, row_len);
    }
}

int mislasi_image_resize(const uint8_t *src, int32_t height, int32_t width, size_t stride,
        const double box[4], uint8_t *dst, int32_t out_height, int32_t out_width)
{
    const float b[4] = {(float)box[0], (float)box[1], (float)box[2], (float)box[3]};
    const size_t out_row = (size_t)out_width * 3;

    /* _imaging.c's shortcut: a whole-pixel box of the output's size is a crop. */
    if (b[0] - (int32_t)b[0] == 0 && b[2] - b[0] == (float)out_width && b[1] - (int32_t)b[1] == 0 &&
            b[3] - b[1] == (float)out_height) {
        const int32_t left = (int32_t)b[0], top = (int32_t)b[1];
        for (int32_t y = 0; y < out_height; y++)
            memcpy(dst + (size_t)y * out_row, src + (size_t)(top + y) * stride + (size_t)left * 3, out_row);
        return MISLAS_OK;
    }

    const bool need_h = out_width != width || b[0] != 0 || b[2] != (float)out_width;
    const bool need_v = out_height != height || b[1] != 0 || b[3] != (float)out_height;
    axis ah, av;
    int rc = axis_make(&ah, width, b[0], b[2], out_width);
    if (rc != MISLAS_OK)
        return rc;
    rc = axis_make(&av, height, b[1], b[3], out_height);
    if (rc != MISLAS_OK) {
        axis_free(&ah);
        return rc;
    }
    /* The rows the vertical pass reads (Pillow's ybox_first / ybox_last). */
    int32_t row_first = INT32_MAX, row_last = 0;
    for (int32_t yy = 0; yy < out_height; yy++) {
        int32_t lo = av.first[yy], hi = av.first[yy] + av.ksize;
        const int32_t *k = av.k + (size_t)yy * (size_t)av.ksize;
        while (hi > lo && k[hi - 1 - av.first[yy]] == 0)
            hi--;
        while (lo < hi && k[lo - av.first[yy]] == 0)
            lo++;
        if (lo < hi) {
            row_first = lo < row_first ? lo : row_first;
            row_last = hi > row_last ? hi : row_last;
        }
    }
    if (row_first > row_last)
        row_first = row_last = 0;

    uint8_t *tmp = NULL;
    int32_t *acc = NULL;
    const int32_t rows = row_last - row_first;
    if (need_h && need_v)
        tmp = mislasi_alloc((size_t)(rows > 0 ? rows : 1) * out_row);
    if (need_v)
        acc = mislasi_alloc(out_row * sizeof(int32_t));
    if ((need_h && need_v && tmp == NULL) || (need_v && acc == NULL)) {
        rc = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "mislasi_image_resize: out of memory for a %d x %d image",
                (int)out_height, (int)out_width);
    } else if (need_h && need_v) {
        pass_horizontal(src, stride, width, row_first, rows, &ah, tmp, out_width);
        pass_vertical(tmp, out_row, row_first, &av, dst, out_height, out_row, acc);
    } else if (need_h) {
        pass_horizontal(src, stride, width, 0, out_height, &ah, dst, out_width);
    } else if (need_v) {
        pass_vertical(src, stride, 0, &av, dst, out_height, out_row, acc);
    } else {
        for (int32_t y = 0; y < out_height; y++)
            memcpy(dst + (size_t)y * out_row, src + (size_t)y * stride, out_row);
    }
    mislasi_free(tmp);
    mislasi_free(acc);
    axis_free(&ah);
    axis_free(&av);
    return rc;
}
