/* The image routines of lib/data/image.h on files named on the command
 * line, for tests/image_check.py to compare with PIL. Raw images are files
 * of two little-endian int32 (height, width) then height x width RGB bytes.
 *
 *   image_dump probe FILE                      prints "H W", or the error
 *   image_dump decode FILE OUT                 decoded pixels into OUT (raw)
 *   image_dump resize RAW OUT OH OW L T R B    PIL's resize((OW, OH), BILINEAR, box=(L, T, R, B))
 *   image_dump center RAW OUT SIZE CROP        torchvision Resize(SIZE) + CenterCrop(CROP)
 *   image_dump enhance RAW OUT KIND FACTOR     KIND: brightness, contrast or saturation
 *   image_dump bench FILE REPEATS              ms per decode, per Resize(256) + CenterCrop(224)
 *   image_dump ycck RAW OUT QUALITY            writes a YCCK JPEG (Adobe transform 2) of RAW's
 *                                              colours as CMYK (C = 255 - R - K, ..., K = min / 2)
 *
 * A failure prints "status NAME: message" on stderr and exits 3. */
#define _POSIX_C_SOURCE 200809L
#include "data/image.h"
#include "util/util.h"

#include <math.h>
#include <stdio.h>
#include <jpeglib.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int fail(int status)
{
    fprintf(stderr, "status %d (%s): %s\n", status, mislas_status_string(status), mislas_last_error());
    return 3;
}

static int usage(void)
{
    fprintf(stderr, "usage: image_dump probe|decode|resize|center|enhance|bench ...\n");
    return 2;
}

static int write_raw(const char *path, const uint8_t *rgb, int32_t h, int32_t w)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return 2;
    }
    int32_t head[2] = {h, w};
    size_t n = (size_t)h * (size_t)w * 3;
    int ok = fwrite(head, sizeof head, 1, f) == 1 && fwrite(rgb, 1, n, f) == n;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        perror(path);
        return 2;
    }
    return 0;
}

/* A raw file into img (malloc'ed pixels). */
static int read_raw(const char *path, mislasi_image *img)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 2;
    }
    int32_t head[2];
    int ok = fread(head, sizeof head, 1, f) == 1 && head[0] > 0 && head[1] > 0;
    size_t n = ok ? (size_t)head[0] * (size_t)head[1] * 3 : 0;
    img->rgb = ok ? malloc(n) : NULL;
    ok = img->rgb != NULL && fread(img->rgb, 1, n, f) == n;
    fclose(f);
    if (!ok) {
        fprintf(stderr, "%s: not a raw image\n", path);
        free(img->rgb);
        return 2;
    }
    img->height = head[0];
    img->width = head[1];
    return 0;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

/* torchvision's Resize(size) (shorter side to `size`, the longer one
 * int(size * long / short)) then CenterCrop(crop) (top = int(round((h - crop)
 * / 2.0)), Python rounding half to even), on an image of at least crop x crop
 * after the resize. */
static int center(const mislasi_image *img, int32_t size, int32_t crop, uint8_t *out)
{
    int32_t h = img->height, w = img->width;
    int32_t nh, nw;
    if (w <= h) {
        nw = size;
        nh = (int32_t)((double)size * h / w);
    } else {
        nh = size;
        nw = (int32_t)((double)size * w / h);
    }
    uint8_t *resized = malloc((size_t)nh * nw * 3);
    if (resized == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "out of memory");
    const double box[4] = {0, 0, w, h};
    int rc = mislasi_image_resize(img->rgb, h, w, (size_t)w * 3, box, resized, nh, nw);
    if (rc == MISLAS_OK) {
        int32_t top = (int32_t)rint((nh - crop) / 2.0), left = (int32_t)rint((nw - crop) / 2.0);
        for (int32_t y = 0; y < crop; y++)
            memcpy(out + (size_t)y * crop * 3, resized + ((size_t)(top + y) * nw + left) * 3, (size_t)crop * 3);
    }
    free(resized);
    return rc;
}

