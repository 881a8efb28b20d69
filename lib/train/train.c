/* MiSLAS's two training stages (train.h). Both run the same epoch loop:
 * sample, assemble and augment a batch, optionally mix it up, forward, loss,
 * backward, SGD step; a checkpoint after every epoch. What differs between
 * the stages (sampler, model state, loss, schedule, batches per epoch) is
 * settled before the loop starts.
 *
 * Everything random is a function of (seed, epoch, step): the sampler jumps
 * to an epoch, augmentation and mixup are keyed by the batch's global step.
 * So a resumed run needs nothing from the interrupted one but the model and
 * the optimiser's momentum, and it continues bit for bit.
 *
 * With a communicator every rank runs this same loop over the same batches
 * (the same sampler, seed and schedule), makes only its share of each batch
 * (and, under mixup, its share's partner images, drawn as the whole batch
 * draws them), and the model exchanges what the batch sums
 * (mislasi_model_forward_shared): the loss, the step and the checkpoint are
 * the whole batch's on every rank, so a run may resume on another number of
 * ranks. Rank 0 alone writes the checkpoint. */
#include <mislas/mixup.h>
#include <mislas/schedule.h>
#include <mislas/train.h>

#include "prefetch.h"

#include "data/data.h"
#include "model/model.h"
#include "util/util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Mixup's stream must differ from the sampler's and augmentation's even
 * though all three start from the run's seed. */
static const uint64_t MIXUP_SEED_SALT = 0x6d69787570ull;

/* ---- the run's digest: a resume continues only the same run ------------- */

#define DIGEST(h, v) do { __typeof__(v) v_ = (v); mislasi_digest_bytes((h), &v_, sizeof v_); } while (0)

static void digest_floats(uint64_t *h, const float *v, int32_t n)
{
    if (v == NULL)
        DIGEST(h, (uint8_t)0);
    else
        mislasi_digest_bytes(h, v, (size_t)n * sizeof *v);
}

/* What both stages' runs depend on alike: the batches' making, the data,
 * and with per-rank batch norm the number of ranks (whose shares it
 * normalises; synchronised BN, or none, gives the same bits on any number,
 * and leaves the digest as it was before ranks existed). */
static void digest_data(uint64_t *h, int32_t augment, const float *mean, const float *std, int32_t channels,
        uint64_t seed, const mislas_dataset *d, const mislas_comm *comm, int32_t bn_per_rank)
{
    if (comm != NULL && bn_per_rank)
        DIGEST(h, mislas_comm_size(comm));
    DIGEST(h, augment != 0);
    digest_floats(h, mean, channels);
    digest_floats(h, std, channels);
    DIGEST(h, seed);
    mislasi_dataset_digest(h, d);
}

/* ---- the loop shared by both stages ------------------------------------ */

typedef struct run {
    const char *fn;
    int32_t stage;
    mislas_model *model;
    const mislas_dataset *data;
    mislas_optimizer *opt;
    mislas_loss *loss;
    mislas_sampler *sampler;
    mislas_dataset_batch_options batch_opts;
    float mixup_alpha;
    uint64_t seed;
    int32_t epochs;
    size_t batch;
    size_t steps;               /* batches per epoch */
    size_t last_batch;          /* images in an epoch's last batch */
    double *lr;                 /* per epoch */
    const char *checkpoint_path;
    mislasi_run_record record;
    mislas_progress_fn progress;
    void *progress_data;

    mislas_comm *comm;          /* NULL: one process */
    bool bn_per_rank;
    size_t quantum;             /* the model's: shares are whole quanta */
    uint32_t *perm;             /* a shared batch's mixup partners (batch) */
    size_t *places;             /* a share's images' places in the batch, then their partners' */
    size_t *share_indices;      /* the data set's indices of those */
    int32_t *labels_whole;      /* a shared batch's labels (batch) */

    size_t image_size;
    int32_t k;
    size_t *indices;
    mislasi_prefetch prefetch;  /* the batches, the next made during the current step */
    float *logits, *grad;
    int32_t *labels_b;
} run;

static void run_free(run *r)
{
    mislas_optimizer_free(r->opt);
    mislas_loss_free(r->loss);
    mislas_sampler_free(r->sampler);
    mislasi_free(r->lr);
    mislasi_free(r->indices);
    mislasi_prefetch_free(&r->prefetch);
    mislasi_free(r->logits);
    mislasi_free(r->grad);
    mislasi_free(r->labels_b);
    mislasi_free(r->perm);
    mislasi_free(r->places);
    mislasi_free(r->share_indices);
    mislasi_free(r->labels_whole);
}

