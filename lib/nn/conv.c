/* 2-D convolution on NHWC activations (nn.h), computed directly: no unfolded
 * copy of the input, no matrix library. Each product is a run of tiles of
 * conv_kernels.h, a tile holding up to 28 outputs of 16 channels in
 * registers while it sums over the filter's taps and the input's channels.
 *
 *   forward       y[oh, ow, co] = sum over taps (kh, kw), then ci, of
 *                 x[oh s + kh - pad, ow s + kw - pad, ci] w[co, ci, kh, kw]
 *                 A tile is a run of pixels of one output row. The input
 *                 image is first copied with zero columns either side
 *                 (pad of them), so that every tap of every pixel reads
 *                 memory; taps whose input row lies outside the image are
 *                 left out of that row's list instead.
 *   input grad.   dx[ih, iw, ci] = sum over the taps that reach (ih, iw),
 *                 then co, of dy[oh, ow, co] w[co, ci, kh, kw], where
 *                 oh s + kh - pad = ih and ow s + kw - pad = iw. With stride
 *                 s, the input pixels of one row fall into s classes by
 *                 iw mod s, each reached by a fixed set of kw: a tile is a
 *                 run of one class's pixels (every s-th), over a copy of the
 *                 image's dy with zero columns either side.
 *   weight grad.  dw[co, ci, kh, kw] = sum over images, then output rows,
 *                 then pixels of x[...] dy[...], the pixels restricted to
 *                 those whose tap falls inside the image (a rectangle), so
 *                 nothing is padded.
 *
 * Refinements, each chosen by the layer's shape: 3x3 stride-1 layers with
 * 16 output (or, for dx, input) channels use the row-tap kernels, which
 * broadcast an input value once for its three horizontal taps; layers whose
 * weights outgrow the cache sum their channels in chunks (depth_chunk); the
 * forward of a 1x1 layer runs a thread's images as one row of pixels
 * (forward_flat); and a row's tiles take the width in blocks a small cost
 * model finds fastest (row_blocks).
 *
 * Every output is one chain of fused multiply-adds in an order fixed by the
 * shape, so the result does not depend on the tiles, the instruction set or
 * the threads. The batch is cut into groups of images by shape alone (a
 * power of two of them, about GROUP_PIXELS output pixels); each group sums
 * its own weight gradient into a slot of the work area, and the slots are
 * added in group order, onto the sum of the images before the batch when a
 * batch is shared between processes (lib/train's data parallelism: powers
 * of two make every layer's groups tile any multiple of the largest). */
#include "nn.h"
#include "conv_kernels.h"

#include "util/util.h"

#include <stdint.h>
#include <string.h>

/* Output pixels a weight-gradient group aims for: its input and output
 * gradient (a few hundred KB) stay in the core's cache across the taps. */
enum { GROUP_PIXELS = 1024 };
/* The most taps a filter has (k <= 8), and the pixel runs one
 * weight-gradient kernel call sums (the call chain goes on past them). */
enum { MAX_TAPS = 64, RUNS_PER_CALL = 64 };

extern const mislasi_conv_kernels mislasi_conv_kernels_generic;
#if defined(MISLAS_KERNELS_X86)
extern const mislasi_conv_kernels mislasi_conv_kernels_avx2;
extern const mislasi_conv_kernels mislasi_conv_kernels_avx512;
#endif

static const mislasi_conv_kernels *kernels_for(mislasi_isa isa)
{
    switch (isa) {
#if defined(MISLAS_KERNELS_X86)
    case MISLASI_ISA_AVX2:
        return &mislasi_conv_kernels_avx2;
    case MISLASI_ISA_AVX512:
        return &mislasi_conv_kernels_avx512;
#endif
    default:
        return &mislasi_conv_kernels_generic;
    }
}

const mislasi_conv_kernels *mislasi_conv_kernels_named(const char *name)
{
    mislasi_isa isa;
    return mislasi_isa_named(name, &isa) ? kernels_for(isa) : NULL;
}

const mislasi_conv_kernels *mislasi_conv_kernels_get(void)
{
    return kernels_for(mislasi_isa_get());
}

size_t mislasi_conv_out_h(const mislasi_conv_shape *s)
{
    return (s->h + 2 * s->pad - s->k) / s->stride + 1;
}

size_t mislasi_conv_out_w(const mislasi_conv_shape *s)
{
    return (s->w + 2 * s->pad - s->k) / s->stride + 1;
}

size_t mislasi_conv_threads(void)
{
    return (size_t)mislas_num_threads();
}

typedef struct geometry {
    size_t oh, ow, taps;
    size_t padded_w;        /* columns of the padded input copy: w + 2 pad */
    size_t dy_margin;       /* zero columns either side of the padded output gradient */
    size_t dy_w;            /* ow + 2 dy_margin */
    size_t group, groups;   /* images per weight-gradient group, and groups */
    size_t taps_floats;     /* taps x c_in x c_out: one weight panel set, one slot */
} geometry;

size_t mislasi_conv_group_images(const mislasi_conv_shape *s)
{
    size_t pixels = mislasi_conv_out_h(s) * mislasi_conv_out_w(s), group = 1;
    while (2 * group * pixels <= GROUP_PIXELS)
        group *= 2;
    return group;
}

static geometry geometry_of(const mislasi_conv_shape *s)
{
    geometry g;
    g.oh = mislasi_conv_out_h(s);
    g.ow = mislasi_conv_out_w(s);
    g.taps = s->k * s->k;
    g.padded_w = s->w + 2 * s->pad;
    /* an input pixel's taps read output columns down to -(k - 1) / s and up
     * to (w - 1 + pad) / s, at most k past the last */
    g.dy_margin = s->k + 1;
    g.dy_w = g.ow + 2 * g.dy_margin;
    g.group = mislasi_conv_group_images(s);
    if (g.group > s->n)
        g.group = s->n > 0 ? s->n : 1;     /* n = 0: a shape for preparing weights only */
    g.groups = (s->n + g.group - 1) / g.group;
    g.taps_floats = g.taps * s->c_in * s->c_out;
    return g;
}

