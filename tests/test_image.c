/* lib/data/image.h: the decoders' error paths (missing, empty, not an
 * image, truncated, corrupt, too large) without leaks, a PNG named .JPEG,
 * PIL's bilinear resize against hand-worked cases and an independent
 * double-precision evaluation of its filter, and the enhancements against
 * hand-worked values. Equality with PIL itself: tests/image_check.py. */
#define _POSIX_C_SOURCE 200809L
#include "data/image.h"
#include "testutil.h"
#include "util/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

static char dir[64];
static char path[256];

static const char *file_in_dir(const char *name)
{
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static void setup(void)
{
    test_make_dir(dir, "mislas-image");
}

static void teardown(void)
{
    test_remove_dir(dir);
}

/* A test picture: smooth colours and a few edges. */
static uint8_t *picture(int32_t h, int32_t w)
{
    uint8_t *rgb = malloc((size_t)h * w * 3);
    for (int32_t y = 0; y < h; y++)
        for (int32_t x = 0; x < w; x++) {
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(x * 255 / (w > 1 ? w - 1 : 1));
            p[1] = (uint8_t)(y * 255 / (h > 1 ? h - 1 : 1));
            p[2] = (uint8_t)(((x / 3 + y / 2) % 2) ? 200 : 30);
        }
    return rgb;
}

/* A baseline JPEG of the picture (malloc'ed by libjpeg) and its size. */
static unsigned char *make_jpeg(int32_t h, int32_t w, unsigned long *size)
{
    uint8_t *rgb = picture(h, w);
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    unsigned char *out = NULL;
    *size = 0;
    jpeg_mem_dest(&ci, &out, size);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 85, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = rgb + (size_t)ci.next_scanline * w * 3;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    free(rgb);
    return out;
}

/* JPEGs of the picture in the layouts libjpeg's skipping and cropping treat
 * differently, written to file_path. */
enum jpeg_kind { JPEG_420, JPEG_422, JPEG_PROGRESSIVE, JPEG_GREY, JPEG_CMYK, JPEG_KINDS };

static void write_jpeg_kind(const char *file_path, int32_t h, int32_t w, enum jpeg_kind kind)
{
    uint8_t *rgb = picture(h, w);
    const int comps = kind == JPEG_GREY ? 1 : kind == JPEG_CMYK ? 4 : 3;
    uint8_t *row = malloc((size_t)w * 4);
    FILE *f = fopen(file_path, "wb");
    ck_assert_ptr_nonnull(f);
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = kind == JPEG_GREY ? JCS_GRAYSCALE : kind == JPEG_CMYK ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 90, TRUE);
    if (kind == JPEG_422)
        ci.comp_info[0].v_samp_factor = 1;
    if (kind == JPEG_PROGRESSIVE)
        jpeg_simple_progression(&ci);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        const uint8_t *p = rgb + (size_t)ci.next_scanline * w * 3;
        for (int32_t x = 0; x < w; x++)
            for (int c = 0; c < comps; c++)
                row[x * comps + c] = comps == 1 ? p[3 * x + 1] : c < 3 ? p[3 * x + c] : (uint8_t)(x * 7);
        JSAMPROW r = row;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    fclose(f);
    free(row);
    free(rgb);
}

