/* The image decoder (lib/data/image.h, reached through the static archive)
 * on any bytes: mislasi_image_probe, mislasi_image_decode and
 * mislasi_image_decode_box of one file. The input's last 8 bytes choose the
 * box (top, left, height, width, as four 16-bit numbers reduced into the
 * image) and are not part of the file; the rest is the file, JPEG or PNG or
 * neither. Any status is fine; what must hold:
 *   - a probe and a decode that both succeed agree on the size;
 *   - a successful box decode holds the box, where it says, and when the
 *     whole decode succeeded too its pixels there are the whole decode's
 *     (image.h: "The box's pixels are mislasi_image_decode's"), and the box
 *     was chosen from the whole decode's size;
 *   - a box decode fails only where the whole decode fails, or for memory
 *     (it reads a part of what the whole decode reads). */
#include "fuzz_input.h"
#include "../lib/data/image.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { BOX_BYTES = 8 };

typedef struct box_choice {
    const uint8_t *bytes;       /* BOX_BYTES */
    int called;
    int32_t height, width;      /* the size the decoder gave */
    int32_t box[4];
} box_choice;

static uint32_t u16_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static void choose(void *ctx, int32_t height, int32_t width, int32_t box[4])
{
    box_choice *c = ctx;
    if (height < 1 || width < 1)
        abort();                /* the library promises a non-empty image */
    c->called++;
    c->height = height;
    c->width = width;
    box[0] = (int32_t)(u16_at(c->bytes) % (uint32_t)height);
    box[1] = (int32_t)(u16_at(c->bytes + 2) % (uint32_t)width);
    box[2] = 1 + (int32_t)(u16_at(c->bytes + 4) % (uint32_t)(height - box[0]));
    box[3] = 1 + (int32_t)(u16_at(c->bytes + 6) % (uint32_t)(width - box[1]));
    memcpy(c->box, box, sizeof c->box);
}

static void fail(const char *what, const box_choice *c)
{
    fprintf(stderr, "fuzz_image: %s (box %d %d %d %d of %d x %d)\n", what, (int)c->box[0], (int)c->box[1],
            (int)c->box[2], (int)c->box[3], (int)c->height, (int)c->width);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t box_bytes[BOX_BYTES] = { 0 };
    size_t tail = size < BOX_BYTES ? size : BOX_BYTES;
    memcpy(box_bytes, data + size - tail, tail);
    char path[64];
    int fd = fuzz_memory_file(data, size - tail, path);

    int32_t ph = -1, pw = -1;
    int probe = mislasi_image_probe(path, &ph, &pw);
    mislasi_image whole = { 0, 0, NULL };
    int rc = mislasi_image_decode(path, &whole);
    box_choice c = { box_bytes, 0, 0, 0, { 0, 0, 0, 0 } };
    if (rc == MISLAS_OK) {
        if (whole.height < 1 || whole.width < 1 || whole.rgb == NULL)
            fail("a decode succeeded without pixels", &c);
        if (probe == MISLAS_OK && (ph != whole.height || pw != whole.width)) {
            fprintf(stderr, "fuzz_image: the probe says %d x %d, the decode %d x %d\n", (int)ph, (int)pw,
                    (int)whole.height, (int)whole.width);
            abort();
        }
    }

    mislasi_image part = { 0, 0, NULL };
    int32_t at[2] = { -1, -1 };
    int rc_box = mislasi_image_decode_box(path, choose, &c, &part, at);
    if (rc_box == MISLAS_OK) {
        if (c.called != 1)
            fail("a box decode succeeded without choosing its box once", &c);
        if (part.rgb == NULL || at[0] < 0 || at[1] < 0 || at[0] + c.box[2] > part.height
                || at[1] + c.box[3] > part.width)
            fail("a box decode does not hold its box", &c);
        if (rc == MISLAS_OK) {
            if (c.height != whole.height || c.width != whole.width)
                fail("the box was chosen from another size than the whole decode's", &c);
            for (int32_t y = 0; y < c.box[2]; y++)
                if (memcmp(part.rgb + ((size_t)(at[0] + y) * (size_t)part.width + (size_t)at[1]) * 3,
                        whole.rgb + ((size_t)(c.box[0] + y) * (size_t)whole.width + (size_t)c.box[1]) * 3,
                        (size_t)c.box[3] * 3) != 0) {
                    fprintf(stderr, "fuzz_image: row %d of the box differs from the whole decode's\n", (int)y);
                    fail("the box's pixels are not the whole decode's", &c);
                }
        }
    } else if (rc == MISLAS_OK && rc_box != MISLAS_ERR_OUT_OF_MEMORY) {
        fprintf(stderr, "fuzz_image: the box decode failed (%d: %s)\n", rc_box, mislas_last_error());
        fail("the whole image decodes but its box does not", &c);
    }
    mislasi_image_release(&part);
    mislasi_image_release(&whole);
    close(fd);
    return 0;
}
