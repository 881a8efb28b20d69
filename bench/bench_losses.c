/* Throughput of the two hot paths of a MiSLAS training/evaluation loop:
 *
 *   LAS   label-aware smoothing loss, forward + backward (and forward only),
 *         N = 4096 rows of K = 1000 logits, ImageNet-LT-like class counts;
 *   ECE   calibration over 100,000 samples of K = 1000 logits into 15 bins,
 *         fed in batches of 1000 rows and as a single call.
 *
 * Figures are time per call (median and minimum over the repetitions) and
 * GB/s of logits read (bytes of logits passed in / time; the gradient written
 * by the backward pass is not counted). This is a program that prints its
 * figures, not a test: it fails only when a library call fails.
 *
 * If MISLAS_BENCH_BASELINE_FILE names a file of `key value` lines
 * (las_fwd_bwd_us and ece_ms, optionally las_fwd_us and ece_batched_ms, as
 * bench/pytorch_baseline.py writes them; other lines are ignored), the
 * speed-up of each figure over that baseline is printed: ece_ms is compared
 * with the single call over all rows, ece_batched_ms with the calls of 1000
 * rows.
 *
 * Usage: bench_losses [--quick]   (--quick: short repetitions, for smoke runs)
 *
 * Only the public API is used. */
#define _POSIX_C_SOURCE 200809L

#include <mislas/mislas.h>

#include "benchutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    LAS_N = 4096,
    NUM_CLASSES = 1000,
    ECE_N = 100000,
    ECE_BATCH = 1000,
    ECE_BINS = 15,
    MAX_SAMPLES = 1 << 20
};

static const double LOGIT_STD = 3.0;
static const uint64_t SEED = 20240607u;
static const double TARGET_SPEEDUP = 4.0;

/* ---- helpers ----------------------------------------------------------- */

#define CHECK(call)                                                              \
    do {                                                                         \
        int rc_ = (call);                                                        \
        if (rc_ != MISLAS_OK) {                                                  \
            fprintf(stderr, "bench_losses: %s failed: %s (%s)\n", #call,         \
                    mislas_status_string(rc_), mislas_last_error());             \
            exit(EXIT_FAILURE);                                                  \
        }                                                                        \
    } while (0)

static void *xmalloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL) {
        fprintf(stderr, "bench_losses: out of memory for %zu bytes\n", size);
        exit(EXIT_FAILURE);
    }
    return p;
}

/* splitmix64: small, fast, and good enough for benchmark data. */
typedef struct rng {
    uint64_t state;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* uniform in (0, 1] */
static double rng_uniform(rng *r)
{
    return ((double)(rng_next(r) >> 11) + 1.0) * 0x1.0p-53;
}

static int32_t rng_below(rng *r, int32_t bound)
{
    return (int32_t)(rng_next(r) % (uint64_t)bound);
}

/* n normal deviates with standard deviation std (Box-Muller, in pairs). */
static void fill_normal(rng *r, float *x, size_t n, double std)
{
    const double two_pi = 6.283185307179586;
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        double radius = std * sqrt(-2.0 * log(rng_uniform(r)));
        double angle = two_pi * rng_uniform(r);
        x[i] = (float)(radius * cos(angle));
        x[i + 1] = (float)(radius * sin(angle));
    }
    if (i < n)
        x[i] = (float)(std * sqrt(-2.0 * log(rng_uniform(r))) * cos(two_pi * rng_uniform(r)));
}

