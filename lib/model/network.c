/* Forward and backward through a model's network (model_internal.h): the
 * layers of layers.h called in order over buffers the model owns. */
#include "model_internal.h"

#include "util/util.h"

#include <math.h>
#include <string.h>

static size_t unit_out_floats(const mislasi_conv_bn *u)
{
    return u->conv.c_out * u->out_h * u->out_w;
}

/* Visits every conv + BN unit in forward order. */
typedef void (*unit_visit)(mislas_model *m, mislasi_conv_bn *u, void *ctx);
static void for_each_unit(mislas_model *m, unit_visit fn, void *ctx)
{
    fn(m, &m->stem, ctx);
    for (int32_t b = 0; b < m->num_blocks; b++) {
        mislasi_block *blk = &m->blocks[b];
        for (int i = 0; i < blk->units; i++)
            fn(m, &blk->unit[i], ctx);
        if (blk->shortcut == MISLASI_SHORTCUT_PROJECTION)
            fn(m, &blk->proj, ctx);
    }
}

/* Evaluation runs the whole network on slices of this many images, one
 * slice per thread at a time: no barrier between layers, and a slice's
 * activations stay in the core's cache. (Each image's numbers do not depend
 * on which images share its products, so the result is the same.) */
enum { EVAL_SLICE = 8 };

typedef struct sizing {
    size_t n, threads;
    size_t whole;           /* images of the whole batch when it is shared (>= n) */
    size_t total;           /* floats of activations */
    size_t widest;          /* largest per-image tensor */
    size_t scratch;         /* conv scratch floats, whole-batch calls */
    size_t slice_scratch;   /* conv scratch floats, one thread's slice */
    size_t widest_c;        /* the most channels a BN has */
    float *base;            /* when assigning */
} sizing;

static float *take(sizing *z, size_t floats)
{
    float *p = z->base == NULL ? NULL : z->base + z->total;
    z->total += mislasi_align_floats(floats);
    return p;
}

static void size_unit(mislas_model *m, mislasi_conv_bn *u, void *ctx)
{
    (void)m;
    sizing *z = ctx;
    size_t per_image = unit_out_floats(u);
    u->raw = take(z, z->n * per_image);
    u->out = take(z, z->n * per_image);
    u->mean = take(z, u->conv.c_out);
    u->invstd = take(z, u->conv.c_out);
    u->scale = take(z, u->conv.c_out);
    u->shift = take(z, u->conv.c_out);
    u->coef = take(z, 3 * u->conv.c_out);
    u->prepared = take(z, mislasi_conv_prepared_floats(&u->conv));
    if (per_image > z->widest)
        z->widest = per_image;
    if (u->conv.c_out > z->widest_c)
        z->widest_c = u->conv.c_out;
    mislasi_conv_shape s = u->conv;
    s.n = z->n;
    size_t need = mislasi_conv_work_floats(&s, z->threads);
    if (need > z->scratch)
        z->scratch = need;
    s.n = z->n < EVAL_SLICE ? z->n : EVAL_SLICE;
    need = mislasi_conv_work_floats(&s, 1);
    if (need > z->slice_scratch)
        z->slice_scratch = need;
}

/* Lays the activations out for n images (z->base NULL: only measures). */
static void lay_out(mislas_model *m, sizing *z)
{
    size_t k = (size_t)m->opts.num_classes;
    size_t in_per_image = (size_t)m->opts.in_channels * (size_t)m->opts.height * (size_t)m->opts.width;
    z->total = 0;
    z->widest = in_per_image;
    z->widest_c = 0;
    m->input = take(z, z->n * in_per_image);
    for_each_unit(m, size_unit, z);
    m->quantum = mislasi_model_quantum(m);
    /* doubles, 64-byte aligned; for the whole batch, whose every image's
     * moments and group's slots a shared batch gathers */
    m->moments = (double *)take(z, 2 * z->whole * 2 * z->widest_c);
    m->bn_slots = (double *)take(z, 2 * mislasi_bn_groups(z->whole, m->quantum) * 2 * z->widest_c);
    if (m->imagenet) {
        size_t pooled = m->pool.c * mislasi_pool_out_h(&m->pool) * mislasi_pool_out_w(&m->pool);
        m->pool_out = take(z, z->n * pooled);
        m->pool_arg = (int32_t *)take(z, z->n * pooled);   /* int32 and float have one size */
    }
    for (int32_t b = 0; b < m->num_blocks; b++) {
        mislasi_block *blk = &m->blocks[b];
        if (blk->shortcut == MISLASI_SHORTCUT_OPTION_A)
            blk->shortcut_out = take(z, z->n * blk->out_c * blk->out_h * blk->out_w);
    }
    /* the classifier runs on the whole batch */
    m->features = take(z, z->whole * m->feat_c);
    m->linear = take(z, z->whole * k);
    m->head_grad = take(z, z->whole * k);
    if (k > z->widest)
        z->widest = k;
    if (m->feat_c > z->widest)
        z->widest = m->feat_c;
    m->work_floats = z->n * z->widest;
    for (int i = 0; i < 4; i++)
        m->work[i] = take(z, m->work_floats);
}

