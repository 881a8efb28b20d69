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

#endif
