/* PIL's ImageEnhance.Brightness / Contrast / Color (Pillow 9.4) on RGB
 * pixels: each is Image.blend(degenerate, image, factor), with the factor
 * as a C float, and blend computes, per byte, with d the degenerate
 * image's value and v the image's, in float arithmetic:
 *   t = d + factor * (v - d)
 *   factor in [0, 1]: (uint8)t (truncated);
 *   otherwise: 0 if t <= 0, 255 if t >= 255, else (uint8)t.
 * The degenerate images:
 *   Brightness: black (d = 0);
 *   Contrast: grey at the mean of the image's "L" conversion, rounded as
 *     int(mean + 0.5), the mean being the exact sum of the L values over
 *     the pixel count in double;
 *   Color: the image's "L" conversion, replicated.
 * PIL's "L" conversion: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
 *
 * On x86-64 with AVX2 (chosen at run time, util/isa.h) the grey sum and the
 * saturation blend have vector copies: 8 pixels' channels in int32 / float
 * lanes, the same integer and float operations per byte, so the same bytes. */
#include "image.h"
#include "util/util.h"

#if defined(MISLAS_KERNELS_X86)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2")))
#endif

static inline uint8_t grey(const uint8_t *p)
{
    return (uint8_t)(((uint32_t)p[0] * 19595u + (uint32_t)p[1] * 38470u + (uint32_t)p[2] * 7471u + 0x8000u) >> 16);
}

/* Image.blend of one byte. The product and the sum are separate statements
 * so that no compiler fuses them into one rounding (PIL's are two). For a
 * factor in [0, 1] PIL truncates without clipping; rounding is monotonic,
 * so t then lies between d and v and clipping changes nothing: one
 * branch-free form serves every factor, and the loops using it vectorise. */
static inline uint8_t blend(int d, int v, float factor)
{
    float diff = (float)(v - d);
    float product = factor * diff;
    float t = (float)d + product;
    t = t < 0.0f ? 0.0f : t;
    t = t > 255.0f ? 255.0f : t;
    return (uint8_t)(int32_t)t;
}

#if defined(MISLAS_KERNELS_X86)
#define AVX512_VBMI __attribute__((target("avx512f,avx512bw,avx512vbmi")))

/* AVX-512 VBMI (with AVX-512 chosen, util/isa.h): its byte permutes look up
 * 64 bytes at once in a table of 128, two of them covering 256. */
static bool use_vbmi(void)
{
    if (mislasi_isa_get() != MISLASI_ISA_AVX512)
        return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi");
}

/* Bytes [0, n / 64 * 64) through the table. */
AVX512_VBMI static void lookup_vbmi(uint8_t *bytes, size_t n, const uint8_t table[256])
{
    const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
    const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
    for (size_t i = 0; i + 64 <= n; i += 64) {
        const __m512i v = _mm512_loadu_si512(bytes + i);
        /* the low 7 bits index t0:t1 and t2:t3; the top bit picks one */
        const __m512i lo = _mm512_permutex2var_epi8(t0, v, t1), hi = _mm512_permutex2var_epi8(t2, v, t3);
        _mm512_storeu_si512(bytes + i, _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi));
    }
}
#endif

/* All bytes through one table: the blend against a constant grey `d`. */
static void blend_constant(uint8_t *rgb, size_t pixels, int d, float factor)
{
    uint8_t table[256];
    for (int v = 0; v < 256; v++)
        table[v] = blend(d, v, factor);
    size_t i = 0;
#if defined(MISLAS_KERNELS_X86)
    if (use_vbmi()) {
        lookup_vbmi(rgb, pixels * 3, table);
        i = pixels * 3 / 64 * 64;
    }
#endif
    for (; i < pixels * 3; i++)
        rgb[i] = table[rgb[i]];
}

void mislasi_image_brightness(uint8_t *rgb, size_t pixels, float factor)
{
    blend_constant(rgb, pixels, 0, factor);
}

#if defined(MISLAS_KERNELS_X86)
static bool use_avx2(void)
{
    return mislasi_isa_get() != MISLASI_ISA_GENERIC;
}

/* Pixels the vector loops take: 8 at a time, reading 4 bytes past the 8th
 * (28 bytes from the first), which must stay within the image. */
static size_t vector_pixels(size_t pixels)
{
    return pixels < 10 ? 0 : (pixels - 10) / 8 * 8 + 8;
}

/* The channels of 8 pixels (24 bytes at p) as int32 lanes, pixel i in lane
 * i: pixels 0-3 from the low 16 bytes loaded, 4-7 from the 16 at p + 12. */
typedef struct rgb8 {
    __m256i r, g, b;
} rgb8;

AVX2 static inline rgb8 load_rgb8(const uint8_t *p)
{
    const __m256i both = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)p)),
            _mm_loadu_si128((const __m128i *)(p + 12)), 1);
    const __m256i r = _mm256_setr_epi8(0, -1, -1, -1, 3, -1, -1, -1, 6, -1, -1, -1, 9, -1, -1, -1,
            0, -1, -1, -1, 3, -1, -1, -1, 6, -1, -1, -1, 9, -1, -1, -1);
    const __m256i one = _mm256_set1_epi32(1);
    rgb8 c;
    c.r = _mm256_shuffle_epi8(both, r);
    c.g = _mm256_shuffle_epi8(both, _mm256_add_epi32(r, one));
    c.b = _mm256_shuffle_epi8(both, _mm256_add_epi32(r, _mm256_add_epi32(one, one)));
    return c;
}