void mislasi_model_drop_activations(mislas_model *m)
{
    mislasi_free(m->activations);
    mislasi_free(m->scratch);
    m->activations = NULL;
    m->scratch = NULL;
    m->capacity = 0;
    m->whole_capacity = 0;
    mislasi_free(m->chain);
    m->chain = NULL;
    m->prepared_current = false;
    m->scratch_floats = 0;
    m->scratch_threads = 0;
    m->batch = 0;
}

static int batch_too_large(const char *fn, size_t n)
{
    return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: a batch of %zu images is too large", fn, n);
}

/* Activations for n images of a batch of `whole` and conv scratch for the
 * current thread count. */
static int reserve(mislas_model *m, size_t n, size_t whole, size_t threads, const char *fn)
{
    if (n <= m->capacity && whole <= m->whole_capacity && threads <= m->scratch_threads)
        return MISLAS_OK;
    size_t cap = n > m->capacity ? n : m->capacity, whole_cap = whole > m->whole_capacity ? whole : m->whole_capacity;
    sizing z = {.n = cap, .whole = whole_cap, .threads = threads};
    lay_out(m, &z);
    if (z.slice_scratch * threads > z.scratch)
        z.scratch = z.slice_scratch * threads;
    if (z.total > SIZE_MAX / sizeof(float) / 2)
        return batch_too_large(fn, n);
    float *act = mislasi_alloc(z.total * sizeof(float));
    float *scratch = mislasi_alloc(z.scratch * sizeof(float));
    if (act == NULL || scratch == NULL) {
        mislasi_free(act);
        mislasi_free(scratch);
        /* the old layout's pointers were overwritten by the measuring pass */
        mislasi_model_drop_activations(m);
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY,
                "%s: out of memory for the activations of %zu images (%zu MB)",
                fn, n, (z.total + z.scratch) * sizeof(float) >> 20);
    }
    mislasi_free(m->activations);
    mislasi_free(m->scratch);
    m->activations = act;
    m->scratch = scratch;
    z.base = act;
    lay_out(m, &z);
    m->capacity = cap;
    m->whole_capacity = whole_cap;
    m->prepared_current = false;
    m->scratch_floats = z.scratch;
    m->slice_scratch_floats = z.slice_scratch;
    m->scratch_threads = threads;
    return MISLAS_OK;
}

static void prepare_weights(mislas_model *m, mislasi_conv_bn *u, void *ctx)
{
    (void)ctx;
    mislasi_conv_prepare(&u->conv, mislasi_tensor_values(m, u->weight), u->prepared);
}

static void prepare_eval_unit(mislas_model *m, mislasi_conv_bn *u, void *ctx)
{
    (void)ctx;
    size_t c = u->conv.c_out;
    const float *rmean = mislasi_tensor_values(m, u->running_mean), *rvar = mislasi_tensor_values(m, u->running_var);
    mislasi_bn_eval_affine(c, mislasi_tensor_values(m, u->gamma), mislasi_tensor_values(m, u->beta), rmean, rvar,
            u->scale, u->shift);
    memcpy(u->mean, rmean, c * sizeof(float));
    mislasi_bn_eval_invstd(c, rvar, u->invstd);
}

typedef struct unit_pass {
    const mislasi_conv_bn *u;
    mislasi_bn_shape bn;
    float *out;             /* the slice's first image of u->out */
    double *moments;        /* the slice's first image's moments */
    const float *residual;  /* added before the ReLU (a block's last unit), or NULL */
    bool relu;
} unit_pass;

/* Run on each image as soon as the convolution has produced it. */
static void bn_moments_of_image(void *ctx, size_t image, float *raw)
{
    const unit_pass *p = ctx;
    mislasi_bn_image_moments(&p->bn, raw, p->moments + image * 2 * p->bn.c);
}

static void bn_eval_image(void *ctx, size_t image, float *raw)
{
    const unit_pass *p = ctx;
    size_t size = p->bn.c * p->bn.hw;
    mislasi_bn_affine_image(&p->bn, raw, p->u->scale, p->u->shift, p->out + image * size, p->relu,
            p->residual == NULL ? NULL : p->residual + image * size);
}

/* Where a forward pass works: images [first, first + n) of every buffer,
 * with this conv scratch and thread count; in training, images [first, first
 * + n) of the batch's share (all of it but for a batch shared between ranks,
 * whose rows of the classifier's buffers start at share->first). */
typedef struct slice {
    size_t first, n;
    float *scratch;
    size_t threads;
    bool eval;              /* BN with the running statistics */
    bool keep;              /* keep what backward needs (the conv outputs before BN) */
    const mislasi_share *share;     /* training: the batch's share */
} slice;

static bool shared(const mislasi_share *sh)
{
    return sh != NULL && sh->comm != NULL;
}

/* conv + BN (+ residual) (+ ReLU) over a slice; the residual (the slice's
 * shortcut, or NULL) ends a block, whose output then goes through the ReLU.
 * A batch shared between ranks gathers every image's moments (synchronised
 * BN), so each rank normalises its images with the whole batch's
 * statistics, combined in the same order as on one process. */
