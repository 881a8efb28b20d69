/* Row kernels over 16 logical float lanes, written with GCC/Clang vector
 * extensions in the CPU's native width: one 16-lane zmm for AVX-512, two
 * 8-lane ymm for AVX2, four 4-lane xmm otherwise (ROWMATH_WIDTH). Logical
 * lane l always accumulates elements j with j % 16 == l in the same order,
 * the 16 partial results are folded in a fixed order, and FMA contraction is
 * off (-ffp-contract=off), so every copy produces the same bits.
 *
 * This file is compiled once per instruction set (lib/meson.build), with
 * ROWMATH_ISA naming the table it defines and ROWMATH_WIDTH its vector width. */
#include "rowmath.h"

#include <stdint.h>
#include <string.h>

#if !defined(ROWMATH_ISA) || !defined(ROWMATH_WIDTH)
#error "compile with -DROWMATH_ISA=generic|avx2|avx512 and -DROWMATH_WIDTH=4|8|16"
#endif
#define CONCAT_(a, b) a##b
#define CONCAT(a, b) CONCAT_(a, b)
#define INLINE static inline __attribute__((always_inline))

enum { LANES = 16, W = ROWMATH_WIDTH, NV = LANES / W };
typedef float vn __attribute__((vector_size(W * sizeof(float))));
typedef int32_t vin __attribute__((vector_size(W * sizeof(int32_t))));
/* 16 logical lanes: lane l is v[l / W][l % W] */
typedef struct { vn v[NV]; } vf;
typedef struct { vin v[NV]; } vi;

/* One native vector at a time: a single wide copy through the stack would
 * split into narrower moves and stall on store forwarding. */
INLINE vf load(const float *p)
{
    vf r;
    for (int i = 0; i < NV; i++)
        memcpy(&r.v[i], p + i * W, sizeof r.v[i]);
    return r;
}

INLINE void store(float *p, vf x)
{
    for (int i = 0; i < NV; i++)
        memcpy(p + i * W, &x.v[i], sizeof x.v[i]);
}

/* The last `count` < LANES elements; the other lanes hold `fill`. */
INLINE vf load_tail(const float *p, size_t count, float fill)
{
    float buf[LANES];
    for (size_t l = 0; l < LANES; l++)
        buf[l] = l < count ? p[l] : fill;
    return load(buf);
}

INLINE vf splat(float x)
{
    vf r;
    for (int i = 0; i < NV; i++)
        r.v[i] = (vn){0} + x;
    return r;
}

INLINE vn max_n(vn a, vn b)
{
    vin mask = a > b;
    return (vn)((mask & (vin)a) | (~mask & (vin)b));
}

/* exp(x) for x <= 0 (Cephes-style range reduction: x = n ln2 + r,
 * |r| <= ln2/2, then a degree-6 polynomial in r, then scale by 2^n). */
INLINE vn exp_n(vn x)
{
    x = max_n(x, (vn){0} - 87.3365447505f);          /* exp of this is FLT_MIN */
    vn t = x * 1.44269504088896341f;
    vn n = (t + 12582912.0f) - 12582912.0f;            /* round to nearest integer */
    vn r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vn p = (vn){0} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    vn y = p * (r * r) + r + 1.0f;
    vin bits = (__builtin_convertvector(n, vin) + 127) << 23;
    return y * (vn)bits;
}

INLINE float fold_sum(vf x)
{
    float lanes[LANES];
    memcpy(lanes, &x, sizeof lanes);
    for (size_t width = LANES / 2; width > 0; width /= 2)   /* pairwise, fixed order */
        for (size_t l = 0; l < width; l++)
            lanes[l] += lanes[l + width];
    return lanes[0];
}

INLINE int any_set(vi m)
{
    int32_t flags[LANES];
    memcpy(flags, &m, sizeof flags);
    int any = 0;
    for (size_t l = 0; l < LANES; l++)
        any |= flags[l];
    return any != 0;
}

/* Largest element and, when wanted, the smallest. Two independent running
 * maxima break the dependency chain; max and min are exact, so this changes
 * no result. Instantiated below with and without the minimum. */
INLINE bool extremes(const float *x, size_t k, float *max_out, float *min_out, bool want_min)
{
    const vin exponent = (vin){0} + 0x7f800000;
    vf m0 = splat(-3.402823466e38f), m1 = m0, lo = splat(3.402823466e38f);
    vi bad;
    memset(&bad, 0, sizeof bad);
    size_t j = 0;
    for (; j + 2 * LANES <= k; j += 2 * LANES) {
        vf a = load(x + j), b = load(x + j + LANES);
        for (int i = 0; i < NV; i++) {
            bad.v[i] |= (((vin)a.v[i] & exponent) == exponent) | (((vin)b.v[i] & exponent) == exponent);
            m0.v[i] = max_n(m0.v[i], a.v[i]);
            m1.v[i] = max_n(m1.v[i], b.v[i]);
            if (want_min)   /* min(lo, a, b) = -max(-lo, -a, -b) */
                lo.v[i] = -max_n(max_n(-lo.v[i], -a.v[i]), -b.v[i]);
        }
    }
    for (; j < k; j += LANES) {
        /* a partial block is filled with one of its own elements */
        vf a = j + LANES <= k ? load(x + j) : load_tail(x + j, k - j, x[j]);
        for (int i = 0; i < NV; i++) {
            bad.v[i] |= ((vin)a.v[i] & exponent) == exponent;
            m0.v[i] = max_n(m0.v[i], a.v[i]);
            if (want_min)
                lo.v[i] = -max_n(-lo.v[i], -a.v[i]);
        }
    }
    if (any_set(bad))
        return false;
    float lanes[LANES], other[LANES], low[LANES];
    memcpy(lanes, &m0, sizeof lanes);
    memcpy(other, &m1, sizeof other);
    memcpy(low, &lo, sizeof low);
    float m = lanes[0], l = low[0];
    for (size_t i = 0; i < LANES; i++) {
        m = lanes[i] > m ? lanes[i] : m;
        m = other[i] > m ? other[i] : m;
        l = low[i] < l ? low[i] : l;
    }
    *max_out = m;
    if (want_min)
        *min_out = l;
    return true;
}

