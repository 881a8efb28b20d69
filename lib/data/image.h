/* Image files decoded to RGB, and the pixel operations of PIL that the
 * reference's ImageNet-style transforms use (docs/data.md, "List-file data
 * sets"). Everything here reproduces what Debian's python3-pil computes, so
 * that the test transform (Resize + CenterCrop) gives PIL's pixels. Not
 * installed. */
#ifndef MISLAS_IMAGE_H
#define MISLAS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* A decoded image: height x width RGB pixels, interleaved (3 bytes each),
 * row after row. rgb comes from mislasi_alloc. */
typedef struct mislasi_image {
    int32_t height, width;
    uint8_t *rgb;
} mislasi_image;

/* The largest side an image file may have (MISLAS_ERR_UNSUPPORTED beyond;
 * so is an image of more than 2 x 89478485 pixels, which PIL's Image.open
 * refuses as a decompression bomb). */
enum { MISLASI_IMAGE_MAX_SIDE = 1 << 15 };

/* Checks, without decoding the pixels, that `path` holds an image this file's
 * decoder takes (a JPEG, or a PNG whatever its name), and gives its size.
 * A missing or unreadable file is MISLAS_ERR_IO; anything else that would
 * not decode (not an image, a corrupt header, a JPEG cut short before its
 * end-of-image marker) MISLAS_ERR_FORMAT. The message names the path.
 * height/width may be NULL. Reads the headers and the file's last 16 KiB
 * (64 KiB when the marker is not there: bytes after the marker are allowed,
 * as PIL ignores them), not the pixels' data. */
int mislasi_image_probe(const char *path, int32_t *height, int32_t *width);

/* Decodes `path` as PIL's Image.open(path).convert("RGB") does: greyscale
 * replicated, CMYK / YCCK (Adobe-inverted where the file says so) through
 * PIL's CMYK-to-RGB formula, PNG's palette, grey+alpha and RGBA through PIL's
 * conversions. Errors as mislasi_image_probe, and MISLAS_ERR_OUT_OF_MEMORY;
 * on failure *img is left as it was. Like PIL, it ignores the corrupt data
 * libjpeg only warns about, and needs no end-of-image marker once every row
 * is decoded (the probe does). */
int mislasi_image_decode(const char *path, mislasi_image *img);

/* Chooses, from an image's height and width, the part of it wanted: box =
 * {top, left, height, width}, non-empty and inside the image. */
typedef void (*mislasi_image_box_fn)(void *ctx, int32_t height, int32_t width, int32_t box[4]);

/* mislasi_image_decode of what a box needs, for the training transform's
 * crops: `choose` picks the box once the size is read; a JPEG's rows outside
 * it are skipped and its columns cropped to the iMCU grid around it, so img
 * holds the box and a few rows and columns around it, and at[0], at[1]
 * receive where the box's top-left pixel is in img (a PNG is decoded whole).
 * The box's pixels are mislasi_image_decode's. */
int mislasi_image_decode_box(const char *path, mislasi_image_box_fn choose, void *ctx, mislasi_image *img,
        int32_t at[2]);

/* Releases img->rgb and zeroes *img (NULL is fine). */
void mislasi_image_release(mislasi_image *img);

/* PIL's Image.resize((out_width, out_height), Image.BILINEAR,
 * box=(box[0], box[1], box[2], box[3])) of an RGB image of height x width
 * pixels whose rows start `stride` bytes apart (so a crop of a larger image
 * is a pointer into it: torchvision's resized_crop is crop, then resize):
 * the antialiased separable filter in fixed point, horizontal pass first
 * into a uint8 intermediate, as Pillow 9 computes it. The box is (left,
 * upper, right, lower) in source pixels, inside the image, and is rounded
 * to float first as PIL does. dst receives
 * out_height x out_width RGB pixels, contiguous. MISLAS_ERR_OUT_OF_MEMORY is
 * the only failure. */
int mislasi_image_resize(const uint8_t *src, int32_t height, int32_t width, size_t stride,
        const double box[4], uint8_t *dst, int32_t out_height, int32_t out_width);

/* PIL's ImageEnhance.Brightness / Contrast / Color (saturation)
 * .enhance(factor) on `pixels` RGB pixels in place, as torchvision's
 * ColorJitter applies them to PIL images. */
void mislasi_image_brightness(uint8_t *rgb, size_t pixels, float factor);
void mislasi_image_contrast(uint8_t *rgb, size_t pixels, float factor);
void mislasi_image_saturation(uint8_t *rgb, size_t pixels, float factor);

#endif
