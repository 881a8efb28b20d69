/* Data sets in memory: accessors, subsets and long-tailed subsets, class
 * shots, batch assembly with normalisation and augmentation (against the
 * test's own padding and cropping), mixup and its Beta-distributed lambda. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A balanced set of `per_class` images per class, 1 x 2 x 2 pixels each,
 * that encode their own index: pixel 0 = index % 256, pixel 1 = index / 256. */
static mislas_dataset *make_indexed(int32_t k, int32_t per_class, uint8_t **pixels_out, int32_t **labels_out)
{
    size_t n = (size_t)k * (size_t)per_class;
    uint8_t *pixels = malloc(n * 4);
    int32_t *labels = malloc(n * sizeof *labels);
    for (size_t i = 0; i < n; i++) {
        pixels[i * 4 + 0] = (uint8_t)(i % 256);
        pixels[i * 4 + 1] = (uint8_t)(i / 256);
        pixels[i * 4 + 2] = 7;
        pixels[i * 4 + 3] = 9;
        labels[i] = (int32_t)((i * 7) % (size_t)k);   /* classes interleaved */
    }
    mislas_dataset *d = NULL;
    ck_assert_status(mislas_dataset_from_memory(&d, pixels, labels, n, 1, 2, 2, k, MISLAS_COPY), MISLAS_OK);
    if (pixels_out != NULL) {
        *pixels_out = pixels;
        *labels_out = labels;
    } else {
        free(pixels);
        free(labels);
    }
    return d;
}

static size_t original_index(const mislas_dataset *d, size_t i)
{
    const uint8_t *p = mislas_dataset_image(d, i);
    return (size_t)p[0] + 256 * (size_t)p[1];
}

START_TEST(from_memory_copy_and_borrow)
{
    uint8_t *pixels;
    int32_t *labels;
    mislas_dataset *d = make_indexed(5, 3, &pixels, &labels);
    ck_assert_uint_eq(mislas_dataset_size(d), 15);
    ck_assert_int_eq(mislas_dataset_num_classes(d), 5);
    int32_t c, h, w;
    ck_assert_status(mislas_dataset_shape(d, &c, &h, &w), MISLAS_OK);
    ck_assert(c == 1 && h == 2 && w == 2);
    ck_assert_status(mislas_dataset_shape(d, NULL, NULL, &w), MISLAS_OK);
    ck_assert_int_eq(memcmp(mislas_dataset_labels(d), labels, 15 * sizeof *labels), 0);
    ck_assert_ptr_ne(mislas_dataset_labels(d), labels);          /* a copy */
    ck_assert_int_eq(memcmp(mislas_dataset_image(d, 14), pixels + 56, 4), 0);
    ck_assert_ptr_null(mislas_dataset_image(d, 15));
    int64_t counts[5];
    ck_assert_status(mislas_dataset_class_counts(d, counts), MISLAS_OK);
    for (int k = 0; k < 5; k++)
        ck_assert_int_eq(counts[k], 3);

    mislas_dataset *b = NULL;
    ck_assert_status(mislas_dataset_from_memory(&b, pixels, labels, 15, 1, 2, 2, 0, MISLAS_BORROW), MISLAS_OK);
    ck_assert_ptr_eq(mislas_dataset_labels(b), labels);          /* borrowed */
    ck_assert_int_eq(mislas_dataset_num_classes(b), 5);          /* 0: largest label + 1 */
    mislas_dataset_free(b);
    mislas_dataset_free(d);
    free(pixels);
    free(labels);
}
END_TEST