static bool row_max(const float *x, size_t k, float *max_out)
{
    return extremes(x, k, max_out, NULL, false);
}

static bool row_range(const float *x, size_t k, float *max_out, float *min_out)
{
    return extremes(x, k, max_out, min_out, true);
}

/* The exp pass, instantiated below for what each caller needs: the loss
 * wants the sum of (x_j - m), calibration the sum of squares; leaving out the
 * other saves work in the hottest loop of both. */
typedef struct exp_sums {
    vf sum, shifted, sq;
} exp_sums;

/* One block: ex = exp(x - m), zeroed where keep is 0 (keep NULL: all lanes
 * live), added into the sums the caller wants. */
INLINE vf exp_block(vf d, const vf *keep, vn mv, exp_sums *acc, bool want_shifted, bool want_sq)
{
    vf ex;
    for (int i = 0; i < NV; i++) {
        d.v[i] -= mv;                       /* a tail's fill lanes become 0 */
        ex.v[i] = exp_n(d.v[i]);
        if (keep != NULL)
            ex.v[i] *= keep->v[i];
        acc->sum.v[i] += ex.v[i];
        if (want_shifted)
            acc->shifted.v[i] += d.v[i];
        if (want_sq)
            acc->sq.v[i] += ex.v[i] * ex.v[i];
    }
    return ex;
}

INLINE mislasi_row_sums exp_pass(const float *x, size_t k, float m, float *e, bool want_shifted, bool want_sq)
{
    exp_sums acc = { splat(0), splat(0), splat(0) };
    const vn mv = (vn){0} + m;
    size_t j = 0;
    for (; j + LANES <= k; j += LANES) {
        vf ex = exp_block(load(x + j), NULL, mv, &acc, want_shifted, want_sq);
        if (e != NULL)
            store(e + j, ex);
    }
    if (j < k) {
        size_t rest = k - j;
        float live[LANES];
        for (size_t l = 0; l < LANES; l++)
            live[l] = l < rest ? 1.0f : 0.0f;
        vf keep = load(live);
        vf ex = exp_block(load_tail(x + j, rest, m), &keep, mv, &acc, want_shifted, want_sq);
        if (e != NULL)
            memcpy(e + j, &ex, rest * sizeof(float));
    }
    mislasi_row_sums s = { fold_sum(acc.sum), want_shifted ? fold_sum(acc.shifted) : 0.0f,
                           want_sq ? fold_sum(acc.sq) : 0.0f };
    return s;
}

static mislasi_row_sums row_exp(const float *x, size_t k, float m, float *e)
{
    return exp_pass(x, k, m, e, true, false);
}

static mislasi_row_sums row_exp_squares(const float *x, size_t k, float m)
{
    return exp_pass(x, k, m, NULL, false, true);
}

static size_t row_find(const float *x, size_t k, float value)
{
    const vn target = (vn){0} + value;
    size_t j = 0;
    for (; j + LANES <= k; j += LANES) {
        vf a = load(x + j);
        vi hit;
        for (int i = 0; i < NV; i++)
            hit.v[i] = a.v[i] == target;
        if (any_set(hit))
            break;
    }
    for (; j < k; j++)
        if (x[j] == value)
            return j;
    return k;
}

static void row_affine(float *x, size_t k, float a, float b)
{
    size_t j = 0;
    for (; j + LANES <= k; j += LANES) {
        vf v = load(x + j);
        for (int i = 0; i < NV; i++)
            v.v[i] = v.v[i] * a + b;
        store(x + j, v);
    }
    for (; j < k; j++)
        x[j] = x[j] * a + b;
}

static bool row_in_unit(const float *x, size_t k)
{
    vi outside;
    memset(&outside, 0, sizeof outside);
    size_t j = 0;
    for (; j + LANES <= k; j += LANES) {
        vf v = load(x + j);
        for (int i = 0; i < NV; i++)
            outside.v[i] |= ~((v.v[i] >= 0.0f) & (v.v[i] <= 1.0f));   /* NaN compares false */
    }
    if (any_set(outside))
        return false;
    for (; j < k; j++)
        if (!(x[j] >= 0.0f && x[j] <= 1.0f))
            return false;
    return true;
}

static float row_sum_squares(const float *x, size_t k)
{
    vf acc = splat(0);
    for (size_t j = 0; j < k; j += LANES) {
        vf v = j + LANES <= k ? load(x + j) : load_tail(x + j, k - j, 0.0f);
        for (int i = 0; i < NV; i++)
            acc.v[i] += v.v[i] * v.v[i];
    }
    return fold_sum(acc);
}

const mislasi_rowmath CONCAT(mislasi_rowmath_, ROWMATH_ISA) = {
    row_max, row_range, row_exp, row_exp_squares, row_find, row_affine, row_in_unit, row_sum_squares,
};
