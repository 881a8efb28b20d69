/* List-file data sets (mislas_dataset_open_list): parsing, the reference's
 * class map worked out by hand, evaluation lists on a training set's map,
 * every malformed line, missing / truncated / non-image files refused or
 * skipped, batches (the test transform on solid-colour images, whose result
 * is known without PIL; the training transform's reproducibility across
 * thread counts), subsets and an evaluation run with a file that breaks
 * mid-way. The JPEGs are written here with libjpeg. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

static char dir[64];

static void make_dir(void)
{
    test_make_dir(dir, "mislas-list");
}

static void remove_dir(void)
{
    test_remove_dir(dir);
}

/* dir/name */
static const char *at(const char *name)
{
    static char buf[4][1024];
    static int next;
    char *b = buf[next++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s", dir, name);
    return b;
}

/* A baseline JPEG of h x w pixels, all (r, g, b), quality 95, 4:4:4. */
static void write_jpeg(const char *name, int h, int w, int r, int g, int b)
{
    FILE *f = fopen(at(name), "wb");
    ck_assert_ptr_nonnull(f);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    for (int i = 0; i < c.num_components; i++)
        c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    jpeg_start_compress(&c, TRUE);
    unsigned char *row = malloc((size_t)w * 3);
    for (int x = 0; x < w; x++) {
        row[3 * x] = (unsigned char)r;
        row[3 * x + 1] = (unsigned char)g;
        row[3 * x + 2] = (unsigned char)b;
    }
    while (c.next_scanline < c.image_height) {
        JSAMPROW rows[1] = { row };
        jpeg_write_scanlines(&c, rows, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    fclose(f);
}

static void write_text(const char *name, const char *text)
{
    test_write_file(at(name), text, strlen(text));
}

/* A JPEG cut to `keep` bytes. */
static void truncate_copy(const char *from, const char *to, size_t keep)
{
    size_t size = 0;
    unsigned char *data = test_read_file(at(from), &size);
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_lt(keep, size);
    test_write_file(at(to), data, keep);
    free(data);
}

static mislas_dataset_list_options small_options(void)
{
    mislas_dataset_list_options o;
    mislas_dataset_list_options_init(&o);
    o.height = o.width = 16;
    o.resize = 18;
    return o;
}

/* Nine images: class 0 has 2, class 1 has 4, class 2 has 3. */
static void write_training_set(void)
{
    const int labels[9] = { 0, 1, 1, 2, 0, 1, 2, 1, 2 };
    char list[512] = "";
    for (int i = 0; i < 9; i++) {
        char name[32], line[64];
        snprintf(name, sizeof name, "img%d.jpg", i);
        write_jpeg(name, 20 + i, 30 - i, 40 * labels[i], 100, 200);
        snprintf(line, sizeof line, "%s %d\n", name, labels[i]);
        strcat(list, line);
    }
    write_text("train.txt", list);
}

START_TEST(class_map_by_training_count)
{
    write_training_set();
    mislas_dataset_list_options o = small_options();
    mislas_dataset *d = NULL;
    ck_assert_status(mislas_dataset_open_list(&d, dir, at("train.txt"), NULL, &o), MISLAS_OK);
    ck_assert_uint_eq(mislas_dataset_size(d), 9);
    ck_assert_int_eq(mislas_dataset_num_classes(d), 3);
    /* argsort(-[2, 4, 3]) = [1, 2, 0], so class_map = {0 -> 2, 1 -> 0, 2 -> 1} */
    const int32_t *map = mislas_dataset_class_map(d);
    ck_assert_ptr_nonnull(map);
    ck_assert_int_eq(map[0], 2);
    ck_assert_int_eq(map[1], 0);
    ck_assert_int_eq(map[2], 1);
    const int labels[9] = { 0, 1, 1, 2, 0, 1, 2, 1, 2 };
    const int32_t *got = mislas_dataset_labels(d);
    for (int i = 0; i < 9; i++)
        ck_assert_int_eq(got[i], map[labels[i]]);
    int64_t counts[3];
    ck_assert_status(mislas_dataset_class_counts(d, counts), MISLAS_OK);
    ck_assert_int_eq(counts[0], 4);
    ck_assert_int_eq(counts[1], 3);
    ck_assert_int_eq(counts[2], 2);
    ck_assert_str_eq(mislas_dataset_path(d, 3), at("img3.jpg"));
    ck_assert_ptr_null(mislas_dataset_path(d, 9));
    ck_assert_ptr_null(mislas_dataset_image(d, 0));
    int32_t c, h, w;
    mislas_dataset_shape(d, &c, &h, &w);
    ck_assert(c == 3 && h == 16 && w == 16);
    ck_assert_uint_eq(mislas_dataset_files_skipped(d), 0);

    /* K = 5: classes 3 and 4 have no image; n <= 16 is insertion-sorted, so
     * the ties keep their order after the others: argsort = [1, 2, 0, 3, 4] */
    mislas_dataset *d5 = NULL;
    o.num_classes = 5;
    ck_assert_status(mislas_dataset_open_list(&d5, dir, at("train.txt"), NULL, &o), MISLAS_OK);
    const int32_t want5[5] = { 2, 0, 1, 3, 4 };
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(mislas_dataset_class_map(d5)[i], want5[i]);
    mislas_dataset_free(d5);

    /* an evaluation list takes the training set's map and K */
    write_text("test.txt", "img0.jpg 2\nimg1.jpg 0\n\nimg2.jpg 1 extra fields are ignored\n");
    mislas_dataset *t = NULL;
    o.num_classes = 0;
    ck_assert_status(mislas_dataset_open_list(&t, dir, at("test.txt"), d, &o), MISLAS_OK);
    ck_assert_uint_eq(mislas_dataset_size(t), 3);
    ck_assert_int_eq(mislas_dataset_num_classes(t), 3);
    ck_assert_int_eq(mislas_dataset_labels(t)[0], 1);
    ck_assert_int_eq(mislas_dataset_labels(t)[1], 2);
    ck_assert_int_eq(mislas_dataset_labels(t)[2], 0);
    mislas_dataset_free(t);

    /* a test label outside the training classes */
    write_text("test_bad.txt", "img0.jpg 1\nimg1.jpg 3\n");
    ck_assert_status(mislas_dataset_open_list(&t, dir, at("test_bad.txt"), d, &o), MISLAS_ERR_FORMAT);
    ck_assert_ptr_null(t);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "entry 2"));
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "img1.jpg"));
    mislas_dataset_free(d);
}
END_TEST

