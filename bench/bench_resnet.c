/* ResNets on the CPU: images per second for a training step (forward,
 * cross-entropy, backward, SGD step) and for inference (mislas_model_predict:
 * running statistics, nothing kept; PyTorch: eval mode under no_grad):
 * ResNet-32, batch 128, at 3x32x32 with 100 classes and 1x28x28 with 10
 * classes, on 1 and 2 threads; ResNet-50, batch 32, 3x224x224, 1000 classes,
 * on 2 threads. Also the convolutions' effective GFLOP/s (the FLOPs a direct
 * convolution performs, over the whole step's time) as a fraction of the
 * machine's measured FMA peak in the kernels' instruction set on the same
 * threads, beside BLIS's own sgemm on a large square product for scale.
 *
 * With MISLAS_BENCH_BASELINE_FILE naming the file bench/pytorch_resnet.py
 * wrote (keys like resnet32_train_3x32x32_t2 <images/s>), the PyTorch
 * figures and the ratios are printed beside ours, with PyTorch's share of
 * the same peak and the ceiling: the ratio any implementation would reach
 * doing the same FLOPs at the peak.
 *
 * Usage: bench_resnet [--quick] [--no-resnet50] */
#define _POSIX_C_SOURCE 200809L

#include <mislas/mislas.h>

#include "benchutil.h"
#include "util/util.h"

#include <blis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define CHECK(call) do { \
        int rc_ = (call); \
        if (rc_ != MISLAS_OK) { \
            fprintf(stderr, "bench_resnet: %s failed: %s\n", #call, mislas_last_error()); \
            exit(EXIT_FAILURE); \
        } \
    } while (0)

/* Multiply-adds of ResNet-32's convolutions per image, forward. */
static double resnet32_macs(int c, int h, int w)
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

/* The same for torchvision's ResNet-50 at 224 x 224 (stride on the
 * bottleneck's 3x3; projections where the shape changes). */