static int run_alloc(run *r)
{
    int32_t c, h, w;
    mislas_dataset_shape(r->data, &c, &h, &w);
    r->image_size = (size_t)c * (size_t)h * (size_t)w;
    r->k = mislas_dataset_num_classes(r->data);
    r->lr = mislasi_calloc((size_t)r->epochs, sizeof *r->lr);
    r->indices = mislasi_calloc(r->batch, sizeof *r->indices);
    r->logits = mislasi_calloc(r->batch, (size_t)r->k * sizeof *r->logits);
    r->grad = mislasi_calloc(r->batch, (size_t)r->k * sizeof *r->grad);
    r->labels_b = mislasi_calloc(r->batch, sizeof *r->labels_b);
    if (r->lr == NULL || r->indices == NULL || r->logits == NULL || r->grad == NULL || r->labels_b == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for the batch buffers", r->fn);
    size_t made = r->batch;     /* images made per batch */
    if (r->comm != NULL) {
        /* a share and, under mixup, its partners */
        made = r->mixup_alpha > 0 ? 2 * r->batch : r->batch;
        r->quantum = mislasi_model_quantum(r->model);
        size_t smallest = r->last_batch < r->batch ? r->last_batch : r->batch;
        if (r->bn_per_rank && (smallest + r->quantum - 1) / r->quantum < (size_t)r->comm->size)
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: bn_per_rank needs images of every batch on "
                    "every rank, but the batches are shared in groups of %zu images and a batch of %zu (the "
                    "epoch's last) makes fewer groups than the %d ranks (choose a batch size or ranks so that "
                    "it does not, or synchronised BN)", r->fn, r->quantum, smallest, (int)r->comm->size);
        r->perm = mislasi_calloc(r->batch, sizeof *r->perm);
        r->places = mislasi_calloc(made, sizeof *r->places);
        r->share_indices = mislasi_calloc(made, sizeof *r->share_indices);
        r->labels_whole = mislasi_calloc(r->batch, sizeof *r->labels_whole);
        if (r->perm == NULL || r->places == NULL || r->share_indices == NULL || r->labels_whole == NULL)
            return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for the batch buffers", r->fn);
    }
    return mislasi_prefetch_init(&r->prefetch, r->fn, r->data, &r->batch_opts, made);
}

static int step_failed(const run *r, int32_t epoch, size_t step, int status)
{
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%s: epoch %d, step %zu", r->fn, (int)epoch + 1, step + 1);
    return mislasi_fail_within(status, prefix);
}

/* Images in step s of an epoch. */
static size_t step_size(const run *r, size_t s)
{
    return s + 1 == r->steps ? r->last_batch : r->batch;
}

/* This rank's share of a batch of n images. */
static mislasi_share share_of(const run *r, size_t n)
{
    mislasi_share sh = {.comm = r->comm, .whole = n, .n = n, .bn_per_rank = r->bn_per_rank};
    if (r->comm != NULL)
        mislasi_share_of(n, r->quantum, r->comm->size, r->comm->rank, &sh.first, &sh.n);
    return sh;
}

/* Draws step s's images from the sampler and starts making their batch (a
 * shared batch: this rank's share, then under mixup its partners, each made
 * as its place in the whole batch makes it). */
static int start_batch(run *r, int32_t epoch, size_t s)
{
    size_t n = step_size(r, s);
    uint64_t batch_id = (uint64_t)epoch * r->steps + s;
    int status = mislas_sampler_next(r->sampler, r->indices, n);
    if (status != MISLAS_OK)
        return status;
    if (r->comm == NULL) {
        mislasi_prefetch_start(&r->prefetch, r->indices, NULL, n, batch_id);
        return MISLAS_OK;
    }
    mislasi_share sh = share_of(r, n);
    size_t made = 0;
    for (size_t i = sh.first; i < sh.first + sh.n; i++)
        r->places[made++] = i;
    if (r->mixup_alpha > 0) {
        float lambda;
        mislasi_mixup_draw(n, r->mixup_alpha, r->seed ^ MIXUP_SEED_SALT, batch_id, r->perm, &lambda);
        for (size_t i = sh.first; i < sh.first + sh.n; i++)
            r->places[made++] = r->perm[i];
    }
    for (size_t i = 0; i < made; i++)
        r->share_indices[i] = r->indices[r->places[i]];
    mislasi_prefetch_start(&r->prefetch, r->share_indices, r->places, made, batch_id);
    return MISLAS_OK;
}

/* A shared batch's labels, mixup's lambda and partner labels for the whole
 * batch (from step s's indices, before the next step's are drawn), and this
 * rank's images mixed with their partners, as mislas_mixup mixes them. */