static int unit_forward(mislas_model *m, mislasi_conv_bn *u, const float *x, const slice *sl,
        const float *residual)
{
    mislasi_conv_shape s = u->conv;
    s.n = sl->n;
    size_t per_image = unit_out_floats(u), c = u->conv.c_out;
    size_t row = sl->share != NULL ? sl->share->first : 0;
    unit_pass pass = {.u = u, .bn = {.n = sl->n, .c = c, .hw = u->out_h * u->out_w},
                      .out = u->out + sl->first * per_image,
                      .moments = m->moments + (row + sl->first) * 2 * c,
                      .residual = residual, .relu = u->relu || residual != NULL};
    float *raw = u->raw + sl->first * per_image;
    if (sl->eval && !sl->keep) {
        /* nothing kept for backward: BN, the residual and the ReLU ride in
         * the convolution's last pass */
        mislasi_conv_affine affine = {.scale = u->scale, .shift = u->shift, .residual = residual,
                                      .relu = pass.relu};
        mislasi_conv_forward_affine(&s, x, u->prepared, pass.out, sl->scratch, sl->threads, &affine);
        return MISLAS_OK;
    }
    if (sl->eval) {
        if (sl->n > 0)
            mislasi_conv_forward_prepared(&s, x, u->prepared, raw, sl->scratch, sl->threads, bn_eval_image, &pass);
        return MISLAS_OK;
    }
    if (sl->n > 0)
        mislasi_conv_forward_prepared(&s, x, u->prepared, raw, sl->scratch, sl->threads, bn_moments_of_image, &pass);
    const double *moments = pass.moments;
    size_t images = sl->n;
    if (shared(sl->share) && !sl->share->bn_per_rank) {
        int status = mislasi_comm_gather_images("mislas_model_forward", sl->share->comm, m->moments,
                sl->share->whole, m->quantum, 2 * c * sizeof(double));
        if (status != MISLAS_OK)
            return status;
        moments = m->moments;
        images = sl->share->whole;
    }
    mislasi_bn_forward_train_moments(&pass.bn, raw, moments, images, mislasi_tensor_values(m, u->gamma),
            mislasi_tensor_values(m, u->beta), mislasi_tensor_values(m, u->running_mean),
            mislasi_tensor_values(m, u->running_var), u->mean, u->invstd, pass.out, pass.relu, residual);
    return MISLAS_OK;
}

/* A block over a slice: the shortcut first, so that the last unit's BN
 * pass can add it and apply the block's ReLU at once. */
static int block_forward(mislas_model *m, mislasi_block *blk, const float *x, const slice *sl, const float **out)
{
    size_t out_per_image = blk->out_c * blk->out_h * blk->out_w;
    const float *r = x;
    int status = MISLAS_OK;
    if (blk->shortcut == MISLASI_SHORTCUT_OPTION_A) {
        mislasi_shortcut_shape s = blk->option_a;
        s.n = sl->n;
        r = blk->shortcut_out + sl->first * out_per_image;
        mislasi_shortcut_a_forward(&s, x, blk->shortcut_out + sl->first * out_per_image);
    } else if (blk->shortcut == MISLASI_SHORTCUT_PROJECTION) {
        status = unit_forward(m, &blk->proj, x, sl, NULL);
        r = blk->proj.out + sl->first * out_per_image;
    }
    const float *in = x;
    for (int i = 0; status == MISLAS_OK && i < blk->units; i++) {
        status = unit_forward(m, &blk->unit[i], in, sl, i == blk->units - 1 ? r : NULL);
        in = blk->unit[i].out + sl->first * unit_out_floats(&blk->unit[i]);
    }
    *out = in;
    return status;
}

/* Floats of an image at the stem's end (after the ImageNet stem's pool). */
static size_t stem_out_floats(const mislas_model *m)
{
    if (!m->imagenet)
        return unit_out_floats(&m->stem);
    return m->pool.c * mislasi_pool_out_h(&m->pool) * mislasi_pool_out_w(&m->pool);
}

/* The stem (and the ImageNet stem's max pool) over a slice; *out: its
 * output, from the slice's first image. */
static int stem_forward(mislas_model *m, const slice *sl, const float **out)
{
    size_t in_per_image = (size_t)m->opts.in_channels * (size_t)m->opts.height * (size_t)m->opts.width;
    int status = unit_forward(m, &m->stem, m->input + sl->first * in_per_image, sl, NULL);
    const float *x = m->stem.out + sl->first * unit_out_floats(&m->stem);
    if (m->imagenet) {
        mislasi_pool_shape p = m->pool;
        p.n = sl->n;
        size_t pooled = stem_out_floats(m);
        mislasi_maxpool_forward(&p, x, m->pool_out + sl->first * pooled, m->pool_arg + sl->first * pooled);
        x = m->pool_out + sl->first * pooled;
    }
    *out = x;
    return status;
}