START_TEST(from_memory_bad_input)
{
    uint8_t pixels[8] = { 0 };
    int32_t labels[2] = { 0, 3 };
    mislas_dataset *d = (mislas_dataset *)1;
    ck_assert_status(mislas_dataset_from_memory(&d, pixels, labels, 2, 1, 2, 2, 3, MISLAS_COPY), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(d);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "labels[1] = 3"));
    labels[1] = 1;
    ck_assert_status(mislas_dataset_from_memory(&d, NULL, labels, 2, 1, 2, 2, 3, MISLAS_COPY), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_dataset_from_memory(&d, pixels, NULL, 2, 1, 2, 2, 3, MISLAS_COPY), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_dataset_from_memory(NULL, pixels, labels, 2, 1, 2, 2, 3, MISLAS_COPY), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_dataset_from_memory(&d, pixels, labels, 0, 1, 2, 2, 3, MISLAS_COPY), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_dataset_from_memory(&d, pixels, labels, 2, 0, 2, 2, 3, MISLAS_BORROW), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_dataset_from_memory(&d, pixels, labels, 2, 1, -2, 2, 3, MISLAS_COPY), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_dataset_from_memory(&d, pixels, labels, 2, 1, 2, 2, -1, MISLAS_COPY), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_dataset_from_memory(&d, pixels, labels, 2, 1, 2, 2, 3, (mislas_ownership)5), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_dataset_from_memory(&d, pixels, labels, SIZE_MAX / 2, 1000, 1000, 1000, 3, MISLAS_BORROW),
                     MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_dataset_from_memory(&d, pixels, labels, 2, 1, MISLAS_DATASET_MAX_SIDE + 1, 2, 3, MISLAS_BORROW),
                     MISLAS_ERR_UNSUPPORTED);
    int32_t huge[2] = { 0, INT32_MAX };
    ck_assert_status(mislas_dataset_from_memory(&d, pixels, huge, 2, 1, 2, 2, 0, MISLAS_COPY), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(d);
    ck_assert_uint_eq(mislas_dataset_size(NULL), 0);
    ck_assert_int_eq(mislas_dataset_num_classes(NULL), -1);
    ck_assert_ptr_null(mislas_dataset_labels(NULL));
    ck_assert_ptr_null(mislas_dataset_image(NULL, 0));
    mislas_dataset_free(NULL);
}
END_TEST

START_TEST(subsets)
{
    mislas_dataset *d = make_indexed(4, 10, NULL, NULL);
    const size_t pick[5] = { 39, 0, 7, 7, 21 };
    mislas_dataset *s = NULL, *ss = NULL;
    ck_assert_status(mislas_dataset_subset(&s, d, pick, 5), MISLAS_OK);
    ck_assert_uint_eq(mislas_dataset_size(s), 5);
    for (size_t i = 0; i < 5; i++) {
        ck_assert_uint_eq(original_index(s, i), pick[i]);
        ck_assert_int_eq(mislas_dataset_labels(s)[i], mislas_dataset_labels(d)[pick[i]]);
    }
    /* a subset of a subset */
    const size_t again[2] = { 4, 2 };
    ck_assert_status(mislas_dataset_subset(&ss, s, again, 2), MISLAS_OK);
    ck_assert_uint_eq(original_index(ss, 0), 21);
    ck_assert_uint_eq(original_index(ss, 1), 7);
    ck_assert_int_eq(mislas_dataset_num_classes(ss), 4);

    mislas_dataset *bad = (mislas_dataset *)1;
    const size_t out_of_range[2] = { 3, 40 };
    ck_assert_status(mislas_dataset_subset(&bad, d, out_of_range, 2), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(bad);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "indices[1] = 40"));
    ck_assert_status(mislas_dataset_subset(&bad, d, pick, 0), MISLAS_ERR_INVALID_ARGUMENT);
    mislas_dataset_free(ss);
    mislas_dataset_free(s);
    mislas_dataset_free(d);
}
END_TEST

/* Every kept image belongs to its class, none twice, counts as asked. */
static void check_subset(const mislas_dataset *parent, const mislas_dataset *s, const int64_t *want, int32_t k)
{
    int64_t counts[64];
    ck_assert_status(mislas_dataset_class_counts(s, counts), MISLAS_OK);
    for (int32_t c = 0; c < k; c++)
        ck_assert_int_eq(counts[c], want[c]);
    size_t n = mislas_dataset_size(s), pn = mislas_dataset_size(parent);
    char *seen = calloc(65536, 1);
    int32_t previous = -1;
    for (size_t i = 0; i < n; i++) {
        size_t orig = original_index(s, i);
        ck_assert(!seen[orig]);
        seen[orig] = 1;
        /* the parent holds that original image with the same label */
        int found = 0;
        for (size_t j = 0; j < pn && !found; j++)
            found = original_index(parent, j) == orig && mislas_dataset_labels(parent)[j] == mislas_dataset_labels(s)[i];
        ck_assert(found);
        ck_assert_int_ge(mislas_dataset_labels(s)[i], previous);   /* grouped by class */
        previous = mislas_dataset_labels(s)[i];
    }
    free(seen);
}