static void prepare_shared_batch(run *r, size_t n, uint64_t batch_id, float *images, float *lambda)
{
    const int32_t *labels = mislas_dataset_labels(r->data);
    for (size_t i = 0; i < n; i++)
        r->labels_whole[i] = labels[r->indices[i]];
    if (r->mixup_alpha <= 0)
        return;
    mislasi_mixup_draw(n, r->mixup_alpha, r->seed ^ MIXUP_SEED_SALT, batch_id, r->perm, lambda);
    for (size_t i = 0; i < n; i++)
        r->labels_b[i] = r->labels_whole[r->perm[i]];
    mislasi_share sh = share_of(r, n);
    for (size_t i = 0; i < sh.n; i++)
        mislasi_mixup_pair(images + i * r->image_size, images + (sh.n + i) * r->image_size, r->image_size,
                *lambda);
}

/* Every rank's status made one (one process: its own). */
static int agree(const run *r, int status)
{
    return r->comm != NULL ? mislasi_comm_agree(r->fn, r->comm, status) : status;
}

/* One batch, made while the step before ran: returns its loss and
 * lambda-weighted hits, and starts the next batch of the epoch. */
static int train_step(run *r, int32_t epoch, size_t step, size_t n, double *loss_sum, double *hits)
{
    float *images;
    int32_t *labels;
    uint64_t batch_id = (uint64_t)epoch * r->steps + step;
    float lambda = 1.0f;
    int status = mislasi_prefetch_take(&r->prefetch, &images, &labels);
    if (status == MISLAS_OK && r->comm != NULL) {
        prepare_shared_batch(r, n, batch_id, images, &lambda);
        labels = r->labels_whole;
    }
    if (status == MISLAS_OK && step + 1 < r->steps)
        status = start_batch(r, epoch, step + 1);
    if (status == MISLAS_OK && r->comm == NULL && r->mixup_alpha > 0)
        status = mislas_mixup(images, r->labels_b, &lambda, labels, n, r->image_size,
                r->mixup_alpha, r->seed ^ MIXUP_SEED_SALT, batch_id);
    status = agree(r, status);  /* a rank's files may fail it alone */
    if (status == MISLAS_OK) {
        mislasi_share sh = share_of(r, n);
        status = mislasi_model_forward_shared(r->model, images, &sh, r->logits, true);
    }
    float loss = 0;
    if (status == MISLAS_OK)
        status = r->mixup_alpha > 0
                ? mislas_loss_compute_mixup(r->loss, r->logits, labels, r->labels_b, lambda, n, &loss, r->grad)
                : mislas_loss_compute(r->loss, r->logits, labels, n, &loss, r->grad);
    if (status == MISLAS_OK)
        status = mislasi_model_backward_shared(r->model, r->grad);
    if (status == MISLAS_OK)
        status = mislas_optimizer_step(r->opt);
    if (status != MISLAS_OK)
        return step_failed(r, epoch, step, status);
    *loss_sum += (double)loss * (double)n;
    for (size_t i = 0; i < n; i++) {
        size_t pred = mislasi_arg_max(r->logits + i * (size_t)r->k, (size_t)r->k);
        if (r->mixup_alpha > 0)
            *hits += lambda * (pred == (size_t)labels[i]) + (1.0 - lambda) * (pred == (size_t)r->labels_b[i]);
        else
            *hits += pred == (size_t)labels[i];
    }
    return MISLAS_OK;
}

/* The progress callback's answer, the same on every rank: any rank's
 * callback may cancel the run. */
static int report(const run *r, const mislas_progress *p)
{
    int status = MISLAS_OK;
    if (r->progress != NULL && r->progress(p, r->progress_data) != 0)
        status = mislasi_fail(MISLAS_ERR_CANCELLED, "%s: cancelled by the progress callback %s epoch %d, step %zu",
                r->fn, p->epoch_done ? "after" : "at", (int)p->epoch + 1, p->step);
    return agree(r, status);
}