/* Prepared weights: the forward panels, tap by tap c_in x c_out (output
 * channels contiguous), then the input gradient's, tap by tap c_out x c_in. */
size_t mislasi_conv_prepared_floats(const mislasi_conv_shape *s)
{
    geometry g = geometry_of(s);
    return 2 * mislasi_align_floats(g.taps_floats);
}

typedef struct prepare_job {
    const mislasi_conv_shape *s;
    size_t taps;
    const float *w;
    float *forward, *backward;
} prepare_job;

/* Blocks [begin, end) of 16 output channels: a block writes whole cache
 * lines of the forward panels (its 16 lanes of each row) and whole rows of
 * the input gradient's, so that blocks can go to different threads; a
 * training step prepares every layer's weights anew. */
static void prepare_blocks(void *ctx, size_t begin, size_t end)
{
    const prepare_job *pj = ctx;
    size_t ci_n = pj->s->c_in, co_n = pj->s->c_out, taps = pj->taps;
    for (size_t co0 = begin * MISLASI_LANES; co0 < end * MISLASI_LANES; co0 += MISLASI_LANES)
        for (size_t t = 0; t < taps; t++)
            for (size_t ci = 0; ci < ci_n; ci++)
                for (size_t co = co0; co < co0 + MISLASI_LANES; co++) {
                    float v = pj->w[(co * ci_n + ci) * taps + t];
                    pj->forward[(t * ci_n + ci) * co_n + co] = v;
                    pj->backward[(t * co_n + co) * ci_n + ci] = v;
                }
}

/* Blocks of output channels a thread takes at least: 64K weights. */
enum { PREPARE_FLOATS = 64 << 10 };

void mislasi_conv_prepare(const mislasi_conv_shape *s, const float *w, float *prepared)
{
    geometry g = geometry_of(s);
    prepare_job pj = {.s = s, .taps = g.taps, .w = w, .forward = prepared,
                      .backward = prepared + mislasi_align_floats(g.taps_floats)};
    size_t block_floats = MISLASI_LANES * s->c_in * g.taps;
    size_t grain = PREPARE_FLOATS / block_floats > 1 ? PREPARE_FLOATS / block_floats : 1;
    mislasi_parallel_for(s->c_out / MISLASI_LANES, grain, prepare_blocks, &pj);
}

/* A 1x1 convolution without padding sees no neighbours, so a part's output
 * pixels form one run across rows and images (forward_flat). */
static bool flat(const mislasi_conv_shape *s)
{
    return s->k == 1 && s->pad == 0;
}

/* The images part p of `parts` takes: a contiguous run. */
static size_t part_first(const mislasi_conv_shape *s, size_t parts, size_t p)
{
    return s->n * p / parts;
}

/* A 1x1 convolution of stride 1: input and output pixels pair one to one,
 * so both gradients also run an image (or several) as one row. */
static bool pointwise(const mislasi_conv_shape *s)
{
    return flat(s) && s->stride == 1;
}

static size_t parts_of(const mislasi_conv_shape *s, size_t threads)
{
    size_t parts = threads < s->n ? threads : s->n;
    return parts > 0 ? parts : 1;
}

/* Work: per part, a padded input or output-gradient image, or the pixels a
 * strided 1x1 convolution reads from all the part's images; then one
 * weight-gradient slot per group. */
static size_t area_floats(const mislasi_conv_shape *s, const geometry *g, size_t parts)
{
    size_t in = s->h * g->padded_w * s->c_in, out = g->oh * g->dy_w * s->c_out;
    size_t area = in > out ? in : out;
    if (flat(s) && s->stride > 1) {
        size_t images = (s->n + parts - 1) / parts, gathered = images * g->oh * g->ow * s->c_in;
        area = gathered > area ? gathered : area;
    }
    return mislasi_align_floats(area);
}

size_t mislasi_conv_work_floats(const mislasi_conv_shape *s, size_t threads)
{
    geometry g = geometry_of(s);
    size_t parts = parts_of(s, threads);
    return parts * area_floats(s, &g, parts) + g.groups * mislasi_align_floats(g.taps_floats);
}

/* How a tile row of `count` outputs (pixels, or the weight gradient's
 * input channels) is cut: tiles of `blocks` blocks of 16 lanes, as few as
 * the widest tile of that many blocks allows, sharing the row evenly (their
 * sizes differ by one at most) so that none is left with a short,
 * latency-bound remainder. */
typedef struct cut {
    size_t blocks, tiles, count;
} cut;

/* Where tile i of c begins (tile c->tiles: the end). */
static size_t tile_start(const cut *c, size_t i)
{
    return c->count * i / c->tiles;
}

static cut even_cut(size_t count, size_t most)
{
    cut c = {.blocks = 1, .tiles = (count + most - 1) / most, .count = count};
    return c;
}

/* The weight gradient's cut: the most blocks a tile takes that still leaves
 * it three rows or more (the forward and input-gradient tiles choose their
 * width by row_blocks below). */
static cut cut_of(const mislasi_conv_kernels *kn, size_t blocks, size_t count)
{
    size_t b = blocks < MISLASI_TILE_BLOCKS ? blocks : MISLASI_TILE_BLOCKS;
    while (b > 1 && kn->max_rows[b] < 3)
        b--;
    cut c = even_cut(count, kn->max_rows[b]);
    c.blocks = b;
    return c;
}

/* Cycles a tile of b blocks x p pixels takes per step of its sum (one tap's
 * channel), as modelled: the most of its multiply-adds (two a cycle), its
 * loads (two a cycle: b blocks of weights, p broadcasts; the weights again
 * for every pixel when they do not fit in the registers the sums leave),
 * the latency of a multiply-add (each sum is one chain, about four cycles)
 * and, when the weights come from the second-level cache (`far`), their 64
 * bytes a block at about 32 bytes a cycle. */