static double resnet50_macs(void)
{
    double macs = 112.0 * 112 * 64 * 3 * 49;   /* stem */
    int cin = 64, hw = 56;
    static const int planes[4] = {64, 128, 256, 512}, blocks[4] = {3, 4, 6, 3};
    for (int stage = 0; stage < 4; stage++)
        for (int b = 0; b < blocks[stage]; b++) {
            int p = planes[stage], out_hw = b == 0 && stage > 0 ? hw / 2 : hw;
            macs += (double)hw * hw * cin * p;                  /* 1x1 */
            macs += (double)out_hw * out_hw * p * p * 9;        /* 3x3, stride 1 or 2 */
            macs += (double)out_hw * out_hw * p * p * 4;        /* 1x1 up */
            if (b == 0)
                macs += (double)out_hw * out_hw * cin * p * 4;  /* projection */
            cin = p * 4;
            hw = out_hw;
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

static result run(mislas_arch arch, int batch, int c, int hw, int k, int threads, int reps)
{
    CHECK(mislas_set_num_threads(threads));
    mislas_model_options o;
    mislas_model_options_init(&o);
    o.arch = arch;
    o.in_channels = c;
    o.height = o.width = hw;
    o.num_classes = k;
    mislas_model *m;
    CHECK(mislas_model_new(&m, &o));
    mislas_optimizer *opt;
    CHECK(mislas_optimizer_new_sgd(&opt, m, NULL));
    mislas_loss *loss;
    CHECK(mislas_loss_new_cross_entropy(&loss, k));
    size_t count = (size_t)batch * c * hw * hw;
    float *images = malloc(count * sizeof *images), *logits = malloc(sizeof(float) * batch * k);
    float *grad = malloc(sizeof(float) * batch * k);
    int32_t *labels = malloc(sizeof(int32_t) * batch);
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
    for (int i = 0; i < batch; i++)
        labels[i] = i % k;

    for (int r = -2; r < reps; r++) {
        double t0 = bench_now();
        float value;
        CHECK(mislas_model_forward(m, images, batch, logits));
        CHECK(mislas_loss_compute(loss, logits, labels, batch, &value, grad));
        CHECK(mislas_model_backward(m, grad));
        CHECK(mislas_optimizer_step(opt));
        if (r >= 0)
            times[r] = bench_now() - t0;
    }
    qsort(times, (size_t)reps, sizeof *times, bench_by_value);
    result res;
    res.train = batch / times[reps / 2];
    for (int r = -2; r < reps; r++) {
        double t0 = bench_now();
        CHECK(mislas_model_predict(m, images, batch, logits));
        if (r >= 0)
            times[r] = bench_now() - t0;
    }
    qsort(times, (size_t)reps, sizeof *times, bench_by_value);
    res.infer = batch / times[reps / 2];
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

static void report(const char *net, const char *what, const char *shape, int threads, double ours,
        double gflop_per_image, double peak)
{
    char key[96];
    snprintf(key, sizeof key, "%s_%s_%s_t%d", net, what, shape, threads);
    double theirs = bench_baseline(key);
    double gflops = ours * gflop_per_image;
    printf("  %-9s %-9s %d thr  %7.1f img/s  conv %4.0f GFLOP/s (%3.0f%% of peak)", what, shape, threads, ours,
            gflops, 100.0 * gflops / peak);
    /* the ceiling: the ratio an implementation running the same FLOPs at
     * the FMA peak would reach over PyTorch here */
    if (isfinite(theirs))
        printf("  PyTorch %7.1f img/s (%3.0f%% of peak)  ratio %.2fx  ceiling %.2fx", theirs,
                100.0 * theirs * gflop_per_image / peak, ours / theirs, peak / (theirs * gflop_per_image));
    printf("\n");
}

int main(int argc, char **argv)
{
    int quick = 0, resnet50 = 1;
    for (int i = 1; i < argc; i++) {
        quick |= strcmp(argv[i], "--quick") == 0;
        resnet50 &= strcmp(argv[i], "--no-resnet50") != 0;
    }
    int reps = quick ? 3 : 11;
    const char *isa = mislasi_isa_name(mislasi_isa_get());
    printf("ResNet-32, batch 128, and ResNet-50, batch 32; kernels %s, BLIS kernels %s\n", isa,
            mislas_blas_kernels());
    double peak[3] = {0, bench_fma_peak(isa, 1), bench_fma_peak(isa, 2)};
    printf("  FMA peak (%s): %.0f GFLOP/s on 1 thread, %.0f on 2; BLIS sgemm 2048^3: %.0f and %.0f\n", isa,
            peak[1], peak[2], sgemm_gflops(1, quick ? 1 : 3), sgemm_gflops(2, quick ? 1 : 3));
    static const struct { int c, hw, k; const char *name; } shapes[] = {
        {3, 32, 100, "3x32x32"}, {1, 28, 10, "1x28x28"}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        double fwd = 2.0 * resnet32_macs(shapes[s].c, shapes[s].hw, shapes[s].hw) * 1e-9;
        for (int threads = 1; threads <= 2; threads++) {
            result r = run(MISLAS_RESNET32, 128, shapes[s].c, shapes[s].hw, shapes[s].k, threads, reps);
            /* a training step: forward, and backward's two products per layer */
            report("resnet32", "train", shapes[s].name, threads, r.train, 3.0 * fwd, peak[threads]);
            report("resnet32", "inference", shapes[s].name, threads, r.infer, fwd, peak[threads]);
        }
    }
    if (resnet50) {
        double fwd = 2.0 * resnet50_macs() * 1e-9;
        result r = run(MISLAS_RESNET50, 32, 3, 224, 1000, 2, quick ? 1 : 3);
        report("resnet50", "train", "3x224x224", 2, r.train, 3.0 * fwd, peak[2]);
        report("resnet50", "inference", "3x224x224", 2, r.infer, fwd, peak[2]);
    }
    return 0;
}