static int run_epochs(run *r, int32_t first_epoch)
{
    for (int32_t e = first_epoch; e < r->epochs; e++) {
        int status = mislas_optimizer_set_lr(r->opt, r->lr[e]);
        if (status == MISLAS_OK)
            status = mislas_sampler_set_epoch(r->sampler, e);
        if (status == MISLAS_OK)
            status = start_batch(r, e, 0);
        if (status != MISLAS_OK)
            return mislasi_fail_within(status, r->fn);
        r->prefetch.waited = 0;
        if (r->comm != NULL)
            r->comm->waited = 0;
        double start = mislasi_seconds(), loss_sum = 0, hits = 0;
        size_t images = 0;
        mislas_progress p = {.struct_size = sizeof p, .stage = r->stage, .epoch = e, .epochs = r->epochs,
                             .steps = r->steps, .lr = r->lr[e]};
        for (size_t s = 0; s < r->steps; s++) {
            size_t n = step_size(r, s);
            status = train_step(r, e, s, n, &loss_sum, &hits);
            if (status != MISLAS_OK)
                return status;
            images += n;
            p.step = s + 1;
            p.loss = loss_sum / (double)images;
            p.accuracy = hits / (double)images;
            p.images_per_second = (double)images / fmax(mislasi_seconds() - start, 1e-9);
            p.data_wait_seconds = r->prefetch.waited;
            p.comm_wait_seconds = r->comm != NULL ? r->comm->waited : 0.0;
            status = report(r, &p);
            if (status != MISLAS_OK)
                return status;
        }
        if (r->checkpoint_path != NULL) {
            /* rank 0 writes it once every rank has finished the epoch */
            r->record.epochs_done = e + 1;
            status = agree(r, MISLAS_OK);
            if (status == MISLAS_OK && mislas_comm_rank(r->comm) == 0)
                status = mislasi_checkpoint_write(r->fn, r->checkpoint_path, r->model, r->opt, &r->record);
            status = agree(r, status);
            if (status != MISLAS_OK)
                return status;
        }
        p.epoch_done = 1;
        status = report(r, &p);
        if (status != MISLAS_OK && e + 1 < r->epochs)
            return status;
    }
    return MISLAS_OK;
}

/* With resume set and a checkpoint of this very run at checkpoint_path, the
 * model and optimiser take its state; *first_epoch is where to go on. */
static int resume_from_checkpoint(run *r, int32_t *first_epoch)
{
    *first_epoch = 0;
    if (mislasi_path_kind_of(r->checkpoint_path) != MISLASI_PATH_FILE)
        return MISLAS_OK;
    mislas_model *saved = NULL;
    mislas_optimizer *saved_opt = NULL;
    mislasi_run_record rec;
    int status = mislasi_checkpoint_read(r->checkpoint_path, &saved, &saved_opt, &rec);
    if (status != MISLAS_OK)
        return mislasi_fail_within(status, r->fn);
    mislas_model *m = r->model;
    if (rec.stage != r->stage || rec.digest != r->record.digest || rec.epochs != r->epochs)
        status = mislasi_fail(MISLAS_ERR_STATE,
                "%s: %s holds %s, not this run (other options or data); remove it or choose another path",
                r->fn, r->checkpoint_path, rec.stage == 0 ? "no training run" : rec.stage != r->stage
                ? (rec.stage == 1 ? "a stage-1 run" : "a stage-2 run") : "another run of this stage");
    else if (saved_opt == NULL || !mislasi_model_same_kind(saved, m))
        status = mislasi_fail(MISLAS_ERR_STATE, "%s: %s holds a model or optimiser of another shape than this run's",
                r->fn, r->checkpoint_path);
    if (status == MISLAS_OK)
        status = mislasi_model_take_state(m, saved);
    if (status == MISLAS_OK) {
        mislasi_optimizer_take_state(r->opt, saved_opt);
        *first_epoch = rec.epochs_done;
    }
    mislas_optimizer_free(saved_opt);
    mislas_model_free(saved);
    return status;
}

/* Every rank must run the same run (options and data), and have read the
 * same checkpoint (a path every rank sees: one file on a shared file
 * system), or none. */
static int same_run_everywhere(run *r, int32_t first)
{
    int status = mislasi_comm_same(r->fn, r->comm, &r->record.digest, sizeof r->record.digest, "options or data");
    if (status == MISLAS_OK)
        status = mislasi_comm_same(r->fn, r->comm, &first, sizeof first, "checkpoint to resume (every rank must "
                "read the same file at checkpoint_path: one file on a shared file system)");
    /* BLIS's kernel sets sum the classifier's products in other orders (skx
     * and haswell differ), and every rank computes the classifier itself */
    char kernels[32] = {0};
    snprintf(kernels, sizeof kernels, "%s", mislas_blas_kernels());
    if (status == MISLAS_OK)
        status = mislasi_comm_same(r->fn, r->comm, kernels, sizeof kernels, "BLIS kernels (mislas_blas_kernels: "
                "mixed AVX-512 and AVX2 machines must pin one with MISLAS_BLIS_ARCH)");
    uint64_t model = mislasi_model_digest(r->model);
    if (status == MISLAS_OK)
        status = mislasi_comm_same(r->fn, r->comm, &model, sizeof model, "model (its weights, from its seed or a "
                "checkpoint)");
    return status;
}

static int run_start(run *r, int resume)
{
    int32_t first = 0;
    int status = MISLAS_OK;
    if (r->checkpoint_path != NULL && resume)
        status = resume_from_checkpoint(r, &first);
    status = agree(r, status);
    if (status == MISLAS_OK && r->comm != NULL)
        status = same_run_everywhere(r, first);
    return status == MISLAS_OK ? run_epochs(r, first) : status;
}