START_TEST(subsets_keep_paths_and_map)
{
    write_training_set();
    mislas_dataset_list_options o = small_options();
    mislas_dataset *d = NULL, *s = NULL;
    ck_assert_status(mislas_dataset_open_list(&d, dir, at("train.txt"), NULL, &o), MISLAS_OK);
    const size_t pick[3] = { 8, 0, 8 };
    ck_assert_status(mislas_dataset_subset(&s, d, pick, 3), MISLAS_OK);
    ck_assert_uint_eq(mislas_dataset_size(s), 3);
    ck_assert_str_eq(mislas_dataset_path(s, 0), at("img8.jpg"));
    ck_assert_str_eq(mislas_dataset_path(s, 1), at("img0.jpg"));
    ck_assert_int_eq(mislas_dataset_labels(s)[0], mislas_dataset_labels(d)[8]);
    ck_assert_int_eq(mislas_dataset_labels(s)[1], mislas_dataset_labels(d)[0]);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(mislas_dataset_class_map(s)[i], mislas_dataset_class_map(d)[i]);
    /* a subset's batches are the full set's at the same images */
    size_t one = 0, eight = 8;
    float a[3 * 16 * 16], b[3 * 16 * 16];
    ck_assert_status(mislas_dataset_batch(s, &one, 1, NULL, 0, a, NULL), MISLAS_OK);
    ck_assert_status(mislas_dataset_batch(d, &eight, 1, NULL, 0, b, NULL), MISLAS_OK);
    ck_assert_mem_eq(a, b, sizeof a);
    mislas_dataset_free(s);
    mislas_dataset_free(d);
}
END_TEST

