/* Seed corpora for the harnesses, made by the project's own writers where
 * it has them (checkpoints: mislas_checkpoint_save and a training stage,
 * which adds the run record) and written here by the formats' rules where it
 * has none (IDX, CIFAR batches, tar), each in the harness's input layout:
 *
 *   make_corpus DIR     ->  DIR/checkpoint, DIR/checkpoint_content, DIR/idx,
 *                           DIR/cifar, DIR/archive, DIR/image, DIR/list
 *
 * checkpoint_content holds the decompressed contents of the checkpoint
 * seeds (the sections, without the 40-byte header). The image seeds are
 * written by libjpeg and libpng (small pictures in the layouts the decoder
 * treats apart), each followed by the 8 bytes that choose fuzz_image's box.
 */
#define _POSIX_C_SOURCE 200809L
#include <mislas/mislas.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include <jpeglib.h>
#include <png.h>

#define CHECK(call) do { \
        if ((call) != MISLAS_OK) { \
            fprintf(stderr, "make_corpus: %s: %s\n", #call, mislas_last_error()); \
            exit(1); \
        } \
    } while (0)

typedef struct bytes {
    uint8_t *p;
    size_t n;
} bytes;

static void append(bytes *b, const void *data, size_t n)
{
    b->p = realloc(b->p, b->n + n);
    if (b->p == NULL)
        abort();
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void write_seed(const char *dir, const char *name, const bytes *b)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(b->p, 1, b->n, f) != b->n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static bytes gzip_of(const bytes *in)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    bytes out = { malloc(deflateBound(&zs, (uLong)in->n)), 0 };
    zs.next_in = in->p;
    zs.avail_in = (uInt)in->n;
    zs.next_out = out.p;
    zs.avail_out = (uInt)deflateBound(&zs, (uLong)in->n);
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
        abort();
    out.n = zs.total_out;
    deflateEnd(&zs);
    return out;
}

static void put_be32(bytes *b, uint32_t v)
{
    uint8_t p[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
    append(b, p, 4);
}

static void make_dir(const char *root, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", root, name);
    mkdir(out, 0755);
}

/* ---- checkpoints: a model alone, and one written by a training stage ---- */

static void checkpoint_seeds(const char *root)
{
    char dir[512], path[600];
    make_dir(root, "checkpoint", dir, sizeof dir);
    mislas_model_options mo;
    mislas_model_options_init(&mo);
    mo.arch = MISLAS_RESNET20;
    mo.in_channels = 1;
    mo.height = mo.width = 4;
    mo.num_classes = 2;
    mislas_model *m;
    CHECK(mislas_model_new(&m, &mo));
    snprintf(path, sizeof path, "%s/model.ck", dir);
    CHECK(mislas_checkpoint_save(m, NULL, path));
    /* The same model with every value 0 compresses to a few kilobytes: a
     * seed small enough for the fuzzer to mutate quickly. */
    mislas_model *zeros;
    CHECK(mislas_model_new(&zeros, &mo));
    for (int32_t t = 0; t < mislas_model_num_tensors(zeros); t++) {
        const char *name;
        size_t count;
        CHECK(mislas_model_tensor_info(zeros, t, &name, &count));
        float *v = calloc(count, sizeof *v);
        CHECK(mislas_model_set_tensor(zeros, name, v, count));
        free(v);
    }
    snprintf(path, sizeof path, "%s/zeros.ck", dir);
    CHECK(mislas_checkpoint_save(zeros, NULL, path));
    mislas_model_free(zeros);

    uint8_t pixels[8 * 16];
    int32_t labels[8];
    for (int i = 0; i < 8; i++) {
        labels[i] = i % 2;
        for (int j = 0; j < 16; j++)
            pixels[i * 16 + j] = (uint8_t)(i * 31 + j * 7);
    }
    mislas_dataset *d;
    CHECK(mislas_dataset_from_memory(&d, pixels, labels, 8, 1, 4, 4, 2, MISLAS_COPY));
    mislas_train_stage1_options o;
    mislas_train_stage1_options_init(&o);
    o.epochs = 1;
    o.batch_size = 4;
    snprintf(path, sizeof path, "%s/stage1.ck", dir);
    o.checkpoint_path = path;
    CHECK(mislas_train_stage1(m, d, &o));
    mislas_train_stage2_options o2;
    mislas_train_stage2_options_init(&o2);
    o2.epochs = 1;
    o2.batch_size = 4;
    o2.epoch_steps = 1;
    snprintf(path, sizeof path, "%s/stage2.ck", dir);
    o2.checkpoint_path = path;
    CHECK(mislas_train_stage2(m, d, &o2));
    mislas_dataset_free(d);
    mislas_model_free(m);
}

/* The sections of each checkpoint seed: its content, inflated. */
static void checkpoint_content_seeds(const char *root)
{
    static const char *names[] = { "model.ck", "zeros.ck", "stage1.ck", "stage2.ck" };
    char dir[512], path[600];
    make_dir(root, "checkpoint_content", dir, sizeof dir);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/checkpoint/%s", root, names[i]);
        FILE *f = fopen(path, "rb");
        if (f == NULL) {
            perror(path);
            exit(1);
        }
        bytes file = { NULL, 0 };
        uint8_t chunk[65536];
        for (size_t got; (got = fread(chunk, 1, sizeof chunk, f)) > 0;)
            append(&file, chunk, got);
        fclose(f);
        uLongf size = 0;
        for (int b = 7; b >= 0; b--)
            size = size << 8 | file.p[16 + b];
        bytes content = { malloc(size), size };
        if (content.p == NULL || uncompress(content.p, &size, file.p + 40, (uLong)(file.n - 40)) != Z_OK
                || size != content.n)
            abort();
        write_seed(dir, names[i], &content);
        free(file.p);
        free(content.p);
    }
}