/* In evaluation every image is computed alone, so a slice may go through
 * the network in pieces: the early layers, whose activations are large (an
 * ImageNet ResNet's 56x56x256), a few images at a time, so that a piece's
 * activations stay in the caches from one layer to the next instead of the
 * whole slice's going through memory at every layer; the later layers,
 * whose weights are large, on the whole slice, which reads them once. A
 * piece holds about PIECE_FLOATS of a layer's output. */
enum { PIECE_FLOATS = 1 << 20 };

static size_t piece_images(const slice *sl, size_t per_image)
{
    size_t images = sl->eval ? PIECE_FLOATS / per_image : sl->n;
    return images < 1 ? 1 : images < sl->n ? images : sl->n;
}

static size_t block_out_floats(const mislasi_block *blk)
{
    return blk->out_c * blk->out_h * blk->out_w;
}

/* The network over one slice, up to the classifier's linear output: the
 * stem, then runs of blocks that take the same piece size, piece by piece. */
static int network_forward(mislas_model *m, const slice *sl)
{
    size_t k = (size_t)m->opts.num_classes;
    int32_t b = 0;
    const float *x = NULL;
    size_t x_per_image = 0;     /* floats of an image at x */
    int status = MISLAS_OK;
    for (bool stem = true; status == MISLAS_OK && (stem || b < m->num_blocks); stem = false) {
        size_t piece = piece_images(sl, stem ? unit_out_floats(&m->stem) : block_out_floats(&m->blocks[b]));
        int32_t end = b;
        while (end < m->num_blocks && piece_images(sl, block_out_floats(&m->blocks[end])) == piece)
            end++;
        /* once with no images when there are none: a rank of a shared
         * batch without images still takes part in batch norm's exchanges */
        const float *out = NULL;
        size_t j = 0;
        do {
            slice part = *sl;
            part.first = sl->first + j;
            part.n = sl->n - j < piece ? sl->n - j : piece;
            const float *y = NULL;
            if (stem)
                status = stem_forward(m, &part, &y);
            else
                y = x + j * x_per_image;
            for (int32_t i = b; status == MISLAS_OK && i < end; i++)
                status = block_forward(m, &m->blocks[i], y, &part, &y);
            if (j == 0)
                out = y;
            j += piece;
        } while (status == MISLAS_OK && j < sl->n);
        x = out;
        x_per_image = end > b ? block_out_floats(&m->blocks[end - 1]) : stem_out_floats(m);
        b = end;
    }
    if (status != MISLAS_OK || sl->n == 0)
        return status;
    size_t row = (sl->share != NULL ? sl->share->first : 0) + sl->first;
    float *features = m->features + row * m->feat_c;
    mislasi_avgpool_forward(sl->n, m->feat_c, m->feat_h * m->feat_w, x, features);
    mislasi_linear_forward(sl->n, m->feat_c, k, features, mislasi_tensor_values(m, m->fc_weight),
            mislasi_tensor_values(m, m->fc_bias), m->linear + row * k);
    return MISLAS_OK;
}

typedef struct slices_job {
    mislas_model *m;
    size_t n, parts;
    bool keep;
} slices_job;

/* Part p runs its share of the slices, one after another, on its own
 * scratch (evaluation's BN exchanges nothing, so cannot fail). */
static void run_slices(void *ctx, size_t begin, size_t end)
{
    const slices_job *j = ctx;
    size_t slices = (j->n + EVAL_SLICE - 1) / EVAL_SLICE;
    for (size_t p = begin; p < end; p++) {
        size_t s0 = slices * p / j->parts, s1 = slices * (p + 1) / j->parts;
        for (size_t s = s0; s < s1; s++) {
            size_t first = s * EVAL_SLICE;
            slice sl = {.first = first, .n = j->n - first < EVAL_SLICE ? j->n - first : EVAL_SLICE,
                        .scratch = j->m->scratch + p * j->m->slice_scratch_floats, .threads = 1,
                        .eval = true, .keep = j->keep};
            (void)network_forward(j->m, &sl);
        }
    }
}

/* The caller's images (NCHW, as data sets and PyTorch hold them) into the
 * network's layout (NHWC: nn.h), the only conversion between the two. */
static void to_channels_last(mislas_model *m, const float *images, size_t n)
{
    size_t c = (size_t)m->opts.in_channels, hw = (size_t)m->opts.height * (size_t)m->opts.width;
    for (size_t i = 0; i < n; i++) {
        const float *src = images + i * c * hw;
        float *dst = m->input + i * c * hw;
        for (size_t p = 0; p < hw; p++)
            for (size_t ch = 0; ch < c; ch++)
                dst[p * c + ch] = src[ch * hw + p];
    }
}

/* Per-rank batch norm keeps rank 0's running statistics, as PyTorch's
 * DataParallel keeps those of its first device. */
static void broadcast_running_stats(mislas_model *m, mislasi_conv_bn *u, void *ctx)
{
    int *status = ctx;
    mislas_comm *comm = m->share.comm;
    size_t bytes = u->conv.c_out * sizeof(float);
    if (*status == MISLAS_OK)
        *status = mislasi_comm_broadcast_start("mislas_model_forward", comm,
                mislasi_tensor_values(m, u->running_mean), bytes, 0);
    if (*status == MISLAS_OK)
        *status = mislasi_comm_broadcast_start("mislas_model_forward", comm,
                mislasi_tensor_values(m, u->running_var), bytes, 0);
}

