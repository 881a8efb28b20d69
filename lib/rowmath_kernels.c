/* Row kernels written with GCC/Clang vector extensions: 16 float lanes that
 * the compiler maps onto one zmm, two ymm or four xmm registers depending on
 * the instruction set this copy is compiled for. Reductions keep 16 partial
 * sums and fold them in a fixed order, and FMA contraction is off
 * (-ffp-contract=off), so every copy produces the same bits. */
#include "rowmath.h"

#include <stdint.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

enum { LANES = 16 };
typedef float vf __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(LANES * sizeof(int32_t))));

/* This file is compiled once per instruction set (lib/meson.build), each
 * time with ROWMATH_ISA naming the table it defines. */
#ifndef ROWMATH_ISA
#error "compile with -DROWMATH_ISA=generic|avx2|avx512"
#endif
#define CONCAT_(a, b) a##b
#define CONCAT(a, b) CONCAT_(a, b)
#define KERNEL static

INLINE vf load(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

INLINE void store(float *p, vf v)
{
    memcpy(p, &v, sizeof v);
}

/* Loads the last `count` < LANES elements; the other lanes hold `fill`. */
INLINE vf load_tail(const float *p, size_t count, float fill)
{
    float buf[LANES];
    for (size_t l = 0; l < LANES; l++)
        buf[l] = l < count ? p[l] : fill;
    return load(buf);
}

INLINE vf splat(float x)
{
    return (vf){0} + x;
}

INLINE vf select_v(vi mask, vf a, vf b)
{
    return (vf)(((vi)a & mask) | ((vi)b & ~mask));
}

INLINE vf max_v(vf a, vf b)
{
    return select_v(a > b, a, b);
}

INLINE float fold_sum(vf v)
{
    float lanes[LANES];
    memcpy(lanes, &v, sizeof lanes);
    /* pairwise tree in a fixed order */
    for (size_t width = LANES / 2; width > 0; width /= 2)
        for (size_t l = 0; l < width; l++)
            lanes[l] += lanes[l + width];
    return lanes[0];
}

INLINE float fold_max(vf v)
{
    float lanes[LANES];
    memcpy(lanes, &v, sizeof lanes);
    float m = lanes[0];
    for (size_t l = 1; l < LANES; l++)
        m = lanes[l] > m ? lanes[l] : m;
    return m;
}

/* exp(x) for x <= 0 (Cephes-style range reduction: x = n ln2 + r,
 * |r| <= ln2/2, then a degree-6 polynomial in r, then scale by 2^n). */
INLINE vf exp_nonpositive(vf x)
{
    x = max_v(x, splat(-87.3365447505f));           /* exp of this is FLT_MIN */
    vf t = x * 1.44269504088896341f;
    vf n = (t + 12582912.0f) - 12582912.0f;          /* round to nearest integer */
    vf r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf p = splat(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    vf y = p * (r * r) + r + 1.0f;
    vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
    return y * (vf)bits;
}

KERNEL bool row_max(const float *x, size_t k, float *max_out)
{
    const vi exponent = (vi){0} + 0x7f800000;
    vf m = splat(-3.402823466e38f);
    vi bad = (vi){0};
    size_t j = 0;
    for (; j + LANES <= k; j += LANES) {
        vf v = load(x + j);
        bad |= ((vi)v & exponent) == exponent;
        m = max_v(m, v);
    }
    if (j < k) {
        vf v = load_tail(x + j, k - j, -3.402823466e38f);
        bad |= ((vi)v & exponent) == exponent;
        m = max_v(m, v);
    }
    int32_t flags[LANES];
    memcpy(flags, &bad, sizeof flags);
    for (size_t l = 0; l < LANES; l++)
        if (flags[l])
            return false;
    *max_out = fold_max(m);
    return true;
}

KERNEL mislasi_row_sums row_exp(const float *x, size_t k, float m, float *e)
{
    vf sum = splat(0), shifted = splat(0), sq = splat(0);
    const vf mv = splat(m);
    size_t j = 0;
    for (; j + LANES <= k; j += LANES) {
        vf d = load(x + j) - mv;
        vf ex = exp_nonpositive(d);
        if (e != NULL)
            store(e + j, ex);
        sum += ex;
        shifted += d;
        sq += ex * ex;
    }
    if (j < k) {
        size_t rest = k - j;
        vi live = (vi){0};
        for (size_t l = 0; l < LANES; l++)
            live[l] = l < rest ? -1 : 0;
        vf d = load_tail(x + j, rest, m) - mv;
        vf ex = (vf)((vi)exp_nonpositive(d) & live);
        if (e != NULL)
            memcpy(e + j, &ex, rest * sizeof(float));
        sum += ex;
        shifted += d;
        sq += ex * ex;
    }
    mislasi_row_sums s = { fold_sum(sum), fold_sum(shifted), fold_sum(sq) };
    return s;
}

KERNEL size_t row_find(const float *x, size_t k, float value)
{
    const vf target = splat(value);
    size_t j = 0;
    for (; j + LANES <= k; j += LANES) {
        vi hit = load(x + j) == target;
        int32_t flags[LANES];
        memcpy(flags, &hit, sizeof flags);
        int any = 0;
        for (size_t l = 0; l < LANES; l++)
            any |= flags[l];
        if (any)
            break;
    }
    for (; j < k; j++)
        if (x[j] == value)
            return j;
    return k;
}

KERNEL void row_affine(float *x, size_t k, float a, float b)
{
    size_t j = 0;
    for (; j + LANES <= k; j += LANES)
        store(x + j, load(x + j) * a + b);
    for (; j < k; j++)
        x[j] = x[j] * a + b;
}

KERNEL bool row_in_unit(const float *x, size_t k)
{
    vi ok = (vi){0} - 1;
    size_t j = 0;
    for (; j + LANES <= k; j += LANES) {
        vf v = load(x + j);
        ok &= (v >= 0.0f) & (v <= 1.0f);
    }
    int32_t flags[LANES];
    memcpy(flags, &ok, sizeof flags);
    for (size_t l = 0; l < LANES; l++)
        if (!flags[l])
            return false;
    for (; j < k; j++)
        if (!(x[j] >= 0.0f && x[j] <= 1.0f))
            return false;
    return true;
}

KERNEL float row_sum_squares(const float *x, size_t k)
{
    vf acc = splat(0);
    size_t j = 0;
    for (; j + LANES <= k; j += LANES) {
        vf v = load(x + j);
        acc += v * v;
    }
    if (j < k) {
        vf v = load_tail(x + j, k - j, 0.0f);
        acc += v * v;
    }
    return fold_sum(acc);
}

const mislasi_rowmath CONCAT(mislasi_rowmath_, ROWMATH_ISA) = {
    row_max, row_exp, row_find, row_affine, row_in_unit, row_sum_squares,
};