/* Opens `text` as a list and expects `status` with `needle` in the message. */
static void expect_refused(const char *text, int status, const char *needle)
{
    write_text("list.txt", text);
    mislas_dataset_list_options o = small_options();
    mislas_dataset *d = (mislas_dataset *)&o;
    int rc = mislas_dataset_open_list(&d, dir, at("list.txt"), NULL, &o);
    ck_assert_msg(rc == status, "%s: got %d (%s)", text, rc, mislas_last_error());
    ck_assert_ptr_null(d);
    ck_assert_msg(strstr(mislas_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", text,
            mislas_last_error(), needle);
}

START_TEST(malformed_lists)
{
    write_jpeg("a.jpg", 8, 8, 1, 2, 3);
    expect_refused("a.jpg 0\na.jpg\n", MISLAS_ERR_FORMAT, "line 2 has a path but no label");
    expect_refused("a.jpg zero\n", MISLAS_ERR_FORMAT, "line 1 has a label that is not an integer");
    expect_refused("a.jpg 1x\n", MISLAS_ERR_FORMAT, "line 1 has a label");
    expect_refused("\n\na.jpg -1\n", MISLAS_ERR_FORMAT, "line 3: label -1");
    expect_refused("a.jpg 99999999999999999999\n", MISLAS_ERR_FORMAT, "line 1 has a label");
    expect_refused("a.jpg 0\na.jpg 1048576\n", MISLAS_ERR_FORMAT, "line 2: label 1048576 is outside [0, 1048576)");
    expect_refused("\n \n\t\n", MISLAS_ERR_FORMAT, "lists no image");
    expect_refused("", MISLAS_ERR_FORMAT, "lists no image");
    /* CRLF line ends, tabs and an absolute path are fine */
    char text[1200];
    snprintf(text, sizeof text, "a.jpg\t0\r\n%s 1\r\n", at("a.jpg"));
    write_text("ok.txt", text);
    mislas_dataset_list_options o = small_options();
    mislas_dataset *d = NULL;
    ck_assert_status(mislas_dataset_open_list(&d, dir, at("ok.txt"), NULL, &o), MISLAS_OK);
    ck_assert_str_eq(mislas_dataset_path(d, 0), at("a.jpg"));
    ck_assert_str_eq(mislas_dataset_path(d, 1), at("a.jpg"));
    mislas_dataset_free(d);
    /* arguments */
    ck_assert_status(mislas_dataset_open_list(&d, dir, at("missing.txt"), NULL, &o), MISLAS_ERR_IO);
    ck_assert_status(mislas_dataset_open_list(&d, at("nowhere"), at("ok.txt"), NULL, &o), MISLAS_ERR_IO);
    ck_assert_status(mislas_dataset_open_list(&d, NULL, at("ok.txt"), NULL, &o), MISLAS_ERR_INVALID_ARGUMENT);
    o.resize = 15;
    ck_assert_status(mislas_dataset_open_list(&d, dir, at("ok.txt"), NULL, &o), MISLAS_ERR_INVALID_ARGUMENT);
    o = small_options();
    o.scale_min = 0;
    ck_assert_status(mislas_dataset_open_list(&d, dir, at("ok.txt"), NULL, &o), MISLAS_ERR_INVALID_ARGUMENT);
    o = small_options();
    o.jitter = NAN;
    ck_assert_status(mislas_dataset_open_list(&d, dir, at("ok.txt"), NULL, &o), MISLAS_ERR_INVALID_ARGUMENT);
    /* class_map_of must be a list set */
    uint8_t px[4] = { 0 };
    int32_t lab[1] = { 0 };
    mislas_dataset *mem = NULL;
    ck_assert_status(mislas_dataset_from_memory(&mem, px, lab, 1, 1, 2, 2, 1, MISLAS_COPY), MISLAS_OK);
    o = small_options();
    ck_assert_status(mislas_dataset_open_list(&d, dir, at("ok.txt"), mem, &o), MISLAS_ERR_INVALID_ARGUMENT);
    mislas_dataset_free(mem);
}
END_TEST

static size_t progress_calls, progress_last;
static void count_progress(size_t done, size_t total, void *user)
{
    (void)user;
    ck_assert_uint_le(done, total);
    ck_assert_uint_ge(done, progress_last);
    progress_last = done;
    progress_calls++;
}

START_TEST(bad_files_refused_or_skipped)
{
    write_jpeg("good0.jpg", 12, 10, 50, 60, 70);
    write_jpeg("good1.jpg", 10, 12, 50, 60, 70);
    truncate_copy("good0.jpg", "cut.jpg", 200);
    write_text("text.jpg", "this is not an image\n");
    write_text("list.txt", "good0.jpg 0\nmissing.jpg 1\ncut.jpg 1\ngood1.jpg 1\ntext.jpg 0\n");
    mislas_dataset_list_options o = small_options();
    mislas_dataset *d = NULL;
    int rc = mislas_dataset_open_list(&d, dir, at("list.txt"), NULL, &o);
    ck_assert_msg(rc == MISLAS_ERR_IO || rc == MISLAS_ERR_FORMAT, "%d: %s", rc, mislas_last_error());
    ck_assert_ptr_null(d);
    ck_assert_msg(strstr(mislas_last_error(), "3 of its 5 files") != NULL, "%s", mislas_last_error());
    ck_assert_msg(strstr(mislas_last_error(), "missing.jpg") != NULL, "%s", mislas_last_error());

    o.skip_bad = 1;
    o.progress = count_progress;
    progress_calls = progress_last = 0;
    ck_assert_status(mislas_dataset_open_list(&d, dir, at("list.txt"), NULL, &o), MISLAS_OK);
    ck_assert_uint_ge(progress_calls, 1);
    ck_assert_uint_eq(progress_last, 5);
    ck_assert_uint_eq(mislas_dataset_size(d), 2);
    ck_assert_uint_eq(mislas_dataset_files_skipped(d), 3);
    ck_assert_str_eq(mislas_dataset_path(d, 1), at("good1.jpg"));
    mislas_dataset_free(d);

    write_text("allbad.txt", "missing.jpg 0\ncut.jpg 0\n");
    progress_last = 0;
    ck_assert_status(mislas_dataset_open_list(&d, dir, at("allbad.txt"), NULL, &o), MISLAS_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mislas_last_error(), "none of its 2 files"));

    /* unchecked, the bad file fails the batch that reads it, naming it, and
     * the caller's buffer keeps what it held */
    o = small_options();
    o.check_files = 0;
    ck_assert_status(mislas_dataset_open_list(&d, dir, at("list.txt"), NULL, &o), MISLAS_OK);
    ck_assert_uint_eq(mislas_dataset_size(d), 5);
    float images[2 * 3 * 16 * 16];
    for (size_t i = 0; i < sizeof images / sizeof *images; i++)
        images[i] = -7.0f;
    const size_t idx[2] = { 0, 2 };
    rc = mislas_dataset_batch(d, idx, 2, NULL, 0, images, NULL);
    ck_assert_int_eq(rc, MISLAS_ERR_FORMAT);
    ck_assert_msg(strstr(mislas_last_error(), "cut.jpg") != NULL, "%s", mislas_last_error());
    ck_assert_msg(strstr(mislas_last_error(), "image 1 of the batch") != NULL, "%s", mislas_last_error());
    for (size_t i = 0; i < sizeof images / sizeof *images; i++)
        ck_assert_float_eq(images[i], -7.0f);
    mislas_dataset_free(d);
}
END_TEST

