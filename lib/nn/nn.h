/* What lib/nn offers the layers above (lib/model): the network's layers, as
 * plain forward / backward pairs over flat NHWC float arrays (n images of
 * h x w pixels of c channels; image i's pixel (row r, column q) has channel
 * ch at ((i h + r) w + q) c + ch, the channels contiguous), one concept per
 * file. Forward functions write their outputs; backward functions write
 * (never add to) the gradients they are given, so the caller owns every
 * buffer and decides what to keep. Work is spread over the library's
 * threads in fixed pieces, so results do not depend on the thread count.
 * Not installed. */
#ifndef MISLAS_NN_H
#define MISLAS_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- 2-D convolution (conv.c), no bias ---------------------------------
 * y[n, oh, ow, co] = sum over kh, kw, ci of
 *     w[co, ci, kh, kw] * x[n, oh*stride + kh - pad, ow*stride + kw - pad, ci]
 * (zero outside the image); oh < (h + 2 pad - k) / stride + 1, likewise ow.
 * The weights keep PyTorch's layout. c_out is a multiple of 16 (the
 * kernels' lanes), and so is c_in wherever the input's gradient is wanted;
 * k <= 8. */
typedef struct mislasi_conv_shape {
    size_t n, c_in, h, w;       /* input */
    size_t c_out, k, stride, pad;
} mislasi_conv_shape;
size_t mislasi_conv_out_h(const mislasi_conv_shape *s);
size_t mislasi_conv_out_w(const mislasi_conv_shape *s);
/* Called by conv.c as soon as an image's output is complete (on the worker
 * thread, while it is still in cache), so that the next layer's per-image
 * work needs no second trip through memory. */
typedef void (*mislasi_image_fn)(void *ctx, size_t image, float *y_image);
/* Called by the backward once its images' weight-gradient groups are summed,
 * before they are added up: NULL, or the weight gradient of the images
 * before this call's (a batch shared between processes, summed by those
 * before; dw's layout), which the groups are then added onto in order. */
typedef const float *(*mislasi_partial_fn)(void *ctx);
/* The weights are rearranged for the kernels once (prepare, into
 * prepared_floats), then used by any number of calls on slices of a batch,
 * forward and backward; each call is given work of work_floats (the conv
 * layer's memory is the caller's like all else). The n in the shape does not
 * matter to the preparation. forward_prepared calls then(ctx, image, y_image)
 * for each finished image when `then` is not NULL. backward_prepared writes
 * dw (c_out x c_in x k x k) and dx (may be NULL: not wanted) from dy; when
 * `before` is not NULL, before(ctx, image, dy_image) is called for each
 * image, on a worker thread, before the image's dy is first read, and may
 * write it (batch norm's backward, fused); `partial` (may be NULL) is
 * described above. */
size_t mislasi_conv_prepared_floats(const mislasi_conv_shape *s);
size_t mislasi_conv_work_floats(const mislasi_conv_shape *s, size_t threads);
void mislasi_conv_prepare(const mislasi_conv_shape *s, const float *w, float *prepared);
void mislasi_conv_forward_prepared(const mislasi_conv_shape *s, const float *x, const float *prepared,
        float *y, float *work, size_t threads, mislasi_image_fn then, void *ctx);
void mislasi_conv_backward_prepared(const mislasi_conv_shape *s, const float *x, const float *prepared,
        float *dy, mislasi_image_fn before, void *ctx, mislasi_partial_fn partial, void *partial_ctx,
        float *dw, float *dx, float *work, size_t threads);
/* The weight gradient sums the images in groups of this many (a power of
 * two, from the output's size alone), the groups in order: a batch cut at
 * multiples of it gives each piece whole groups. */
size_t mislasi_conv_group_images(const mislasi_conv_shape *s);
/* A per-channel affine step, a residual and a ReLU applied to each output
 * row as the convolution produces it (batch norm's evaluation form and the
 * end of a residual block): y = act(scale[c] conv + shift[c] (+ residual)),
 * with the arithmetic of mislasi_bn_affine_image. */
typedef struct mislasi_conv_affine {
    const float *scale, *shift;
    const float *residual;      /* n x oh x ow x c_out, or NULL */
    bool relu;
} mislasi_conv_affine;
void mislasi_conv_forward_affine(const mislasi_conv_shape *s, const float *x, const float *prepared,
        float *y, float *work, size_t threads, const mislasi_conv_affine *affine);
/* The threads a conv call may use now (the scratch must be sized for it). */
size_t mislasi_conv_threads(void);

/* ---- batch normalisation (batchnorm.c), eps 1e-5 ------------------------
 * NHWC: value (image i, pixel p, channel ch) at (i hw + p) c + ch.
 * Training form: per channel the batch mean and (biased) variance over n*h*w
 * values normalise x; mean and invstd are saved for backward, and the
 * running statistics move: r = 0.9 r + 0.1 batch (variance unbiased).
 * Evaluation form: the running statistics normalise. relu = true fuses a
 * ReLU after the affine step (y = max(0, gamma xhat + beta)). */
typedef struct mislasi_bn_shape {
    size_t n, c, hw;
} mislasi_bn_shape;
/* The two forms are made of pieces usable per image:
 * moments (2 c doubles) = per channel the image's sum and sum of squared
 * deviations from its own mean; the training form from `images` images'
 * moments (combined in image order: the whole batch's, which may hold more
 * images than the s->n of x that this call normalises, when the batch is
 * shared between processes); the evaluation form's per-channel scale and
 * shift, and one image of y = scale x + shift (then ReLU). A residual (same
 * shape as y, or NULL) is added before the ReLU: the end of a residual
 * block in the same pass. */
