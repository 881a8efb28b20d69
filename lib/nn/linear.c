/* The fully connected layer (layers.h): small next to the convolutions, so
 * a single product each way on the calling thread. */
#include "nn.h"

#include "util/util.h"

void mislasi_linear_forward(size_t n, size_t d, size_t k, const float *x, const float *w,
        const float *b, float *y)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < k; j++)
            y[i * k + j] = b[j];
    mislasi_sgemm(false, true, n, k, d, 1.0f, x, d, w, d, 1.0f, y, k);
}

void mislasi_linear_backward(size_t n, size_t d, size_t k, const float *x, const float *w,
        const float *dy, float *dw, float *db, float *dx)
{
    if (dw != NULL)
        mislasi_sgemm(true, false, k, d, n, 1.0f, dy, k, x, d, 0.0f, dw, d);
    if (db != NULL)
        for (size_t j = 0; j < k; j++) {
            double sum = 0.0;
            for (size_t i = 0; i < n; i++)
                sum += dy[i * k + j];
            db[j] = (float)sum;
        }
    if (dx != NULL)
        mislasi_sgemm(false, false, n, d, k, 1.0f, dy, k, w, d, 0.0f, dx, d);
}