/* ---- IDX pairs: two split bytes, the images file, the labels file -------- */

static void idx_seed(const char *dir, const char *name, bool gz)
{
    bytes images = { NULL, 0 }, labels = { NULL, 0 };
    const uint32_t n = 3, rows = 2, cols = 2;
    put_be32(&images, 0x00000803);
    put_be32(&images, n);
    put_be32(&images, rows);
    put_be32(&images, cols);
    for (uint32_t i = 0; i < n * rows * cols; i++)
        append(&images, &(uint8_t){ (uint8_t)(i * 17) }, 1);
    put_be32(&labels, 0x00000801);
    put_be32(&labels, n);
    for (uint32_t i = 0; i < n; i++)
        append(&labels, &(uint8_t){ (uint8_t)(i % 10) }, 1);
    if (gz) {
        bytes a = gzip_of(&images), b = gzip_of(&labels);
        free(images.p);
        free(labels.p);
        images = a;
        labels = b;
    }
    bytes seed = { NULL, 0 };
    uint8_t split[2] = { (uint8_t)(images.n >> 8), (uint8_t)images.n };
    append(&seed, split, 2);
    append(&seed, images.p, images.n);
    append(&seed, labels.p, labels.n);
    write_seed(dir, name, &seed);
    free(seed.p);
    free(images.p);
    free(labels.p);
}

/* ---- CIFAR batches: label byte(s) then 3 x 32 x 32 pixels per record ----- */

static bytes cifar_batch(int32_t k, int records)
{
    bytes b = { NULL, 0 };
    for (int r = 0; r < records; r++) {
        uint8_t record[2 + 3072];
        size_t label_bytes = k == 10 ? 1 : 2;
        record[0] = (uint8_t)(r % 10);          /* CIFAR-100: the coarse label */
        record[1] = (uint8_t)(r % 100);         /* CIFAR-100: the fine label */
        for (size_t j = 0; j < 3072; j++)
            record[label_bytes + j] = (uint8_t)(r * 13 + j);
        append(&b, record, label_bytes + 3072);
    }
    return b;
}

static void cifar_seeds(const char *root)
{
    char dir[512];
    make_dir(root, "cifar", dir, sizeof dir);
    for (int i = 0; i < 2; i++) {
        int32_t k = i == 0 ? 10 : 100;
        bytes batch = cifar_batch(k, 2), seed = { NULL, 0 };
        append(&seed, &(uint8_t){ (uint8_t)i }, 1);
        append(&seed, batch.p, batch.n);
        write_seed(dir, k == 10 ? "cifar10-test" : "cifar100-test", &seed);
        free(seed.p);
        free(batch.p);
    }
}

/* ---- tar archives holding a test batch, plain and gzip ------------------- */

static void tar_member(bytes *tar, const char *name, const bytes *data)
{
    uint8_t h[512];
    memset(h, 0, sizeof h);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    snprintf((char *)h + 124, 12, "%011zo", data->n);
    snprintf((char *)h + 136, 12, "%011o", 0);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    append(tar, h, 512);
    append(tar, data->p, data->n);
    uint8_t pad[512] = { 0 };
    if (data->n % 512 != 0)
        append(tar, pad, 512 - data->n % 512);
}

