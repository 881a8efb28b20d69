#define _XOPEN_SOURCE 700     /* mkdtemp */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *counting_alloc(size_t size, void *user)
{
    test_allocator *a = user;
    a->calls++;
    if (a->fail_at > 0 && a->calls == a->fail_at)
        return NULL;
    void *p = malloc(size);
    if (p != NULL)
        a->live++;
    return p;
}

static void counting_release(void *ptr, void *user)
{
    test_allocator *a = user;
    if (ptr != NULL)
        a->live--;
    free(ptr);
}

void test_allocator_install(test_allocator *a, long fail_at)
{
    a->fail_at = fail_at;
    a->calls = 0;
    a->live = 0;
    ck_assert_int_eq(mislas_set_allocator(counting_alloc, counting_release, a), MISLAS_OK);
}

void test_allocator_uninstall(void)
{
    ck_assert_int_eq(mislas_set_allocator(NULL, NULL, NULL), MISLAS_OK);
}

long test_allocation_sweep(test_attempt_fn attempt, void *ctx)
{
    test_allocator a;
    for (long k = 1; k < 100000; k++) {
        test_allocator_install(&a, k);
        int rc = attempt(ctx);
        long calls = a.calls, live = a.live;
        test_allocator_uninstall();
        ck_assert_msg(live == 0, "failing allocation %ld: %ld blocks still alive after the call", k, live);
        if (rc == MISLAS_OK) {
            ck_assert_msg(calls < k, "allocation %ld failed yet the call succeeded", k);
            return calls;
        }
        ck_assert_msg(rc == MISLAS_ERR_OUT_OF_MEMORY,
            "failing allocation %ld gave status %d (%s): %s", k, rc, mislas_status_string(rc), mislas_last_error());
    }
    ck_abort_msg("the call never succeeded");
    return -1;
}

mislas_model *test_new_model(mislas_arch arch, int32_t c, int32_t h, int32_t w, int32_t k, uint64_t seed)
{
    mislas_model_options o;
    mislas_model_options_init(&o);
    o.arch = arch;
    o.in_channels = c;
    o.height = h;
    o.width = w;
    o.num_classes = k;
    o.seed = seed;
    mislas_model *m = NULL;
    ck_assert_status(mislas_model_new(&m, &o), MISLAS_OK);
    ck_assert_ptr_nonnull(m);
    return m;
}

mislas_optimizer *test_new_sgd(mislas_model *m, double lr, double momentum, double wd, double lr_factor)
{
    mislas_optimizer_sgd_options o;
    mislas_optimizer_sgd_options_init(&o);
    o.lr = lr;
    o.momentum = momentum;
    o.weight_decay = wd;
    o.lr_factor = lr_factor;
    mislas_optimizer *opt = NULL;
    ck_assert_status(mislas_optimizer_new_sgd(&opt, m, &o), MISLAS_OK);
    return opt;
}

int test_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

double test_uniform(void)
{
    static unsigned long long state = 88172645463325252ULL;
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (double)(state >> 11) / 9007199254740992.0;
}

int test_close(double a, double b, double abs_tol, double rel_tol)
{
    return fabs(a - b) <= abs_tol + rel_tol * fabs(b);
}

mislas_dataset *test_quadrant_dataset(const int64_t *counts, int32_t k, int32_t side)
{
    ck_assert_int_le(k, 4);
    size_t n = 0, area = (size_t)side * (size_t)side;
    for (int32_t c = 0; c < k; c++)
        n += (size_t)counts[c];
    uint8_t *px = malloc(n * area);
    int32_t *labels = malloc(n * sizeof *labels);
    ck_assert(px != NULL && labels != NULL);
    size_t i = 0;
    for (int32_t c = 0; c < k; c++)
        for (int64_t j = 0; j < counts[c]; j++, i++) {
            labels[i] = c;
            for (int32_t y = 0; y < side; y++)
                for (int32_t x = 0; x < side; x++) {
                    int quadrant = (y >= side / 2) * 2 + (x >= side / 2);
                    double v = 60 * test_uniform() + (quadrant == c ? 160 : 20);
                    px[i * area + (size_t)(y * side + x)] = (uint8_t)v;
                }
        }
    mislas_dataset *d = NULL;
    ck_assert_int_eq(mislas_dataset_from_memory(&d, px, labels, n, 1, side, side, k, MISLAS_COPY), MISLAS_OK);
    free(px);
    free(labels);
    return d;
}

unsigned char *test_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap + 1);
    for (size_t got; buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            unsigned char *bigger = realloc(buf, 2 * cap + 1);
            if (bigger == NULL)
                free(buf);
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf != NULL) {
        buf[n] = '\0';
        *size = n;
    }
    return buf;
}

void test_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(data, 1, size, f), size);
    ck_assert_int_eq(fclose(f), 0);
}

int test_file_equals(const char *path, const void *data, size_t size)
{
    size_t n;
    unsigned char *content = test_read_file(path, &n);
    int same = content != NULL && n == size && memcmp(content, data, size) == 0;
    free(content);
    return same;
}

void test_make_dir(char dir[64], const char *prefix)
{
    snprintf(dir, 64, "/tmp/%s-XXXXXX", prefix);
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

void test_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    char path[512];
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

int test_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}
