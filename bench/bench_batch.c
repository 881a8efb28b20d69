/* Cost of batch assembly in a CIFAR training loop: 128 images of 3 x 32 x 32
 * gathered from a 50,000-image data set with pad-4 crop, flip and
 * normalisation (and with mixup on top), against the time of one ResNet-32
 * training step. The bar: assembly under 5 % of a step.
 *
 * The step time comes from MISLAS_BENCH_BASELINE_FILE's `resnet32_step_ms`
 * line (bench/pytorch_resnet.py measures PyTorch's on this machine);
 * without it only the absolute times are printed.
 *
 * Usage: bench_batch [--quick] */
#define _POSIX_C_SOURCE 200809L

#include <mislas/mislas.h>

#include "benchutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 50000, K = 10, C = 3, H = 32, W = 32, BATCH = 128 };

#define CHECK(call) do { \
        int rc_ = (call); \
        if (rc_ != MISLAS_OK) { \
            fprintf(stderr, "bench_batch: %s failed: %s\n", #call, mislas_last_error()); \
            exit(EXIT_FAILURE); \
        } \
    } while (0)

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    int reps = quick ? 50 : 500;
    uint8_t *pixels = malloc((size_t)N * C * H * W);
    int32_t *labels = malloc(N * sizeof *labels);
    float *images = malloc((size_t)BATCH * C * H * W * sizeof *images);
    double *times = malloc((size_t)reps * sizeof *times);
    if (!pixels || !labels || !images || !times)
        return EXIT_FAILURE;
    uint64_t s = 12345;
    for (size_t i = 0; i < (size_t)N * C * H * W; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        pixels[i] = (uint8_t)(s >> 56);
    }
    for (int i = 0; i < N; i++)
        labels[i] = i % K;
    mislas_dataset *d = NULL;
    CHECK(mislas_dataset_from_memory(&d, pixels, labels, N, C, H, W, K, MISLAS_BORROW));
    mislas_sampler *sampler = NULL;
    CHECK(mislas_sampler_new(&sampler, labels, N, K, NULL));

    const float mean[3] = MISLAS_CIFAR_MEAN, std[3] = MISLAS_CIFAR_STD;
    mislas_dataset_batch_options o;
    mislas_dataset_batch_options_init(&o);
    o.augment = 1;
    o.mean = mean;
    o.std = std;
    size_t idx[BATCH];
    int32_t y[BATCH], yb[BATCH];
    float lambda;
    double step_ms = bench_baseline("resnet32_step_ms");
    printf("libmislas %s: batch assembly, %d images of %dx%dx%d from %d, %d threads\n",
           mislas_version(), BATCH, C, H, W, N, (int)mislas_num_threads());
    printf("  %-40s %10s %10s %12s\n", "operation", "median", "min", "of a step");
    for (int with_mixup = 0; with_mixup < 2; with_mixup++) {
        for (int r = 0; r < reps; r++) {
            double t0 = bench_now();
            CHECK(mislas_sampler_next(sampler, idx, BATCH));
            CHECK(mislas_dataset_batch(d, idx, BATCH, &o, (uint64_t)r, images, y));
            if (with_mixup)
                CHECK(mislas_mixup(images, yb, &lambda, y, BATCH, (size_t)C * H * W, 1.0f, 7, (uint64_t)r));
            times[r] = bench_now() - t0;
        }
        qsort(times, (size_t)reps, sizeof *times, bench_by_value);
        double median_ms = 1e3 * times[reps / 2], min_ms = 1e3 * times[0];
        char share[32] = "n/a";
        if (!isnan(step_ms))
            snprintf(share, sizeof share, "%.2f %%", 100.0 * median_ms / step_ms);
        printf("  %-40s %7.3f ms %7.3f ms %12s\n",
               with_mixup ? "sample + crop/flip/normalise + mixup" : "sample + crop/flip/normalise",
               median_ms, min_ms, share);
    }
    if (!isnan(step_ms))
        printf("  (step: ResNet-32 training step, batch %d, %.1f ms, from the baseline file; target < 5 %%)\n",
               BATCH, step_ms);
    mislas_sampler_free(sampler);
    mislas_dataset_free(d);
    free(pixels);
    free(labels);
    free(images);
    free(times);
    return 0;
}