/* forward (keep = true: the mode's BN, ready for backward) or predict
 * (keep = false: running statistics, nothing kept), on this rank's images
 * of the batch `share` describes; logits for the whole batch. */
static int run_forward(mislas_model *m, const float *images, const mislasi_share *share, float *logits, bool keep,
        const char *fn)
{
    MISLASI_CHECK_NOT_NULL(fn, m);
    MISLASI_CHECK_NOT_NULL(fn, logits);
    size_t n = share->n, whole = share->whole;
    if (n > 0)
        MISLASI_CHECK_NOT_NULL(fn, images);
    bool eval = !keep || m->mode == MISLAS_MODE_EVAL;
    int status = MISLAS_OK;
    if (whole == 0)
        status = mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: n is 0", fn);
    else if (whole < 2 && !eval)
        status = mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: batch statistics need n >= 2 images (n = 1; use MISLAS_MODE_EVAL or mislas_model_predict)", fn);
    size_t threads = mislasi_conv_threads();
    m->batch = 0;
    m->have_grads = false;
    /* checked first: a NaN would otherwise reach BN's running statistics
     * (for good) even though the logits come out finite */
    size_t image_size = (size_t)m->opts.in_channels * (size_t)m->opts.height * (size_t)m->opts.width;
    if (status == MISLAS_OK && whole > SIZE_MAX / sizeof(float) / image_size)
        status = batch_too_large(fn, whole);
    size_t in_count = n * image_size;
    for (size_t i = 0; status == MISLAS_OK && i < in_count; i++)
        if (!isfinite(images[i]))
            status = mislasi_fail(MISLAS_ERR_NUMERIC, "%s: images[%zu] (image %zu) is not finite", fn, i,
                    i / image_size);
    if (status == MISLAS_OK)
        status = reserve(m, n, whole, threads, fn);
    /* a rank may fail here alone: none goes on to wait for it */
    if (share->comm != NULL)
        status = mislasi_comm_agree(fn, share->comm, status);
    if (status != MISLAS_OK)
        return status;
    size_t k = (size_t)m->opts.num_classes;
    to_channels_last(m, images, n);

    /* the weights change only through the optimiser and the model's setters */
    if (!m->prepared_current) {
        for_each_unit(m, prepare_weights, NULL);
        m->prepared_current = true;
    }
    m->share = *share;
    if (eval) {
        /* BN as a fixed affine step; the saved statistics are the running ones */
        for_each_unit(m, prepare_eval_unit, NULL);
        size_t slices = (n + EVAL_SLICE - 1) / EVAL_SLICE;
        slices_job j = {.m = m, .n = n, .parts = threads < slices ? threads : slices, .keep = keep};
        if (j.parts > 0)
            mislasi_parallel_for(j.parts, 1, run_slices, &j);
        if (share->first > 0 && n > 0) {
            /* evaluation's slices write the classifier's rows from 0 */
            memmove(m->features + share->first * m->feat_c, m->features, n * m->feat_c * sizeof(float));
            memmove(m->linear + share->first * k, m->linear, n * k * sizeof(float));
        }
    } else {
        slice whole_share = {.first = 0, .n = n, .scratch = m->scratch, .threads = threads, .keep = true,
                             .share = share};
        status = network_forward(m, &whole_share);
        if (status == MISLAS_OK && shared(share) && share->bn_per_rank)
            for_each_unit(m, broadcast_running_stats, &status);
        if (status == MISLAS_OK && shared(share) && share->bn_per_rank)
            status = mislasi_comm_wait(fn, share->comm);
    }
    if (status == MISLAS_OK && shared(share)) {
        status = mislasi_comm_gather_images(fn, share->comm, m->features, whole, m->quantum,
                m->feat_c * sizeof(float));
        if (status == MISLAS_OK)
            status = mislasi_comm_gather_images(fn, share->comm, m->linear, whole, m->quantum, k * sizeof(float));
    }
    if (status != MISLAS_OK)
        return status;
    const float *s = mislasi_tensor_values(m, m->scales);
    for (size_t i = 0; i < whole; i++)
        for (size_t j = 0; j < k; j++) {
            float z = m->linear[i * k + j] * s[j];
            if (!isfinite(z))
                return mislasi_fail(MISLAS_ERR_NUMERIC,
                        "%s: logit [%zu][%zu] is not finite (non-finite input, or weights diverged)", fn, i, j);
            logits[i * k + j] = z;
        }
    m->batch = whole;
    m->backward_ready = keep;
    return MISLAS_OK;
}

int mislas_model_forward(mislas_model *m, const float *images, size_t n, float *logits)
{
    mislasi_share one = {.whole = n, .n = n};
    return run_forward(m, images, &one, logits, true, "mislas_model_forward");
}

int mislas_model_predict(mislas_model *m, const float *images, size_t n, float *logits)
{
    if (n == 0) {    /* an empty batch predicts nothing (docs/api.md, "Rules") */
        MISLASI_CHECK_NOT_NULL("mislas_model_predict", m);
        return MISLAS_OK;
    }
    mislasi_share one = {.whole = n, .n = n};
    return run_forward(m, images, &one, logits, false, "mislas_model_predict");
}