START_TEST(long_tailed_subsets)
{
    enum { K = 10, PER = 60 };
    mislas_dataset *d = make_indexed(K, PER, NULL, NULL);
    int64_t want[K];
    ck_assert_status(mislas_long_tail_counts(want, K, PER, 0.1, MISLAS_IMBALANCE_EXP), MISLAS_OK);
    mislas_dataset *lt = NULL, *lt2 = NULL, *again = NULL, *other = NULL;
    ck_assert_status(mislas_dataset_long_tail(&lt, d, 0.1, MISLAS_IMBALANCE_EXP, 3), MISLAS_OK);
    check_subset(d, lt, want, K);

    /* the same seed keeps the same images; another seed others */
    ck_assert_status(mislas_dataset_long_tail(&again, d, 0.1, MISLAS_IMBALANCE_EXP, 3), MISLAS_OK);
    ck_assert_status(mislas_dataset_long_tail(&other, d, 0.1, MISLAS_IMBALANCE_EXP, 4), MISLAS_OK);
    int differs = 0;
    for (size_t i = 0; i < mislas_dataset_size(lt); i++) {
        ck_assert_uint_eq(original_index(lt, i), original_index(again, i));
        differs |= original_index(lt, i) != original_index(other, i);
    }
    ck_assert(differs);

    /* a long tail of a long tail: n_max stays 60, classes already thinner keep what they have */
    int64_t want2[K], step[K];
    ck_assert_status(mislas_long_tail_counts(step, K, PER, 0.5, MISLAS_IMBALANCE_STEP), MISLAS_OK);
    for (int c = 0; c < K; c++)
        want2[c] = step[c] < want[c] ? step[c] : want[c];
    ck_assert_status(mislas_dataset_long_tail(&lt2, lt, 0.5, MISLAS_IMBALANCE_STEP, 9), MISLAS_OK);
    check_subset(lt, lt2, want2, K);

    /* explicit counts, and too many asked for */
    int64_t explicit_counts[K] = { 0, 60, 1, 2, 3, 4, 5, 6, 7, 8 };
    mislas_dataset *e = NULL;
    ck_assert_status(mislas_dataset_subset_by_counts(&e, d, explicit_counts, 1), MISLAS_OK);
    check_subset(d, e, explicit_counts, K);
    explicit_counts[0] = 61;
    mislas_dataset *bad = (mislas_dataset *)1;
    ck_assert_status(mislas_dataset_subset_by_counts(&bad, d, explicit_counts, 1), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(bad);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "counts[0] = 61"));
    ck_assert_status(mislas_dataset_long_tail(&bad, d, 0.0, MISLAS_IMBALANCE_EXP, 1), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "mislas_dataset_long_tail"));
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "imb_factor"));
    mislas_dataset_free(e);
    mislas_dataset_free(lt);
    mislas_dataset_free(lt2);
    mislas_dataset_free(again);
    mislas_dataset_free(other);
    mislas_dataset_free(d);
}
END_TEST

START_TEST(class_shots)
{
    const int64_t counts[7] = { 5000, 101, 100, 20, 19, 1, 0 };
    mislas_shot shots[7];
    ck_assert_status(mislas_long_tail_shots(shots, counts, 7), MISLAS_OK);
    const mislas_shot want[7] = { MISLAS_SHOT_MANY, MISLAS_SHOT_MANY, MISLAS_SHOT_MEDIUM, MISLAS_SHOT_MEDIUM,
                                  MISLAS_SHOT_FEW, MISLAS_SHOT_FEW, MISLAS_SHOT_FEW };
    for (int c = 0; c < 7; c++)
        ck_assert_int_eq(shots[c], want[c]);
    const int64_t negative[2] = { 5, -1 };
    ck_assert_status(mislas_long_tail_shots(shots, negative, 2), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_long_tail_shots(shots, counts, 0), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_long_tail_shots(shots, NULL, 7), MISLAS_ERR_INVALID_ARGUMENT);
}
END_TEST

