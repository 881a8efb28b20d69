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
 * Every sum is an exact integer sum, so the order of the additions is free,
 * and taps of weight 0 add nothing: each axis keeps only the span of its
 * nonzero weights (2 taps instead of 3 when upscaling), the horizontal pass
 * runs over that fixed number of taps per pixel and the vertical pass over
 * whole rows. On x86-64 with AVX2 (chosen at run time, util/isa.h) both
 * passes have vector copies, the horizontal one an AVX-512 copy too; integer
 * sums make their bytes the plain C's. */
#include "image.h"
#include "util/util.h"

#include <math.h>
#include <string.h>

#if defined(MISLAS_KERNELS_X86)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2")))
#endif

enum { PRECISION_BITS = 32 - 8 - 2 };

/* The weights of one axis: for output i, inputs first[i] .. first[i] +
 * ksize - 1 with weights k[i * ksize ..] (zero past the filter's end). */
typedef struct axis {
    int32_t ksize;
    int32_t *first;     /* first input of output i */
    int32_t *k;
} axis;

static void axis_free(axis *a)
{
    mislasi_free(a->first);
    mislasi_free(a->k);
}

static inline double tent(double x)
{
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* The span [*lo, return) of a filter's nonzero weights (empty: 0, 0). */
static int32_t nonzero_span(const int32_t *k, int32_t ksize, int32_t *lo)
{
    int32_t l = 0, hi = ksize;
    while (hi > l && k[hi - 1] == 0)
        hi--;
    while (l < hi && k[l] == 0)
        l++;
    *lo = l;
    return hi;
}

/* Drops the taps of weight 0 that every output has: ksize becomes the
 * longest span of nonzero weights (the tent reaches 2 inputs, not 3, when
 * upscaling), each output's window starting at its first nonzero weight and
 * moved left where it would pass the input's end. The same inputs get the
 * same weights, so every sum is unchanged. In place, in order: output xx's
 * new window ends where output xx + 1's old one starts, at the latest. */
static void axis_trim(axis *a, int32_t in_size, int32_t out_size)
{
    const int32_t ksize = a->ksize;
    int32_t nk = 1;
    for (int32_t xx = 0; xx < out_size; xx++) {
        const int32_t *k = a->k + (size_t)xx * (size_t)ksize;
        int32_t lo, hi = nonzero_span(k, ksize, &lo);
        nk = hi - lo > nk ? hi - lo : nk;
    }
    if (nk >= ksize)
        return;
    for (int32_t xx = 0; xx < out_size; xx++) {
        const int32_t *k = a->k + (size_t)xx * (size_t)ksize;
        int32_t lo, hi = nonzero_span(k, ksize, &lo);
        int32_t first = a->first[xx] + lo, shift = 0;
        if (first + nk > in_size)
            shift = first + nk - in_size;
        int32_t *dst = a->k + (size_t)xx * (size_t)nk;
        memmove(dst + shift, k + lo, (size_t)(hi - lo) * sizeof(int32_t));
        for (int32_t x = 0; x < shift; x++)
            dst[x] = 0;
        for (int32_t x = shift + hi - lo; x < nk; x++)
            dst[x] = 0;
        a->first[xx] = first - shift;
    }
    a->ksize = nk;
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
    a->k = mislasi_calloc((size_t)out_size * (size_t)ksize, sizeof(int32_t));
    double *w = mislasi_alloc((size_t)ksize * sizeof(double));
    if (a->first == NULL || a->k == NULL || w == NULL) {
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
    }
    mislasi_free(w);
    axis_trim(a, in_size, out_size);
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

static void horizontal_c(const uint8_t *src, size_t stride, int32_t row0, int32_t rows, const axis *a,
        uint8_t *tmp, int32_t out_w, int32_t taps)
{
    /* The usual widths of the filter as constants, for unrolled loops. */
    switch (taps) {
    case 2: rows_horizontal(src, stride, row0, rows, a, tmp, out_w, 2); break;
    case 3: rows_horizontal(src, stride, row0, rows, a, tmp, out_w, 3); break;
    case 4: rows_horizontal(src, stride, row0, rows, a, tmp, out_w, 4); break;
    case 5: rows_horizontal(src, stride, row0, rows, a, tmp, out_w, 5); break;
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

/* Output row yy of the vertical pass reads rows [*first, *first + return)
 * of src, with weights *w: the nonzero span of its filter. */
static int32_t vertical_taps(const axis *a, int32_t yy, int32_t row0, int32_t *first, const int32_t **w)
{
    const int32_t *k = a->k + (size_t)yy * (size_t)a->ksize;
    int32_t lo, hi = nonzero_span(k, a->ksize, &lo);
    *first = a->first[yy] - row0 + lo;
    *w = k + lo;
    return hi - lo;
}

/* Vertical pass: output rows from rows of src (`stride` apart, row 0 being
 * the axis's input row0), each a weighted sum of whole rows. acc: row_len
 * int32. */
static void vertical_c(const uint8_t *src, size_t stride, int32_t row0, const axis *a, uint8_t *dst,
        int32_t out_h, size_t row_len, int32_t *acc)
{
    for (int32_t yy = 0; yy < out_h; yy++) {
        int32_t first;
        const int32_t *w;
        const int32_t taps = vertical_taps(a, yy, row0, &first, &w);
        const uint8_t *in = src + (size_t)first * stride;
        uint8_t *out = dst + (size_t)yy * row_len;
        row_start(acc, row_len);
        for (int32_t t = 0; t < taps; t++)
            row_add(acc, in + (size_t)t * stride, w[t], row_len);
        row_end(out, acc, row_len);
    }
}

#if defined(MISLAS_KERNELS_X86)
/* The AVX2 copies. Each int32 lane does the plain C's sum for one byte: the
 * same products, added in another order, which integers do not notice. The
 * 32-bit results are clipped by the packs (signed to 16 bits, then unsigned
 * to 8: 0..255). */

/* One pixel's 3 bytes (and the next byte, which is read but unused) as 4
 * int32 lanes. */
AVX2 static inline __m128i load_pixel(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm_cvtepu8_epi32(_mm_cvtsi32_si128(v));
}

/* Horizontal pass, two rows at once: the low 128 bits sum a pixel of one
 * row, the high 128 bits the same pixel of the next, with the same weights.
 * Outputs whose last tap is the row's last pixel (where the 4-byte load
 * would pass the row's end) and the last output (whose 4-byte store would)
 * take the plain C. */
AVX2 static inline __attribute__((always_inline)) void rows_horizontal_avx2(const uint8_t *src, size_t stride,
        int32_t in_w, int32_t row0, int32_t rows, const axis *a, uint8_t *tmp, int32_t out_w, const int32_t taps)
{
    const int32_t ksize = a->ksize;
    const size_t out_row = (size_t)out_w * 3;
    int32_t vec_w = 0;
    while (vec_w < out_w - 1 && a->first[vec_w] + taps < in_w)
        vec_w++;
    const __m256i half = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
    int32_t y = 0;
    for (; y + 2 <= rows; y += 2) {
        const uint8_t *in0 = src + (size_t)(row0 + y) * stride, *in1 = in0 + stride;
        uint8_t *out0 = tmp + (size_t)y * out_row, *out1 = out0 + out_row;
        for (int32_t xx = 0; xx < vec_w; xx++) {
            const size_t at = (size_t)a->first[xx] * 3;
            const int32_t *k = a->k + (size_t)xx * (size_t)ksize;
            __m256i acc = half;
            for (int32_t t = 0; t < taps; t++) {
                __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(load_pixel(in0 + at + 3 * t)),
                        load_pixel(in1 + at + 3 * t), 1);
                acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(v, _mm256_set1_epi32(k[t])));
            }
            acc = _mm256_srai_epi32(acc, PRECISION_BITS);
            __m256i b = _mm256_packus_epi16(_mm256_packs_epi32(acc, acc), _mm256_setzero_si256());
            /* 4 bytes stored, the 4th rewritten by the next output */
            int32_t p0 = _mm256_extract_epi32(b, 0), p1 = _mm256_extract_epi32(b, 4);
            memcpy(out0 + 3 * (size_t)xx, &p0, 4);
            memcpy(out1 + 3 * (size_t)xx, &p1, 4);
        }
        for (int32_t xx = vec_w; xx < out_w; xx++) {
            const int32_t *k = a->k + (size_t)xx * (size_t)ksize;
            pixel3(in0 + (size_t)a->first[xx] * 3, k, taps, out0 + 3 * (size_t)xx);
            pixel3(in1 + (size_t)a->first[xx] * 3, k, taps, out1 + 3 * (size_t)xx);
        }
    }
    if (y < rows)
        rows_horizontal(src, stride, row0 + y, 1, a, tmp + (size_t)y * out_row, out_w, taps);
}

AVX2 static void horizontal_avx2(const uint8_t *src, size_t stride, int32_t in_w, int32_t row0, int32_t rows,
        const axis *a, uint8_t *tmp, int32_t out_w, int32_t taps)
{
    switch (taps) {
    case 2: rows_horizontal_avx2(src, stride, in_w, row0, rows, a, tmp, out_w, 2); break;
    case 3: rows_horizontal_avx2(src, stride, in_w, row0, rows, a, tmp, out_w, 3); break;
    case 4: rows_horizontal_avx2(src, stride, in_w, row0, rows, a, tmp, out_w, 4); break;
    case 5: rows_horizontal_avx2(src, stride, in_w, row0, rows, a, tmp, out_w, 5); break;
    default: rows_horizontal_avx2(src, stride, in_w, row0, rows, a, tmp, out_w, taps); break;
    }
}

/* The same with AVX-512, four rows at once, a 128-bit lane each; the rows
 * left over (under four) as above. */
#define AVX512 __attribute__((target("avx512f")))

AVX512 static inline __attribute__((always_inline)) void rows_horizontal_avx512(const uint8_t *src,
        size_t stride, int32_t in_w, int32_t row0, int32_t rows, const axis *a, uint8_t *tmp, int32_t out_w,
        const int32_t taps)
{
    const int32_t ksize = a->ksize;
    const size_t out_row = (size_t)out_w * 3;
    int32_t vec_w = 0;
    while (vec_w < out_w - 1 && a->first[vec_w] + taps < in_w)
        vec_w++;
    const __m512i half = _mm512_set1_epi32(1 << (PRECISION_BITS - 1));
    int32_t y = 0;
    for (; y + 4 <= rows; y += 4) {
        const uint8_t *in0 = src + (size_t)(row0 + y) * stride;
        uint8_t *out0 = tmp + (size_t)y * out_row;
        for (int32_t xx = 0; xx < vec_w; xx++) {
            const uint8_t *p = in0 + (size_t)a->first[xx] * 3;
            const int32_t *k = a->k + (size_t)xx * (size_t)ksize;
            __m512i acc = half;
            for (int32_t t = 0; t < taps; t++) {
                __m512i v = _mm512_castsi128_si512(load_pixel(p + 3 * t));
                v = _mm512_inserti32x4(v, load_pixel(p + stride + 3 * t), 1);
                v = _mm512_inserti32x4(v, load_pixel(p + 2 * stride + 3 * t), 2);
                v = _mm512_inserti32x4(v, load_pixel(p + 3 * stride + 3 * t), 3);
                acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(v, _mm512_set1_epi32(k[t])));
            }
            /* >> 22, clipped to 0..255 (the max, then an unsigned
             * saturating narrowing): row r's pixel in bytes 4r .. 4r + 3 */
            acc = _mm512_max_epi32(_mm512_srai_epi32(acc, PRECISION_BITS), _mm512_setzero_si512());
            const __m128i b = _mm512_cvtusepi32_epi8(acc);
            uint32_t px[4];
            _mm_storeu_si128((__m128i *)px, b);
            for (int r = 0; r < 4; r++)
                memcpy(out0 + (size_t)r * out_row + 3 * (size_t)xx, &px[r], 4);
        }
        for (int r = 0; r < 4; r++)
            for (int32_t xx = vec_w; xx < out_w; xx++)
                pixel3(in0 + (size_t)r * stride + (size_t)a->first[xx] * 3, a->k + (size_t)xx * (size_t)ksize, taps,
                        out0 + (size_t)r * out_row + 3 * (size_t)xx);
    }
    if (y < rows)
        rows_horizontal_avx2(src, stride, in_w, row0 + y, rows - y, a, tmp + (size_t)y * out_row, out_w, taps);
}

AVX512 static void horizontal_avx512(const uint8_t *src, size_t stride, int32_t in_w, int32_t row0,
        int32_t rows, const axis *a, uint8_t *tmp, int32_t out_w, int32_t taps)
{
    switch (taps) {
    case 2: rows_horizontal_avx512(src, stride, in_w, row0, rows, a, tmp, out_w, 2); break;
    case 3: rows_horizontal_avx512(src, stride, in_w, row0, rows, a, tmp, out_w, 3); break;
    case 4: rows_horizontal_avx512(src, stride, in_w, row0, rows, a, tmp, out_w, 4); break;
    case 5: rows_horizontal_avx512(src, stride, in_w, row0, rows, a, tmp, out_w, 5); break;
    default: rows_horizontal_avx512(src, stride, in_w, row0, rows, a, tmp, out_w, taps); break;
    }
}

/* Vertical pass, 32 bytes of a row at a time, their sums in 4 registers
 * over all taps; the row's last bytes (under 32) as the plain C does them. */
AVX2 static void vertical_avx2(const uint8_t *src, size_t stride, int32_t row0, const axis *a, uint8_t *dst,
        int32_t out_h, size_t row_len)
{
    const __m256i half = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
    /* the packs leave 4-byte groups in the order 0 2 4 6 1 3 5 7 */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int32_t yy = 0; yy < out_h; yy++) {
        int32_t first;
        const int32_t *w;
        const int32_t taps = vertical_taps(a, yy, row0, &first, &w);
        const uint8_t *in = src + (size_t)first * stride;
        uint8_t *out = dst + (size_t)yy * row_len;
        size_t x = 0;
        for (; x + 32 <= row_len; x += 32) {
            __m256i s0 = half, s1 = half, s2 = half, s3 = half;
            for (int32_t t = 0; t < taps; t++) {
                const uint8_t *p = in + (size_t)t * stride + x;
                const __m256i wt = _mm256_set1_epi32(w[t]);
                s0 = _mm256_add_epi32(s0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)), wt));
                s1 = _mm256_add_epi32(s1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8))), wt));
                s2 = _mm256_add_epi32(s2, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 16))), wt));
                s3 = _mm256_add_epi32(s3, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 24))), wt));
            }
            s0 = _mm256_srai_epi32(s0, PRECISION_BITS);
            s1 = _mm256_srai_epi32(s1, PRECISION_BITS);
            s2 = _mm256_srai_epi32(s2, PRECISION_BITS);
            s3 = _mm256_srai_epi32(s3, PRECISION_BITS);
            __m256i b = _mm256_packus_epi16(_mm256_packs_epi32(s0, s1), _mm256_packs_epi32(s2, s3));
            _mm256_storeu_si256((__m256i *)(out + x), _mm256_permutevar8x32_epi32(b, order));
        }
        for (; x < row_len; x++) {
            int32_t s = 1 << (PRECISION_BITS - 1);
            for (int32_t t = 0; t < taps; t++)
                s += in[(size_t)t * stride + x] * w[t];
            out[x] = clip8(s);
        }
    }
}