/* ---- checks shared by the stages and evaluation ------------------------- */

static int check_normalisation(const char *fn, const float *mean, const float *std, int32_t channels)
{
    for (int32_t c = 0; c < channels; c++) {
        if (mean != NULL && !isfinite(mean[c]))
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: mean[%d] is not finite", fn, (int)c);
        if (std != NULL && !(std[c] > 0 && isfinite(std[c])))
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: std[%d] is not a positive number", fn, (int)c);
    }
    return MISLAS_OK;
}

/* Checks shared by the stages' optimiser settings. */
static int check_sgd(const char *fn, int32_t epochs, int32_t batch, double lr, double momentum, double wd)
{
    if (epochs < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: epochs = %d must be at least 1", fn, (int)epochs);
    if (batch < 2)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: batch_size = %d must be at least 2 (batch norm needs two images)", fn, (int)batch);
    if (!(lr > 0 && isfinite(lr)))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: lr = %g must be a positive number", fn, lr);
    if (!(momentum >= 0 && momentum < 1))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: momentum = %g must be in [0, 1)", fn, momentum);
    if (!(wd >= 0 && isfinite(wd)))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: weight_decay = %g must be >= 0", fn, wd);
    return MISLAS_OK;
}

static void batch_options(mislas_dataset_batch_options *b, int32_t augment, const float *mean, const float *std,
        uint64_t seed)
{
    mislas_dataset_batch_options_init(b);
    b->augment = augment != 0;
    b->mean = mean;
    b->std = std;
    b->seed = seed;
}

/* The training set's class counts (K values, the caller frees them). */
static int dataset_counts(const char *fn, const mislas_dataset *d, int64_t **out)
{
    *out = mislasi_alloc((size_t)mislas_dataset_num_classes(d) * sizeof **out);
    if (*out == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    int status = mislas_dataset_class_counts(d, *out);
    return status == MISLAS_OK ? MISLAS_OK : mislasi_fail_within(status, fn);
}

static int make_sampler(run *r, mislas_sampler_kind kind, size_t epoch_length)
{
    mislas_sampler_options so;
    mislas_sampler_options_init(&so);
    so.kind = kind;
    so.seed = r->seed;
    so.epoch_length = epoch_length;
    so.total_epochs = r->epochs;
    int status = mislas_sampler_new(&r->sampler, mislas_dataset_labels(r->data), mislas_dataset_size(r->data),
            r->k, &so);
    return status == MISLAS_OK ? MISLAS_OK : mislasi_fail_within(status, r->fn);
}

/* The run's optimiser over the model's groups as they are now (set the
 * model's head, mode and freezing first). */
static int make_optimizer(run *r, double lr, double momentum, double weight_decay, double lr_factor)
{
    mislas_optimizer_sgd_options so;
    mislas_optimizer_sgd_options_init(&so);
    so.lr = lr;
    so.momentum = momentum;
    so.weight_decay = weight_decay;
    so.lr_factor = lr_factor;
    int status = mislas_optimizer_new_sgd(&r->opt, r->model, &so);
    return status == MISLAS_OK ? MISLAS_OK : mislasi_fail_within(status, r->fn);
}

/* ---- stage 1 ------------------------------------------------------------- */

void mislas_train_stage1_options_init(mislas_train_stage1_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->epochs = 200;
    o->batch_size = 128;
    o->lr = 0.1;
    o->momentum = 0.9;
    o->weight_decay = 2e-4;
    o->schedule = MISLAS_SCHEDULE_MULTISTEP;
    o->warmup_epochs = 5;
    o->gamma = 0.1;
    o->mixup_alpha = 1.0f;
    o->augment = 1;
}

static int check_stage1(const char *fn, const void *options, int32_t channels)
{
    const mislas_train_stage1_options *o = options;
    int status = check_sgd(fn, o->epochs, o->batch_size, o->lr, o->momentum, o->weight_decay);
    if (status != MISLAS_OK)
        return status;
    if ((unsigned)o->schedule > (unsigned)MISLAS_SCHEDULE_COSINE)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: schedule = %d is not a mislas_schedule", fn,
                (int)o->schedule);
    if (o->warmup_epochs < 0)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: warmup_epochs = %d is negative", fn,
                (int)o->warmup_epochs);
    if (!(o->gamma > 0 && isfinite(o->gamma)))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: gamma = %g must be a positive number", fn, o->gamma);
    if (!isfinite(o->mixup_alpha))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: mixup_alpha is not finite", fn);
    if (o->num_milestones < 0 || (o->num_milestones > 0 && o->milestones == NULL))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: num_milestones = %d without milestones", fn,
                (int)o->num_milestones);
    for (int32_t i = 0; o->milestones != NULL && i < o->num_milestones; i++)
        if (o->milestones[i] < 1 || (i > 0 && o->milestones[i] <= o->milestones[i - 1]))
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                    "%s: milestones[%d] = %d: milestones must be positive and increasing", fn, (int)i,
                    (int)o->milestones[i]);
    return check_normalisation(fn, o->mean, o->std, channels);
}