int mislasi_model_forward_shared(mislas_model *m, const float *images, const mislasi_share *share, float *logits,
        bool keep)
{
    return run_forward(m, images, share, logits, keep, keep ? "mislas_model_forward" : "mislas_model_predict");
}

static void largest_group(mislas_model *m, mislasi_conv_bn *u, void *ctx)
{
    (void)m;
    size_t *quantum = ctx, group = mislasi_conv_group_images(&u->conv);
    if (group > *quantum)
        *quantum = group;
}

size_t mislasi_model_quantum(mislas_model *m)
{
    size_t quantum = 1;
    for_each_unit(m, largest_group, &quantum);
    return quantum;
}

/* Backward through u: dy is the gradient of u's output, taken where
 * mask > 0 (mask = the output of the ReLU that follows, or NULL); dz
 * receives the gradient of the convolution's output (it may be dy), dx
 * that of u's input x (NULL: not wanted); u's parameter gradients are
 * written. */
typedef struct bn_backward_pass {
    const mislasi_conv_bn *u;
    mislasi_bn_shape image;     /* n = 1 */
    const float *mask, *dy;
} bn_backward_pass;

/* BN's dx for one image, run by the convolution's backward just before it
 * reads the image's dz. */
static void bn_backward_image(void *ctx, size_t image, float *dz_image)
{
    const bn_backward_pass *p = ctx;
    size_t size = p->image.c * p->image.hw;
    mislasi_bn_backward_image(&p->image, p->u->raw + image * size,
            p->mask == NULL ? NULL : p->mask + image * size, p->dy + image * size, p->u->mean, p->u->coef,
            dz_image);
}

/* ---- the sums a shared batch passes along the ranks ----------------------
 * A weight gradient that every rank's images add to is a chain: rank r
 * receives what the images before its own sum to, adds its groups onto it
 * in order (inside the convolution's backward: the same additions, in the
 * same order, as one process makes) and sends the result on; the last rank
 * holds the whole batch's gradient and broadcasts it. Each layer's chain
 * starts as soon as the layer is done, so the messages travel while the
 * layers below compute, as PyTorch's DDP overlaps its buckets. */
typedef struct chain {
    mislas_model *m;
    size_t tensor;
    int status;
} chain;

static const char BACKWARD[] = "mislas_model_backward";

/* The sum before this rank's images, or NULL on rank 0 (which starts it). */
static const float *chain_receive(void *ctx)
{
    chain *ch = ctx;
    mislas_model *m = ch->m;
    const mislasi_tensor *t = &m->tensors[ch->tensor];
    if (m->share.comm->rank == 0 || ch->status != MISLAS_OK)
        return NULL;
    float *before = m->chain + t->offset;
    ch->status = mislasi_comm_receive_previous(BACKWARD, m->share.comm, before, t->count * sizeof(float),
            (int32_t)ch->tensor);
    return ch->status == MISLAS_OK ? before : NULL;
}

/* Sends this rank's running sum on (grads of the tensor) and starts the
 * broadcast of the whole sum from the last rank. */
static int chain_pass_on(chain *ch)
{
    mislas_model *m = ch->m;
    mislas_comm *comm = m->share.comm;
    const mislasi_tensor *t = &m->tensors[ch->tensor];
    float *grads = mislasi_tensor_grads(m, ch->tensor);
    size_t bytes = t->count * sizeof(float);
    int status = ch->status;
    if (status == MISLAS_OK && comm->rank + 1 < comm->size) {
        memcpy(m->chain + t->offset, grads, bytes);
        status = mislasi_comm_send_next(BACKWARD, comm, m->chain + t->offset, bytes, (int32_t)ch->tensor);
    }
    if (status == MISLAS_OK)
        status = mislasi_comm_broadcast_start(BACKWARD, comm, grads, bytes, comm->size - 1);
    return status;
}

/* A rank with no image in the batch passes the sum before it on unchanged
 * (rank 0: -0.0, the additions' neutral start). */
static int chain_pass_through(chain *ch)
{
    mislas_model *m = ch->m;
    const mislasi_tensor *t = &m->tensors[ch->tensor];
    float *grads = mislasi_tensor_grads(m, ch->tensor);
    const float *before = chain_receive(ch);
    for (size_t i = 0; i < t->count; i++)
        grads[i] = before != NULL ? before[i] : -0.0f;
    return chain_pass_on(ch);
}

/* Per-rank BN's affine gradients: each rank's own batch's, summed in rank order. */
static int chain_add(chain *ch)
{
    mislas_model *m = ch->m;
    const mislasi_tensor *t = &m->tensors[ch->tensor];
    float *grads = mislasi_tensor_grads(m, ch->tensor);
    const float *before = chain_receive(ch);
    for (size_t i = 0; before != NULL && i < t->count; i++)
        grads[i] = before[i] + grads[i];
    return chain_pass_on(ch);
}

