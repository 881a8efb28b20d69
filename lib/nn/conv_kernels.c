/* The convolution kernels of conv_kernels.h for one instruction set: this
 * file is compiled once per set (lib/meson.build) with CONV_ISA naming the
 * table it defines and CONV_WIDTH its vector width (4: plain C, 8: AVX2 +
 * FMA, 16: AVX-512). A block of 16 lanes is 16 / CONV_WIDTH native vectors.
 *
 * A tile's accumulators live in registers for its whole sum: the compiler
 * gets one function per tile shape (blocks x rows, from macros below), each
 * with constant loop bounds it unrolls, and a tile's size is bounded so
 * that accumulators, one block of operands and a broadcast fit the
 * register file (32 vectors with AVX-512, 16 with AVX2). */
#include "conv_kernels.h"

#include <stddef.h>
#include <stdint.h>

#if !defined(CONV_ISA) || !defined(CONV_WIDTH)
#error "compile with -DCONV_ISA=generic|avx2|avx512 and -DCONV_WIDTH=4|8|16"
#endif
#define CONCAT_(a, b) a##b
#define CONCAT(a, b) CONCAT_(a, b)
#define INLINE static inline __attribute__((always_inline))

#if CONV_WIDTH == 16
#include <immintrin.h>
typedef __m512 vn;
INLINE vn vzero(void) { return _mm512_setzero_ps(); }
INLINE vn vload(const float *p) { return _mm512_loadu_ps(p); }
INLINE void vstore(float *p, vn v) { _mm512_storeu_ps(p, v); }
INLINE vn vsplat(float x) { return _mm512_set1_ps(x); }
INLINE vn vfma(vn a, vn b, vn c) { return _mm512_fmadd_ps(a, b, c); }
INLINE vn vmul(vn a, vn b) { return _mm512_mul_ps(a, b); }
INLINE vn vadd(vn a, vn b) { return _mm512_add_ps(a, b); }
INLINE vn vrelu(vn v) { return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, vzero(), _CMP_LE_OQ), vzero()); }
#define REGISTERS 32
/* accumulators a tile of b blocks may hold: 28 of 32 registers */
#define ROWS_1 28
#define ROWS_2 14
#define ROWS_3 9
#define ROWS_4 6
/* row-tap tiles: accumulators, three weight (or dy) blocks and a broadcast */
#define ROW_PIXELS 24
#define ROW_WGRAD_ROWS 9
#elif CONV_WIDTH == 8
#include <immintrin.h>
typedef __m256 vn;
INLINE vn vzero(void) { return _mm256_setzero_ps(); }
INLINE vn vload(const float *p) { return _mm256_loadu_ps(p); }
INLINE void vstore(float *p, vn v) { _mm256_storeu_ps(p, v); }
INLINE vn vsplat(float x) { return _mm256_set1_ps(x); }
INLINE vn vfma(vn a, vn b, vn c) { return _mm256_fmadd_ps(a, b, c); }
INLINE vn vmul(vn a, vn b) { return _mm256_mul_ps(a, b); }
INLINE vn vadd(vn a, vn b) { return _mm256_add_ps(a, b); }
INLINE vn vrelu(vn v) { return _mm256_blendv_ps(v, vzero(), _mm256_cmp_ps(v, vzero(), _CMP_LE_OQ)); }
#define REGISTERS 16
/* 12 of 16 registers (a block is two) */
#define ROWS_1 6
#define ROWS_2 3
#define ROWS_3 2
#define ROWS_4 1
#define ROW_PIXELS 4
#define ROW_WGRAD_ROWS 1
#elif CONV_WIDTH == 4
#include <math.h>
#include <string.h>
typedef float vn __attribute__((vector_size(16)));
INLINE vn vzero(void) { return (vn){0}; }
INLINE vn vload(const float *p) { vn v; memcpy(&v, p, sizeof v); return v; }
INLINE void vstore(float *p, vn v) { memcpy(p, &v, sizeof v); }
INLINE vn vsplat(float x) { return (vn){0} + x; }
/* one rounding per lane, as the FMA instructions do */
INLINE vn vfma(vn a, vn b, vn c)
{
    vn r;
    for (int l = 0; l < 4; l++)
        r[l] = fmaf(a[l], b[l], c[l]);
    return r;
}
INLINE vn vmul(vn a, vn b) { return a * b; }
INLINE vn vadd(vn a, vn b) { return a + b; }
INLINE vn vrelu(vn v)
{
    for (int l = 0; l < 4; l++)
        v[l] = v[l] <= 0.0f ? 0.0f : v[l];
    return v;
}
#define REGISTERS 16     /* the compiler's SSE registers */
#define ROWS_1 6
#define ROWS_2 3
#define ROWS_3 2
#define ROWS_4 1
#define ROW_PIXELS 4
#define ROW_WGRAD_ROWS 1
#else
#error "CONV_WIDTH must be 4, 8 or 16"
#endif