static double tile_cycles(const mislasi_conv_kernels *kn, size_t b, size_t p, bool far)
{
    size_t nv = MISLASI_LANES / kn->width;
    bool held = b * p * nv + b * nv + 1 <= kn->registers;
    double fma = (double)(b * p * nv) / 2, loads = (double)(b * nv * (held ? 1 : p) + p) / 2;
    double cycles = fma > loads ? fma : loads;
    if (cycles < 4)
        cycles = 4;
    if (far && cycles < 2.0 * (double)b)
        cycles = 2.0 * (double)b;
    return cycles;
}

static double row_cycles(const mislasi_conv_kernels *kn, size_t b, size_t count, bool far)
{
    cut c = even_cut(count, kn->max_rows[b]);
    double cycles = 0;
    for (size_t tile = 0; tile < c.tiles; tile++)
        cycles += tile_cycles(kn, b, tile_start(&c, tile + 1) - tile_start(&c, tile), far);
    return cycles;
}

/* The tile width in blocks for a row of `count` output pixels of `blocks`
 * blocks, in forward and input-gradient tiles each summing over `steps`
 * (taps x channels) panels: the width the model above finds cheapest for
 * the whole row, its groups of that width and the remainder (the 7-pixel
 * rows of ImageNet ResNets' last stage fit one tile of three blocks, not
 * two tiles of four), ties to the wider. Only the speed depends on it:
 * every output's sum is the same. Rows of a layer ask the same question
 * again and again, so each thread keeps its last answer. */
enum { NEAR_BYTES = 32 << 10 };

static size_t row_blocks(const mislasi_conv_kernels *kn, size_t blocks, size_t count, size_t steps)
{
    static _Thread_local struct {
        const mislasi_conv_kernels *kn;
        size_t blocks, count, steps, answer;
    } last;
    if (last.kn == kn && last.blocks == blocks && last.count == count && last.steps == steps)
        return last.answer;
    size_t best = 1;
    double best_cycles = 0;
    for (size_t b = 1; b <= blocks && b <= MISLASI_TILE_BLOCKS; b++) {
        bool far = steps * b * MISLASI_LANES * sizeof(float) > NEAR_BYTES;
        double cycles = (double)(blocks / b) * row_cycles(kn, b, count, far);
        if (blocks % b != 0)
            cycles += row_cycles(kn, blocks % b, count, far);
        if (b == 1 || cycles <= best_cycles) {
            best = b;
            best_cycles = cycles;
        }
    }
    last.kn = kn;
    last.blocks = blocks;
    last.count = count;
    last.steps = steps;
    last.answer = best;
    return best;
}

/* Runs the tiles of one output row: `count` pixels, blocks [first, end) of
 * their channels, pixel p at out + p * t->out_step, reading from in_shift +
 * p * in_step. */
static void tile_row(const mislasi_conv_kernels *kn, mislasi_conv_tile *t, size_t count, size_t first,
        size_t end)
{
    float *out = t->out;
    const float *scale = t->scale, *shift = t->shift, *residual = t->residual;
    size_t in_shift = t->in_shift;
    size_t width = row_blocks(kn, end - first, count, t->taps * t->depth);
    for (size_t b0 = first; b0 < end;) {
        size_t group = end - b0 < width ? end - b0 : width;
        cut c = even_cut(count, kn->max_rows[group]);
        c.blocks = group;
        size_t lane = b0 * MISLASI_LANES;
        t->blocks = c.blocks;
        t->w_shift = lane;
        if (scale != NULL) {
            t->scale = scale + lane;
            t->shift = shift + lane;
        }
        for (size_t tile = 0; tile < c.tiles; tile++) {
            size_t p0 = tile_start(&c, tile);
            t->pixels = tile_start(&c, tile + 1) - p0;
            t->in_shift = in_shift + p0 * t->in_step;
            t->out = out + p0 * t->out_step + lane;
            if (residual != NULL)
                t->residual = residual + p0 * t->residual_step + lane;
            kn->tile(t);
        }
        b0 += c.blocks;
    }
}

/* The row-tap kernel's shapes (conv_kernels.h): 3x3, stride 1, 16 lanes. A
 * property of the layer, not of the instruction set, so that every copy
 * sums in the same order. */
static bool row_taps(const mislasi_conv_shape *s, size_t lanes)
{
    return s->k == MISLASI_ROW_TAPS && s->stride == 1 && lanes == MISLASI_LANES;
}

/* A row of `count` pixels through the row-tap kernel, in even tiles. */
static void row_tap_row(const mislasi_conv_kernels *kn, mislasi_conv_tile *t, size_t count)
{
    float *out = t->out;
    const float *residual = t->residual;
    cut c = even_cut(count, kn->max_row_pixels);
    t->blocks = 1;
    for (size_t tile = 0; tile < c.tiles; tile++) {
        size_t p0 = tile_start(&c, tile);
        t->pixels = tile_start(&c, tile + 1) - p0;
        t->in_shift = p0 * t->in_step;
        t->out = out + p0 * t->out_step;
        if (residual != NULL)
            t->residual = residual + p0 * t->residual_step;
        kn->row_tile(t);
    }
}

/* Channels summed per chunk when a layer's weights are too large for the
 * core's cache: a tile's panels (taps x depth x 64 lanes) over CHUNK_BYTES
 * would be read again from memory for every row of tiles. Cut into chunks,
 * each slice of weights stays in cache while the tiles of a whole image
 * use it, and the tiles go on summing from where the last chunk left off.
 * Decided by the shape alone, so the order of every sum (chunks, then taps,
 * then channels) is the same for every instruction set. */
enum { DEPTH_CHUNK = 64, CHUNK_BYTES = 256 << 10 };

static size_t depth_chunk(const mislasi_conv_shape *s, size_t depth)
{
    size_t bytes = s->k * s->k * depth * 4 * MISLASI_LANES * sizeof(float);
    return bytes > CHUNK_BYTES ? DEPTH_CHUNK : depth;
}

/* ---- forward ------------------------------------------------------------ */