static void archive_seeds(const char *root)
{
    char dir[512];
    make_dir(root, "archive", dir, sizeof dir);
    for (int i = 0; i < 2; i++) {
        int32_t k = i == 0 ? 10 : 100;
        bytes batch = cifar_batch(k, 2), tar = { NULL, 0 };
        tar_member(&tar, k == 10 ? "cifar-10-batches-bin/test_batch.bin" : "cifar-100-binary/test.bin", &batch);
        uint8_t end[1024] = { 0 };
        append(&tar, end, sizeof end);
        bytes gz = gzip_of(&tar);
        for (int z = 0; z < 2; z++) {
            bytes seed = { NULL, 0 };
            const bytes *body = z ? &gz : &tar;
            append(&seed, &(uint8_t){ (uint8_t)i }, 1);
            append(&seed, body->p, body->n);
            char name[64];
            snprintf(name, sizeof name, "cifar%d%s", (int)k, z ? ".tar.gz" : ".tar");
            write_seed(dir, name, &seed);
            free(seed.p);
        }
        free(gz.p);
        free(tar.p);
        free(batch.p);
    }
}

/* ---- images: JPEG and PNG files, then fuzz_image's 8 box bytes --------- */

/* A picture with smooth colours and a few edges: pixel (y, x), channel c. */
static uint8_t picture(int32_t y, int32_t x, int32_t h, int32_t w, int c)
{
    return (uint8_t)(c == 0 ? x * 255 / w : c == 1 ? y * 255 / h : c == 2 ? ((x / 3 + y / 2) % 2 ? 200 : 30)
                                                                          : x * 7);
}

enum jpeg_kind { JPEG_420, JPEG_422, JPEG_PROGRESSIVE, JPEG_GREY, JPEG_CMYK };

static bytes jpeg_seed(int32_t h, int32_t w, enum jpeg_kind kind)
{
    const int comps = kind == JPEG_GREY ? 1 : kind == JPEG_CMYK ? 4 : 3;
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    unsigned char *out = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&ci, &out, &size);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 75, TRUE);
    if (kind == JPEG_422)
        ci.comp_info[0].v_samp_factor = 1;
    if (kind == JPEG_PROGRESSIVE)
        jpeg_simple_progression(&ci);
    jpeg_start_compress(&ci, TRUE);
    uint8_t row[64 * 4];
    while (ci.next_scanline < ci.image_height) {
        for (int32_t x = 0; x < w; x++)
            for (int c = 0; c < comps; c++)
                row[x * comps + c] = picture((int32_t)ci.next_scanline, x, h, w, comps == 1 ? 1 : c);
        JSAMPROW r = row;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    bytes b = { NULL, 0 };
    append(&b, out, size);
    free(out);
    return b;
}

static void png_to_bytes(png_structp png, png_bytep data, size_t n)
{
    append(png_get_io_ptr(png), data, n);
}

static void png_no_flush(png_structp png)
{
    (void)png;
}