static int unit_backward(mislas_model *m, mislasi_conv_bn *u, const float *x, const float *mask,
        const float *dy, float *dz, float *dx, size_t n, size_t threads)
{
    const mislasi_share *sh = &m->share;
    mislasi_bn_shape b = {.n = n, .c = u->conv.c_out, .hw = u->out_h * u->out_w};
    size_t group0 = sh->first / m->quantum, groups = mislasi_bn_groups(n, m->quantum);
    double *slots = m->bn_slots + group0 * 2 * b.c;
    if (n > 0)
        mislasi_bn_backward_slots(&b, m->quantum, u->raw, mask, dy, u->mean, slots);
    double count = (double)(n * b.hw);
    int status = MISLAS_OK;
    if (shared(sh) && !sh->bn_per_rank) {
        size_t all_groups = mislasi_bn_groups(sh->whole, m->quantum);
        status = mislasi_comm_gather_images(BACKWARD, sh->comm, m->bn_slots, all_groups, 1,
                2 * b.c * sizeof(double));
        slots = m->bn_slots;
        groups = all_groups;
        count = (double)(sh->whole * b.hw);
    }
    if (status != MISLAS_OK)
        return status;
    mislasi_bn_backward_finish(b.c, count, groups, slots, mislasi_tensor_values(m, u->gamma), u->invstd,
            m->mode != MISLAS_MODE_EVAL, u->coef, mislasi_tensor_grads(m, u->gamma),
            mislasi_tensor_grads(m, u->beta));
    if (shared(sh) && sh->bn_per_rank) {
        chain ch_gamma = {.m = m, .tensor = u->gamma}, ch_beta = {.m = m, .tensor = u->beta};
        status = chain_add(&ch_gamma);
        if (status == MISLAS_OK)
            status = chain_add(&ch_beta);
        if (status != MISLAS_OK)
            return status;
    }
    bn_backward_pass pass = {.u = u, .image = {.n = 1, .c = b.c, .hw = b.hw}, .mask = mask, .dy = dy};
    mislasi_conv_shape s = u->conv;
    s.n = n;
    chain ch = {.m = m, .tensor = u->weight};
    if (!shared(sh)) {
        mislasi_conv_backward_prepared(&s, x, u->prepared, dz, bn_backward_image, &pass, NULL, NULL,
                mislasi_tensor_grads(m, u->weight), dx, m->scratch, threads);
        return MISLAS_OK;
    }
    if (n == 0)
        return chain_pass_through(&ch);
    mislasi_conv_backward_prepared(&s, x, u->prepared, dz, bn_backward_image, &pass, chain_receive, &ch,
            mislasi_tensor_grads(m, u->weight), dx, m->scratch, threads);
    return chain_pass_on(&ch);
}

/* dout (the gradient of the block's output; overwritten by the shortcut
 * paths) -> dx. The block's final ReLU is applied as a mask on the way in,
 * never as a pass of its own. */
static int block_backward(mislas_model *m, mislasi_block *blk, const float *x, float *dout, float *dx,
        size_t n, size_t threads)
{
    float *other[2] = {m->work[0], m->work[1]};
    mislasi_conv_bn *last = &blk->unit[blk->units - 1];
    const float *block_out = last->out;
    float *dz = other[0];   /* the gradient of the current unit's convolution output */
    int status = MISLAS_OK;
    for (int i = blk->units - 1; status == MISLAS_OK && i >= 0; i--) {
        mislasi_conv_bn *u = &blk->unit[i];
        const float *in = i == 0 ? x : blk->unit[i - 1].out;
        float *target = i == 0 ? dx : dz == other[0] ? other[1] : other[0];
        if (i == blk->units - 1)
            status = unit_backward(m, u, in, block_out, dout, dz, target, n, threads);
        else
            status = unit_backward(m, u, in, u->out, dz, dz, target, n, threads);
        dz = target;
    }
    size_t in_count = n * blk->in_c * blk->in_h * blk->in_w;
    size_t out_count = n * blk->out_c * blk->out_h * blk->out_w;
    if (status != MISLAS_OK)
        return status;
    if (blk->shortcut == MISLASI_SHORTCUT_IDENTITY) {
        mislasi_add_masked(in_count, dx, dout, block_out);
    } else if (blk->shortcut == MISLASI_SHORTCUT_OPTION_A) {
        mislasi_relu_backward(out_count, block_out, dout);
        mislasi_shortcut_shape s = blk->option_a;
        s.n = n;
        mislasi_shortcut_a_backward_add(&s, dout, dx);
    } else {
        status = unit_backward(m, &blk->proj, x, block_out, dout, dout, m->work[0], n, threads);
        mislasi_add(in_count, dx, m->work[0]);
    }
    return status;
}

/* The classifier on the whole batch (every rank the same), and the
 * gradient of this rank's features. */