/* The model's input channels (the data set's, once their shapes match). */
static int32_t model_channels(const mislas_model *model)
{
    mislas_model_options mo;
    mislas_model_options_init(&mo);
    mislas_model_get_options(model, &mo);
    return mo.in_channels;
}

/* What both stages check before anything changes: the caller's options
 * (given, or NULL) read over the defaults in `o`, the data set against the
 * model, the stage's own options (check, given the images' channels) and at
 * least two training images (batch norm cannot train on one). */
static int check_stage_input(const char *fn, const mislas_model *model, const mislas_dataset *train, void *o,
        size_t o_size, const void *given, int (*check)(const char *fn, const void *o, int32_t channels))
{
    int status = given != NULL ? mislasi_read_options(fn, o, o_size, given) : MISLAS_OK;
    if (status == MISLAS_OK)
        status = mislasi_model_fits_data(fn, model, train);
    if (status == MISLAS_OK)
        status = check(fn, o, model_channels(model));
    if (status != MISLAS_OK)
        return status;
    size_t n = mislas_dataset_size(train);
    if (n < 2)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: the training set has %zu images; at least 2 are needed",
                fn, n);
    return MISLAS_OK;
}

int mislas_train_stage1_milestones(int32_t *milestones, int32_t *count, int32_t epochs)
{
    static const char fn[] = "mislas_train_stage1_milestones";
    MISLASI_CHECK_NOT_NULL(fn, milestones);
    MISLASI_CHECK_NOT_NULL(fn, count);
    if (epochs < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: epochs = %d; at least 1 is needed", fn, (int)epochs);
    static const int32_t reference[MISLAS_TRAIN_STAGE1_MILESTONES_MAX] = {160, 180}, reference_epochs = 200;
    int32_t n = 0;
    for (int32_t i = 0; i < MISLAS_TRAIN_STAGE1_MILESTONES_MAX; i++) {
        int32_t m = (int32_t)((int64_t)epochs * reference[i] / reference_epochs);
        if (m >= 1 && (n == 0 || m > milestones[n - 1]))
            milestones[n++] = m;
    }
    *count = n;
    return MISLAS_OK;
}

static uint64_t stage1_digest(const mislas_train_stage1_options *o, const int32_t *milestones, int32_t num_milestones,
        int32_t channels, const mislas_dataset *d)
{
    uint64_t h = 0xcbf29ce484222325ull;
    DIGEST(&h, (int32_t)1);
    DIGEST(&h, o->epochs);
    DIGEST(&h, o->batch_size);
    DIGEST(&h, o->lr);
    DIGEST(&h, o->momentum);
    DIGEST(&h, o->weight_decay);
    DIGEST(&h, (int32_t)o->schedule);
    DIGEST(&h, o->warmup_epochs);
    mislasi_digest_bytes(&h, milestones, (size_t)num_milestones * sizeof *milestones);
    DIGEST(&h, o->gamma);
    DIGEST(&h, o->mixup_alpha > 0 ? o->mixup_alpha : 0.0f);
    digest_data(&h, o->augment, o->mean, o->std, channels, o->seed, d, o->comm, o->bn_per_rank);
    return h;
}

int mislas_train_stage1(mislas_model *model, const mislas_dataset *train, const mislas_train_stage1_options *opts)
{
    static const char fn[] = "mislas_train_stage1";
    MISLASI_CHECK_NOT_NULL(fn, model);
    MISLASI_CHECK_NOT_NULL(fn, train);
    mislas_train_stage1_options o;
    mislas_train_stage1_options_init(&o);
    int status = check_stage_input(fn, model, train, &o, sizeof o, opts, check_stage1);
    if (status != MISLAS_OK)
        return status;
    if (mislas_model_head(model) != MISLAS_HEAD_LINEAR)
        return mislasi_fail(MISLAS_ERR_STATE, "%s: the model's head is not MISLAS_HEAD_LINEAR (stage 1 trains a "
                "plain classifier; stage 2 sets the others)", fn);
    size_t n = mislas_dataset_size(train);

    int32_t default_milestones[MISLAS_TRAIN_STAGE1_MILESTONES_MAX], num_milestones;
    mislas_train_stage1_milestones(default_milestones, &num_milestones, o.epochs);
    const int32_t *milestones = default_milestones;
    if (o.milestones != NULL) {
        milestones = o.milestones;
        num_milestones = o.num_milestones;
    }

    run r = {.fn = fn, .stage = 1, .model = model, .data = train, .seed = o.seed, .epochs = o.epochs,
             .mixup_alpha = o.mixup_alpha > 0 ? o.mixup_alpha : 0.0f, .checkpoint_path = o.checkpoint_path,
             .progress = o.progress, .progress_data = o.progress_data, .comm = o.comm,
             .bn_per_rank = o.comm != NULL && o.bn_per_rank};
    r.batch = (size_t)o.batch_size < n ? (size_t)o.batch_size : n;
    r.steps = (n + r.batch - 1) / r.batch;
    r.last_batch = n - (r.steps - 1) * r.batch;
    if (r.last_batch == 1) {
        /* Batch norm cannot train on one image: the epoch's last lone image
         * is skipped (it is a different image each epoch). */
        r.steps--;
        r.last_batch = r.batch;
    }
    r.record = (mislasi_run_record){.stage = 1, .epochs = o.epochs,
            .digest = stage1_digest(&o, milestones, num_milestones, model_channels(model), train)};
    batch_options(&r.batch_opts, o.augment, o.mean, o.std, o.seed);
    status = run_alloc(&r);
    for (int32_t e = 0; status == MISLAS_OK && e < o.epochs; e++)
        r.lr[e] = o.schedule == MISLAS_SCHEDULE_COSINE ? mislas_schedule_cosine(o.lr, e, o.epochs)
                : mislas_schedule_multistep(o.lr, e, o.warmup_epochs, milestones, num_milestones, o.gamma);
    int64_t *counts = NULL;
    if (status == MISLAS_OK)
        status = dataset_counts(fn, train, &counts);
    if (status == MISLAS_OK)
        status = make_sampler(&r, MISLAS_SAMPLER_INSTANCE, 0);
    if (status == MISLAS_OK) {
        status = mislas_loss_new_cross_entropy(&r.loss, r.k);
        if (status != MISLAS_OK)
            status = mislasi_fail_within(status, fn);
    }
    /* Everything that can fail on the caller's input has been checked:
     * only now does the model change. */
    if (status == MISLAS_OK)
        status = mislas_model_set_mode(model, MISLAS_MODE_TRAIN);
    if (status == MISLAS_OK)
        status = mislas_model_freeze_backbone(model, 0);
    if (status == MISLAS_OK)
        status = mislas_model_set_class_counts(model, counts, r.k);
    mislasi_free(counts);
    if (status == MISLAS_OK)
        status = make_optimizer(&r, o.lr, o.momentum, o.weight_decay, 1.0);
    if (status == MISLAS_OK)
        status = run_start(&r, o.resume);
    run_free(&r);
    return status;
}

/* ---- stage 2 ------------------------------------------------------------- */

void mislas_train_stage2_options_init(mislas_train_stage2_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->method = MISLAS_STAGE2_MISLAS;
    o->epochs = 10;
    o->batch_size = 128;
    o->lr = 0.1;
    o->momentum = 0.9;
    o->weight_decay = 2e-4;
    o->lr_factor = 0.5;
    o->label_aware_smoothing = 1;
    o->smooth_head = 0.3f;
    o->smooth_tail = 0.0f;
    o->las_shape = MISLAS_LAS_CONCAVE;
    o->las_power = 1.0f;
    o->shift_bn = 1;
    o->sampler = MISLAS_SAMPLER_CLASS_AWARE;
    o->augment = 1;
}

static int check_stage2(const char *fn, const void *options, int32_t channels)
{
    const mislas_train_stage2_options *o = options;
    int status = check_sgd(fn, o->epochs, o->batch_size, o->lr, o->momentum, o->weight_decay);
    if (status != MISLAS_OK)
        return status;
    if ((unsigned)o->method > (unsigned)MISLAS_STAGE2_MISLAS)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: method = %d is not a mislas_stage2_method", fn,
                (int)o->method);
    if (!(o->lr_factor > 0 && isfinite(o->lr_factor)))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: lr_factor = %g must be a positive number", fn,
                o->lr_factor);
    if ((unsigned)o->sampler > (unsigned)MISLAS_SAMPLER_REVERSED)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: sampler = %d is not a mislas_sampler_kind", fn,
                (int)o->sampler);
    if (o->epoch_steps > SIZE_MAX / 2 / (size_t)o->batch_size)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: epoch_steps = %zu is too large", fn, o->epoch_steps);
    return check_normalisation(fn, o->mean, o->std, channels);
}

