/* Helpers shared by the Check suites. */
#ifndef MISLAS_TESTUTIL_H
#define MISLAS_TESTUTIL_H

#include <mislas/mislas.h>

#include <check.h>
#include <stddef.h>

/* An allocator for mislas_set_allocator that counts live blocks and fails
 * the fail_at-th allocation (1-based; 0 never fails). */
typedef struct test_allocator {
    long fail_at;
    long calls;
    long live;
} test_allocator;
void test_allocator_install(test_allocator *a, long fail_at);
void test_allocator_uninstall(void);

/* Runs `attempt` with the k-th allocation failing, for k = 1, 2, ... until
 * the attempt succeeds. Every failing attempt must return
 * MISLAS_ERR_OUT_OF_MEMORY and leave no block alive; the succeeding one must
 * leave none alive after its own clean-up. Returns the number of
 * allocations the successful call made. */
typedef int (*test_attempt_fn)(void *ctx);
long test_allocation_sweep(test_attempt_fn attempt, void *ctx);

/* A model and an SGD optimiser with the given settings (failing the test
 * if either cannot be made). */
mislas_model *test_new_model(mislas_arch arch, int32_t c, int32_t h, int32_t w, int32_t k, uint64_t seed);
mislas_optimizer *test_new_sgd(mislas_model *m, double lr, double momentum, double wd, double lr_factor);

/* A learnable long-tailed set: counts[c] 1 x side x side images of class c
 * (k <= 4), a bright quadrant (quadrant c) on noise from test_uniform. */
mislas_dataset *test_quadrant_dataset(const int64_t *counts, int32_t k, int32_t side);

/* The whole file at path (malloc'ed, NUL-terminated; free it) and its
 * size, or NULL if it cannot be read. */
unsigned char *test_read_file(const char *path, size_t *size);

/* Writes data[0..size-1] to path (failing the test if it cannot). */
void test_write_file(const char *path, const void *data, size_t size);

/* True if the file at path holds exactly data[0..size-1]. */
int test_file_equals(const char *path, const void *data, size_t size);

/* A fresh folder under /tmp (its path into dir[64]), and its removal with
 * everything in it (one level deep). test_dir_entries counts what is in it. */
void test_make_dir(char dir[64], const char *prefix);
void test_remove_dir(const char *dir);
int test_dir_entries(const char *dir);

/* Runs one suite and returns the process exit status. */
int test_run_suite(Suite *s);

/* Deterministic pseudo-random numbers for test inputs (xorshift64), the
 * tests' own so they never depend on the library's generator: uniform in [0, 1). */
double test_uniform(void);

/* |a - b| <= abs_tol + rel_tol * |b| */
int test_close(double a, double b, double abs_tol, double rel_tol);

#define ck_assert_close(a, b, abs_tol, rel_tol) \
    ck_assert_msg(test_close((a), (b), (abs_tol), (rel_tol)), \
        "%s = %.9g, expected %s = %.9g (abs %.2g, rel %.2g)", #a, (double)(a), #b, (double)(b), \
        (double)(abs_tol), (double)(rel_tol))

#define ck_assert_status(call, expected) do { \
        int rc_ = (call); \
        ck_assert_msg(rc_ == (expected), "%s returned %d (%s), expected %s; last error: %s", \
            #call, rc_, mislas_status_string(rc_), #expected, mislas_last_error()); \
    } while (0)

#endif
