/* The convolution's inner kernels (conv.c), one copy per instruction set
 * (isa.h), all giving the same bits: every output is one chain of fused
 * multiply-adds in a fixed order, whatever the vector width or tile shape.
 * Private to lib/nn.
 *
 * Activations are NHWC (channels contiguous). A kernel holds a tile of
 * outputs in registers, each a block of 16 lanes along the channels the
 * tile writes, and sums over a list of operand pairs ("batch-reduce"): for
 * the convolution's forward and input-gradient products one pair per filter
 * tap, for the weight gradient one pair per run of pixels. */
#ifndef MISLAS_CONV_KERNELS_H
#define MISLAS_CONV_KERNELS_H

#include <stdbool.h>
#include <stddef.h>

enum {
    MISLASI_LANES = 16,         /* lanes of a block: channels per vector */
    MISLASI_TILE_BLOCKS = 4,    /* most blocks a tile holds */
    MISLASI_TILE_ROWS = 28      /* most pixels (or input channels) a tile holds */
};

/* out[p * out_step + l] for p < pixels, l < 16 blocks
 *     = sum over taps t (in order), then c < depth (in order), of
 *       in[t][in_shift + p * in_step + c] * w[t][w_shift + c * w_step + l]
 * i.e. pixels along rows of the input, and the weights of each tap as a
 * depth x lanes panel. */
typedef struct mislasi_conv_tile {
    size_t taps, depth;
    const float *const *in;
    const float *const *w;
    size_t in_shift, in_step;
    size_t w_shift, w_step;
    float *out;
    size_t out_step;
    size_t pixels, blocks;
    /* An optional last step on each sum s before it is stored (scale NULL:
     * none), batch norm's evaluation form and a block's end:
     *     v = scale[l] s + shift[l], then + residual[p * residual_step + l]
     *     (residual not NULL), then 0 where v <= 0 (relu; NaN stays)
     * rounded as separate operations, like mislasi_bn_affine_image. scale,
     * shift and residual point at the tile's first lane. */
    const float *scale, *shift, *residual;
    size_t residual_step;
    bool relu;
    /* The chain goes on from out's values instead of from zero (a sum cut
     * into chunks of depth; not for the row-tap variant below). */
    bool accumulate;
} mislasi_conv_tile;

/* out[i * out_step + l] for i < rows, l < 16 blocks
 *     (+)= sum over runs r (in order), then q < length (in order), of
 *       x[r][x_shift + q * x_step + i] * dy[r][dy_shift + q * dy_step + l]
 * (+= when accumulate: the chain goes on from out's values). */
typedef struct mislasi_conv_wgrad {
    size_t runs, length;
    const float *const *x;
    const float *const *dy;
    size_t x_shift, x_step;
    size_t dy_shift, dy_step;
    float *out;
    size_t out_step;
    size_t rows, blocks;
    bool accumulate;
    size_t out_tap;     /* the row-tap variant's: floats between its taps' outputs */
} mislasi_conv_wgrad;
/* The weight gradient's row-tap variant (16 lanes, blocks 1): each input
 * value is broadcast once for the three horizontal taps, i = 0, 1, 2,
 *     out[i * out_tap + j * out_step + l] (+)= sum over runs r, then q < length, of
 *         x[r][x_shift + q * x_step + j] * dy[r][dy_shift + (q - i) * dy_step + l]
 * for j < rows; dy must be readable (zeros) two pixels before a run. */

/* A variant for 16 lanes and three horizontal taps at a pixel step (a 3x3
 * convolution of stride 1 with 16 outputs, or the input gradient of one
 * with 16 inputs): each input value is broadcast once and feeds the three
 * outputs it reaches, instead of once per tap. Same fields as a tile, with
 * in[r] one input row's first pixel (its first tap) and w[3 r + i] the
 * panel of tap i of that row; blocks is 1; the order of the sum changes:
 *     out[p * out_step + l] = sum over rows r (in order), then c < depth
 *         (in order), then i < 3 (in order), of
 *         in[r][in_shift + (p + i) * in_step + c] * w[3 r + i][w_shift + c * w_step + l] */
enum { MISLASI_ROW_TAPS = 3 };

typedef struct mislasi_conv_kernels {
    /* The widest tile of b blocks (b = 1 .. MISLASI_TILE_BLOCKS): pixels
     * (or rows) from 1 to max_rows[b]. */
    size_t max_rows[MISLASI_TILE_BLOCKS + 1];
    /* for conv.c's model of a tile's cost: floats per vector register, and
     * vector registers */
    size_t width, registers;
    void (*tile)(const mislasi_conv_tile *t);
    size_t max_row_pixels;      /* the widest row-tap tile */
    void (*row_tile)(const mislasi_conv_tile *t);
    size_t max_row_wgrad_rows;  /* the most rows of a row-tap weight gradient */
    void (*row_wgrad)(const mislasi_conv_wgrad *g);
    void (*wgrad)(const mislasi_conv_wgrad *g);
} mislasi_conv_kernels;

/* The kernels isa.h chooses; a named set's, or NULL (see mislasi_isa_named). */
const mislasi_conv_kernels *mislasi_conv_kernels_get(void);
const mislasi_conv_kernels *mislasi_conv_kernels_named(const char *isa);

#endif