enum { NV = MISLASI_LANES / CONV_WIDTH };

/* A tile's sums in registers: row r (a pixel, or a weight gradient's input
 * channel), vector k (a block of lanes, or a row-tap weight gradient's tap). */
typedef vn sums[MISLASI_TILE_ROWS][MISLASI_TILE_BLOCKS][NV];

/* acc[r][k] from out + r r_step + k k_step (accumulate: the chain goes on),
 * or zero. */
INLINE void start_sums(sums acc, const float *out, const int R, const int K, size_t r_step, size_t k_step,
        bool accumulate)
{
#pragma GCC unroll 32
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int k = 0; k < K; k++)
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[r][k][v] = accumulate ? vload(out + r * r_step + k * k_step + v * CONV_WIDTH) : vzero();
}

INLINE void store_sums(sums acc, float *out, const int R, const int K, size_t r_step, size_t k_step)
{
#pragma GCC unroll 32
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int k = 0; k < K; k++)
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                vstore(out + r * r_step + k * k_step + v * CONV_WIDTH, acc[r][k][v]);
}

/* The tile's optional last step (conv_kernels.h), in registers. */
INLINE void finish(const mislasi_conv_tile *t, const int B, const int P, sums acc)
{
#pragma GCC unroll 4
    for (int b = 0; b < B; b++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            size_t lane = (size_t)(b * MISLASI_LANES + v * CONV_WIDTH);
            vn scale = vload(t->scale + lane), shift = vload(t->shift + lane);
#pragma GCC unroll 32
            for (int p = 0; p < P; p++) {
                vn y = vadd(vmul(scale, acc[p][b][v]), shift);
                if (t->residual != NULL)
                    y = vadd(y, vload(t->residual + p * t->residual_step + lane));
                acc[p][b][v] = t->relu ? vrelu(y) : y;
            }
        }
}

INLINE void tile_body(const mislasi_conv_tile *t, const int B, const int P)
{
    sums acc;
    start_sums(acc, t->out, P, B, t->out_step, MISLASI_LANES, t->accumulate);
    const size_t in_step = t->in_step, w_step = t->w_step, depth = t->depth;
    for (size_t tap = 0; tap < t->taps; tap++) {
        const float *x = t->in[tap] + t->in_shift;
        const float *w = t->w[tap] + t->w_shift;
        for (size_t c = 0; c < depth; c++, x++, w += w_step) {
            vn wv[MISLASI_TILE_BLOCKS][NV];
#pragma GCC unroll 4
            for (int b = 0; b < B; b++)
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++)
                    wv[b][v] = vload(w + b * MISLASI_LANES + v * CONV_WIDTH);
            const float *xp = x;
#pragma GCC unroll 32
            for (int p = 0; p < P; p++, xp += in_step) {
                vn xs = vsplat(*xp);
#pragma GCC unroll 4
                for (int b = 0; b < B; b++)
#pragma GCC unroll 4
                    for (int v = 0; v < NV; v++)
                        acc[p][b][v] = vfma(xs, wv[b][v], acc[p][b][v]);
            }
        }
    }
    if (t->scale != NULL)
        finish(t, B, P, acc);
    store_sums(acc, t->out, P, B, t->out_step, MISLASI_LANES);
}