/* An 8-bit PNG: RGB, a 16-entry palette (4-bit indices) or grey + alpha. */
static bytes png_seed(int32_t h, int32_t w, int color_type)
{
    bytes b = { NULL, 0 };
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png == NULL ? NULL : png_create_info_struct(png);
    if (info == NULL)
        abort();
    png_set_write_fn(png, &b, png_to_bytes, png_no_flush);
    const int depth = color_type == PNG_COLOR_TYPE_PALETTE ? 4 : 8;
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type, PNG_INTERLACE_NONE,
            PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_color palette[16];
        for (int i = 0; i < 16; i++)
            palette[i] = (png_color){ (png_byte)(i * 17), (png_byte)(255 - i * 13), (png_byte)(i * 5) };
        png_set_PLTE(png, info, palette, 16);
    }
    png_write_info(png, info);
    uint8_t row[64 * 3];
    for (int32_t y = 0; y < h; y++) {
        memset(row, 0, sizeof row);
        for (int32_t x = 0; x < w; x++) {
            if (color_type == PNG_COLOR_TYPE_PALETTE)
                row[x / 2] |= (uint8_t)(((x + y) % 16) << (x % 2 ? 0 : 4));
            else if (color_type == PNG_COLOR_TYPE_GRAY_ALPHA) {
                row[2 * x] = picture(y, x, h, w, 1);
                row[2 * x + 1] = picture(y, x, h, w, 0);
            } else {
                for (int c = 0; c < 3; c++)
                    row[3 * x + c] = picture(y, x, h, w, c);
            }
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return b;
}

/* file's first `keep` bytes and a box (top, left, height, width as
 * big-endian 16-bit numbers, which fuzz_image reduces into the image). */
static void image_seed(const char *dir, const char *name, const bytes *file, size_t keep, const uint16_t box[4])
{
    bytes seed = { NULL, 0 };
    append(&seed, file->p, keep);
    for (int i = 0; i < 4; i++)
        append(&seed, (uint8_t[2]){ (uint8_t)(box[i] >> 8), (uint8_t)box[i] }, 2);
    write_seed(dir, name, &seed);
    free(seed.p);
}

static void image_seeds(const char *root)
{
    static const struct {
        const char *name;
        int jpeg;               /* 1: a jpeg_kind, 0: a PNG colour type */
        int type;
        int32_t h, w;
        uint16_t box[4];
    } seeds[] = {
        { "baseline.jpg", 1, JPEG_420, 37, 45, { 9, 13, 17, 20 } },
        { "h422.jpg", 1, JPEG_422, 29, 41, { 0, 0, 29, 41 } },
        { "progressive.jpg", 1, JPEG_PROGRESSIVE, 33, 27, { 20, 3, 12, 1 } },
        { "grey.jpg", 1, JPEG_GREY, 25, 38, { 24, 37, 0, 0 } },
        { "cmyk.jpg", 1, JPEG_CMYK, 21, 30, { 5, 11, 7, 6 } },
        { "rgb.png", 0, PNG_COLOR_TYPE_RGB, 19, 23, { 2, 4, 9, 9 } },
        { "palette.png", 0, PNG_COLOR_TYPE_PALETTE, 17, 26, { 0, 5, 16, 3 } },
        { "grey_alpha.png", 0, PNG_COLOR_TYPE_GRAY_ALPHA, 14, 21, { 13, 0, 0, 20 } },
    };
    char dir[512];
    make_dir(root, "image", dir, sizeof dir);
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        bytes file = seeds[i].jpeg ? jpeg_seed(seeds[i].h, seeds[i].w, (enum jpeg_kind)seeds[i].type)
                                   : png_seed(seeds[i].h, seeds[i].w, seeds[i].type);
        image_seed(dir, seeds[i].name, &file, file.n, seeds[i].box);
        if (i == 0)             /* cut in its scan: the probe refuses it, decoding runs out */
            image_seed(dir, "truncated.jpg", &file, file.n * 2 / 3, seeds[i].box);
        free(file.p);
    }
}

/* ---- list files, naming fuzz_list's root (a.jpg, b.jpg, c.png, sub/d.jpg,
 * t.jpg cut short, n.txt, the folder dir) ----------------------------------- */

static void list_seeds(const char *root)
{
    static const struct {
        const char *name, *text;
    } seeds[] = {
        { "good", "a.jpg 0\nb.jpg 1\nc.png 2\nsub/d.jpg 1\n" },
        { "crlf_blank", "\r\n  a.jpg\t3\r\n\nsub/d.jpg 7 extra fields\r\nb.jpg   3\n\n" },
        { "bad_files", "a.jpg 0\nt.jpg 1\nmissing.jpg 2\nn.txt 0\ndir 1\nb.jpg 1\n" },
        { "all_bad", "t.jpg 0\nn.txt 1\n" },
        { "bad_lines", "a.jpg 0\nb.jpg\n" },
        { "bad_label", "a.jpg 0\nb.jpg -1\nc.png 1x\n" },
        { "many", "a.jpg 5\nb.jpg 5\nc.png 2\nsub/d.jpg 999\na.jpg 2\nb.jpg 5\nsub/./d.jpg 0\n"
                  "c.png 2\na.jpg 17\nb.jpg 999\n" },
    };
    char dir[512];
    make_dir(root, "list", dir, sizeof dir);
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        bytes b = { NULL, 0 };
        append(&b, seeds[i].text, strlen(seeds[i].text));
        write_seed(dir, seeds[i].name, &b);
        free(b.p);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_corpus DIR\n");
        return 2;
    }
    mkdir(argv[1], 0755);
    mislas_set_num_threads(1);
    checkpoint_seeds(argv[1]);
    checkpoint_content_seeds(argv[1]);
    char dir[512];
    make_dir(argv[1], "idx", dir, sizeof dir);
    idx_seed(dir, "plain", false);
    idx_seed(dir, "gzip", true);
    cifar_seeds(argv[1]);
    archive_seeds(argv[1]);
    image_seeds(argv[1]);
    list_seeds(argv[1]);
    return 0;
}