typedef struct job {
    const mislasi_conv_shape *s;
    geometry g;
    const mislasi_conv_kernels *kn;
    const float *x;
    float *dy;
    const float *forward, *backward;    /* the prepared panels */
    float *y, *dw, *dx;
    float *scratch, *slots;
    size_t parts;
    size_t area;            /* floats of each part's area in scratch */
    mislasi_image_fn then, before;
    void *ctx;
    const mislasi_conv_affine *affine;
} job;

/* The tile's last step when the call has one (jb->affine), for outputs from
 * y + at on. */
static void set_epilogue(const job *jb, mislasi_conv_tile *t, size_t at)
{
    const mislasi_conv_affine *af = jb->affine;
    if (af == NULL)
        return;
    t->scale = af->scale;
    t->shift = af->shift;
    t->residual = af->residual == NULL ? NULL : af->residual + at;
    t->residual_step = jb->s->c_out;
    t->relu = af->relu;
}

/* The image's rows with pad zero columns either side (the image itself
 * when there is no padding). */
static const float *padded_input(const job *jb, const float *x, float *area)
{
    const mislasi_conv_shape *s = jb->s;
    if (s->pad == 0)
        return x;
    size_t c = s->c_in, side = s->pad * c, row = s->w * c;
    for (size_t r = 0; r < s->h; r++) {
        float *dst = area + r * jb->g.padded_w * c;
        memset(dst, 0, side * sizeof *dst);
        memcpy(dst + side, x + r * row, row * sizeof *dst);
        memset(dst + side + row, 0, side * sizeof *dst);
    }
    return area;
}

/* The taps of output row oh into in / w (channels from c0 on), their count
 * returned; the row-tap kernel's lists hold one entry per input row. */
static size_t forward_taps(const job *jb, const float *src, size_t src_w, size_t oh, size_t c0, bool rows,
        const float **in, const float **w)
{
    const mislasi_conv_shape *s = jb->s;
    size_t taps = 0;
    for (size_t kh = 0; kh < s->k; kh++) {
        size_t ih = oh * s->stride + kh;    /* + pad, in padded rows */
        if (ih < s->pad || ih - s->pad >= s->h)
            continue;
        const float *panels = jb->forward + kh * s->k * s->c_in * s->c_out + c0 * s->c_out;
        if (rows) {
            in[taps] = src + (ih - s->pad) * src_w * s->c_in + c0;
            for (size_t kw = 0; kw < s->k; kw++)
                w[taps * s->k + kw] = panels + kw * s->c_in * s->c_out;
            taps++;
            continue;
        }
        for (size_t kw = 0; kw < s->k; kw++) {
            /* input column ow s + kw - pad is padded column ow s + kw */
            in[taps] = src + ((ih - s->pad) * src_w + kw) * s->c_in + c0;
            w[taps] = panels + kw * s->c_in * s->c_out;
            taps++;
        }
    }
    return taps;
}

static void forward_image(const job *jb, float *area, size_t i)
{
    const mislasi_conv_shape *s = jb->s;
    const geometry *g = &jb->g;
    size_t in_size = s->h * s->w * s->c_in, out_size = g->oh * g->ow * s->c_out;
    const float *src = padded_input(jb, jb->x + i * in_size, area);
    size_t src_w = s->pad == 0 ? s->w : g->padded_w;
    float *y = jb->y + i * out_size;
    const float *in[MAX_TAPS], *w[MAX_TAPS];
    bool rows = row_taps(s, s->c_out);
    size_t blocks = s->c_out / MISLASI_LANES, chunk = depth_chunk(s, s->c_in);
    /* unchunked: one pass over the rows, every block of a row at once;
     * chunked: per group of blocks, per chunk, all the rows */
    for (size_t b0 = 0; b0 < blocks;) {
        size_t b1 = chunk == s->c_in ? blocks : b0 + row_blocks(jb->kn, blocks - b0, g->ow, g->taps * chunk);
        for (size_t c0 = 0; c0 < s->c_in; c0 += chunk) {
            bool last = c0 + chunk >= s->c_in;
            for (size_t oh = 0; oh < g->oh; oh++) {
                size_t row = oh * g->ow * s->c_out;
                mislasi_conv_tile t = {.depth = last ? s->c_in - c0 : chunk, .in = in, .w = w,
                                       .in_step = s->stride * s->c_in, .w_step = s->c_out, .out = y + row,
                                       .out_step = s->c_out, .accumulate = c0 > 0};
                if (last)
                    set_epilogue(jb, &t, i * out_size + row);
                t.taps = forward_taps(jb, src, src_w, oh, c0, rows, in, w);
                /* A row whose taps all fall in the padding (pad >= k) sums
                 * one tap of zeros instead, so that the epilogue stays in
                 * one place: the padded copy's first pad x c_in floats. */
                if (t.taps == 0) {
                    in[0] = area;
                    for (size_t kw = 0; kw < s->k; kw++)
                        w[kw] = jb->forward;
                    t.taps = 1;
                    t.in_step = 0;
                }
                if (rows)
                    row_tap_row(jb->kn, &t, g->ow);
                else
                    tile_row(jb->kn, &t, g->ow, b0, b1);
            }
        }
        b0 = b1;
    }
    if (jb->then != NULL)
        jb->then(jb->ctx, i, y);
}

/* Pixels of input a stretch of a 1x1 convolution's run holds: it stays in
 * the core's cache while every block of weights passes over it, and each
 * block of weights is read once per stretch (rather than once per output
 * row, which for the 7x7 layers of ImageNet ResNets is once per 7 pixels). */
enum { STRETCH_FLOATS = 32 << 10, STRETCH_MIN = 64 };

static size_t stretch_pixels(size_t depth)
{
    size_t pixels = STRETCH_FLOATS / depth;
    return pixels > STRETCH_MIN ? pixels : STRETCH_MIN;
}

/* One stretch of a 1x1 product, forward or input gradient: out[p][o] for
 * p < count, o < out_c, the chain over in[p][d] x panels[d][o], d < depth in
 * order (in chunks as depth_chunk says); `at` is out's offset in the call's
 * whole output, for the forward's epilogue (jb->affine). */