void mislasi_bn_image_moments(const mislasi_bn_shape *s, const float *x_image, double *moments);
void mislasi_bn_forward_train_moments(const mislasi_bn_shape *s, const float *x, const double *moments,
        size_t images, const float *gamma, const float *beta, float *running_mean, float *running_var,
        float *mean, float *invstd, float *y, bool relu, const float *residual);
void mislasi_bn_eval_affine(size_t c, const float *gamma, const float *beta, const float *running_mean,
        const float *running_var, float *scale, float *shift);
void mislasi_bn_affine_image(const mislasi_bn_shape *s, const float *x_image, const float *scale,
        const float *shift, float *y_image, bool relu, const float *residual);
/* The backward in three pieces, so that the last runs inside the
 * convolution's backward that consumes dx (mislasi_conv_backward_prepared's
 * `before`), image by image while it is in cache:
 *   _slots reads the batch in groups of `group` images (the last may be
 *   short) and writes each group's per-channel sums into its slot, 2 c
 *   doubles (mislasi_bn_groups(n, group) slots);
 *   _finish adds `groups` slots in order (a batch shared between processes
 *   gathers everyone's first) and writes dgamma, dbeta (either may be NULL:
 *   a frozen affine) and coef (3 c floats); count = the batch's values per
 *   channel (images x hw); from coef
 *   _image writes one image's dx (dx_image may be dy_image).
 * For the eval form pass mean = running mean, invstd = 1/sqrt(running var +
 * eps) and batch_stats = false. y is the forward's output when relu was
 * fused (its zeros mask dy), else NULL. */
size_t mislasi_bn_groups(size_t n, size_t group);
void mislasi_bn_backward_slots(const mislasi_bn_shape *s, size_t group, const float *x, const float *y,
        const float *dy, const float *mean, double *slots);
void mislasi_bn_backward_finish(size_t c, double count, size_t groups, const double *slots, const float *gamma,
        const float *invstd, bool batch_stats, float *coef, float *dgamma, float *dbeta);
void mislasi_bn_backward_image(const mislasi_bn_shape *s, const float *x_image, const float *y_image,
        const float *dy_image, const float *mean, const float *coef, float *dx_image);
/* invstd from a running variance. */
void mislasi_bn_eval_invstd(size_t c, const float *running_var, float *invstd);

/* ---- element-wise (eltwise.c) ------------------------------------------ */
/* dy *= (y > 0) in place, y the forward's output. */
void mislasi_relu_backward(size_t count, const float *y, float *dy);
/* y += r (a shortcut's gradient joining the main path's). */
void mislasi_add(size_t count, float *y, const float *r);
/* y += r where mask > 0 (the same through a ReLU whose output is mask). */
void mislasi_add_masked(size_t count, float *y, const float *r, const float *mask);

/* ---- option-A shortcut (shortcut.c) -------------------------------------
 * y (n x ceil(h/2) x ceil(w/2) x c_out, NHWC) = x[:, ::2, ::2, :] with
 * (c_out - c_in) / 2 zero channels before and after. */
typedef struct mislasi_shortcut_shape {
    size_t n, c_in, h, w, c_out;
} mislasi_shortcut_shape;
void mislasi_shortcut_a_forward(const mislasi_shortcut_shape *s, const float *x, float *y);
/* dx += the gradient of y's copied entries (dx's other entries unchanged). */
void mislasi_shortcut_a_backward_add(const mislasi_shortcut_shape *s, const float *dy, float *dx);

/* ---- pooling (pool.c) --------------------------------------------------- */
/* 3x3 max pool, stride 2, padding 1 (the ImageNet stem), NHWC; argmax (n x oh x
 * ow x c, like y) holds each output's input pixel within its image, ih w + iw
 * (the first maximum in the window's row-major order), for backward. */
typedef struct mislasi_pool_shape {
    size_t n, c, h, w, k, stride, pad;
} mislasi_pool_shape;
size_t mislasi_pool_out_h(const mislasi_pool_shape *s);
size_t mislasi_pool_out_w(const mislasi_pool_shape *s);
void mislasi_maxpool_forward(const mislasi_pool_shape *s, const float *x, float *y, int32_t *argmax);
void mislasi_maxpool_backward(const mislasi_pool_shape *s, const float *dy, const int32_t *argmax,
        float *dx);
/* y (n x c) = per image and channel the mean over the hw pixels (x NHWC);
 * backward writes dy / hw to every pixel. */
void mislasi_avgpool_forward(size_t n, size_t c, size_t hw, const float *x, float *y);
void mislasi_avgpool_backward(size_t n, size_t c, size_t hw, const float *dy, float *dx);

/* ---- linear (linear.c): y (n x k) = x (n x d) W^T + b ------------------- */
void mislasi_linear_forward(size_t n, size_t d, size_t k, const float *x, const float *w,
        const float *b, float *y);
/* dw (k x d), db (k), dx (n x d); any of them may be NULL. */
void mislasi_linear_backward(size_t n, size_t d, size_t k, const float *x, const float *w,
        const float *dy, float *dw, float *db, float *dx);

#endif
