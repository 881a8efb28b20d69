/* The element-wise steps of a residual block (layers.h), spread over the
 * library's threads in fixed chunks (each element is independent). */
#include "nn.h"

#include "util/util.h"

enum { GRAIN = 1 << 15 };

typedef struct pair_job {
    float *y;
    const float *r;
} pair_job;

static void relu_backward_range(void *ctx, size_t begin, size_t end)
{
    const pair_job *j = ctx;
    for (size_t i = begin; i < end; i++) {
        float d = j->y[i];
        j->y[i] = j->r[i] > 0.0f ? d : 0.0f;
    }
}

void mislasi_relu_backward(size_t count, const float *y, float *dy)
{
    pair_job j = {.y = dy, .r = y};
    mislasi_parallel_for(count, GRAIN, relu_backward_range, &j);
}

static void add_range(void *ctx, size_t begin, size_t end)
{
    const pair_job *j = ctx;
    for (size_t i = begin; i < end; i++)
        j->y[i] += j->r[i];
}

void mislasi_add(size_t count, float *y, const float *r)
{
    pair_job j = {.y = y, .r = r};
    mislasi_parallel_for(count, GRAIN, add_range, &j);
}

typedef struct masked_job {
    float *y;
    const float *r, *mask;
} masked_job;

static void add_masked_range(void *ctx, size_t begin, size_t end)
{
    const masked_job *j = ctx;
    for (size_t i = begin; i < end; i++) {
        float r = j->r[i];
        j->y[i] += j->mask[i] > 0.0f ? r : 0.0f;
    }
}

void mislasi_add_masked(size_t count, float *y, const float *r, const float *mask)
{
    masked_job j = {.y = y, .r = r, .mask = mask};
    mislasi_parallel_for(count, GRAIN, add_masked_range, &j);
}

/* y = a x + b (+ r when r is given), then ReLU when relu. The ReLU keeps a
 * NaN (as PyTorch's does), so that diverged weights reach the logits and
 * are reported instead of vanishing into zeros. */
void mislasi_affine_plane(const float *x, float *y, size_t len, float a, float b, bool relu, const float *r)
{
    if (r != NULL) {
        for (size_t i = 0; i < len; i++) {
            float v = a * x[i] + b + r[i];
            y[i] = relu && v <= 0.0f ? 0.0f : v;
        }
    } else if (relu) {
        for (size_t i = 0; i < len; i++) {
            float v = a * x[i] + b;
            y[i] = v <= 0.0f ? 0.0f : v;
        }
    } else {
        for (size_t i = 0; i < len; i++)
            y[i] = a * x[i] + b;
    }
}