AVX2 static inline __m256i grey8(rgb8 c)
{
    __m256i s = _mm256_add_epi32(_mm256_mullo_epi32(c.r, _mm256_set1_epi32(19595)),
            _mm256_mullo_epi32(c.g, _mm256_set1_epi32(38470)));
    s = _mm256_add_epi32(s, _mm256_mullo_epi32(c.b, _mm256_set1_epi32(7471)));
    return _mm256_srli_epi32(_mm256_add_epi32(s, _mm256_set1_epi32(0x8000)), 16);
}

/* The sum of the grey values of the first vector_pixels(pixels) pixels. Each
 * lane's int32 sum is moved to the total every 2^20 pixels, before it could
 * overflow (2^17 pixels a lane, 255 each). */
AVX2 static uint64_t grey_sum_avx2(const uint8_t *rgb, size_t pixels)
{
    const size_t n = vector_pixels(pixels);
    uint64_t sum = 0;
    for (size_t block = 0; block < n; block += (size_t)1 << 20) {
        const size_t end = n - block > ((size_t)1 << 20) ? block + ((size_t)1 << 20) : n;
        __m256i acc = _mm256_setzero_si256();
        for (size_t i = block; i < end; i += 8)
            acc = _mm256_add_epi32(acc, grey8(load_rgb8(rgb + 3 * i)));
        int32_t lanes[8];
        _mm256_storeu_si256((__m256i *)lanes, acc);
        for (int k = 0; k < 8; k++)
            sum += (uint32_t)lanes[k];
    }
    return sum;
}

/* blend() on 8 lanes: the same float product, sum, clip and truncation. */
AVX2 static inline __m256i blend8(__m256 d, __m256i d_int, __m256i v, __m256 factor)
{
    __m256 diff = _mm256_cvtepi32_ps(_mm256_sub_epi32(v, d_int));
    __m256 product = _mm256_mul_ps(factor, diff);
    __m256 t = _mm256_add_ps(d, product);
    t = _mm256_max_ps(t, _mm256_setzero_ps());
    t = _mm256_min_ps(t, _mm256_set1_ps(255.0f));
    return _mm256_cvttps_epi32(t);
}

/* Saturation of the first vector_pixels(pixels) pixels, in place: each
 * block of 8 is read whole before it is written. */
AVX2 static void saturation_avx2(uint8_t *rgb, size_t pixels, float factor)
{
    const size_t n = vector_pixels(pixels);
    const __m256 f = _mm256_set1_ps(factor);
    /* R | G << 8 | B << 16 per lane to 12 bytes a 128-bit lane, then the
     * two lanes' 12 bytes together */
    const __m256i pack = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1,
            0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    const __m256i join = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7);
    for (size_t i = 0; i < n; i += 8) {
        uint8_t *p = rgb + 3 * i;
        const rgb8 c = load_rgb8(p);
        const __m256i l = grey8(c);
        const __m256 lf = _mm256_cvtepi32_ps(l);
        const __m256i r = blend8(lf, l, c.r, f), g = blend8(lf, l, c.g, f), b = blend8(lf, l, c.b, f);
        __m256i px = _mm256_or_si256(r, _mm256_or_si256(_mm256_slli_epi32(g, 8), _mm256_slli_epi32(b, 16)));
        px = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(px, pack), join);
        _mm_storeu_si128((__m128i *)p, _mm256_castsi256_si128(px));
        _mm_storel_epi64((__m128i *)(p + 16), _mm256_extracti128_si256(px, 1));
    }
}
#endif

void mislasi_image_contrast(uint8_t *rgb, size_t pixels, float factor)
{
    if (pixels == 0)
        return;
    uint64_t sum = 0;
    size_t i = 0;
#if defined(MISLAS_KERNELS_X86)
    if (use_avx2()) {
        sum = grey_sum_avx2(rgb, pixels);
        i = vector_pixels(pixels);
    }
#endif
    for (; i < pixels; i++)
        sum += grey(rgb + 3 * i);
    /* ImageStat's sum of value x count is exact in double (< 2^53). */
    double mean = (double)sum / (double)pixels;
    blend_constant(rgb, pixels, (int)(mean + 0.5), factor);
}

void mislasi_image_saturation(uint8_t *rgb, size_t pixels, float factor)
{
    size_t i = 0;
#if defined(MISLAS_KERNELS_X86)
    if (use_avx2()) {
        saturation_avx2(rgb, pixels, factor);
        i = vector_pixels(pixels);
    }
#endif
    for (; i < pixels; i++) {
        uint8_t *p = rgb + 3 * i;
        const int l = grey(p);
        p[0] = blend(l, p[0], factor);
        p[1] = blend(l, p[1], factor);
        p[2] = blend(l, p[2], factor);
    }
}