static bool use_avx2(void)
{
    return mislasi_isa_get() != MISLASI_ISA_GENERIC;
}
#endif

static void pass_horizontal(const uint8_t *src, size_t stride, int32_t in_w, int32_t row0, int32_t rows,
        const axis *a, uint8_t *tmp, int32_t out_w)
{
    const int32_t taps = a->ksize < in_w ? a->ksize : in_w;
#if defined(MISLAS_KERNELS_X86)
    if (mislasi_isa_get() == MISLASI_ISA_AVX512) {
        horizontal_avx512(src, stride, in_w, row0, rows, a, tmp, out_w, taps);
        return;
    }
    if (use_avx2()) {
        horizontal_avx2(src, stride, in_w, row0, rows, a, tmp, out_w, taps);
        return;
    }
#endif
    horizontal_c(src, stride, row0, rows, a, tmp, out_w, taps);
}

static void pass_vertical(const uint8_t *src, size_t stride, int32_t row0, const axis *a, uint8_t *dst,
        int32_t out_h, size_t row_len, int32_t *acc)
{
#if defined(MISLAS_KERNELS_X86)
    if (use_avx2()) {
        vertical_avx2(src, stride, row0, a, dst, out_h, row_len);
        return;
    }
#endif
    vertical_c(src, stride, row0, a, dst, out_h, row_len, acc);
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
        int32_t lo, hi = nonzero_span(av.k + (size_t)yy * (size_t)av.ksize, av.ksize, &lo);
        lo += av.first[yy];
        hi += av.first[yy];
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