/* An 8-bit RGB PNG of the picture at file_path. */
static void make_png(const char *file_path, int32_t h, int32_t w)
{
    uint8_t *rgb = picture(h, w);
    FILE *f = fopen(file_path, "wb");
    ck_assert_ptr_nonnull(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
            PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int32_t y = 0; y < h; y++)
        png_write_row(png, rgb + (size_t)y * w * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    free(rgb);
}

/* Probe and decode of file_path both fail with `status`, leaking nothing
 * and leaving the image untouched. */
static void expect_refused(const char *file_path, int status)
{
    test_allocator a;
    test_allocator_install(&a, 0);
    int32_t h = -1, w = -1;
    ck_assert_status(mislasi_image_probe(file_path, &h, &w), status);
    ck_assert_msg(strstr(mislas_last_error(), file_path) != NULL, "the message names the path: %s",
            mislas_last_error());
    ck_assert_int_eq(h, -1);
    mislasi_image img = {7, 8, (uint8_t *)&a};
    ck_assert_status(mislasi_image_decode(file_path, &img), status);
    ck_assert_msg(strstr(mislas_last_error(), file_path) != NULL, "the message names the path: %s",
            mislas_last_error());
    ck_assert(img.height == 7 && img.width == 8 && img.rgb == (uint8_t *)&a);
    ck_assert_int_eq(a.live, 0);
    test_allocator_uninstall();
}

START_TEST(missing_and_unreadable_files_are_io_errors)
{
    expect_refused(file_in_dir("no-such-file.JPEG"), MISLAS_ERR_IO);
    expect_refused(dir, MISLAS_ERR_IO);
}
END_TEST

START_TEST(empty_and_foreign_files_are_format_errors)
{
    test_write_file(file_in_dir("empty.JPEG"), "", 0);
    expect_refused(path, MISLAS_ERR_FORMAT);
    test_write_file(file_in_dir("text.JPEG"), "hello, world\n", 13);
    expect_refused(path, MISLAS_ERR_FORMAT);
    const uint8_t gif[] = "GIF89a\x01\x00\x01\x00\x00\x00\x00;";
    test_write_file(file_in_dir("gif.JPEG"), gif, sizeof gif - 1);
    expect_refused(path, MISLAS_ERR_FORMAT);
    const uint8_t soi_only[] = {0xff, 0xd8, 0xff};
    test_write_file(file_in_dir("soi.JPEG"), soi_only, sizeof soi_only);
    expect_refused(path, MISLAS_ERR_FORMAT);
}
END_TEST

START_TEST(a_jpeg_decodes_and_probes)
{
    unsigned long size;
    unsigned char *jpeg = make_jpeg(37, 53, &size);
    test_write_file(file_in_dir("ok.JPEG"), jpeg, size);
    test_allocator a;
    test_allocator_install(&a, 0);
    int32_t h = 0, w = 0;
    ck_assert_status(mislasi_image_probe(path, &h, &w), MISLAS_OK);
    ck_assert(h == 37 && w == 53);
    ck_assert_status(mislasi_image_probe(path, NULL, NULL), MISLAS_OK);
    mislasi_image img;
    ck_assert_status(mislasi_image_decode(path, &img), MISLAS_OK);
    ck_assert(img.height == 37 && img.width == 53 && img.rgb != NULL);
    /* Close to the picture (JPEG is lossy; flat areas away from the edges). */
    uint8_t *want = picture(37, 53);
    ck_assert_int_le(abs(img.rgb[(20 * 53 + 10) * 3 + 1] - want[(20 * 53 + 10) * 3 + 1]), 24);
    free(want);
    mislasi_image_release(&img);
    ck_assert(img.rgb == NULL && img.height == 0 && img.width == 0);
    mislasi_image_release(NULL);
    ck_assert_int_eq(a.live, 0);
    test_allocator_uninstall();
    /* Bytes after the end-of-image marker are ignored, as PIL ignores them. */
    unsigned char *longer = malloc(size + 5000);
    memcpy(longer, jpeg, size);
    memset(longer + size, 0x55, 5000);
    test_write_file(file_in_dir("trailing.JPEG"), longer, size + 5000);
    ck_assert_status(mislasi_image_probe(path, &h, &w), MISLAS_OK);
    ck_assert_status(mislasi_image_decode(path, &img), MISLAS_OK);
    mislasi_image_release(&img);
    free(longer);
    free(jpeg);
}
END_TEST

static int32_t chosen_box[4];

static void choose_box(void *ctx, int32_t height, int32_t width, int32_t box[4])
{
    (void)ctx;
    ck_assert(chosen_box[0] + chosen_box[2] <= height && chosen_box[1] + chosen_box[3] <= width);
    memcpy(box, chosen_box, sizeof chosen_box);
}

/* The training crops' decoding of a box (skipped rows, cropped columns)
 * gives the whole decode's pixels inside the box, for boxes anywhere,
 * including the image's edges and single rows or columns. */
START_TEST(a_box_decodes_as_the_whole_image)
{
    const int32_t h = 61, w = 83;
    for (int kind = 0; kind < JPEG_KINDS; kind++) {
        write_jpeg_kind(file_in_dir("box.jpg"), h, w, (enum jpeg_kind)kind);
        mislasi_image whole = {0, 0, NULL};
        ck_assert_int_eq(mislasi_image_decode(file_in_dir("box.jpg"), &whole), MISLAS_OK);
        for (int t = 0; t < 60; t++) {
            int32_t bh = 1 + (int32_t)(test_uniform() * h), bw = 1 + (int32_t)(test_uniform() * w);
            bh = bh > h ? h : bh;
            bw = bw > w ? w : bw;
            chosen_box[0] = (int32_t)(test_uniform() * (h - bh + 1));
            chosen_box[1] = (int32_t)(test_uniform() * (w - bw + 1));
            chosen_box[0] = t == 0 ? h - bh : chosen_box[0];       /* one at the bottom right */
            chosen_box[1] = t == 0 ? w - bw : chosen_box[1];
            chosen_box[2] = bh;
            chosen_box[3] = bw;
            mislasi_image part = {0, 0, NULL};
            int32_t at[2];
            ck_assert_int_eq(mislasi_image_decode_box(file_in_dir("box.jpg"), choose_box, NULL, &part, at), MISLAS_OK);
            ck_assert(at[0] >= 0 && at[1] >= 0 && at[0] + bh <= part.height && at[1] + bw <= part.width);
            for (int32_t y = 0; y < bh; y++)
                ck_assert_msg(memcmp(part.rgb + ((size_t)(at[0] + y) * part.width + at[1]) * 3,
                        whole.rgb + ((size_t)(chosen_box[0] + y) * whole.width + chosen_box[1]) * 3, (size_t)bw * 3) == 0,
                        "kind %d, box %d %d %d %d: row %d differs", kind, chosen_box[0], chosen_box[1], bh, bw, y);
            mislasi_image_release(&part);
        }
        mislasi_image_release(&whole);
    }
}
END_TEST

START_TEST(a_truncated_jpeg_is_refused)
{
    unsigned long size;
    unsigned char *jpeg = make_jpeg(64, 80, &size);
    const unsigned long cuts[] = {size - 1, size - 2, size - 40, size / 2, 300, 100, 4};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        char name[32];
        snprintf(name, sizeof name, "cut%lu.JPEG", cuts[i]);
        test_write_file(file_in_dir(name), jpeg, cuts[i]);
        if (cuts[i] >= size - 2) {
            /* The marker's last byte or the whole marker gone: the probe
             * refuses; the decoder, like PIL's, has every row already. */
            int32_t h, w;
            ck_assert_status(mislasi_image_probe(path, &h, &w), MISLAS_ERR_FORMAT);
            ck_assert_msg(strstr(mislas_last_error(), "truncated") != NULL, "%s", mislas_last_error());
            continue;
        }
        expect_refused(path, MISLAS_ERR_FORMAT);
    }
    free(jpeg);
}
END_TEST