static void flat_stretch(const job *jb, const float *in, size_t depth, const float *panels, float *out,
        size_t out_c, size_t count, size_t at)
{
    size_t blocks = out_c / MISLASI_LANES, chunk = depth_chunk(jb->s, depth);
    for (size_t b0 = 0; b0 < blocks;) {
        size_t b1 = chunk == depth ? blocks : b0 + row_blocks(jb->kn, blocks - b0, count, chunk);
        for (size_t c0 = 0; c0 < depth; c0 += chunk) {
            const float *ins[1] = {in + c0}, *w[1] = {panels + c0 * out_c};
            mislasi_conv_tile t = {.taps = 1, .depth = depth - c0 < chunk ? depth - c0 : chunk, .in = ins, .w = w,
                                   .in_step = depth, .w_step = out_c, .out = out, .out_step = out_c,
                                   .accumulate = c0 > 0};
            if (c0 + chunk >= depth)
                set_epilogue(jb, &t, at);
            tile_row(jb->kn, &t, count, b0, b1);
        }
        b0 = b1;
    }
}

/* Images [i0, i1) of a 1x1 convolution without padding as one run of
 * pixels, cut into stretches; a stride's skipped pixels are left out by
 * gathering those it reads into the area first. Each output is the same
 * chain as forward_image's (channels in order, chunk after chunk). */
static void forward_flat(const job *jb, float *area, size_t i0, size_t i1)
{
    const mislasi_conv_shape *s = jb->s;
    const geometry *g = &jb->g;
    size_t hw = g->oh * g->ow, ci = s->c_in, co = s->c_out;
    const float *src = jb->x + i0 * s->h * s->w * ci;
    if (s->stride > 1) {
        for (size_t i = i0; i < i1; i++)
            for (size_t oh = 0; oh < g->oh; oh++)
                for (size_t ow = 0; ow < g->ow; ow++)
                    memcpy(area + (((i - i0) * g->oh + oh) * g->ow + ow) * ci,
                            jb->x + ((i * s->h + oh * s->stride) * s->w + ow * s->stride) * ci, ci * sizeof *area);
        src = area;
    }
    float *y = jb->y + i0 * hw * co;
    size_t pixels = (i1 - i0) * hw, stretch = stretch_pixels(ci), finished = i0;
    for (size_t p0 = 0; p0 < pixels; p0 += stretch) {
        size_t count = pixels - p0 < stretch ? pixels - p0 : stretch;
        flat_stretch(jb, src + p0 * ci, ci, jb->forward, y + p0 * co, co, count, (i0 * hw + p0) * co);
        /* the images this stretch completed, while they are in cache */
        if (jb->then != NULL)
            for (; (finished + 1 - i0) * hw <= p0 + count; finished++)
                jb->then(jb->ctx, finished, jb->y + finished * hw * co);
    }
}

/* Part p of jb->parts takes a contiguous run of images with its own area. */
static void forward_parts(void *ctx, size_t begin, size_t end)
{
    const job *jb = ctx;
    for (size_t p = begin; p < end; p++) {
        float *area = jb->scratch + p * jb->area;
        size_t i0 = part_first(jb->s, jb->parts, p), i1 = part_first(jb->s, jb->parts, p + 1);
        if (flat(jb->s))
            forward_flat(jb, area, i0, i1);
        else
            for (size_t i = i0; i < i1; i++)
                forward_image(jb, area, i);
    }
}

static job make_job(const mislasi_conv_shape *s, const float *prepared, float *work, size_t threads)
{
    job jb = {.s = s, .g = geometry_of(s), .kn = mislasi_conv_kernels_get(), .forward = prepared,
              .scratch = work};
    jb.backward = prepared + mislasi_align_floats(jb.g.taps_floats);
    jb.parts = parts_of(s, threads);
    jb.area = area_floats(s, &jb.g, jb.parts);
    jb.slots = work + jb.parts * jb.area;
    return jb;
}

void mislasi_conv_forward_prepared(const mislasi_conv_shape *s, const float *x, const float *prepared,
        float *y, float *work, size_t threads, mislasi_image_fn then, void *ctx)
{
    job jb = make_job(s, prepared, work, threads);
    jb.x = x;
    jb.y = y;
    jb.then = then;
    jb.ctx = ctx;
    mislasi_parallel_for(jb.parts, 1, forward_parts, &jb);
}

void mislasi_conv_forward_affine(const mislasi_conv_shape *s, const float *x, const float *prepared,
        float *y, float *work, size_t threads, const mislasi_conv_affine *affine)
{
    job jb = make_job(s, prepared, work, threads);
    jb.x = x;
    jb.y = y;
    jb.affine = affine;
    mislasi_parallel_for(jb.parts, 1, forward_parts, &jb);
}

/* ---- backward ----------------------------------------------------------- */

/* The output rows (or columns) whose tap at offset `tap` lands inside an
 * input of `size`: out * stride + tap - pad in [0, size), out < outs. */
static bool tap_range(size_t tap, size_t pad, size_t stride, size_t size, size_t outs, size_t *lo, size_t *hi)
{
    *lo = tap >= pad ? 0 : (pad - tap + stride - 1) / stride;
    if (size + pad < tap + 1)
        return false;
    size_t last = (size + pad - tap - 1) / stride;
    *hi = last + 1 < outs ? last + 1 : outs;
    return *lo < *hi;
}

/* Pixels of a piece of a pointwise layer's weight gradient: a piece's dy
 * for one block of 64 output channels (32 KB) stays in the first-level
 * cache while every tile of input channels passes over it. */
enum { WGRAD_PIECE = 128 };

/* A pointwise layer's weight gradient: the group's pixels are one run, x
 * and dy alike, taken piece by piece for each block of output channels;
 * each tile's chain goes on from piece to piece, so every sum is still over
 * the pixels in order (images, rows, columns), as weight_gradient's. */
