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
} mislasi_conv_wgrad;

typedef struct mislasi_conv_kernels {
    /* The widest tile of b blocks (b = 1 .. MISLASI_TILE_BLOCKS): pixels
     * (or rows) from 1 to max_rows[b]. */
    size_t max_rows[MISLASI_TILE_BLOCKS + 1];
    void (*tile)(const mislasi_conv_tile *t);
    void (*wgrad)(const mislasi_conv_wgrad *g);
} mislasi_conv_kernels;

/* The kernels isa.h chooses; a named set's, or NULL (see mislasi_isa_named). */
const mislasi_conv_kernels *mislasi_conv_kernels_get(void);
const mislasi_conv_kernels *mislasi_conv_kernels_named(const char *isa);

#endif