/* The first SOF0 marker's offset in a JPEG. */
static size_t find_sof(const unsigned char *jpeg, size_t size)
{
    for (size_t i = 2; i + 9 < size; i++)
        if (jpeg[i] == 0xff && jpeg[i + 1] == 0xc0)
            return i;
    ck_abort_msg("no SOF0 marker");
    return 0;
}

START_TEST(a_corrupt_jpeg_header_is_refused)
{
    unsigned long size;
    unsigned char *jpeg = make_jpeg(16, 16, &size);
    size_t sof = find_sof(jpeg, size);
    unsigned char *bad = malloc(size);
    /* Two components (PIL refuses them) */
    memcpy(bad, jpeg, size);
    bad[sof + 9] = 2;
    test_write_file(file_in_dir("two.JPEG"), bad, size);
    expect_refused(path, MISLAS_ERR_FORMAT);
    /* 12-bit samples */
    memcpy(bad, jpeg, size);
    bad[sof + 4] = 12;
    test_write_file(file_in_dir("twelve.JPEG"), bad, size);
    expect_refused(path, MISLAS_ERR_FORMAT);
    /* A segment length running past the end */
    memcpy(bad, jpeg, size);
    bad[4] = 0xff;
    bad[5] = 0xf0;
    test_write_file(file_in_dir("length.JPEG"), bad, size);
    expect_refused(path, MISLAS_ERR_FORMAT);
    /* A zero width */
    memcpy(bad, jpeg, size);
    bad[sof + 7] = bad[sof + 8] = 0;
    test_write_file(file_in_dir("zero.JPEG"), bad, size);
    expect_refused(path, MISLAS_ERR_FORMAT);
    free(bad);
    free(jpeg);
}
END_TEST

