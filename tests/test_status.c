/* Status strings, version, the thread-local last error, the allocator hook,
 * and the API rules every call follows (docs/api.md, "Rules"). */
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

/* docs/api.md, rule 4: a getter given NULL (or an index out of range)
 * returns a value no real object has. */
START_TEST(getters_on_null_return_no_real_value)
{
    ck_assert_int_eq(mislas_calib_num_bins(NULL), -1);
    ck_assert_int_eq(mislas_calib_num_classes(NULL), -1);
    ck_assert_int_eq(mislas_loss_num_classes(NULL), -1);
    ck_assert_int_eq(mislas_dataset_num_classes(NULL), -1);
    ck_assert_uint_eq(mislas_dataset_size(NULL), 0);
    ck_assert_uint_eq(mislas_dataset_files_skipped(NULL), 0);
    ck_assert_ptr_null(mislas_dataset_labels(NULL));
    ck_assert_ptr_null(mislas_dataset_image(NULL, 0));
    ck_assert_ptr_null(mislas_dataset_class_map(NULL));
    ck_assert_ptr_null(mislas_dataset_path(NULL, 0));
    ck_assert_uint_eq(mislas_sampler_epoch_length(NULL), 0);
    ck_assert_int_eq(mislas_sampler_epoch(NULL), -1);
    ck_assert_int_eq(mislas_model_num_classes(NULL), -1);
    ck_assert_int_eq(mislas_model_feature_dim(NULL), -1);
    ck_assert_uint_eq(mislas_model_num_parameters(NULL), 0);
    ck_assert_int_eq(mislas_model_mode(NULL), MISLAS_MODE_INVALID);
    ck_assert_int_eq(mislas_model_head(NULL), MISLAS_HEAD_INVALID);
    ck_assert_int_eq(mislas_model_backbone_frozen(NULL), -1);
    ck_assert_int_eq(mislas_model_num_bn(NULL), -1);
    ck_assert_int_eq(mislas_model_bn_channels(NULL, 0), -1);
    ck_assert_int_eq(mislas_model_num_tensors(NULL), -1);
    ck_assert(isnan(mislas_optimizer_lr(NULL)));
    ck_assert_uint_eq(mislas_optimizer_steps(NULL), 0);
    ck_assert_uint_eq(mislas_optimizer_group_size(NULL, MISLAS_GROUP_BACKBONE), 0);
    ck_assert(isnan(mislas_optimizer_group_lr(NULL, MISLAS_GROUP_BACKBONE)));
    /* the one meaning: a NULL communicator is the process alone */
    ck_assert_int_eq(mislas_comm_rank(NULL), 0);
    ck_assert_int_eq(mislas_comm_size(NULL), 1);

    /* on real objects: booleans read 0 or 1, out-of-range indices as NULL */
    mislas_model_options mo;
    mislas_model_options_init(&mo);
    mislas_model *m = NULL;
    ck_assert_status(mislas_model_new(&m, &mo), MISLAS_OK);
    ck_assert_int_eq(mislas_model_backbone_frozen(m), 0);
    ck_assert_status(mislas_model_freeze_backbone(m, 7), MISLAS_OK);
    ck_assert_int_eq(mislas_model_backbone_frozen(m), 1);
    ck_assert_int_eq(mislas_model_bn_channels(m, mislas_model_num_bn(m)), -1);
    mislas_optimizer *o = NULL;
    ck_assert_status(mislas_optimizer_new_sgd(&o, m, NULL), MISLAS_OK);
    ck_assert(isnan(mislas_optimizer_group_lr(o, (mislas_param_group)99)));
    ck_assert(mislas_optimizer_group_lr(o, MISLAS_GROUP_BACKBONE) == 0.0);    /* frozen: an absent group */
    mislas_optimizer_free(o);
    mislas_model_free(m);
}
END_TEST

/* docs/api.md, rule 6: streaming calls take an empty batch (arrays NULL) as
 * a successful no-op; calls whose result is a statistic of the batch refuse it. */