static int32_t row_argmax(const float *z, size_t k)
{
    size_t best = 0;
    for (size_t j = 1; j < k; j++)
        if (z[j] > z[best])
            best = j;
    return (int32_t)best;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct stats {
    double median, min;     /* seconds per call */
    size_t reps;
} stats;

static stats summarize_times(double *t, size_t n)
{
    qsort(t, n, sizeof *t, compare_doubles);
    stats s;
    s.reps = n;
    s.min = t[0];
    s.median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    return s;
}

/* Repetition budget: run at least min_reps and at least min_seconds in total. */
typedef struct budget {
    double warmup_seconds, min_seconds;
    size_t warmup_reps, min_reps;
} budget;

/* ---- the timed operations ---------------------------------------------- */

typedef struct las_case {
    mislas_loss *loss;
    const float *logits;
    const int32_t *targets;
    float *grad;            /* NULL: forward only */
    float value;
} las_case;

static void las_run(las_case *c)
{
    CHECK(mislas_loss_compute(c->loss, c->logits, c->targets, LAS_N, &c->value, c->grad));
}

typedef struct ece_case {
    mislas_calib *calib;
    const float *logits;
    const int32_t *targets;
    size_t batch;           /* rows per mislas_calib_add_logits call */
    mislas_calib_summary summary;
} ece_case;

/* One full pass: reset, add all ECE_N rows, summarize. */
static void ece_run(ece_case *c)
{
    mislas_calib_reset(c->calib);
    for (size_t start = 0; start < ECE_N; start += c->batch) {
        size_t len = ECE_N - start < c->batch ? ECE_N - start : c->batch;
        CHECK(mislas_calib_add_logits(c->calib, c->logits + start * NUM_CLASSES, c->targets + start, len));
    }
    mislas_calib_summary_init(&c->summary);
    CHECK(mislas_calib_summarize(c->calib, &c->summary));
}

typedef void (*run_fn)(void *);

static stats time_calls(run_fn fn, void *arg, const budget *b, double *samples)
{
    double start = bench_now();
    for (size_t i = 0; i < b->warmup_reps || bench_now() - start < b->warmup_seconds; i++)
        fn(arg);
    size_t n = 0;
    start = bench_now();
    while (n < MAX_SAMPLES && (n < b->min_reps || bench_now() - start < b->min_seconds)) {
        double t0 = bench_now();
        fn(arg);
        samples[n++] = bench_now() - t0;
    }
    return summarize_times(samples, n);
}

static void las_run_v(void *arg) { las_run(arg); }
static void ece_run_v(void *arg) { ece_run(arg); }

/* ---- the baseline file ------------------------------------------------- */

typedef struct baseline {
    double las_fwd_bwd_us, las_fwd_us, ece_ms, ece_batched_ms;   /* NAN when absent */
    const char *path;
} baseline;

static baseline read_baseline(void)
{
    baseline b = { NAN, NAN, NAN, NAN, NULL };
    const char *path = getenv("MISLAS_BENCH_BASELINE_FILE");
    if (path == NULL || *path == '\0')
        return b;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "bench_losses: cannot read baseline file %s: %s (ratios not printed)\n",
                path, strerror(errno));
        return b;
    }
    b.path = path;
    char line[256];
    while (fgets(line, sizeof line, f) != NULL) {
        char key[64];
        double value;
        if (sscanf(line, "%63s %lf", key, &value) != 2 || !(value > 0.0))
            continue;
        if (strcmp(key, "las_fwd_bwd_us") == 0)
            b.las_fwd_bwd_us = value;
        else if (strcmp(key, "las_fwd_us") == 0)
            b.las_fwd_us = value;
        else if (strcmp(key, "ece_ms") == 0)
            b.ece_ms = value;
        else if (strcmp(key, "ece_batched_ms") == 0)
            b.ece_batched_ms = value;
    }
    fclose(f);
    return b;
}

/* ---- output ------------------------------------------------------------ */

static void print_row(const char *name, stats s, double unit, const char *unit_name, double bytes)
{
    printf("  %-34s %10.1f %10.1f %-3s %9.2f %9.2f %7zu\n", name, s.median * unit, s.min * unit, unit_name,
            bytes / s.median * 1e-9, bytes / s.min * 1e-9, s.reps);
}

