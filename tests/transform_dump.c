/* Prints the training transform's draws (lib/data/list_batch.c) for
 * tests/transforms_check.py to compare with torchvision's:
 *   transform_dump crop H W SCALE_MIN N   -> N lines "top left height width"
 *   transform_dump jitter J N             -> N lines "b c s o0 o1 o2"
 * The draws come from streams keyed like a batch's images. */
#include "data/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "crop") == 0) {
        int32_t h = atoi(argv[2]), w = atoi(argv[3]);
        double scale_min = atof(argv[4]);
        long n = atol(argv[5]);
        for (long i = 0; i < n; i++) {
            mislasi_rng r;
            mislasi_rng_init(&r, 12345, 23, (uint64_t)i);
            int32_t box[4];
            mislasi_random_resized_crop(&r, h, w, scale_min, box);
            printf("%d %d %d %d\n", (int)box[0], (int)box[1], (int)box[2], (int)box[3]);
        }
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "jitter") == 0) {
        double j = atof(argv[2]);
        long n = atol(argv[3]);
        for (long i = 0; i < n; i++) {
            mislasi_rng r;
            mislasi_rng_init(&r, 999, 23, (uint64_t)i);
            float f[3];
            uint32_t order[3];
            mislasi_color_jitter_draw(&r, j, f, order);
            printf("%.9g %.9g %.9g %u %u %u\n", (double)f[0], (double)f[1], (double)f[2], order[0], order[1], order[2]);
        }
        return 0;
    }
    fprintf(stderr, "usage: transform_dump crop H W SCALE_MIN N | jitter J N\n");
    return 2;
}
