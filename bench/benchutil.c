#define _POSIX_C_SOURCE 200809L
#include "benchutil.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int bench_by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_baseline(const char *key)
{
    const char *path = getenv("MISLAS_BENCH_BASELINE_FILE");
    FILE *f = path != NULL ? fopen(path, "r") : NULL;
    double value = NAN, v;
    char line[256], k[128];
    while (f != NULL && fgets(line, sizeof line, f) != NULL)   /* other lines are skipped */
        if (sscanf(line, "%127s %lf", k, &v) == 2 && strcmp(k, key) == 0)
            value = v;
    if (f != NULL)
        fclose(f);
    return value;
}

/* The FMA peak: each loop keeps enough independent chains in flight to cover the FMA
 * latency on both pipes, and returns its sum so that nothing is optimised
 * away. FLOPs per iteration: chains x lanes x 2. */
#if defined(__x86_64__)
enum { CHAINS_512 = 16, CHAINS_256 = 12 };

__attribute__((target("avx512f"))) static float fma_loop_512(long iters)
{
    __m512 acc[CHAINS_512];
    for (int j = 0; j < CHAINS_512; j++)
        acc[j] = _mm512_set1_ps((float)j);
    __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-6f);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 16    /* without it -O2 keeps acc[] in memory: a third of the peak */
        for (int j = 0; j < CHAINS_512; j++)
            acc[j] = _mm512_fmadd_ps(acc[j], m, a);
    }
    float out[16], sum = 0.0f;
    for (int j = 1; j < CHAINS_512; j++)
        acc[0] = _mm512_add_ps(acc[0], acc[j]);
    _mm512_storeu_ps(out, acc[0]);
    for (int l = 0; l < 16; l++)
        sum += out[l];
    return sum;
}

__attribute__((target("avx2,fma"))) static float fma_loop_256(long iters)
{
    __m256 acc[CHAINS_256];
    for (int j = 0; j < CHAINS_256; j++)
        acc[j] = _mm256_set1_ps((float)j);
    __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-6f);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < CHAINS_256; j++)
            acc[j] = _mm256_fmadd_ps(acc[j], m, a);
    }
    float out[8], sum = 0.0f;
    for (int j = 1; j < CHAINS_256; j++)
        acc[0] = _mm256_add_ps(acc[0], acc[j]);
    _mm256_storeu_ps(out, acc[0]);
    for (int l = 0; l < 8; l++)
        sum += out[l];
    return sum;
}
#endif

typedef struct peak_job {
    bool wide;
    long iters;
    volatile float sink;
} peak_job;

static void *peak_thread(void *arg)
{
    peak_job *j = arg;
#if defined(__x86_64__)
    j->sink = j->wide ? fma_loop_512(j->iters) : fma_loop_256(j->iters);
#endif
    return NULL;
}

double bench_fma_peak(const char *isa, int threads)
{
    double flops_per_iter = 0;
    bool wide = strcmp(isa, "avx512") == 0;
#if defined(__x86_64__)
    if (wide)
        flops_per_iter = CHAINS_512 * 16 * 2;
    else if (strcmp(isa, "avx2") == 0)
        flops_per_iter = CHAINS_256 * 8 * 2;
#endif
    if (flops_per_iter == 0 || threads < 1 || threads > 64)
        return NAN;
    long iters = 20 * 1000 * 1000;
    double best = INFINITY;
    for (int r = 0; r < 3; r++) {
        pthread_t tid[64];
        peak_job jobs[64];
        double t0 = bench_now();
        for (int t = 0; t < threads; t++) {
            jobs[t] = (peak_job){.wide = wide, .iters = iters};
            pthread_create(&tid[t], NULL, peak_thread, &jobs[t]);
        }
        for (int t = 0; t < threads; t++)
            pthread_join(tid[t], NULL);
        double dt = bench_now() - t0;
        if (dt < best)
            best = dt;
    }
    return flops_per_iter * (double)iters * threads / best * 1e-9;
}
