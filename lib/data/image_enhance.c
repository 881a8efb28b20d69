/* PIL's ImageEnhance.Brightness / Contrast / Color (Pillow 9.4) on RGB
 * pixels: each is Image.blend(degenerate, image, factor), with the factor
 * as a C float, and blend computes, per byte, with d the degenerate
 * image's value and v the image's, in float arithmetic:
 *   t = d + factor * (v - d)
 *   factor in [0, 1]: (uint8)t (truncated);
 *   otherwise: 0 if t <= 0, 255 if t >= 255, else (uint8)t.
 * The degenerate images:
 *   Brightness: black (d = 0);
 *   Contrast: grey at the mean of the image's "L" conversion, rounded as
 *     int(mean + 0.5), the mean being the exact sum of the L values over
 *     the pixel count in double;
 *   Color: the image's "L" conversion, replicated.
 * PIL's "L" conversion: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16. */
#include "image.h"
#include "util/util.h"

static inline uint8_t grey(const uint8_t *p)
{
    return (uint8_t)(((uint32_t)p[0] * 19595u + (uint32_t)p[1] * 38470u + (uint32_t)p[2] * 7471u + 0x8000u) >> 16);
}

/* Image.blend of one byte. The product and the sum are separate statements
 * so that no compiler fuses them into one rounding (PIL's are two). For a
 * factor in [0, 1] PIL truncates without clipping; rounding is monotonic,
 * so t then lies between d and v and clipping changes nothing: one
 * branch-free form serves every factor, and the loops using it vectorise. */
static inline uint8_t blend(int d, int v, float factor)
{
    float diff = (float)(v - d);
    float product = factor * diff;
    float t = (float)d + product;
    t = t < 0.0f ? 0.0f : t;
    t = t > 255.0f ? 255.0f : t;
    return (uint8_t)(int32_t)t;
}

/* All bytes through one table: the blend against a constant grey `d`. */
static void blend_constant(uint8_t *rgb, size_t pixels, int d, float factor)
{
    uint8_t table[256];
    for (int v = 0; v < 256; v++)
        table[v] = blend(d, v, factor);
    for (size_t i = 0; i < pixels * 3; i++)
        rgb[i] = table[rgb[i]];
}

void mislasi_image_brightness(uint8_t *rgb, size_t pixels, float factor)
{
    blend_constant(rgb, pixels, 0, factor);
}

void mislasi_image_contrast(uint8_t *rgb, size_t pixels, float factor)
{
    if (pixels == 0)
        return;
    uint64_t sum = 0;
    for (size_t i = 0; i < pixels; i++)
        sum += grey(rgb + 3 * i);
    /* ImageStat's sum of value x count is exact in double (< 2^53). */
    double mean = (double)sum / (double)pixels;
    blend_constant(rgb, pixels, (int)(mean + 0.5), factor);
}

void mislasi_image_saturation(uint8_t *rgb, size_t pixels, float factor)
{
    for (size_t i = 0; i < pixels; i++) {
        uint8_t *p = rgb + 3 * i;
        const int l = grey(p);
        p[0] = blend(l, p[0], factor);
        p[1] = blend(l, p[1], factor);
        p[2] = blend(l, p[2], factor);
    }
}