/* A 2-channel 3 x 4 image with distinct pixel values. */
static mislas_dataset *make_small_image(void)
{
    static uint8_t pixels[2 * 3 * 4];
    static int32_t label[1] = { 1 };
    for (int i = 0; i < 24; i++)
        pixels[i] = (uint8_t)(10 * i + 5);
    mislas_dataset *d = NULL;
    ck_assert_status(mislas_dataset_from_memory(&d, pixels, label, 1, 2, 3, 4, 2, MISLAS_BORROW), MISLAS_OK);
    return d;
}

START_TEST(normalisation_by_hand)
{
    mislas_dataset *d = make_small_image();
    const float mean[2] = { 0.5f, 0.25f }, std[2] = { 0.25f, 2.0f };
    mislas_dataset_batch_options o;
    mislas_dataset_batch_options_init(&o);
    o.mean = mean;
    o.std = std;
    float out[24];
    int32_t label = -1;
    const size_t index = 0;
    ck_assert_status(mislas_dataset_batch(d, &index, 1, &o, 0, out, &label), MISLAS_OK);
    ck_assert_int_eq(label, 1);
    /* pixel 0 of channel 0 is 5: (5/255 - 0.5) / 0.25 = -1.92156862745;
     * pixel 23 (channel 1) is 235: (235/255 - 0.25) / 2 = 0.33578431372 */
    ck_assert_close(out[0], -1.92156862745, 1e-6, 0);
    ck_assert_close(out[23], 0.33578431372, 1e-6, 0);
    for (int i = 0; i < 24; i++) {
        int c = i / 12;
        ck_assert_float_eq(out[i], ((float)(10 * i + 5) / 255.0f - mean[c]) / std[c]);
    }
    /* no mean or std: plain p / 255 */
    ck_assert_status(mislas_dataset_batch(d, &index, 1, NULL, 0, out, NULL), MISLAS_OK);
    ck_assert_float_eq(out[5], 55.0f / 255.0f);
    mislas_dataset_free(d);
}
END_TEST

/* The test's own augmentation: pad with zeros into a bigger array, crop at
 * (top, left) of the padded image, then flip. */