static uint64_t stage2_digest(const mislas_train_stage2_options *o, size_t steps, int32_t channels,
        const mislas_dataset *d)
{
    uint64_t h = 0xcbf29ce484222325ull;
    DIGEST(&h, (int32_t)2);
    DIGEST(&h, (int32_t)o->method);
    DIGEST(&h, o->epochs);
    DIGEST(&h, o->batch_size);
    DIGEST(&h, o->lr);
    DIGEST(&h, o->momentum);
    DIGEST(&h, o->weight_decay);
    DIGEST(&h, o->lr_factor);
    DIGEST(&h, o->label_aware_smoothing != 0);
    DIGEST(&h, o->smooth_head);
    DIGEST(&h, o->smooth_tail);
    DIGEST(&h, (int32_t)o->las_shape);
    DIGEST(&h, o->las_power);
    DIGEST(&h, o->shift_bn != 0);
    DIGEST(&h, (int32_t)o->sampler);
    DIGEST(&h, (uint64_t)steps);
    digest_data(&h, o->augment, o->mean, o->std, channels, o->seed, d, o->comm, o->bn_per_rank);
    return h;
}

static int make_stage2_loss(run *r, const mislas_train_stage2_options *o, const int64_t *counts)
{
    int status;
    if (!o->label_aware_smoothing) {
        status = mislas_loss_new_cross_entropy(&r->loss, r->k);
    } else {
        mislas_las_options lo;
        mislas_las_options_init(&lo);
        lo.smooth_head = o->smooth_head;
        lo.smooth_tail = o->smooth_tail;
        lo.shape = o->las_shape;
        lo.power = o->las_power;
        status = mislas_loss_new_label_aware_smoothing(&r->loss, counts, r->k, &lo);
    }
    return status == MISLAS_OK ? MISLAS_OK : mislasi_fail_within(status, r->fn);
}

