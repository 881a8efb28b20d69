/* Throughput of the long-tail losses and the calibration toolbox at
 * N = 4096 rows of K = 1000 logits (ImageNet-LT-like counts).
 *
 * Each loss (forward + backward) is compared in the same run with the
 * library's plain cross-entropy (what the extra terms cost) and a textbook
 * scalar implementation of the same loss in this file (one thread, double
 * precision, the formula as the papers write it: softmax, then the loss and
 * its gradient per row). With MISLAS_BENCH_BASELINE_FILE (bench/run writes
 * it) the PyTorch figures of bench/pytorch_baseline.py are compared too.
 * The calibration fits and whole-set metrics are timed on the same logits.
 *
 * Usage: bench_lt_losses [--quick]. A program that prints figures, not a test. */
#define _POSIX_C_SOURCE 200809L

#include <mislas/mislas.h>

#include "benchutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { N = 4096, K = 1000, MAX_REPS = 1000 };

#define CHECK(call)                                                                         \
    do {                                                                                    \
        int rc_ = (call);                                                                   \
        if (rc_ != MISLAS_OK) {                                                             \
            fprintf(stderr, "bench_lt_losses: %s failed: %s\n", #call, mislas_last_error()); \
            exit(EXIT_FAILURE);                                                             \
        }                                                                                   \
    } while (0)

static float *logits, *grad;
static int32_t targets[N], targets_b[N];
static int64_t counts[K];
static double budget_seconds;

/* Median seconds per call of fn over at least 3 calls and budget_seconds. */
static double median_seconds(void (*fn)(void *), void *arg)
{
    static double t[MAX_REPS];
    fn(arg);    /* warm-up: scratch grown, pages touched */
    size_t n = 0;
    double start = bench_now();
    while (n < MAX_REPS && (n < 3 || bench_now() - start < budget_seconds)) {
        double t0 = bench_now();
        fn(arg);
        t[n++] = bench_now() - t0;
    }
    qsort(t, n, sizeof t[0], bench_by_value);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* ------------------------------------------------------------ the losses */

typedef struct library_case {
    mislas_loss *loss;
    int mixup;
} library_case;

static void library_run(void *arg)
{
    library_case *c = arg;
    float value;
    if (c->mixup)
        CHECK(mislas_loss_compute_mixup(c->loss, logits, targets, targets_b, 0.7f, N, &value, grad));
    else
        CHECK(mislas_loss_compute(c->loss, logits, targets, N, &value, grad));
}

/* The textbook loss: u = s (z + o) - s m_y e_y, p = softmax(u),
 * L = w_y (1 - p_y)^gamma (-log p_y), gradient per row. */
typedef struct textbook_case {
    double scale, gamma;
    const double *offset, *margin, *weight;
} textbook_case;

static void textbook_run(void *arg)
{
    const textbook_case *c = arg;
    static double u[K];
    double total = 0.0;
    for (size_t i = 0; i < N; i++) {
        const float *z = logits + i * K;
        const int32_t y = targets[i];
        double m = -INFINITY, sum = 0.0;
        for (size_t j = 0; j < K; j++) {
            u[j] = c->scale * (z[j] + (c->offset ? c->offset[j] : 0.0) - (c->margin && (int32_t)j == y ? c->margin[y] : 0.0));
            m = fmax(m, u[j]);
        }
        for (size_t j = 0; j < K; j++)
            sum += u[j] = exp(u[j] - m);
        double p = u[y] / sum, nll = -log(p), w = c->weight ? c->weight[y] : 1.0;
        double f = pow(1.0 - p, c->gamma);
        double factor = c->gamma > 0 ? f + c->gamma * p * nll * pow(1.0 - p, c->gamma - 1.0) : 1.0;
        total += w * f * nll;
        for (size_t j = 0; j < K; j++)
            grad[i * K + j] = (float)(c->scale * w * factor * (u[j] / sum - ((int32_t)j == y)) / N);
    }
    if (!(total >= 0.0))
        exit(EXIT_FAILURE);
}

/* --------------------------------------------------------- calibration */

typedef enum calib_kind { ADAPTIVE, CLASSWISE, TEMPERATURE, VECTOR } calib_kind;

static void calib_run(void *arg)
{
    calib_kind kind = *(const calib_kind *)arg;
    double value;
    static float scale[K], bias[K];
    mislas_calib_fit_options o;
    mislas_calib_fit_options_init(&o);
    o.max_iterations = 100;
    switch (kind) {
    case ADAPTIVE: CHECK(mislas_calib_adaptive_ece(&value, logits, targets, N, K, 15)); break;
    case CLASSWISE: CHECK(mislas_calib_classwise_ece(&value, logits, targets, N, K, 15)); break;
    case TEMPERATURE: CHECK(mislas_calib_fit_temperature(&value, logits, targets, N, K, &o)); break;
    case VECTOR: {
        int rc = mislas_calib_fit_vector_scaling(scale, bias, logits, targets, N, K, &o);
        if (rc != MISLAS_OK && rc != MISLAS_ERR_STATE)
            CHECK(rc);
        break;
    }
    }
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    budget_seconds = quick ? 0.05 : 1.0;
    printf("libmislas %s: long-tail losses and calibration toolbox, N=%d K=%d, %ld CPUs, %d library threads\n",
            mislas_version(), N, K, sysconf(_SC_NPROCESSORS_ONLN), (int)mislas_num_threads());
    logits = malloc((size_t)N * K * sizeof *logits);
    grad = malloc((size_t)N * K * sizeof *grad);
    if (logits == NULL || grad == NULL)
        return EXIT_FAILURE;
    uint64_t state = 20261127u;
    for (size_t i = 0; i < (size_t)N * K; i++) {
        state = state * 6364136223846793005u + 1442695040888963407u;
        logits[i] = (float)(6.0 * ((double)(state >> 11) * 0x1.0p-53) - 3.0);
    }
    for (size_t i = 0; i < N; i++) {
        targets[i] = (int32_t)((i * 7919) % K);
        targets_b[i] = (int32_t)((i * 104729 + 13) % K);
        /* a third of the rows predict their target, so the calibration fits have signal */
        if (i % 3 == 0)
            logits[i * K + (size_t)targets[i]] += 6.0f;
    }
    CHECK(mislas_long_tail_counts(counts, K, 1280, 0.01, MISLAS_IMBALANCE_EXP));
    static double prior[K], margin[K], weight[K];
    float wf[K];
    CHECK(mislas_loss_class_balanced_weights(wf, counts, K, 0.9999));
    double total = 0.0, n_min = (double)counts[K - 1];
    for (int c = 0; c < K; c++)
        total += (double)counts[c];
    for (int c = 0; c < K; c++) {
        prior[c] = log((double)counts[c] / total);
        margin[c] = 0.5 * pow(n_min / (double)counts[c], 0.25);
        weight[c] = wf[c];
    }

    mislas_loss *ce = NULL, *focal = NULL, *ldam = NULL, *la = NULL, *cb_ce = NULL, *cb_focal = NULL;
    CHECK(mislas_loss_new_cross_entropy(&ce, K));
    CHECK(mislas_loss_new_focal(&focal, K, 2.0f));
    CHECK(mislas_loss_new_ldam(&ldam, counts, K, NULL));
    CHECK(mislas_loss_new_logit_adjusted(&la, counts, K, 1.0f));
    CHECK(mislas_loss_new_cross_entropy(&cb_ce, K));
    CHECK(mislas_loss_set_class_weights(cb_ce, wf, MISLAS_REDUCE_WEIGHTED_MEAN));
    CHECK(mislas_loss_new_focal(&cb_focal, K, 2.0f));
    CHECK(mislas_loss_set_class_weights(cb_focal, wf, MISLAS_REDUCE_MEAN));

    library_case base = { ce, 0 };
    double t_ce = median_seconds(library_run, &base);
    struct {
        const char *name;
        library_case lib;
        textbook_case textbook;
        const char *pytorch_key;
    } rows[] = {
        { "cross-entropy (fast path)", { ce, 0 }, { 1, 0, NULL, NULL, NULL }, NULL },
        { "focal, gamma 2", { focal, 0 }, { 1, 2, NULL, NULL, NULL }, "focal_fwd_bwd_us" },
        { "LDAM, s 30, max margin 0.5", { ldam, 0 }, { 30, 0, NULL, margin, NULL }, "ldam_fwd_bwd_us" },
        { "logit-adjusted, tau 1", { la, 0 }, { 1, 0, prior, NULL, NULL }, "la_fwd_bwd_us" },
        { "CE, class-balanced 0.9999", { cb_ce, 0 }, { 1, 0, NULL, NULL, weight }, "cb_ce_fwd_bwd_us" },
        { "focal + class-balanced", { cb_focal, 0 }, { 1, 2, NULL, NULL, weight }, NULL },
        { "LDAM under mixup", { ldam, 1 }, { 0, 0, NULL, NULL, NULL }, NULL },
    };
    printf("\nforward + backward, median over >= %.2g s (textbook: scalar double, 1 thread)\n", budget_seconds);
    printf("  %-28s %10s %10s %12s %12s %12s\n", "loss", "ms", "GB/s", "vs textbook", "vs PyTorch", "cost vs CE");
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        double t = median_seconds(library_run, &rows[r].lib);
        printf("  %-28s %10.2f %10.2f", rows[r].name, t * 1e3, (double)N * K * sizeof(float) / t * 1e-9);
        if (rows[r].textbook.scale > 0)
            printf(" %11.1fx", median_seconds(textbook_run, &rows[r].textbook) / t);
        else
            printf(" %12s", "-");
        double theirs = rows[r].pytorch_key != NULL ? bench_baseline(rows[r].pytorch_key) : NAN;
        if (isnan(theirs))
            printf(" %12s", "-");
        else
            printf(" %11.1fx", theirs * 1e-6 / t);
        printf(" %11.2fx\n", t / t_ce);
    }

    printf("\ncalibration on the same %d x %d logits\n", N, K);
    const char *names[] = { "adaptive ECE (15 bins)", "classwise ECE (15 bins)", "fit temperature",
            "fit vector scaling (<= 100 it.)" };
    for (calib_kind kind = ADAPTIVE; kind <= VECTOR; kind++) {
        double t = median_seconds(calib_run, &kind);
        printf("  %-32s %10.2f ms", names[kind], t * 1e3);
        double theirs = kind == TEMPERATURE ? bench_baseline("temperature_fit_ms") : NAN;
        if (!isnan(theirs))
            printf("   PyTorch (LBFGS on T, 50 it.) %.2f ms: %.1fx", theirs, theirs * 1e-3 / t);
        printf("\n");
    }

    mislas_loss_free(ce);
    mislas_loss_free(focal);
    mislas_loss_free(ldam);
    mislas_loss_free(la);
    mislas_loss_free(cb_ce);
    mislas_loss_free(cb_focal);
    free(logits);
    free(grad);
    return EXIT_SUCCESS;
}