START_TEST(huge_declared_sides_are_unsupported)
{
    unsigned long size;
    unsigned char *jpeg = make_jpeg(16, 16, &size);
    size_t sof = find_sof(jpeg, size);
    /* 16 x 40000: a side beyond MISLASI_IMAGE_MAX_SIDE */
    jpeg[sof + 7] = 40000 >> 8;
    jpeg[sof + 8] = 40000 & 0xff;
    test_write_file(file_in_dir("wide.JPEG"), jpeg, size);
    expect_refused(path, MISLAS_ERR_UNSUPPORTED);
    /* 30000 x 30000: sides allowed, but more pixels than PIL opens */
    jpeg[sof + 5] = jpeg[sof + 7] = 30000 >> 8;
    jpeg[sof + 6] = jpeg[sof + 8] = 30000 & 0xff;
    test_write_file(file_in_dir("bomb.JPEG"), jpeg, size);
    expect_refused(path, MISLAS_ERR_UNSUPPORTED);
    free(jpeg);

    /* A PNG announcing 3 x 50000 (its header's checksum redone) */
    make_png(file_in_dir("wide.png"), 3, 5);
    size_t png_size;
    unsigned char *png = test_read_file(path, &png_size);
    ck_assert_ptr_nonnull(png);
    png[16] = 0;
    png[17] = 0;
    png[18] = 50000 >> 8;
    png[19] = 50000 & 0xff;
    uint32_t crc = (uint32_t)crc32(crc32(0, NULL, 0), png + 12, 17);
    png[29] = (unsigned char)(crc >> 24);
    png[30] = (unsigned char)(crc >> 16);
    png[31] = (unsigned char)(crc >> 8);
    png[32] = (unsigned char)crc;
    test_write_file(file_in_dir("wide.JPEG"), png, png_size);
    expect_refused(path, MISLAS_ERR_UNSUPPORTED);
    /* ... and with its checksum wrong: corrupt */
    png[32] ^= 1;
    test_write_file(file_in_dir("badcrc.JPEG"), png, png_size);
    expect_refused(path, MISLAS_ERR_FORMAT);
    free(png);
}
END_TEST

START_TEST(a_png_named_jpeg_decodes)
{
    make_png(file_in_dir("n02105855_2933.JPEG"), 21, 34);
    test_allocator a;
    test_allocator_install(&a, 0);
    int32_t h = 0, w = 0;
    ck_assert_status(mislasi_image_probe(path, &h, &w), MISLAS_OK);
    ck_assert(h == 21 && w == 34);
    mislasi_image img;
    ck_assert_status(mislasi_image_decode(path, &img), MISLAS_OK);
    uint8_t *want = picture(21, 34);
    ck_assert(img.height == 21 && img.width == 34 && memcmp(img.rgb, want, 21 * 34 * 3) == 0);
    free(want);
    mislasi_image_release(&img);
    ck_assert_int_eq(a.live, 0);
    test_allocator_uninstall();
    /* Truncated: refused by the decoder */
    size_t size;
    unsigned char *png = test_read_file(path, &size);
    test_write_file(file_in_dir("cut.png"), png, size / 2);
    ck_assert_status(mislasi_image_decode(path, &img), MISLAS_ERR_FORMAT);
    test_write_file(file_in_dir("cut.png"), png, 20);
    expect_refused(path, MISLAS_ERR_FORMAT);
    free(png);
}
END_TEST