static void weight_gradient_pointwise(const job *jb, size_t first, size_t count, float *slot)
{
    const mislasi_conv_shape *s = jb->s;
    size_t ci_n = s->c_in, co_n = s->c_out, hw = s->h * s->w, pixels = count * hw;
    size_t blocks = co_n / MISLASI_LANES;
    for (size_t b0 = 0; b0 < blocks;) {
        cut c = cut_of(jb->kn, blocks - b0, ci_n);
        for (size_t p0 = 0; p0 < pixels; p0 += WGRAD_PIECE) {
            const float *xs[1] = {jb->x + (first * hw + p0) * ci_n}, *dys[1] = {jb->dy + (first * hw + p0) * co_n};
            mislasi_conv_wgrad wg = {.runs = 1, .length = pixels - p0 < WGRAD_PIECE ? pixels - p0 : WGRAD_PIECE,
                                     .x = xs, .dy = dys, .x_step = ci_n, .dy_step = co_n, .out_step = co_n,
                                     .blocks = c.blocks, .dy_shift = b0 * MISLASI_LANES, .accumulate = p0 > 0};
            for (size_t tile = 0; tile < c.tiles; tile++) {
                size_t ci0 = tile_start(&c, tile);
                wg.rows = tile_start(&c, tile + 1) - ci0;
                wg.x_shift = ci0;
                wg.out = slot + ci0 * co_n + b0 * MISLASI_LANES;
                jb->kn->wgrad(&wg);
            }
        }
        b0 += c.blocks;
    }
}

/* The group's slot = its images' weight gradient, tap by tap c_in x c_out,
 * for taps [tap0, tap1). */
static void weight_gradient(const job *jb, size_t first, size_t count, float *slot, size_t tap0, size_t tap1)
{
    const mislasi_conv_shape *s = jb->s;
    const geometry *g = &jb->g;
    size_t ci_n = s->c_in, co_n = s->c_out;
    const float *xs[RUNS_PER_CALL], *dys[RUNS_PER_CALL];
    if (pointwise(s)) {
        weight_gradient_pointwise(jb, first, count, slot);
        return;
    }
    for (size_t tap = tap0; tap < tap1; tap++) {
        size_t kh = tap / s->k, kw = tap % s->k;
        float *out = slot + (kh * s->k + kw) * ci_n * co_n;
        size_t oh0, oh1, ow0, ow1;
        if (!tap_range(kh, s->pad, s->stride, s->h, g->oh, &oh0, &oh1)
                || !tap_range(kw, s->pad, s->stride, s->w, g->ow, &ow0, &ow1)) {
            memset(out, 0, ci_n * co_n * sizeof *out);
            continue;
        }
        size_t rows = oh1 - oh0, runs = count * rows;
        mislasi_conv_wgrad wg = {.length = ow1 - ow0, .x = xs, .dy = dys, .x_step = s->stride * ci_n,
                                 .dy_step = co_n, .out_step = co_n};
        size_t blocks = co_n / MISLASI_LANES;
        for (size_t b0 = 0; b0 < blocks;) {
            cut c = cut_of(jb->kn, blocks - b0, ci_n);
            wg.blocks = c.blocks;
            for (size_t tile = 0; tile < c.tiles; tile++) {
                size_t ci0 = tile_start(&c, tile);
                wg.rows = tile_start(&c, tile + 1) - ci0;
                wg.x_shift = ci0;
                wg.dy_shift = b0 * MISLASI_LANES;
                wg.out = out + ci0 * co_n + b0 * MISLASI_LANES;
                for (size_t r0 = 0; r0 < runs; r0 += RUNS_PER_CALL) {
                    wg.runs = runs - r0 < RUNS_PER_CALL ? runs - r0 : RUNS_PER_CALL;
                    for (size_t r = 0; r < wg.runs; r++) {
                        size_t img = first + (r0 + r) / rows, oh = oh0 + (r0 + r) % rows;
                        size_t ih = oh * s->stride + kh - s->pad, iw = ow0 * s->stride + kw - s->pad;
                        xs[r] = jb->x + ((img * s->h + ih) * s->w + iw) * ci_n;
                        dys[r] = jb->dy + ((img * g->oh + oh) * g->ow + ow0) * co_n;
                    }
                    wg.accumulate = r0 > 0;
                    jb->kn->wgrad(&wg);
                }
            }
            b0 += c.blocks;
        }
    }
}

/* Image i's output gradient into area, with dy_margin zero columns either side. */
static void pad_output_gradient(const job *jb, float *area, size_t i)
{
    const geometry *g = &jb->g;
    size_t co_n = jb->s->c_out, margin = g->dy_margin;
    const float *dy = jb->dy + i * g->oh * g->ow * co_n;
    for (size_t r = 0; r < g->oh; r++) {
        float *dst = area + r * g->dy_w * co_n;
        memset(dst, 0, margin * co_n * sizeof *dst);
        memcpy(dst + margin * co_n, dy + r * g->ow * co_n, g->ow * co_n * sizeof *dst);
        memset(dst + (margin + g->ow) * co_n, 0, margin * co_n * sizeof *dst);
    }
}

/* The row-tap weight gradient (3x3, stride 1, 16 output channels) of image
 * i, added to the group's slot: each input pixel's value is broadcast once
 * for its three horizontal taps, against the image's padded output
 * gradient in area (whose zero margins stand for the taps that fall
 * outside: their terms are exact zeros). */