INLINE void row_tile_body(const mislasi_conv_tile *t, const int P)
{
    enum { KW = MISLASI_ROW_TAPS };
    sums acc;       /* one block */
    start_sums(acc, t->out, P, 1, t->out_step, MISLASI_LANES, false);
    const size_t in_step = t->in_step, w_step = t->w_step, depth = t->depth;
    for (size_t r = 0; r < t->taps; r++) {
        const float *x = t->in[r] + t->in_shift;
        const float *w[KW];
        for (int i = 0; i < KW; i++)
            w[i] = t->w[KW * r + i] + t->w_shift;
        for (size_t c = 0; c < depth; c++, x++) {
            vn wv[KW][NV];
#pragma GCC unroll 3
            for (int i = 0; i < KW; i++)
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++)
                    wv[i][v] = vload(w[i] + c * w_step + v * CONV_WIDTH);
            /* input pixel q feeds output q - i through tap i; walking q
             * upwards gives each output its taps in order */
            const float *xp = x;
#pragma GCC unroll 32
            for (int q = 0; q < P + KW - 1; q++, xp += in_step) {
                vn xs = vsplat(*xp);
#pragma GCC unroll 3
                for (int i = 0; i < KW; i++)
                    if (q - i >= 0 && q - i < P)
#pragma GCC unroll 4
                        for (int v = 0; v < NV; v++)
                            acc[q - i][0][v] = vfma(xs, wv[i][v], acc[q - i][0][v]);
            }
        }
    }
    if (t->scale != NULL)
        finish(t, 1, P, acc);
    store_sums(acc, t->out, P, 1, t->out_step, MISLASI_LANES);
}

/* The weight gradient's sums, both variants: rows j < J of x (x[j], one
 * broadcast each) against K vectors of dy per pixel, vector k at
 * dy + k * dy_offset and its sums at out + k * out_offset + j * out_step.
 * The plain kernel's vectors are its blocks of lanes (dy_offset = out_offset
 * = 16); the row-tap kernel's are its three taps, a pixel apart before the
 * run's current one (dy_offset = -dy_step, out_offset = out_tap). */
INLINE void wgrad_sums(const mislasi_conv_wgrad *g, const int K, const int J, ptrdiff_t dy_offset,
        size_t out_offset)
{
    sums acc;
    start_sums(acc, g->out, J, K, g->out_step, out_offset, g->accumulate);
    const size_t x_step = g->x_step, dy_step = g->dy_step, length = g->length;
    for (size_t r = 0; r < g->runs; r++) {
        const float *x = g->x[r] + g->x_shift;
        const float *dy = g->dy[r] + g->dy_shift;
        for (size_t q = 0; q < length; q++, x += x_step, dy += dy_step) {
            vn d[MISLASI_TILE_BLOCKS][NV];
#pragma GCC unroll 4
            for (int k = 0; k < K; k++)
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++)
                    d[k][v] = vload(dy + k * dy_offset + v * CONV_WIDTH);
#pragma GCC unroll 32
            for (int j = 0; j < J; j++) {
                vn xs = vsplat(x[j]);
#pragma GCC unroll 4
                for (int k = 0; k < K; k++)
#pragma GCC unroll 4
                    for (int v = 0; v < NV; v++)
                        acc[j][k][v] = vfma(xs, d[k][v], acc[j][k][v]);
            }
        }
    }
    store_sums(acc, g->out, J, K, g->out_step, out_offset);
}

INLINE void wgrad_body(const mislasi_conv_wgrad *g, const int B, const int I)
{
    wgrad_sums(g, B, I, MISLASI_LANES, MISLASI_LANES);
}

INLINE void row_wgrad_body(const mislasi_conv_wgrad *g, const int J)
{
    wgrad_sums(g, MISLASI_ROW_TAPS, J, -(ptrdiff_t)g->dy_step, g->out_tap);
}

/* One function per shape: UPTO_n(X, b) expands X(b, 1) ... X(b, n). */
#define UPTO_1(X, b) X(b, 1)
#define UPTO_2(X, b) UPTO_1(X, b) X(b, 2)
#define UPTO_3(X, b) UPTO_2(X, b) X(b, 3)
#define UPTO_4(X, b) UPTO_3(X, b) X(b, 4)
#define UPTO_5(X, b) UPTO_4(X, b) X(b, 5)
#define UPTO_6(X, b) UPTO_5(X, b) X(b, 6)
#define UPTO_7(X, b) UPTO_6(X, b) X(b, 7)
#define UPTO_8(X, b) UPTO_7(X, b) X(b, 8)
#define UPTO_9(X, b) UPTO_8(X, b) X(b, 9)
#define UPTO_10(X, b) UPTO_9(X, b) X(b, 10)
#define UPTO_11(X, b) UPTO_10(X, b) X(b, 11)
#define UPTO_12(X, b) UPTO_11(X, b) X(b, 12)
#define UPTO_13(X, b) UPTO_12(X, b) X(b, 13)
#define UPTO_14(X, b) UPTO_13(X, b) X(b, 14)
#define UPTO_15(X, b) UPTO_14(X, b) X(b, 15)
#define UPTO_16(X, b) UPTO_15(X, b) X(b, 16)
#define UPTO_17(X, b) UPTO_16(X, b) X(b, 17)
#define UPTO_18(X, b) UPTO_17(X, b) X(b, 18)
#define UPTO_19(X, b) UPTO_18(X, b) X(b, 19)
#define UPTO_20(X, b) UPTO_19(X, b) X(b, 20)
#define UPTO_21(X, b) UPTO_20(X, b) X(b, 21)
#define UPTO_22(X, b) UPTO_21(X, b) X(b, 22)
#define UPTO_23(X, b) UPTO_22(X, b) X(b, 23)
#define UPTO_24(X, b) UPTO_23(X, b) X(b, 24)
#define UPTO_25(X, b) UPTO_24(X, b) X(b, 25)
#define UPTO_26(X, b) UPTO_25(X, b) X(b, 26)
#define UPTO_27(X, b) UPTO_26(X, b) X(b, 27)
#define UPTO_28(X, b) UPTO_27(X, b) X(b, 28)
#define FOR_SHAPES(X) \
    CONCAT(UPTO_, ROWS_1)(X, 1) CONCAT(UPTO_, ROWS_2)(X, 2) CONCAT(UPTO_, ROWS_3)(X, 3) CONCAT(UPTO_, ROWS_4)(X, 4)