START_TEST(test_transform_of_solid_images)
{
    /* solid colours stay solid through decoding, resizing and cropping (the
     * filter's weights sum to one), so every output pixel is known */
    const int colours[3][3] = { { 200, 100, 50 }, { 0, 255, 128 }, { 17, 17, 17 } };
    const int sizes[3][2] = { { 300, 200 }, { 40, 90 }, { 18, 18 } };
    char list[256] = "";
    for (int i = 0; i < 3; i++) {
        char name[16], line[32];
        snprintf(name, sizeof name, "s%d.jpg", i);
        write_jpeg(name, sizes[i][0], sizes[i][1], colours[i][0], colours[i][1], colours[i][2]);
        snprintf(line, sizeof line, "%s %d\n", name, i);
        strcat(list, line);
    }
    write_text("solid.txt", list);
    mislas_dataset_list_options o = small_options();
    mislas_dataset *d = NULL;
    ck_assert_status(mislas_dataset_open_list(&d, dir, at("solid.txt"), NULL, &o), MISLAS_OK);
    const float mean[3] = { 0.485f, 0.456f, 0.406f }, std[3] = { 0.229f, 0.224f, 0.225f };
    mislas_dataset_batch_options bo;
    mislas_dataset_batch_options_init(&bo);
    bo.mean = mean;
    bo.std = std;
    const size_t idx[3] = { 0, 1, 2 };
    float images[3 * 3 * 16 * 16];
    int32_t labels[3];
    ck_assert_status(mislas_dataset_batch(d, idx, 3, &bo, 0, images, labels), MISLAS_OK);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(labels[i], mislas_dataset_labels(d)[i]);
        for (int c = 0; c < 3; c++) {
            const float *plane = images + (size_t)(3 * i + c) * 256;
            float want = ((float)colours[i][c] / 255.0f - mean[c]) / std[c];
            for (int p = 0; p < 256; p++) {
                ck_assert_float_eq(plane[p], plane[0]);
                /* JPEG's colour conversion moves a solid colour by a level or two */
                ck_assert_msg(fabsf(plane[p] - want) <= 2.5f / 255.0f / std[c], "image %d channel %d: %g vs %g",
                        i, c, (double)plane[p], (double)want);
            }
        }
    }
    mislas_dataset_free(d);
}
END_TEST