static void row_weight_gradient(const job *jb, const float *area, size_t i, float *slot)
{
    const mislasi_conv_shape *s = jb->s;
    const geometry *g = &jb->g;
    size_t ci_n = s->c_in, co_n = s->c_out;
    const float *xs[RUNS_PER_CALL], *dys[RUNS_PER_CALL];
    cut c = even_cut(ci_n, jb->kn->max_row_wgrad_rows);
    for (size_t kh = 0; kh < s->k; kh++) {
        size_t oh0, oh1;
        if (!tap_range(kh, s->pad, 1, s->h, g->oh, &oh0, &oh1))
            continue;
        mislasi_conv_wgrad wg = {.length = s->w, .x = xs, .dy = dys, .x_step = ci_n, .dy_step = co_n,
                                 .out_step = co_n, .out_tap = ci_n * co_n, .blocks = 1, .accumulate = true};
        for (size_t tile = 0; tile < c.tiles; tile++) {
            size_t ci0 = tile_start(&c, tile);
            wg.rows = tile_start(&c, tile + 1) - ci0;
            wg.x_shift = ci0;
            wg.out = slot + kh * s->k * ci_n * co_n + ci0 * co_n;
            for (size_t r0 = oh0; r0 < oh1; r0 += RUNS_PER_CALL) {
                wg.runs = oh1 - r0 < RUNS_PER_CALL ? oh1 - r0 : RUNS_PER_CALL;
                for (size_t r = 0; r < wg.runs; r++) {
                    size_t oh = r0 + r, ih = oh + kh - s->pad;
                    xs[r] = jb->x + (i * s->h + ih) * s->w * ci_n;
                    /* input column q meets output column q + pad - tap */
                    dys[r] = area + (oh * g->dy_w + g->dy_margin + s->pad) * co_n;
                }
                jb->kn->row_wgrad(&wg);
            }
        }
    }
}

/* dx of image i from its output gradient, padded in area. */
/* The taps reaching input row ih's pixels of class pw (iw = pw + j stride)
 * into in / w (output channels from c0 on), their count returned. */
static size_t input_gradient_taps(const job *jb, const float *area, size_t ih, size_t pw, size_t c0, bool rows,
        const float **in, const float **w)
{
    const mislasi_conv_shape *s = jb->s;
    const geometry *g = &jb->g;
    size_t ci_n = s->c_in, co_n = s->c_out, st = s->stride, margin = g->dy_margin, taps = 0;
    for (size_t kh = 0; kh < s->k; kh++) {
        size_t top = ih + s->pad;           /* oh st + kh = top */
        if (top < kh || (top - kh) % st != 0 || (top - kh) / st >= g->oh)
            continue;
        size_t oh = (top - kh) / st;
        const float *panels = jb->backward + kh * s->k * co_n * ci_n + c0 * ci_n;
        if (rows) {
            /* stride 1: dx[iw] takes dy[iw + pad - kw] through tap kw; tap
             * i of the kernel is kw = 2 - i, so that the column it reads
             * grows with i */
            in[taps] = area + (oh * g->dy_w + margin + s->pad - (s->k - 1)) * co_n + c0;
            for (size_t i = 0; i < s->k; i++)
                w[taps * s->k + i] = panels + (s->k - 1 - i) * co_n * ci_n;
            taps++;
            continue;
        }
        for (size_t kw = 0; kw < s->k; kw++) {
            /* ow = j + (pw + pad - kw) / st, exactly divisible */
            long num = (long)(pw + s->pad) - (long)kw;
            if (((num % (long)st) + (long)st) % (long)st != 0)
                continue;
            long col = num / (long)st + (long)margin;
            in[taps] = area + (oh * g->dy_w + (size_t)col) * co_n + c0;
            w[taps] = panels + kw * co_n * ci_n;
            taps++;
        }
    }
    return taps;
}

/* dx of image i from its output gradient, padded in area; in chunks of
 * output channels as the forward's (depth_chunk). */
static void input_gradient(const job *jb, const float *area, size_t i)
{
    const mislasi_conv_shape *s = jb->s;
    size_t ci_n = s->c_in, co_n = s->c_out, st = s->stride;
    float *dx = jb->dx + i * s->h * s->w * ci_n;
    const float *in[MAX_TAPS], *w[MAX_TAPS];
    bool rows = row_taps(s, ci_n);
    size_t blocks = ci_n / MISLASI_LANES, chunk = depth_chunk(s, co_n);
    for (size_t b0 = 0; b0 < blocks;) {
        size_t b1 = chunk == co_n ? blocks
                                  : b0 + row_blocks(jb->kn, blocks - b0, (s->w + st - 1) / st, jb->g.taps * chunk);
        for (size_t c0 = 0; c0 < co_n; c0 += chunk)
            for (size_t ih = 0; ih < s->h; ih++)
                for (size_t pw = 0; pw < st && pw < s->w; pw++) {
                    size_t count = (s->w - pw + st - 1) / st;
                    mislasi_conv_tile t = {.depth = co_n - c0 < chunk ? co_n - c0 : chunk, .in = in, .w = w,
                                           .in_step = co_n, .w_step = ci_n,
                                           .out = dx + (ih * s->w + pw) * ci_n, .out_step = st * ci_n,
                                           .accumulate = c0 > 0};
                    t.taps = input_gradient_taps(jb, area, ih, pw, c0, rows, in, w);
                    if (t.taps == 0) {
                        /* no tap reaches these pixels (a stride's gaps) */
                        if (c0 == 0)
                            for (size_t j = 0; j < count; j++)
                                memset(t.out + j * t.out_step + b0 * MISLASI_LANES, 0,
                                        (b1 - b0) * MISLASI_LANES * sizeof(float));
                        continue;
                    }
                    if (rows)
                        row_tap_row(jb->kn, &t, count);
                    else
                        tile_row(jb->kn, &t, count, b0, b1);
                }
        b0 = b1;
    }
}

/* A pointwise layer's input gradient, dx[p] = the chain over the output
 * channels of dy[p] against the transposed weights, is a forward product of
 * its own: images [first, first + count) as one run, with no padded copy of
 * dy (no tap reaches outside). Same chains as input_gradient. */
static void input_gradient_flat(const job *jb, size_t first, size_t count)
{
    const mislasi_conv_shape *s = jb->s;
    size_t hw = s->h * s->w, ci = s->c_in, co = s->c_out;
    const float *dy = jb->dy + first * hw * co;
    float *dx = jb->dx + first * hw * ci;
    size_t pixels = count * hw, stretch = stretch_pixels(co);
    for (size_t p0 = 0; p0 < pixels; p0 += stretch)
        flat_stretch(jb, dy + p0 * co, co, jb->backward, dx + p0 * ci, ci,
                pixels - p0 < stretch ? pixels - p0 : stretch, 0);
}

