/* The element-wise steps of a residual block (layers.h). */
#include "layers.h"

void mislasi_add_relu_forward(size_t count, float *y, const float *r)
{
    for (size_t i = 0; i < count; i++) {
        float v = y[i] + r[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}

void mislasi_relu_backward(size_t count, const float *y, float *dy)
{
    for (size_t i = 0; i < count; i++) {
        float d = dy[i];
        dy[i] = y[i] > 0.0f ? d : 0.0f;
    }
}
