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