START_TEST(training_batches_are_reproducible)
{
    write_training_set();
    mislas_dataset_list_options o = small_options();
    mislas_dataset *d = NULL;
    ck_assert_status(mislas_dataset_open_list(&d, dir, at("train.txt"), NULL, &o), MISLAS_OK);
    mislas_dataset_batch_options bo;
    mislas_dataset_batch_options_init(&bo);
    bo.augment = 1;
    bo.seed = 5;
    const size_t idx[9] = { 0, 1, 2, 3, 4, 5, 6, 7, 8 };
    enum { SIZE = 9 * 3 * 16 * 16 };
    static float a[SIZE], b[SIZE], c[SIZE];
    int32_t threads = mislas_num_threads();
    mislas_set_num_threads(1);
    ck_assert_status(mislas_dataset_batch(d, idx, 9, &bo, 3, a, NULL), MISLAS_OK);
    mislas_set_num_threads(2);
    ck_assert_status(mislas_dataset_batch(d, idx, 9, &bo, 3, b, NULL), MISLAS_OK);
    mislas_set_num_threads(threads);
    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert_status(mislas_dataset_batch(d, idx, 9, &bo, 4, c, NULL), MISLAS_OK);
    ck_assert(memcmp(a, c, sizeof a) != 0);
    /* an image's draws depend on its place in the batch, not on its
     * neighbours: image 4 alone at place 4 of another batch is the same */
    const size_t same[5] = { 8, 8, 8, 8, 4 };
    ck_assert_status(mislas_dataset_batch(d, same, 5, &bo, 3, c, NULL), MISLAS_OK);
    ck_assert_mem_eq(c + 4 * 768, a + 4 * 768, 768 * sizeof *a);
    mislas_dataset_free(d);
}
END_TEST

START_TEST(evaluation_reports_a_file_broken_after_opening)
{
    write_training_set();
    mislas_dataset_list_options o = small_options();
    mislas_dataset *d = NULL;
    ck_assert_status(mislas_dataset_open_list(&d, dir, at("train.txt"), NULL, &o), MISLAS_OK);
    mislas_model *m = test_new_model(MISLAS_RESNET20, 3, 16, 16, 3, 1);
    mislas_eval_options eo;
    mislas_eval_options_init(&eo);
    eo.batch_size = 2;
    mislas_eval_report r;
    mislas_eval_report_init(&r);
    ck_assert_status(mislas_eval_run(m, d, &eo, NULL, NULL, &r), MISLAS_OK);
    ck_assert_uint_eq(r.count, 9);
    /* by index: Many [0, 1), Medium [1, 2), Few [2, 3) */
    eo.medium_from = 1;
    eo.few_from = 2;
    ck_assert_status(mislas_eval_run(m, d, &eo, NULL, NULL, &r), MISLAS_OK);
    ck_assert_int_eq(r.many_classes, 1);
    ck_assert_int_eq(r.medium_classes, 1);
    ck_assert_int_eq(r.few_classes, 1);
    eo.few_from = 4;
    ck_assert_status(mislas_eval_run(m, d, &eo, NULL, NULL, &r), MISLAS_ERR_INVALID_ARGUMENT);
    eo.medium_from = eo.few_from = 0;
    /* image 7 is in the fourth batch; the one after it is being made when it fails */
    truncate_copy("img7.jpg", "img7.tmp", 300);
    ck_assert_int_eq(rename(at("img7.tmp"), at("img7.jpg")), 0);
    int rc = mislas_eval_run(m, d, &eo, NULL, NULL, &r);
    ck_assert_int_eq(rc, MISLAS_ERR_FORMAT);
    ck_assert_msg(strstr(mislas_last_error(), "img7.jpg") != NULL, "%s", mislas_last_error());
    ck_assert_msg(strstr(mislas_last_error(), "test images 6..7") != NULL, "%s", mislas_last_error());
    mislas_model_free(m);
    mislas_dataset_free(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("listfile");
    TCase *tc = tcase_create("listfile");
    tcase_add_checked_fixture(tc, make_dir, remove_dir);
    tcase_add_test(tc, class_map_by_training_count);
    tcase_add_test(tc, subsets_keep_paths_and_map);
    tcase_add_test(tc, malformed_lists);
    tcase_add_test(tc, bad_files_refused_or_skipped);
    tcase_add_test(tc, test_transform_of_solid_images);
    tcase_add_test(tc, training_batches_are_reproducible);
    tcase_add_test(tc, evaluation_reports_a_file_broken_after_opening);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
