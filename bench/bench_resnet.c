/* ResNet-32 on the CPU: images per second for a training step (forward,
 * cross-entropy, backward, SGD step) and for inference (mislas_model_predict:
 * running statistics, nothing kept; PyTorch: eval mode under no_grad), batch
 * 128, at 3x32x32 with 100 classes and 1x28x28 with 10 classes, on 1
 * and 2 threads. Also the convolutions' effective GFLOP/s (the FLOPs a
 * direct convolution performs, over the whole step's time) against BLIS's
 * own sgemm on a large square product on the same threads.
 *
 * With MISLAS_BENCH_BASELINE_FILE naming the file bench/pytorch_resnet.py
 * wrote (keys like resnet32_train_3x32x32_t2 <images/s>), the PyTorch
 * figures and the ratios are printed beside ours.
 *
 * Usage: bench_resnet [--quick] */
#define _POSIX_C_SOURCE 200809L

#include <mislas/mislas.h>

#include "benchutil.h"

#include <blis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BATCH = 128 };

#define CHECK(call) do { \
        int rc_ = (call); \
        if (rc_ != MISLAS_OK) { \
            fprintf(stderr, "bench_resnet: %s failed: %s\n", #call, mislas_last_error()); \
            exit(EXIT_FAILURE); \
        } \
    } while (0)

/* Multiply-adds of ResNet-32's convolutions per image, forward. */
static double conv_macs(int c, int h, int w)
{
    double macs = (double)h * w * 16 * c * 9;   /* stem */
    int cin = 16;
    for (int stage = 0; stage < 3; stage++) {
        int planes = 16 << stage;
        for (int b = 0; b < 5; b++) {
            if (b == 0 && stage > 0) {
                h = (h + 2 - 3) / 2 + 1;
                w = (w + 2 - 3) / 2 + 1;
            }
            macs += (double)h * w * planes * cin * 9 + (double)h * w * planes * planes * 9;
            cin = planes;
        }
    }
    return macs;
}

static double sgemm_gflops(int threads, int reps)
{
    const dim_t n = 2048;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    if (a == NULL || b == NULL || c == NULL) {
        fprintf(stderr, "bench_resnet: out of memory\n");
        exit(EXIT_FAILURE);
    }
    for (dim_t i = 0; i < n * n; i++) {
        a[i] = (float)(i % 7) * 0.01f;
        b[i] = (float)(i % 5) * 0.01f;
    }
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(threads, &rntm);
    float one = 1.0f, zero = 0.0f;
    double best = INFINITY;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = bench_now();
        bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, n, n, n, &one, a, n, 1, b, n, 1, &zero, c, n, 1,
                NULL, &rntm);
        double t = bench_now() - t0;
        if (r > 0 && t < best)
            best = t;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * (double)n * n * n / best * 1e-9;
}

typedef struct result {
    double train, infer;    /* images per second, medians */
} result;

static result run(int c, int hw, int k, int threads, int reps)
{
    CHECK(mislas_set_num_threads(threads));
    mislas_model_options o;
    mislas_model_options_init(&o);
    o.arch = MISLAS_RESNET32;
    o.in_channels = c;
    o.height = o.width = hw;
    o.num_classes = k;
    mislas_model *m;
    CHECK(mislas_model_new(&m, &o));
    mislas_optimizer *opt;
    CHECK(mislas_optimizer_new_sgd(&opt, m, NULL));
    mislas_loss *loss;
    CHECK(mislas_loss_new_cross_entropy(&loss, k));
    size_t count = (size_t)BATCH * c * hw * hw;
    float *images = malloc(count * sizeof *images), *logits = malloc(sizeof(float) * BATCH * k);
    float *grad = malloc(sizeof(float) * BATCH * k);
    int32_t *labels = malloc(sizeof(int32_t) * BATCH);
    double *times = malloc(sizeof(double) * (size_t)reps);
    if (!images || !logits || !grad || !labels || !times) {
        fprintf(stderr, "bench_resnet: out of memory\n");
        exit(EXIT_FAILURE);
    }
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < count; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        images[i] = (float)((double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
    for (int i = 0; i < BATCH; i++)
        labels[i] = i % k;

    for (int r = -2; r < reps; r++) {
        double t0 = bench_now();
        float value;
        CHECK(mislas_model_forward(m, images, BATCH, logits));
        CHECK(mislas_loss_compute(loss, logits, labels, BATCH, &value, grad));
        CHECK(mislas_model_backward(m, grad));
        CHECK(mislas_optimizer_step(opt));
        if (r >= 0)
            times[r] = bench_now() - t0;
    }
    qsort(times, (size_t)reps, sizeof *times, bench_by_value);
    result res;
    res.train = BATCH / times[reps / 2];
    for (int r = -2; r < reps; r++) {
        double t0 = bench_now();
        CHECK(mislas_model_predict(m, images, BATCH, logits));
        if (r >= 0)
            times[r] = bench_now() - t0;
    }
    qsort(times, (size_t)reps, sizeof *times, bench_by_value);
    res.infer = BATCH / times[reps / 2];
    free(images);
    free(logits);
    free(grad);
    free(labels);
    free(times);
    mislas_loss_free(loss);
    mislas_optimizer_free(opt);
    mislas_model_free(m);
    return res;
}

static void report(const char *what, const char *shape, int threads, double ours, double gflop_per_image,
        double peak)
{
    char key[96];
    snprintf(key, sizeof key, "resnet32_%s_%s_t%d", what, shape, threads);
    double theirs = bench_baseline(key);
    double gflops = ours * gflop_per_image;
    printf("  %-9s %-8s %d thr  %7.0f img/s  conv %5.0f GFLOP/s (%3.0f%% of sgemm)", what, shape, threads, ours,
            gflops, 100.0 * gflops / peak);
    if (isfinite(theirs))
        printf("  PyTorch %6.0f img/s  ratio %.2fx", theirs, ours / theirs);
    printf("\n");
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    int reps = quick ? 3 : 11;
    printf("ResNet-32, batch %d, BLIS kernels %s\n", BATCH, mislas_blas_kernels());
    double peak[3] = {0, sgemm_gflops(1, quick ? 1 : 3), sgemm_gflops(2, quick ? 1 : 3)};
    printf("  BLIS sgemm 2048^3: %.0f GFLOP/s on 1 thread, %.0f on 2\n", peak[1], peak[2]);
    static const struct { int c, hw, k; const char *name; } shapes[] = {
        {3, 32, 100, "3x32x32"}, {1, 28, 10, "1x28x28"}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        double fwd = 2.0 * conv_macs(shapes[s].c, shapes[s].hw, shapes[s].hw) * 1e-9;
        for (int threads = 1; threads <= 2; threads++) {
            result r = run(shapes[s].c, shapes[s].hw, shapes[s].k, threads, reps);
            /* a training step: forward, and backward's two products per layer */
            report("train", shapes[s].name, threads, r.train, 3.0 * fwd, peak[threads]);
            report("inference", shapes[s].name, threads, r.infer, fwd, peak[threads]);
        }
    }
    return 0;
}