#define DEFINE(b, r) \
    static void tile_##b##_##r(const mislasi_conv_tile *t) { tile_body(t, b, r); } \
    static void wgrad_##b##_##r(const mislasi_conv_wgrad *g) { wgrad_body(g, b, r); }
FOR_SHAPES(DEFINE)

#define DEFINE_ROW(unused, r) \
    static void row_tile_##r(const mislasi_conv_tile *t) { row_tile_body(t, r); }
CONCAT(UPTO_, ROW_PIXELS)(DEFINE_ROW, 0)
#define DEFINE_ROW_WGRAD(unused, r) \
    static void row_wgrad_##r(const mislasi_conv_wgrad *g) { row_wgrad_body(g, r); }
CONCAT(UPTO_, ROW_WGRAD_ROWS)(DEFINE_ROW_WGRAD, 0)

typedef void (*tile_fn)(const mislasi_conv_tile *);
typedef void (*wgrad_fn)(const mislasi_conv_wgrad *);
#define TILE_ENTRY(b, r) [b][r] = tile_##b##_##r,
#define WGRAD_ENTRY(b, r) [b][r] = wgrad_##b##_##r,
static const tile_fn tiles[MISLASI_TILE_BLOCKS + 1][MISLASI_TILE_ROWS + 1] = { FOR_SHAPES(TILE_ENTRY) };
static const wgrad_fn wgrads[MISLASI_TILE_BLOCKS + 1][MISLASI_TILE_ROWS + 1] = { FOR_SHAPES(WGRAD_ENTRY) };

#define ROW_ENTRY(unused, r) [r] = row_tile_##r,
static const tile_fn row_tiles[MISLASI_TILE_ROWS + 1] = { CONCAT(UPTO_, ROW_PIXELS)(ROW_ENTRY, 0) };
#define ROW_WGRAD_ENTRY(unused, r) [r] = row_wgrad_##r,
static const wgrad_fn row_wgrads[MISLASI_TILE_ROWS + 1] = { CONCAT(UPTO_, ROW_WGRAD_ROWS)(ROW_WGRAD_ENTRY, 0) };

/* The caller keeps within max_rows (conv.c), so every entry it asks for exists. */
static void tile(const mislasi_conv_tile *t)
{
    tiles[t->blocks][t->pixels](t);
}

static void row_tile(const mislasi_conv_tile *t)
{
    row_tiles[t->pixels](t);
}

static void wgrad(const mislasi_conv_wgrad *g)
{
    wgrads[g->blocks][g->rows](g);
}

static void row_wgrad(const mislasi_conv_wgrad *g)
{
    row_wgrads[g->rows](g);
}

const mislasi_conv_kernels CONCAT(mislasi_conv_kernels_, CONV_ISA) = {
    .max_rows = {0, ROWS_1, ROWS_2, ROWS_3, ROWS_4},
    .width = CONV_WIDTH,
    .registers = REGISTERS,
    .tile = tile,
    .max_row_pixels = ROW_PIXELS,
    .row_tile = row_tile,
    .max_row_wgrad_rows = ROW_WGRAD_ROWS,
    .row_wgrad = row_wgrad,
    .wgrad = wgrad,
};