/* has_target: the figure is one of the two the 4x target is set for. */
static void print_ratio(const char *name, double ours_seconds, double theirs, double unit, const char *unit_name,
        int has_target)
{
    if (isnan(theirs))
        return;
    double ratio = theirs / (ours_seconds * unit);
    printf("  %-34s %10.1f %-3s %10.1f %-3s %7.1fx  %s\n", name, ours_seconds * unit, unit_name, theirs,
            unit_name, ratio, !has_target ? "(no target)" : ratio >= TARGET_SPEEDUP ? "meets 4x" : "BELOW 4x");
}

static void usage(FILE *out)
{
    fprintf(out, "usage: bench_losses [--quick]\n"
                 "  --quick   short repetitions (smoke runs; figures are noisier)\n"
                 "  MISLAS_BENCH_BASELINE_FILE=path  print speed-ups against a baseline file\n");
}

int main(int argc, char **argv)
{
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return EXIT_SUCCESS;
        } else {
            fprintf(stderr, "bench_losses: unknown argument %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    const budget las_budget = quick ? (budget){ 0.02, 0.05, 3, 5 } : (budget){ 0.3, 1.0, 20, 50 };
    const budget ece_budget = quick ? (budget){ 0.0, 0.0, 1, 2 } : (budget){ 0.5, 2.0, 2, 9 };

    const char *cpu = getenv("MISLAS_CPU");
    printf("libmislas %s benchmark%s: %ld online CPUs, %d library threads, MISLAS_CPU=%s\n", mislas_version(),
            quick ? " (--quick)" : "", sysconf(_SC_NPROCESSORS_ONLN), (int)mislas_num_threads(),
            cpu ? cpu : "(unset: best supported kernels)");

    rng r = { SEED };
    double *samples = xmalloc(MAX_SAMPLES * sizeof *samples);

    /* ---- LAS ----------------------------------------------------------- */
    const size_t las_elems = (size_t)LAS_N * NUM_CLASSES;
    float *las_logits = xmalloc(las_elems * sizeof *las_logits);
    float *grad = xmalloc(las_elems * sizeof *grad);
    int32_t *las_targets = xmalloc(LAS_N * sizeof *las_targets);
    fill_normal(&r, las_logits, las_elems, LOGIT_STD);
    for (size_t i = 0; i < LAS_N; i++)
        las_targets[i] = rng_below(&r, NUM_CLASSES);
    memset(grad, 0, las_elems * sizeof *grad);

    int64_t counts[NUM_CLASSES];
    CHECK(mislas_long_tail_counts(counts, NUM_CLASSES, 1280, 0.01, MISLAS_IMBALANCE_EXP));
    mislas_loss *loss = NULL;
    CHECK(mislas_loss_new_label_aware_smoothing(&loss, counts, NUM_CLASSES, NULL));

    las_case fwd_bwd = { loss, las_logits, las_targets, grad, 0.0f };
    las_case fwd = { loss, las_logits, las_targets, NULL, 0.0f };
    stats s_fwd_bwd = time_calls(las_run_v, &fwd_bwd, &las_budget, samples);
    stats s_fwd = time_calls(las_run_v, &fwd, &las_budget, samples);
    const double las_bytes = (double)las_elems * sizeof(float);

    printf("\nLAS loss, N=%d K=%d (logits ~ N(0, %.0f^2), ImageNet-LT-like counts, %.1f MB of logits)\n",
            LAS_N, NUM_CLASSES, LOGIT_STD, las_bytes * 1e-6);
    printf("  %-34s %10s %10s %-3s %9s %9s %7s\n", "operation", "median", "min", "", "GB/s med", "GB/s max",
            "reps");
    print_row("forward + backward (grad)", s_fwd_bwd, 1e6, "us", las_bytes);
    print_row("forward only (grad NULL)", s_fwd, 1e6, "us", las_bytes);
    printf("  loss = %.6f (both calls: %s)\n", (double)fwd_bwd.value,
            fwd_bwd.value == fwd.value ? "same value" : "DIFFERENT VALUES");

    mislas_loss_free(loss);
    free(grad);
    free(las_logits);
    free(las_targets);

    /* ---- ECE ----------------------------------------------------------- */
    const size_t ece_elems = (size_t)ECE_N * NUM_CLASSES;
    const double ece_bytes = (double)ece_elems * sizeof(float);
    printf("\nECE, %d samples x K=%d logits, %d bins (%.0f MB of logits; generating...)\n", ECE_N,
            NUM_CLASSES, ECE_BINS, ece_bytes * 1e-6);
    fflush(stdout);
    float *ece_logits = xmalloc(ece_elems * sizeof *ece_logits);
    int32_t *ece_targets = xmalloc(ECE_N * sizeof *ece_targets);
    fill_normal(&r, ece_logits, ece_elems, LOGIT_STD);
    /* about 40 % of the predictions right, so the bins hold a mix */
    for (size_t i = 0; i < ECE_N; i++) {
        const float *z = ece_logits + i * NUM_CLASSES;
        ece_targets[i] = rng_uniform(&r) < 0.4 ? row_argmax(z, NUM_CLASSES) : rng_below(&r, NUM_CLASSES);
    }

    mislas_calib *calib = NULL;
    CHECK(mislas_calib_new(&calib, NUM_CLASSES, ECE_BINS));
    ece_case batched = { calib, ece_logits, ece_targets, ECE_BATCH, { 0 } };
    stats s_batched = time_calls(ece_run_v, &batched, &ece_budget, samples);
    ece_case whole = { calib, ece_logits, ece_targets, ECE_N, { 0 } };
    stats s_whole = time_calls(ece_run_v, &whole, &ece_budget, samples);

    printf("  %-34s %10s %10s %-3s %9s %9s %7s\n", "operation (reset+add+summarize)", "median", "min", "",
            "GB/s med", "GB/s max", "reps");
    char name[64];
    snprintf(name, sizeof name, "%d calls of %d rows", ECE_N / ECE_BATCH, ECE_BATCH);
    print_row(name, s_batched, 1e3, "ms", ece_bytes);
    snprintf(name, sizeof name, "1 call of %d rows", ECE_N);
    print_row(name, s_whole, 1e3, "ms", ece_bytes);
    int same = memcmp(&batched.summary, &whole.summary, sizeof batched.summary) == 0;
    printf("  ECE = %.6f, MCE = %.6f, accuracy = %.4f, mean confidence = %.4f, NLL = %.4f\n",
            whole.summary.ece, whole.summary.mce, whole.summary.accuracy, whole.summary.avg_confidence,
            whole.summary.nll);
    printf("  batched and single-call summaries: %s\n", same ? "bit-identical" : "DIFFERENT");

    mislas_calib_free(calib);
    free(ece_logits);
    free(ece_targets);
    free(samples);

    /* ---- baseline ratios ----------------------------------------------- */
    baseline base = read_baseline();
    if (base.path != NULL) {
        printf("\nSpeed-up over the baseline in %s (baseline median / libmislas median; target %.0fx)\n",
                base.path, TARGET_SPEEDUP);
        printf("  %-34s %14s %14s %8s\n", "operation", "libmislas", "baseline", "speed-up");
        print_ratio("LAS forward + backward", s_fwd_bwd.median, base.las_fwd_bwd_us, 1e6, "us", 1);
        print_ratio("LAS forward only", s_fwd.median, base.las_fwd_us, 1e6, "us", 0);
        print_ratio("ECE, 1 call / whole-tensor softmax", s_whole.median, base.ece_ms, 1e3, "ms", 1);
        print_ratio("ECE, 1000-row calls / batches", s_batched.median, base.ece_batched_ms, 1e3, "ms", 1);
        if (!isnan(base.ece_ms) || !isnan(base.ece_batched_ms))
            printf("  (ECE baselines: softmax + max over all %d rows at once, or per %d-row batch, then binning)\n",
                    ECE_N, ECE_BATCH);
        if (isnan(base.las_fwd_bwd_us) && isnan(base.ece_ms))
            printf("  (the file has neither las_fwd_bwd_us nor ece_ms)\n");
    }
    return EXIT_SUCCESS;
}
