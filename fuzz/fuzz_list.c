/* List-file data sets on any text: the input is the list file ("path label"
 * lines) under a root folder made once, which holds a few real images for
 * the lines to name:
 *
 *   a.jpg      24 x 20 baseline JPEG        b.jpg    17 x 29 progressive grey JPEG
 *   c.png      12 x 9 RGB PNG (any name)    sub/d.jpg  9 x 31 4:2:2 JPEG
 *   t.jpg      a JPEG cut short             n.txt    not an image
 *   dir        a folder
 *
 * mislas_dataset_open_list as a training list (checking the files; when that
 * refuses the set, again with skip_bad), then when it opens one batch of the
 * test transform and one of the training transform (16 x 16, resize 18) of
 * up to three of its images, and the same list as an evaluation list with
 * the training set's class map and without the check (so a batch may meet a
 * file that does not decode). Any status is fine; sets that open must be
 * usable. K is fixed at 1000: with K 0 (the largest label + 1) a label near
 * 2^31 asks for a class map of gigabytes, which the API allows.
 *
 * The harness keeps the lines inside the root: a path that starts with '/'
 * has it replaced by '_', and ".." by "._" (so the fuzzer cannot name
 * /dev/stdin or files outside the root, which would make runs depend on the
 * machine). */
#include "fuzz_input.h"

#include <stdbool.h>

#include <jpeglib.h>
#include <png.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { SIDE = 16, RESIZE = 18, MAX_BATCH = 3, NUM_CLASSES = 1000 };

static char root[64];

static void write_file(const char *name, const uint8_t *bytes, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", root, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* A JPEG of a smooth picture with edges: 3 components (4:2:0, or 4:2:2 with
 * h422) or grey, baseline or progressive. malloc'ed by libjpeg. */
static uint8_t *jpeg_of(int32_t h, int32_t w, int grey, int progressive, int h422, unsigned long *size)
{
    const int comps = grey ? 1 : 3;
    uint8_t *row = malloc((size_t)w * 3);
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    unsigned char *out = NULL;
    *size = 0;
    jpeg_mem_dest(&ci, &out, size);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 80, TRUE);
    if (h422)
        ci.comp_info[0].v_samp_factor = 1;
    if (progressive)
        jpeg_simple_progression(&ci);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        int32_t y = (int32_t)ci.next_scanline;
        for (int32_t x = 0; x < w; x++)
            for (int c = 0; c < comps; c++)
                row[x * comps + c] = (uint8_t)(c == 0 ? x * 255 / w : c == 1 ? y * 255 / h : ((x / 3 + y / 2) % 2) * 170);
        JSAMPROW r = row;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    free(row);
    return out;
}

static void png_to_file(png_structp png, png_bytep bytes, size_t n)
{
    if (fwrite(bytes, 1, n, png_get_io_ptr(png)) != n)
        abort();
}

static void png_flush(png_structp png)
{
    (void)png;
}

static void write_png(const char *name, int32_t h, int32_t w)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", root, name);
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png == NULL ? NULL : png_create_info_struct(png);
    if (f == NULL || info == NULL)
        abort();
    png_set_write_fn(png, f, png_to_file, png_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
            PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    uint8_t *row = malloc((size_t)w * 3);
    for (int32_t y = 0; y < h; y++) {
        for (int32_t x = 0; x < w * 3; x++)
            row[x] = (uint8_t)(x * 11 + y * 29);
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    if (fclose(f) != 0)
        abort();
}

static void make_root(void)
{
    if (root[0] != '\0')
        return;
    snprintf(root, sizeof root, "/tmp/mislas-fuzz-list-XXXXXX");
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        abort();
    }
    char path[128];
    snprintf(path, sizeof path, "%s/sub", root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/dir", root);
    mkdir(path, 0755);
    unsigned long n;
    uint8_t *j = jpeg_of(24, 20, 0, 0, 0, &n);
    write_file("a.jpg", j, n);
    write_file("t.jpg", j, n / 2);
    free(j);
    j = jpeg_of(17, 29, 1, 1, 0, &n);
    write_file("b.jpg", j, n);
    free(j);
    j = jpeg_of(9, 31, 0, 0, 1, &n);
    write_file("sub/d.jpg", j, n);
    free(j);
    write_png("c.png", 12, 9);
    write_file("n.txt", (const uint8_t *)"a.jpg 0\n", 8);
    /* the decoding threads: one, so that runs repeat and stay light */
    mislas_set_num_threads(1);
}

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* One batch of each transform from d; any status. */
static void batches(const mislas_dataset *d, size_t size)
{
    size_t n = mislas_dataset_size(d);
    if (n == 0)
        abort();                /* an opened set lists images */
    int32_t c, h, w;
    if (mislas_dataset_shape(d, &c, &h, &w) != MISLAS_OK || c != 3 || h != SIDE || w != SIDE)
        abort();
    size_t m = n < MAX_BATCH ? n : MAX_BATCH;
    size_t indices[MAX_BATCH] = { 0, n - 1, n / 2 };
    static float images[MAX_BATCH * 3 * SIDE * SIDE];
    int32_t labels[MAX_BATCH];
    mislas_dataset_batch_options bo;
    mislas_dataset_batch_options_init(&bo);
    for (int augment = 0; augment < 2; augment++) {
        bo.augment = augment;
        bo.seed = size;
        if (mislas_dataset_batch(d, indices, m, &bo, size, images, labels) == MISLAS_OK)
            for (size_t i = 0; i < m; i++)
                if (labels[i] < 0 || labels[i] >= mislas_dataset_num_classes(d))
                    abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    make_root();
    uint8_t *text = malloc(size + 1);
    if (text == NULL)
        abort();
    memcpy(text, data, size);
    for (size_t i = 0; i < size; i++) {
        if (text[i] == '/' && (i == 0 || is_space(text[i - 1])))
            text[i] = '_';
        if (text[i] == '.' && i + 1 < size && text[i + 1] == '.')
            text[i + 1] = '_';
    }
    char list[64];
    int fd = fuzz_memory_file(text, size, list);
    free(text);

    mislas_dataset_list_options o;
    mislas_dataset_list_options_init(&o);
    o.num_classes = NUM_CLASSES;
    o.height = o.width = SIDE;
    o.resize = RESIZE;
    mislas_dataset *train = NULL;
    if (mislas_dataset_open_list(&train, root, list, NULL, &o) != MISLAS_OK) {
        o.skip_bad = 1;
        mislas_dataset_open_list(&train, root, list, NULL, &o);
    }
    if (train != NULL) {
        batches(train, size);
        mislas_dataset_list_options eo = o;
        eo.num_classes = 0;
        eo.check_files = 0;
        eo.skip_bad = 0;
        mislas_dataset *eval = NULL;
        if (mislas_dataset_open_list(&eval, root, list, train, &eo) == MISLAS_OK)
            batches(eval, size);
        mislas_dataset_free(eval);
    }
    mislas_dataset_free(train);
    close(fd);
    return 0;
}
