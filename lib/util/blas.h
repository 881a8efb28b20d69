/* Matrix products through BLIS, and the choice of BLIS's kernel set. Not
 * installed. */
#ifndef MISLAS_BLAS_H
#define MISLAS_BLAS_H

#include <stdbool.h>
#include <stddef.h>

/* C = alpha * op(A) * op(B) + beta * C, row-major, op = transpose when the
 * flag is set (A is m x k after op, B k x n, C m x n; lda/ldb/ldc are row
 * strides of the matrices as stored). Runs on the calling thread only: the
 * library spreads independent products over its own threads, so the result
 * never depends on the thread count. */
void mislasi_sgemm(bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
        float alpha, const float *a, size_t lda, const float *b, size_t ldb,
        float beta, float *c, size_t ldc);

/* BLIS's inner kernel on operands the library lays out itself, so that
 * unfolding an image and packing it for the kernel are one pass (BLIS's
 * own packing of a float operand is an element-by-element loop here, ~13 %
 * of a small product's time). A tile computes, for o < no <= out_block and
 * q < nq <= col_block,
 *     c[o * ldc + q] = sum over p < k of weights[p * out_block + o] * data[p * col_block + q]
 * from a weights panel (k x out_block, zero beyond the real outputs) and a
 * data panel (k x col_block). */
typedef struct mislasi_tile_kernel {
    size_t col_block, out_block;
    bool cols_first;        /* the kernel's rows run along C's columns */
    void (*ukernel)(void);
    void *context;
} mislasi_tile_kernel;
const mislasi_tile_kernel *mislasi_tile_kernel_get(void);
void mislasi_tile(const mislasi_tile_kernel *t, size_t k, size_t no, size_t nq, const float *weights,
        const float *data, float *c, size_t ldc);

#endif
