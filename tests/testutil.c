#include "testutil.h"

#include <math.h>
#include <stdlib.h>

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