typedef struct decode_ctx {
    const char *path;
} decode_ctx;

static int decode_attempt(void *p)
{
    decode_ctx *c = p;
    mislasi_image img;
    int rc = mislasi_image_probe(c->path, NULL, NULL);
    if (rc == MISLAS_OK)
        rc = mislasi_image_decode(c->path, &img);
    if (rc == MISLAS_OK)
        mislasi_image_release(&img);
    return rc;
}

START_TEST(allocation_failures_leak_nothing)
{
    unsigned long size;
    unsigned char *jpeg = make_jpeg(20, 30, &size);
    test_write_file(file_in_dir("a.JPEG"), jpeg, size);
    free(jpeg);
    decode_ctx c = {path};
    ck_assert_int_gt(test_allocation_sweep(decode_attempt, &c), 0);
    make_png(file_in_dir("b.JPEG"), 20, 30);
    c.path = path;
    ck_assert_int_gt(test_allocation_sweep(decode_attempt, &c), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Resize                                                                   */

static void resize_ok(const uint8_t *src, int32_t h, int32_t w, const double box[4], uint8_t *dst, int32_t oh,
        int32_t ow)
{
    ck_assert_status(mislasi_image_resize(src, h, w, (size_t)w * 3, box, dst, oh, ow), MISLAS_OK);
}

START_TEST(resize_hand_worked)
{
    /* One row [0, 100] to four pixels: centres 0.25, 0.75, 1.25, 1.75;
     * the first and last see one input, the middle two 0.75 / 0.25. */
    uint8_t row[6] = {0, 0, 0, 100, 100, 100}, out[12];
    resize_ok(row, 1, 2, (double[]){0, 0, 2, 1}, out, 1, 4);
    const uint8_t want4[4] = {0, 25, 75, 100};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(out[3 * i], want4[i]);
    /* [0, 255] to one pixel: half of each, 127.5 rounded up. */
    uint8_t row2[6] = {0, 0, 0, 255, 255, 255};
    resize_ok(row2, 1, 2, (double[]){0, 0, 2, 1}, out, 1, 1);
    ck_assert_int_eq(out[0], 128);
    /* 2 x 2 to 1 x 1: rows averaged (15, 35), then the columns (25). */
    uint8_t sq[12] = {10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40};
    resize_ok(sq, 2, 2, (double[]){0, 0, 2, 2}, out, 1, 1);
    ck_assert_int_eq(out[0], 25);
    /* A whole-pixel box of the output's size is a crop. */
    uint8_t *pic = picture(5, 6), crop[2 * 3 * 3];
    resize_ok(pic, 5, 6, (double[]){1, 2, 4, 4}, crop, 2, 3);
    for (int y = 0; y < 2; y++)
        ck_assert(memcmp(crop + y * 9, pic + ((2 + y) * 6 + 1) * 3, 9) == 0);
    /* The same size and the whole image: a copy. */
    uint8_t same[5 * 6 * 3];
    resize_ok(pic, 5, 6, (double[]){0, 0, 6, 5}, same, 5, 6);
    ck_assert(memcmp(same, pic, sizeof same) == 0);
    free(pic);
}
END_TEST

/* The bilinear antialiasing filter in double precision, both axes at once,
 * no intermediate rounding: PIL's result is within one level of it. */
static double reference_weight(int32_t n, double b0, double b1, int32_t m, int32_t i, int32_t x)
{
    double scale = (b1 - b0) / m, fs = scale > 1 ? scale : 1;
    double centre = b0 + (i + 0.5) * scale, sum = 0, mine = 0;
    for (int32_t j = 0; j < n; j++) {
        double d = fabs((j + 0.5 - centre) / fs);
        /* The window PIL takes: inputs whose index rounds within support. */
        if (j < (int32_t)fmax(0, (int32_t)(centre - fs + 0.5)) || j >= (int32_t)(centre + fs + 0.5))
            continue;
        double wgt = d < 1 ? 1 - d : 0;
        sum += wgt;
        if (j == x)
            mine = wgt;
    }
    return sum > 0 ? mine / sum : 0;
}

START_TEST(resize_is_within_one_level_of_the_exact_filter)
{
    int worst = 0;
    for (int trial = 0; trial < 60; trial++) {
        int32_t h = 1 + (int32_t)(test_uniform() * 40), w = 1 + (int32_t)(test_uniform() * 40);
        int32_t oh = 1 + (int32_t)(test_uniform() * 60), ow = 1 + (int32_t)(test_uniform() * 60);
        double box[4] = {0, 0, w, h};
        if (trial % 2) {
            box[0] = test_uniform() * w * 0.5;
            box[1] = test_uniform() * h * 0.5;
            box[2] = box[0] + (w - box[0]) * (0.3 + 0.7 * test_uniform());
            box[3] = box[1] + (h - box[1]) * (0.3 + 0.7 * test_uniform());
            for (int i = 0; i < 4; i++)
                box[i] = (float)box[i];     /* PIL's precision for the box */
        }
        uint8_t *src = malloc((size_t)h * w * 3), *dst = malloc((size_t)oh * ow * 3);
        for (size_t i = 0; i < (size_t)h * w * 3; i++)
            src[i] = (uint8_t)(test_uniform() * 256);
        resize_ok(src, h, w, box, dst, oh, ow);
        double *wy = malloc(sizeof(double) * (size_t)h), *wx = malloc(sizeof(double) * (size_t)w);
        for (int32_t i = 0; i < oh; i++) {
            for (int32_t y = 0; y < h; y++)
                wy[y] = reference_weight(h, box[1], box[3], oh, i, y);
            for (int32_t j = 0; j < ow; j++) {
                for (int32_t x = 0; x < w; x++)
                    wx[x] = reference_weight(w, box[0], box[2], ow, j, x);
                for (int c = 0; c < 3; c++) {
                    double v = 0;
                    for (int32_t y = 0; y < h; y++)
                        for (int32_t x = 0; x < w; x++)
                            v += wy[y] * wx[x] * src[((size_t)y * w + x) * 3 + c];
                    int d = abs((int)dst[((size_t)i * ow + j) * 3 + c] - (int)lround(v));
                    worst = d > worst ? d : worst;
                    ck_assert_msg(d <= 1, "%dx%d -> %dx%d: output (%d, %d, %d) is %d, the filter gives %.3f", h, w,
                            oh, ow, i, j, c, dst[((size_t)i * ow + j) * 3 + c], v);
                }
            }
        }
        free(wy);
        free(wx);
        free(src);
        free(dst);
    }
    (void)worst;
}
END_TEST

START_TEST(resize_of_a_crop_by_stride)
{
    /* A crop given as a pointer and stride into a larger image resizes as
     * the same crop copied out. */
    uint8_t *pic = picture(40, 50), *crop = malloc(20 * 30 * 3), *a = malloc(13 * 17 * 3),
            *b = malloc(13 * 17 * 3);
    for (int y = 0; y < 20; y++)
        memcpy(crop + y * 30 * 3, pic + ((5 + y) * 50 + 7) * 3, 30 * 3);
    const double box[4] = {0.5, 1.25, 29, 19.5};
    ck_assert_status(mislasi_image_resize(pic + (5 * 50 + 7) * 3, 20, 30, 50 * 3, box, a, 13, 17), MISLAS_OK);
    resize_ok(crop, 20, 30, box, b, 13, 17);
    ck_assert(memcmp(a, b, 13 * 17 * 3) == 0);
    free(pic);
    free(crop);
    free(a);
    free(b);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Enhancements                                                             */

START_TEST(enhance_hand_worked)
{
    uint8_t p[3] = {200, 101, 3};
    mislasi_image_brightness(p, 1, 0.5f);       /* 100, 50.5, 1.5 truncated */
    ck_assert(p[0] == 100 && p[1] == 50 && p[2] == 1);
    uint8_t q[3] = {200, 101, 3};
    mislasi_image_brightness(q, 1, 1.5f);       /* 300 clipped, 151.5, 4.5 */
    ck_assert(q[0] == 255 && q[1] == 151 && q[2] == 4);
    /* Black and white: L 0 and 255, mean 127.5 rounded to 128. */
    uint8_t bw[6] = {0, 0, 0, 255, 255, 255};
    mislasi_image_contrast(bw, 2, 0.5f);        /* 128 - 64, 128 + 63.5 */
    ck_assert(bw[0] == 64 && bw[2] == 64 && bw[3] == 191 && bw[5] == 191);
    uint8_t bw0[6] = {0, 0, 0, 255, 255, 255};
    mislasi_image_contrast(bw0, 2, 0.0f);
    ck_assert(bw0[0] == 128 && bw0[5] == 128);
    /* Red: L = (255 * 19595 + 0x8000) >> 16 = 76. */
    uint8_t red[3] = {255, 0, 0};
    mislasi_image_saturation(red, 1, 0.0f);
    ck_assert(red[0] == 76 && red[1] == 76 && red[2] == 76);
    uint8_t red2[3] = {255, 0, 0};
    mislasi_image_saturation(red2, 1, 2.0f);    /* 434 and -76 clipped */
    ck_assert(red2[0] == 255 && red2[1] == 0 && red2[2] == 0);
    uint8_t red3[3] = {255, 0, 0};
    mislasi_image_saturation(red3, 1, 0.5f);    /* 76 + 89.5, 76 - 38 */
    ck_assert(red3[0] == 165 && red3[1] == 38 && red3[2] == 38);
    /* Factor 1 leaves everything as it was. */
    uint8_t *pic = picture(9, 11), *copy = malloc(9 * 11 * 3);
    memcpy(copy, pic, 9 * 11 * 3);
    mislasi_image_brightness(pic, 99, 1.0f);
    mislasi_image_contrast(pic, 99, 1.0f);
    mislasi_image_saturation(pic, 99, 1.0f);
    ck_assert(memcmp(pic, copy, 9 * 11 * 3) == 0);
    mislasi_image_contrast(pic, 0, 0.5f);       /* no pixels: nothing to do */
    free(pic);
    free(copy);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("image");
    TCase *files = tcase_create("files");
    tcase_add_checked_fixture(files, setup, teardown);
    tcase_add_test(files, missing_and_unreadable_files_are_io_errors);
    tcase_add_test(files, empty_and_foreign_files_are_format_errors);
    tcase_add_test(files, a_jpeg_decodes_and_probes);
    tcase_add_test(files, a_box_decodes_as_the_whole_image);
    tcase_add_test(files, a_truncated_jpeg_is_refused);
    tcase_add_test(files, a_corrupt_jpeg_header_is_refused);
    tcase_add_test(files, huge_declared_sides_are_unsupported);
    tcase_add_test(files, a_png_named_jpeg_decodes);
    tcase_add_test(files, allocation_failures_leak_nothing);
    suite_add_tcase(s, files);
    TCase *pixels = tcase_create("pixels");
    tcase_add_test(pixels, resize_hand_worked);
    tcase_add_test(pixels, resize_is_within_one_level_of_the_exact_filter);
    tcase_add_test(pixels, resize_of_a_crop_by_stride);
    tcase_add_test(pixels, enhance_hand_worked);
    suite_add_tcase(s, pixels);
    return test_run_suite(s);
}
