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