static void head_backward(mislas_model *m, const float *grad_logits, float *dfeat)
{
    const mislasi_share *sh = &m->share;
    size_t whole = sh->whole, k = (size_t)m->opts.num_classes, d = m->feat_c;
    const float *s = mislasi_tensor_values(m, m->scales);
    float *ds = mislasi_tensor_grads(m, m->scales);
    float *dlin = m->head_grad;
    for (size_t j = 0; j < k; j++) {
        double sum = 0.0;
        for (size_t i = 0; i < whole; i++)
            sum += (double)grad_logits[i * k + j] * m->linear[i * k + j];
        ds[j] = (float)sum;
    }
    for (size_t i = 0; i < whole; i++)
        for (size_t j = 0; j < k; j++)
            dlin[i * k + j] = grad_logits[i * k + j] * s[j];
    const float *w = mislasi_tensor_values(m, m->fc_weight);
    mislasi_linear_backward(whole, d, k, m->features, w, dlin, mislasi_tensor_grads(m, m->fc_weight),
            mislasi_tensor_grads(m, m->fc_bias), NULL);
    /* the rows of one product, whatever its height (BLIS's sup kernels are
     * off: util/blas.c) */
    if (dfeat != NULL && sh->n > 0)
        mislasi_linear_backward(sh->n, d, k, m->features + sh->first * d, w, dlin + sh->first * k, NULL, NULL,
                dfeat);
}

int mislasi_model_backward_shared(mislas_model *m, const float *grad_logits)
{
    MISLASI_CHECK_NOT_NULL(BACKWARD, m);
    MISLASI_CHECK_NOT_NULL(BACKWARD, grad_logits);
    if (m->batch == 0 || !m->backward_ready)
        return mislasi_fail(MISLAS_ERR_STATE,
                "mislas_model_backward: no forward pass to go back through (call mislas_model_forward first, not "
                "mislas_model_predict; a change of mode, head or weights discards it)");
    size_t n = m->share.n, k = (size_t)m->opts.num_classes, d = m->feat_c;
    for (size_t i = 0; i < m->batch * k; i++)
        if (!isfinite(grad_logits[i]))
            return mislasi_fail(MISLAS_ERR_NUMERIC, "mislas_model_backward: grad_logits[%zu] is not finite", i);
    size_t threads = mislasi_conv_threads();
    if (threads > m->scratch_threads)
        threads = m->scratch_threads;   /* the scratch was sized at forward time */
    if (shared(&m->share) && !m->frozen && m->chain == NULL) {
        m->chain = mislasi_alloc(m->num_values * sizeof *m->chain);
        if (m->chain == NULL)
            return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "mislas_model_backward: out of memory for the "
                    "gradients passed between ranks (%zu MB)", m->num_values * sizeof(float) >> 20);
    }
    float *dfeat = m->frozen ? NULL : m->work[1];
    head_backward(m, grad_logits, dfeat);
    if (m->frozen) {
        m->have_grads = true;
        return MISLAS_OK;
    }
    float *a = m->work[2], *b = m->work[3];
    if (n > 0)
        mislasi_avgpool_backward(n, d, m->feat_h * m->feat_w, dfeat, a);
    int status = MISLAS_OK;
    for (int32_t i = m->num_blocks - 1; status == MISLAS_OK && i >= 0; i--) {
        mislasi_block *blk = &m->blocks[i];
        const float *x = i > 0 ? m->blocks[i - 1].unit[m->blocks[i - 1].units - 1].out
                       : m->imagenet ? m->pool_out : m->stem.out;
        status = block_backward(m, blk, x, a, b, n, threads);
        float *swap = a;
        a = b;
        b = swap;
    }
    if (status == MISLAS_OK && m->imagenet) {
        mislasi_pool_shape p = m->pool;
        p.n = n;
        mislasi_maxpool_backward(&p, a, m->pool_arg, b);
        float *swap = a;
        a = b;
        b = swap;
    }
    if (status == MISLAS_OK)
        status = unit_backward(m, &m->stem, m->input, m->stem.out, a, a, NULL, n, threads);
    /* every chain's broadcast done: each rank holds the whole batch's gradients */
    if (shared(&m->share)) {
        int waited = mislasi_comm_wait(BACKWARD, m->share.comm);
        if (status == MISLAS_OK)
            status = waited;
    }
    if (status != MISLAS_OK)
        return status;
    m->have_grads = true;
    return MISLAS_OK;
}

int mislas_model_backward(mislas_model *m, const float *grad_logits)
{
    MISLASI_CHECK_NOT_NULL(BACKWARD, m);
    if (m->batch > 0 && shared(&m->share))
        return mislasi_fail(MISLAS_ERR_STATE, "mislas_model_backward: the last forward was a batch shared between "
                "ranks (a training run's); call mislas_model_forward first");
    return mislasi_model_backward_shared(m, grad_logits);
}

int mislas_model_features(const mislas_model *m, float *features, size_t n)
{
    MISLASI_CHECK_NOT_NULL("mislas_model_features", m);
    MISLASI_CHECK_NOT_NULL("mislas_model_features", features);
    if (m->batch == 0)
        return mislasi_fail(MISLAS_ERR_STATE, "mislas_model_features: no forward pass yet");
    if (n != m->batch)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "mislas_model_features: n = %zu but the last forward had %zu images", n, m->batch);
    memcpy(features, m->features, n * m->feat_c * sizeof(float));
    return MISLAS_OK;
}
