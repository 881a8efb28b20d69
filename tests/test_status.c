/* Status strings, version, the thread-local last error and the allocator hook. */
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(status_strings_are_distinct)
{
    const int codes[] = { MISLAS_OK, MISLAS_ERR_INVALID_ARGUMENT, MISLAS_ERR_OUT_OF_MEMORY, MISLAS_ERR_IO,
                          MISLAS_ERR_FORMAT, MISLAS_ERR_UNSUPPORTED, MISLAS_ERR_NUMERIC, MISLAS_ERR_STATE,
                          MISLAS_ERR_CANCELLED };
    const size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        const char *s = mislas_status_string(codes[i]);
        ck_assert_ptr_nonnull(s);
        ck_assert_int_gt((int)strlen(s), 0);
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(s, mislas_status_string(codes[j]));
    }
    ck_assert_str_eq(mislas_status_string(12345), "unknown status");
    ck_assert_str_eq(mislas_status_string(-9), "unknown status");
}
END_TEST

START_TEST(version_matches_headers)
{
    char expected[64];
    snprintf(expected, sizeof expected, "%d.%d.%d", MISLAS_VERSION_MAJOR, MISLAS_VERSION_MINOR, MISLAS_VERSION_PATCH);
    ck_assert_str_eq(mislas_version(), expected);
    ck_assert_str_eq(mislas_version(), MISLAS_VERSION_STRING);
}
END_TEST

static void *fail_in_thread(void *arg)
{
    (void)arg;
    mislas_loss *loss = (mislas_loss *)1;
    int rc = mislas_loss_new_cross_entropy(&loss, -3);
    char *copy = malloc(512);
    snprintf(copy, 512, "%d|%s", rc, mislas_last_error());
    return copy;
}

START_TEST(last_error_is_per_thread)
{
    int64_t counts[2] = { 10, -1 };
    mislas_loss *loss = (mislas_loss *)1;
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&loss, counts, 2, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(loss);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "class_counts[1]"));

    pthread_t t;
    void *result;
    ck_assert_int_eq(pthread_create(&t, NULL, fail_in_thread, NULL), 0);
    ck_assert_int_eq(pthread_join(t, &result), 0);
    ck_assert_ptr_nonnull(strstr(result, "num_classes = -3"));
    ck_assert_int_eq(atoi(result), MISLAS_ERR_INVALID_ARGUMENT);
    free(result);
    /* the other thread's failure left this thread's message alone */
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "class_counts[1]"));
    ck_assert_ptr_null(strstr(mislas_last_error(), "num_classes"));
}
END_TEST

static void release_only(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

START_TEST(allocator_must_be_complete)
{
    test_allocator a;
    ck_assert_status(mislas_set_allocator(NULL, release_only, &a), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "both"));
}
END_TEST

START_TEST(allocator_sees_every_block)
{
    test_allocator a;
    test_allocator_install(&a, 0);
    mislas_calib *c = NULL;
    mislas_loss *l = NULL;
    ck_assert_status(mislas_calib_new(&c, 10, 15), MISLAS_OK);
    ck_assert_status(mislas_loss_new_cross_entropy(&l, 10), MISLAS_OK);
    ck_assert_int_gt(a.calls, 0);
    ck_assert_int_eq(a.live, a.calls);
    /* blocks go back to the allocator that made them, even after a switch */
    test_allocator_uninstall();
    mislas_calib_free(c);
    mislas_loss_free(l);
    ck_assert_int_eq(a.live, 0);
}
END_TEST

START_TEST(free_of_null_is_a_no_op)
{
    mislas_loss_free(NULL);
    mislas_calib_free(NULL);
    mislas_calib_reset(NULL);
    mislas_sampler_free(NULL);
    ck_assert_int_eq(mislas_loss_num_classes(NULL), -1);
    ck_assert_int_eq(mislas_calib_num_bins(NULL), -1);
}
END_TEST

/* An options struct from a newer caller: longer, its extra bytes zero. */
typedef struct newer_las_options {
    mislas_las_options known;
    double future_field;
} newer_las_options;

START_TEST(options_structs_grow)
{
    int64_t counts[3] = { 100, 10, 1 };
    mislas_loss *l = NULL;
    float eps[3];
    newer_las_options newer;
    memset(&newer, 0, sizeof newer);
    mislas_las_options_init(&newer.known);
    newer.known.struct_size = sizeof newer;
    newer.known.shape = MISLAS_LAS_LINEAR;
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, counts, 3, &newer.known), MISLAS_OK);
    ck_assert_status(mislas_loss_class_smoothing(l, eps), MISLAS_OK);
    ck_assert_float_eq(eps[0], 0.4f);
    ck_assert_float_eq(eps[2], 0.1f);
    mislas_loss_free(l);

    newer.future_field = 1.0;
    l = (mislas_loss *)1;
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, counts, 3, &newer.known), MISLAS_ERR_UNSUPPORTED);
    ck_assert_ptr_null(l);

    /* an older caller whose struct ends before `shape`: defaults fill the rest */
    mislas_las_options older;
    mislas_las_options_init(&older);
    older.shape = MISLAS_LAS_LINEAR;         /* not covered by struct_size, so ignored */
    older.smooth_head = 0.5f;
    older.struct_size = offsetof(mislas_las_options, shape);
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, counts, 3, &older), MISLAS_OK);
    ck_assert_status(mislas_loss_class_smoothing(l, eps), MISLAS_OK);
    ck_assert_float_eq(eps[0], 0.5f);          /* smooth_head was covered */
    /* concave (the default): t = 9/99 for the middle class */
    double t = 9.0 / 99.0;
    ck_assert_close(eps[1], 0.1 + 0.4 * sin(3.14159265358979 * t / 2), 1e-6, 0);
    mislas_loss_free(l);

    older.struct_size = 0;
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, counts, 3, &older), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "struct_size"));
    /* garbage in struct_size is refused before anything past the struct is read */
    older.struct_size = (size_t)1 << 40;
    ck_assert_status(mislas_loss_new_label_aware_smoothing(&l, counts, 3, &older), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "implausible"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, status_strings_are_distinct);
    tcase_add_test(tc, version_matches_headers);
    tcase_add_test(tc, last_error_is_per_thread);
    tcase_add_test(tc, allocator_must_be_complete);
    tcase_add_test(tc, allocator_sees_every_block);
    tcase_add_test(tc, free_of_null_is_a_no_op);
    tcase_add_test(tc, options_structs_grow);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