int mislas_train_stage2(mislas_model *model, const mislas_dataset *train, const mislas_train_stage2_options *opts)
{
    static const char fn[] = "mislas_train_stage2";
    MISLASI_CHECK_NOT_NULL(fn, model);
    MISLASI_CHECK_NOT_NULL(fn, train);
    mislas_train_stage2_options o;
    mislas_train_stage2_options_init(&o);
    int status = check_stage_input(fn, model, train, &o, sizeof o, opts, check_stage2);
    if (status != MISLAS_OK)
        return status;
    size_t n = mislas_dataset_size(train);
    run r = {.fn = fn, .stage = 2, .model = model, .data = train, .seed = o.seed, .epochs = o.epochs,
             .batch = (size_t)o.batch_size, .checkpoint_path = o.checkpoint_path, .progress = o.progress,
             .progress_data = o.progress_data, .comm = o.comm, .bn_per_rank = o.comm != NULL && o.bn_per_rank};
    /* The reference ends each epoch after ceil(N / batch) + 1 batches. */
    r.steps = o.epoch_steps > 0 ? o.epoch_steps : (n + r.batch - 1) / r.batch + 1;
    r.last_batch = r.batch;
    r.record = (mislasi_run_record){.stage = 2, .epochs = o.epochs,
            .digest = stage2_digest(&o, r.steps, model_channels(model), train)};
    batch_options(&r.batch_opts, o.augment, o.mean, o.std, o.seed);
    status = run_alloc(&r);
    for (int32_t e = 0; status == MISLAS_OK && e < o.epochs; e++)
        r.lr[e] = mislas_schedule_cosine(o.lr, e, o.epochs);
    int64_t *counts = NULL;
    if (status == MISLAS_OK)
        status = dataset_counts(fn, train, &counts);
    if (status == MISLAS_OK)
        status = make_sampler(&r, o.sampler, r.steps * r.batch);
    if (status == MISLAS_OK)
        status = make_stage2_loss(&r, &o, counts);
    /* The model changes only once the loss accepted the options. */
    static const mislas_head heads[] = { MISLAS_HEAD_CRT, MISLAS_HEAD_LWS, MISLAS_HEAD_MISLAS };
    if (status == MISLAS_OK)
        status = mislas_model_freeze_backbone(model, 1);
    if (status == MISLAS_OK)
        status = mislas_model_set_mode(model, o.shift_bn ? MISLAS_MODE_SHIFTED_BN : MISLAS_MODE_EVAL);
    if (status == MISLAS_OK)
        status = mislas_model_set_head(model, heads[o.method], o.seed);
    if (status == MISLAS_OK)
        status = mislas_model_set_class_counts(model, counts, r.k);
    mislasi_free(counts);
    if (status == MISLAS_OK)
        status = make_optimizer(&r, o.lr, o.momentum, o.weight_decay, o.lr_factor);
    if (status == MISLAS_OK)
        status = run_start(&r, o.resume);
    run_free(&r);
    return status;
}
