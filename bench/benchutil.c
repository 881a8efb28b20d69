#define _POSIX_C_SOURCE 200809L
#include "benchutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