/* With fewer groups than threads (large images, small batches) the
 * weight gradient is shared out by (group, tap) and the input gradient by
 * image, in two passes; each slot entry is still one chain, so the bits are
 * those of the one-pass order. */
static void weight_gradient_items(void *ctx, size_t begin, size_t end)
{
    const job *jb = ctx;
    for (size_t item = begin; item < end; item++) {
        size_t group = item / jb->g.taps, tap = item % jb->g.taps, first = group * jb->g.group;
        size_t count = jb->s->n - first < jb->g.group ? jb->s->n - first : jb->g.group;
        weight_gradient(jb, first, count, jb->slots + group * mislasi_align_floats(jb->g.taps_floats), tap, tap + 1);
    }
}

/* before() on each image of [first, first + count) (see nn.h). */
static void prepare_output_gradients(const job *jb, size_t first, size_t count)
{
    if (jb->before == NULL)
        return;
    size_t out_size = jb->g.oh * jb->g.ow * jb->s->c_out;
    for (size_t i = first; i < first + count; i++)
        jb->before(jb->ctx, i, jb->dy + i * out_size);
}

static void prepare_parts(void *ctx, size_t begin, size_t end)
{
    const job *jb = ctx;
    for (size_t p = begin; p < end; p++) {
        size_t i0 = part_first(jb->s, jb->parts, p), i1 = part_first(jb->s, jb->parts, p + 1);
        prepare_output_gradients(jb, i0, i1 - i0);
    }
}

static void input_gradient_parts(void *ctx, size_t begin, size_t end)
{
    const job *jb = ctx;
    for (size_t p = begin; p < end; p++) {
        float *area = jb->scratch + p * jb->area;
        size_t i0 = part_first(jb->s, jb->parts, p), i1 = part_first(jb->s, jb->parts, p + 1);
        if (pointwise(jb->s)) {
            input_gradient_flat(jb, i0, i1 - i0);
            continue;
        }
        for (size_t i = i0; i < i1; i++) {
            pad_output_gradient(jb, area, i);
            input_gradient(jb, area, i);
        }
    }
}

static void backward_parts(void *ctx, size_t begin, size_t end)
{
    const job *jb = ctx;
    for (size_t p = begin; p < end; p++) {
        float *area = jb->scratch + p * jb->area;
        size_t g0 = jb->g.groups * p / jb->parts, g1 = jb->g.groups * (p + 1) / jb->parts;
        for (size_t group = g0; group < g1; group++) {
            size_t first = group * jb->g.group;
            size_t count = jb->s->n - first < jb->g.group ? jb->s->n - first : jb->g.group;
            float *slot = jb->slots + group * mislasi_align_floats(jb->g.taps_floats);
            bool rows = row_taps(jb->s, jb->s->c_out);
            prepare_output_gradients(jb, first, count);
            if (rows)
                memset(slot, 0, jb->g.taps_floats * sizeof *slot);
            else
                weight_gradient(jb, first, count, slot, 0, jb->g.taps);
            if (pointwise(jb->s)) {
                if (jb->dx != NULL)
                    input_gradient_flat(jb, first, count);
                continue;
            }
            for (size_t i = first; i < first + count; i++) {
                if (!rows && jb->dx == NULL)
                    break;
                pad_output_gradient(jb, area, i);
                if (rows)
                    row_weight_gradient(jb, area, i, slot);
                if (jb->dx != NULL)
                    input_gradient(jb, area, i);
            }
        }
    }
}

/* Slot 0 += every other group's slot, in group order, over slot entries
 * [begin, end) (contiguous, so the additions vectorise). */
static void sum_slots(void *ctx, size_t begin, size_t end)
{
    const job *jb = ctx;
    size_t stride = mislasi_align_floats(jb->g.taps_floats);
    for (size_t group = 1; group < jb->g.groups; group++) {
        const float *slot = jb->slots + group * stride;
        for (size_t e = begin; e < end; e++)
            jb->slots[e] += slot[e];
    }
}

void mislasi_conv_backward_prepared(const mislasi_conv_shape *s, const float *x, const float *prepared,
        float *dy, mislasi_image_fn before, void *ctx, mislasi_partial_fn partial, void *partial_ctx,
        float *dw, float *dx, float *work, size_t threads)
{
    job jb = make_job(s, prepared, work, threads);
    jb.x = x;
    jb.dy = dy;
    jb.before = before;
    jb.ctx = ctx;
    jb.dw = dw;
    jb.dx = dx;
    if (jb.g.groups >= threads || row_taps(s, s->c_out)) {
        /* one pass: a group's weight and input gradients while its data is in cache */
        jb.parts = threads < jb.g.groups ? threads : jb.g.groups;
        mislasi_parallel_for(jb.parts, 1, backward_parts, &jb);
    } else {
        mislasi_parallel_for(jb.parts, 1, prepare_parts, &jb);
        mislasi_parallel_for(jb.g.groups * jb.g.taps, 1, weight_gradient_items, &jb);
        if (dx != NULL)
            mislasi_parallel_for(jb.parts, 1, input_gradient_parts, &jb);
    }
    size_t ci_n = s->c_in, co_n = s->c_out;
    const float *before_sum = partial != NULL ? partial(partial_ctx) : NULL;
    if (before_sum != NULL)
        /* the first addition of the chain: what the images before these sum to */
        for (size_t co = 0; co < co_n; co++)
            for (size_t ci = 0; ci < ci_n; ci++)
                for (size_t t = 0; t < jb.g.taps; t++)
                    jb.slots[(t * ci_n + ci) * co_n + co] += before_sum[(co * ci_n + ci) * jb.g.taps + t];
    mislasi_parallel_for(jb.g.taps_floats, 4096, sum_slots, &jb);
    for (size_t co = 0; co < co_n; co++)
        for (size_t ci = 0; ci < ci_n; ci++)
            for (size_t t = 0; t < jb.g.taps; t++)
                dw[(co * ci_n + ci) * jb.g.taps + t] = jb.slots[(t * ci_n + ci) * co_n + co];
}