static void reference_crop(const uint8_t *img, int ch, int h, int w, int pad, int top, int left, int flip, uint8_t *out)
{
    int ph = h + 2 * pad, pw = w + 2 * pad;
    uint8_t *padded = calloc((size_t)(ch * ph * pw), 1);
    for (int c = 0; c < ch; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                padded[(c * ph + y + pad) * pw + x + pad] = img[(c * h + y) * w + x];
    for (int c = 0; c < ch; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int cx = flip ? w - 1 - x : x;
                out[(c * h + y) * w + x] = padded[(c * ph + y + top) * pw + cx + left];
            }
    free(padded);
}

START_TEST(augmentation_is_a_padded_crop_and_flip)
{
    mislas_dataset *d = make_small_image();
    const uint8_t *img = mislas_dataset_image(d, 0);
    enum { PAD = 2, SIDE = 2 * PAD + 1, CASES = SIDE * SIDE * 2 };
    /* all 50 possible outputs, as raw pixel values */
    static uint8_t candidates[CASES][24];
    for (int top = 0; top < SIDE; top++)
        for (int left = 0; left < SIDE; left++)
            for (int flip = 0; flip < 2; flip++)
                reference_crop(img, 2, 3, 4, PAD, top, left, flip, candidates[(top * SIDE + left) * 2 + flip]);
    /* hand-checked corners: the window at (0, 0) of the padded image puts the
     * first pixel (5) at (2, 2); the window at (4, 4) keeps only the image's
     * pixels (2, 2) and (2, 3) (105, 115), at (0, 0) and (0, 1) */
    ck_assert_int_eq(candidates[0][2 * 4 + 2], 5);
    ck_assert_int_eq(candidates[0][0], 0);
    ck_assert_int_eq(candidates[(4 * SIDE + 4) * 2][0], 105);
    ck_assert_int_eq(candidates[(4 * SIDE + 4) * 2][1], 115);
    ck_assert_int_eq(candidates[(4 * SIDE + 4) * 2][2], 0);
    ck_assert_int_eq(candidates[(4 * SIDE + 4) * 2][4], 0);

    mislas_dataset_batch_options o;
    mislas_dataset_batch_options_init(&o);
    o.augment = 1;
    o.pad = PAD;
    o.seed = 17;
    int hits[CASES] = { 0 };
    const size_t index[4] = { 0, 0, 0, 0 };
    float out[4 * 24];
    enum { BATCHES = 2000 };
    for (uint64_t b = 0; b < BATCHES; b++) {
        ck_assert_status(mislas_dataset_batch(d, index, 4, &o, b, out, NULL), MISLAS_OK);
        for (int i = 0; i < 4; i++) {
            int match = -1;
            for (int k = 0; k < CASES && match < 0; k++) {
                int same = 1;
                for (int e = 0; e < 24 && same; e++)
                    same = out[i * 24 + e] == (float)candidates[k][e] / 255.0f;
                if (same)
                    match = k;
            }
            ck_assert_msg(match >= 0, "batch %d image %d is no padded crop of the image", (int)b, i);
            hits[match]++;
        }
    }
    /* every window and flip turns up, each about 1/50 of the time */
    double expected = BATCHES * 4.0 / CASES, se = sqrt(expected * (1 - 1.0 / CASES));
    for (int k = 0; k < CASES; k++)
        ck_assert_msg(fabs(hits[k] - expected) < 4 * se, "case %d seen %d times, expected %.0f", k, hits[k], expected);

    /* pad 0 and no flip: the image itself */
    o.pad = 0;
    o.flip = 0;
    ck_assert_status(mislas_dataset_batch(d, index, 1, &o, 5, out, NULL), MISLAS_OK);
    for (int e = 0; e < 24; e++)
        ck_assert_float_eq(out[e], (float)img[e] / 255.0f);
    mislas_dataset_free(d);
}
END_TEST

START_TEST(batches_are_reproducible)
{
    mislas_dataset *d = make_indexed(3, 50, NULL, NULL);
    size_t idx[64];
    for (size_t i = 0; i < 64; i++)
        idx[i] = (i * 37) % 150;
    mislas_dataset_batch_options o;
    mislas_dataset_batch_options_init(&o);
    o.augment = 1;
    o.pad = 1;
    float a[64 * 4], b[64 * 4], c[64 * 4];
    int32_t la[64], lb[64];
    ck_assert_status(mislas_dataset_batch(d, idx, 64, &o, 42, a, la), MISLAS_OK);
    ck_assert_status(mislas_set_num_threads(1), MISLAS_OK);
    ck_assert_status(mislas_dataset_batch(d, idx, 64, &o, 42, b, lb), MISLAS_OK);
    ck_assert_status(mislas_set_num_threads(0), MISLAS_OK);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    ck_assert_int_eq(memcmp(la, lb, sizeof la), 0);
    ck_assert_status(mislas_dataset_batch(d, idx, 64, &o, 43, c, NULL), MISLAS_OK);
    ck_assert_int_ne(memcmp(a, c, sizeof a), 0);
    for (size_t i = 0; i < 64; i++)
        ck_assert_int_eq(la[i], mislas_dataset_labels(d)[idx[i]]);
    mislas_dataset_free(d);
}
END_TEST

START_TEST(batch_bad_input_writes_nothing)
{
    mislas_dataset *d = make_small_image();
    float out[48];
    for (int i = 0; i < 48; i++)
        out[i] = -7.0f;
    int32_t labels[2] = { -3, -3 };
    size_t idx[2] = { 0, 1 };
    ck_assert_status(mislas_dataset_batch(d, idx, 2, NULL, 0, out, labels), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "indices[1] = 1"));
    idx[1] = 0;
    mislas_dataset_batch_options o;
    mislas_dataset_batch_options_init(&o);
    const float mean[2] = { 0.5f, NAN }, std[2] = { 1.0f, 0.0f };
    o.mean = mean;
    ck_assert_status(mislas_dataset_batch(d, idx, 2, &o, 0, out, labels), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "mean[1]"));
    o.mean = NULL;
    o.std = std;
    ck_assert_status(mislas_dataset_batch(d, idx, 2, &o, 0, out, labels), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "std[1]"));
    o.std = NULL;
    o.augment = 1;
    o.pad = -1;
    ck_assert_status(mislas_dataset_batch(d, idx, 2, &o, 0, out, labels), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_dataset_batch(d, idx, 0, NULL, 0, out, labels), MISLAS_OK);    /* empty: writes nothing */
    ck_assert_status(mislas_dataset_batch(NULL, idx, 2, NULL, 0, out, labels), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_dataset_batch(d, idx, 2, NULL, 0, NULL, labels), MISLAS_ERR_INVALID_ARGUMENT);
    for (int i = 0; i < 48; i++)
        ck_assert_float_eq(out[i], -7.0f);
    ck_assert_int_eq(labels[0], -3);
    mislas_dataset_free(d);
}
END_TEST