static int write_ycck(const mislasi_image *img, const char *path, int quality)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return 2;
    }
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)img->width;
    ci.image_height = (JDIMENSION)img->height;
    ci.input_components = 4;
    ci.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&ci);
    jpeg_set_colorspace(&ci, JCS_YCCK);
    jpeg_set_quality(&ci, quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    uint8_t *row = malloc((size_t)img->width * 4);
    while (ci.next_scanline < ci.image_height) {
        const uint8_t *p = img->rgb + (size_t)ci.next_scanline * img->width * 3;
        for (int32_t x = 0; x < img->width; x++, p += 3) {
            int c = 255 - p[0], m = 255 - p[1], y = 255 - p[2];
            int k = (c < m ? (c < y ? c : y) : (m < y ? m : y)) / 2;
            row[4 * x] = (uint8_t)(c - k);
            row[4 * x + 1] = (uint8_t)(m - k);
            row[4 * x + 2] = (uint8_t)(y - k);
            row[4 * x + 3] = (uint8_t)k;
        }
        JSAMPROW r = row;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    free(row);
    return fclose(f) == 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    const char *cmd = argv[1];
    if (strcmp(cmd, "probe") == 0) {
        int32_t h, w;
        int rc = mislasi_image_probe(argv[2], &h, &w);
        if (rc != MISLAS_OK)
            return fail(rc);
        printf("%d %d\n", (int)h, (int)w);
        return 0;
    }
    if (strcmp(cmd, "decode") == 0 && argc == 4) {
        mislasi_image img;
        int rc = mislasi_image_decode(argv[2], &img);
        if (rc != MISLAS_OK)
            return fail(rc);
        rc = write_raw(argv[3], img.rgb, img.height, img.width);
        mislasi_image_release(&img);
        return rc;
    }
    if (strcmp(cmd, "bench") == 0 && argc == 4) {
        /* The fastest of 10 rounds of REPEATS / 10, against the machine's noise. */
        int repeats = atoi(argv[3]) / 10 > 0 ? atoi(argv[3]) / 10 : 1;
        mislasi_image img = {0, 0, NULL};
        uint8_t *out = malloc(224 * 224 * 3);
        double best_decode = 1e30, best_center = 1e30;
        for (int round = 0; round < 10; round++) {
            double t0 = now_ms();
            for (int i = 0; i < repeats; i++) {
                mislasi_image_release(&img);
                int rc = mislasi_image_decode(argv[2], &img);
                if (rc != MISLAS_OK)
                    return fail(rc);
            }
            double t1 = now_ms();
            for (int i = 0; i < repeats; i++) {
                int rc = center(&img, 256, 224, out);
                if (rc != MISLAS_OK)
                    return fail(rc);
            }
            double t2 = now_ms();
            best_decode = (t1 - t0) / repeats < best_decode ? (t1 - t0) / repeats : best_decode;
            best_center = (t2 - t1) / repeats < best_center ? (t2 - t1) / repeats : best_center;
        }
        printf("%d x %d: decode %.3f ms, resize(256) + center crop(224) %.3f ms\n", (int)img.height,
                (int)img.width, best_decode, best_center);
        free(out);
        mislasi_image_release(&img);
        return 0;
    }
    if (argc < 4)
        return usage();
    mislasi_image img;
    int rc = read_raw(argv[2], &img);
    if (rc != 0)
        return rc;
    uint8_t *out = NULL;
    int32_t oh = 0, ow = 0;
    if (strcmp(cmd, "resize") == 0 && argc == 10) {
        oh = atoi(argv[4]);
        ow = atoi(argv[5]);
        const double box[4] = {atof(argv[6]), atof(argv[7]), atof(argv[8]), atof(argv[9])};
        out = malloc((size_t)oh * ow * 3);
        rc = mislasi_image_resize(img.rgb, img.height, img.width, (size_t)img.width * 3, box, out, oh, ow);
    } else if (strcmp(cmd, "center") == 0 && argc == 6) {
        oh = ow = atoi(argv[5]);
        out = malloc((size_t)oh * ow * 3);
        rc = center(&img, atoi(argv[4]), oh, out);
    } else if (strcmp(cmd, "ycck") == 0 && argc == 5) {
        rc = write_ycck(&img, argv[3], atoi(argv[4]));
        free(img.rgb);
        return rc;
    } else if (strcmp(cmd, "enhance") == 0 && argc == 6) {
        oh = img.height;
        ow = img.width;
        out = img.rgb;
        img.rgb = NULL;
        float factor = strtof(argv[5], NULL);
        size_t pixels = (size_t)oh * ow;
        if (strcmp(argv[4], "brightness") == 0)
            mislasi_image_brightness(out, pixels, factor);
        else if (strcmp(argv[4], "contrast") == 0)
            mislasi_image_contrast(out, pixels, factor);
        else if (strcmp(argv[4], "saturation") == 0)
            mislasi_image_saturation(out, pixels, factor);
        else
            rc = 2;
    } else {
        rc = 2;
    }
    free(img.rgb);
    if (rc == 2) {
        free(out);
        return usage();
    }
    if (rc != MISLAS_OK) {
        free(out);
        return fail(rc);
    }
    rc = write_raw(argv[3], out, oh, ow);
    free(out);
    return rc;
}