START_TEST(empty_batches_follow_the_rule)
{
    enum { K = 3 };
    mislas_calib *c = NULL;
    ck_assert_status(mislas_calib_new(&c, K, 15), MISLAS_OK);
    ck_assert_status(mislas_calib_add_logits(c, NULL, NULL, 0), MISLAS_OK);
    ck_assert_status(mislas_calib_add_probs(c, NULL, NULL, 0), MISLAS_OK);
    ck_assert_status(mislas_calib_add_confidences(c, NULL, NULL, NULL, 0), MISLAS_OK);
    ck_assert_status(mislas_calib_add_logits(NULL, NULL, NULL, 0), MISLAS_ERR_INVALID_ARGUMENT);
    mislas_calib_summary sum;
    mislas_calib_summary_init(&sum);
    ck_assert_status(mislas_calib_summarize(c, &sum), MISLAS_OK);
    ck_assert_uint_eq(sum.count, 0);
    mislas_calib_free(c);

    /* an empty request leaves the stream where it was */
    const int32_t labels[6] = { 0, 1, 2, 0, 1, 0 };
    mislas_sampler *s = NULL, *fresh = NULL;
    ck_assert_status(mislas_sampler_new(&s, labels, 6, K, NULL), MISLAS_OK);
    ck_assert_status(mislas_sampler_new(&fresh, labels, 6, K, NULL), MISLAS_OK);
    ck_assert_status(mislas_sampler_next(s, NULL, 0), MISLAS_OK);
    size_t a[6], b[6];
    ck_assert_status(mislas_sampler_next(s, a, 6), MISLAS_OK);
    ck_assert_status(mislas_sampler_next(fresh, b, 6), MISLAS_OK);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    mislas_sampler_free(s);
    mislas_sampler_free(fresh);

    uint8_t pixels[6 * 4] = { 0 };
    mislas_dataset *d = NULL, *sub = (mislas_dataset *)(void *)&sub;
    ck_assert_status(mislas_dataset_from_memory(&d, pixels, labels, 6, 1, 2, 2, K, MISLAS_COPY), MISLAS_OK);
    ck_assert_status(mislas_dataset_batch(d, NULL, 0, NULL, 0, NULL, NULL), MISLAS_OK);
    ck_assert_status(mislas_dataset_batch(NULL, NULL, 0, NULL, 0, NULL, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_dataset_subset(&sub, d, NULL, 0), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(sub);
    mislas_dataset_free(d);

    ck_assert_status(mislas_mixup(NULL, NULL, NULL, NULL, 0, 4, 1.0f, 0, 0), MISLAS_OK);

    mislas_model_options mo;
    mislas_model_options_init(&mo);
    mo.num_classes = K;
    mislas_model *m = NULL;
    ck_assert_status(mislas_model_new(&m, &mo), MISLAS_OK);
    float logits[K] = { -5, -5, -5 };
    ck_assert_status(mislas_model_predict(m, NULL, 0, logits), MISLAS_OK);
    ck_assert_status(mislas_model_forward(m, NULL, 0, logits), MISLAS_ERR_INVALID_ARGUMENT);
    for (int k = 0; k < K; k++)
        ck_assert_float_eq(logits[k], -5.0f);
    mislas_model_free(m);

    /* results that do not exist for no samples */
    mislas_loss *l = NULL;
    ck_assert_status(mislas_loss_new_cross_entropy(&l, K), MISLAS_OK);
    float value = -1;
    ck_assert_status(mislas_loss_compute(l, logits, labels, 0, &value, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_float_eq(value, -1.0f);
    mislas_loss_free(l);
    double ece = -1, t = -1;
    float scale[K], bias[K];
    ck_assert_status(mislas_calib_adaptive_ece(&ece, logits, labels, 0, K, 15), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_calib_classwise_ece(&ece, logits, labels, 0, K, 15), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_calib_fit_temperature(&t, logits, labels, 0, K, NULL), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_calib_fit_vector_scaling(scale, bias, logits, labels, 0, K, NULL),
                     MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert(ece == -1 && t == -1);
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
    tcase_add_test(tc, getters_on_null_return_no_real_value);
    tcase_add_test(tc, empty_batches_follow_the_rule);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