START_TEST(mixup_invariants)
{
    enum { N = 9, SIZE = 5 };
    float x[N * SIZE], original[N * SIZE];
    int32_t y[N], yb[N];
    for (int i = 0; i < N; i++) {
        y[i] = i;                      /* unique labels reveal the permutation */
        for (int e = 0; e < SIZE; e++)
            x[i * SIZE + e] = original[i * SIZE + e] = (float)(i * 10 + e) / 7.0f;
    }
    float lambda = -1.0f;
    /* alpha <= 0: nothing mixed */
    ck_assert_status(mislas_mixup(x, yb, &lambda, y, N, SIZE, 0.0f, 1, 1), MISLAS_OK);
    ck_assert_float_eq(lambda, 1.0f);
    ck_assert_int_eq(memcmp(x, original, sizeof x), 0);
    ck_assert_int_eq(memcmp(y, yb, sizeof y), 0);

    ck_assert_status(mislas_mixup(x, yb, &lambda, y, N, SIZE, 1.0f, 1, 1), MISLAS_OK);
    ck_assert(lambda > 0.0f && lambda < 1.0f);
    int seen[N] = { 0 };
    for (int i = 0; i < N; i++) {
        int j = yb[i];
        ck_assert(j >= 0 && j < N);
        seen[j]++;
        for (int e = 0; e < SIZE; e++)
            ck_assert_float_eq(x[i * SIZE + e], lambda * original[i * SIZE + e] +
                               (float)(1.0 - (double)lambda) * original[j * SIZE + e]);
    }
    for (int j = 0; j < N; j++)
        ck_assert_int_eq(seen[j], 1);          /* labels_b is a permutation */

    /* reproducible from (seed, batch_id) */
    float x2[N * SIZE], lambda2;
    int32_t yb2[N];
    memcpy(x2, original, sizeof x2);
    ck_assert_status(mislas_mixup(x2, yb2, &lambda2, y, N, SIZE, 1.0f, 1, 1), MISLAS_OK);
    ck_assert_float_eq(lambda, lambda2);
    ck_assert_int_eq(memcmp(x, x2, sizeof x), 0);
    ck_assert_int_eq(memcmp(yb, yb2, sizeof yb), 0);
    memcpy(x2, original, sizeof x2);
    ck_assert_status(mislas_mixup(x2, yb2, &lambda2, y, N, SIZE, 1.0f, 1, 2), MISLAS_OK);
    ck_assert_float_ne(lambda, lambda2);

    /* bad input */
    ck_assert_status(mislas_mixup(x, yb, &lambda, y, 0, SIZE, 1.0f, 1, 1), MISLAS_OK);    /* empty: mixes nothing */
    ck_assert_status(mislas_mixup(x, yb, &lambda, y, N, 0, 1.0f, 1, 1), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_mixup(x, yb, &lambda, y, N, SIZE, NAN, 1, 1), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_mixup(x, yb, &lambda, NULL, N, SIZE, 1.0f, 1, 1), MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_status(mislas_mixup(x, yb, NULL, y, N, SIZE, 1.0f, 1, 1), MISLAS_ERR_INVALID_ARGUMENT);
}
END_TEST

/* lambda ~ Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)), fourth central
 * moment 3 / (16 (2a + 1)(2a + 3)); sample mean and variance within 3
 * standard errors of them. */
START_TEST(beta_moments)
{
    const float alphas[3] = { 0.2f, 1.0f, 2.0f };
    enum { M = 40000 };
    for (int t = 0; t < 3; t++) {
        double a = alphas[t], sum = 0, sq = 0;
        float x[2] = { 0, 1 }, lambda;
        int32_t y[2] = { 0, 1 }, yb[2];
        static double draws[M];
        for (int m = 0; m < M; m++) {
            ck_assert_status(mislas_mixup(x, yb, &lambda, y, 2, 1, alphas[t], 99, (uint64_t)m), MISLAS_OK);
            ck_assert(lambda >= 0.0f && lambda <= 1.0f);
            draws[m] = lambda;
            sum += lambda;
        }
        double mean = sum / M;
        for (int m = 0; m < M; m++)
            sq += (draws[m] - mean) * (draws[m] - mean);
        double var = sq / (M - 1);
        double true_var = 1.0 / (4.0 * (2.0 * a + 1.0));
        double mu4 = 3.0 / (16.0 * (2.0 * a + 1.0) * (2.0 * a + 3.0));
        double se_mean = sqrt(true_var / M), se_var = sqrt((mu4 - true_var * true_var) / M);
        ck_assert_msg(fabs(mean - 0.5) < 3 * se_mean, "alpha %g: mean %g", a, mean);
        ck_assert_msg(fabs(var - true_var) < 3 * se_var, "alpha %g: variance %g, expected %g", a, var, true_var);
    }
}
END_TEST

/* ---------------------------------------------------------------- out of memory */

static int sweep_memory(void *ctx)
{
    (void)ctx;
    uint8_t pixels[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
    int32_t labels[3] = { 0, 1, 1 };
    mislas_dataset *d = NULL, *s = NULL, *lt = NULL;
    int rc = mislas_dataset_from_memory(&d, pixels, labels, 3, 1, 2, 2, 2, MISLAS_COPY);
    const size_t pick[2] = { 2, 0 };
    if (rc == MISLAS_OK)
        rc = mislas_dataset_subset(&s, d, pick, 2);
    if (rc == MISLAS_OK)
        rc = mislas_dataset_long_tail(&lt, d, 0.5, MISLAS_IMBALANCE_EXP, 1);
    float out[12];
    if (rc == MISLAS_OK) {
        mislas_dataset_batch_options o;
        mislas_dataset_batch_options_init(&o);
        o.augment = 1;
        rc = mislas_dataset_batch(d, pick, 2, &o, 3, out, NULL);
    }
    if (rc == MISLAS_OK) {
        int32_t yb[2];
        float lambda;
        rc = mislas_mixup(out, yb, &lambda, labels, 2, 4, 1.0f, 1, 1);
    }
    mislas_dataset_free(lt);
    mislas_dataset_free(s);
    mislas_dataset_free(d);
    return rc;
}

START_TEST(allocation_failures_are_clean)
{
    ck_assert_int_gt(test_allocation_sweep(sweep_memory, NULL), 5);
}
END_TEST

/* With num_classes 0 the classes are counted from the largest label, so a
 * bad label can only be a negative one, and the message says so (not
 * "outside [0, 1)", a range the caller never gave). */
START_TEST(a_negative_label_is_named_as_negative)
{
    const uint8_t pixels[2] = { 1, 2 };
    const int32_t labels[2] = { 0, -1 };
    mislas_dataset *d = NULL;
    ck_assert_status(mislas_dataset_from_memory(&d, pixels, labels, 2, 1, 1, 1, 0, MISLAS_COPY),
            MISLAS_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(d);
    ck_assert_msg(strstr(mislas_last_error(), "label 1 is -1: labels are class indices, from 0") != NULL, "%s",
            mislas_last_error());
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, from_memory_copy_and_borrow);
    tcase_add_test(tc, from_memory_bad_input);
    tcase_add_test(tc, subsets);
    tcase_add_test(tc, long_tailed_subsets);
    tcase_add_test(tc, class_shots);
    tcase_add_test(tc, normalisation_by_hand);
    tcase_add_test(tc, augmentation_is_a_padded_crop_and_flip);
    tcase_add_test(tc, batches_are_reproducible);
    tcase_add_test(tc, batch_bad_input_writes_nothing);
    tcase_add_test(tc, mixup_invariants);
    tcase_add_test(tc, beta_moments);
    tcase_add_test(tc, allocation_failures_are_clean);
    tcase_add_test(tc, a_negative_label_is_named_as_negative);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
