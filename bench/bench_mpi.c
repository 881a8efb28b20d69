/* Data-parallel training over MPI against one process (docs/scale.md).
 *
 * Training: stage 1 as mislas-stage1 --preset fmnist runs it (ResNet-32 on
 * Fashion-MNIST-LT, IF 100, batch 128, mixup alpha 1, the preset's schedule)
 * for --epochs epochs (1), alone or as one rank of `mpirun -np N bench_mpi
 * --mpi`; the images per second of the whole batch over the steps after the
 * first --skip (5), and per rank the communication not hidden behind compute
 * (mislas_progress.comm_wait_seconds: time inside the transport's calls) per
 * step and as a fraction of the step. --resnet50 runs ResNet-50 at 3x224x224,
 * 1000 classes, batch 32, mixup 0.2 instead, on --steps (4) batches of
 * random images (skip 1): the training step of the ImageNet-LT preset at a
 * batch a small machine holds. --max-steps (--quick: 25) cancels the run
 * after that many steps. Each run ends with a digest of the model's bits,
 * the same alone and on any number of ranks.
 *
 * Counting (--count, no MPI needed): the bytes a rank receives per step, by
 * kind of message, for ResNet-32 (1x28x28, batch 128) and ResNet-50
 * (3x224x224, 1000 classes, batch 256, the imagenet-lt preset's) on 2 to 64
 * ranks, from the design (lib/model/network.c) and the models' tensors,
 * beside a ring all-reduce of every gradient.
 *
 * With MISLAS_BENCH_RECORD naming a file, rank 0 appends `key value` lines
 * (fmnist_ips, resnet50_ips, ...); with MISLAS_BENCH_BASELINE_FILE naming
 * one, the run prints its ratio to the figure there (bench/mpi_scale runs
 * one process first, then the ranks).
 *
 * Usage: bench_mpi [--mpi] [--threads T] [--epochs E] [--skip S] [--resnet50]
 *                  [--steps S] [--max-steps S] [--bn-per-rank] [--data-dir DIR] [--quick]
 *        bench_mpi --count */
#define _POSIX_C_SOURCE 200809L

#include <mislas/mislas.h>
#include <mislas/mpi.h>

#include "benchutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHECK(call) do { \
        int rc_ = (call); \
        if (rc_ != MISLAS_OK) { \
            fprintf(stderr, "bench_mpi: %s failed: %s\n", #call, mislas_last_error()); \
            exit(EXIT_FAILURE); \
        } \
    } while (0)

static void *checked_calloc(size_t n, size_t size)
{
    void *p = calloc(n > 0 ? n : 1, size);
    if (p == NULL) {
        fprintf(stderr, "bench_mpi: out of memory\n");
        exit(EXIT_FAILURE);
    }
    return p;
}

/* ---- the machine --------------------------------------------------------- */

static void print_machine(void)
{
    char model[256] = "unknown CPU", line[512], load[64] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "model name", 10) == 0) {
            const char *colon = strchr(line, ':');
            if (colon != NULL) {
                snprintf(model, sizeof model, "%s", colon + 2);
                model[strcspn(model, "\n")] = '\0';
            }
            break;
        }
    if (f != NULL)
        fclose(f);
    f = fopen("/proc/loadavg", "r");
    if (f != NULL && fgets(load, sizeof load, f) != NULL)
        load[strcspn(load, "\n")] = '\0';
    if (f != NULL)
        fclose(f);
    time_t now = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    printf("machine: %s, %ld CPUs online; load average %s; %s; libmislas %s, BLIS kernels %s\n", model,
            sysconf(_SC_NPROCESSORS_ONLN), load, date, mislas_version(), mislas_blas_kernels());
}

/* ---- the model's tensors, by what the ranks do with them ----------------- */

typedef struct census {
    double conv;        /* conv weights: chained and broadcast */
    double bn_affine;   /* BN gamma and beta: from the gathered slots (or chained, per-rank BN) */
    double bn_channels; /* sum of the BN layers' channels */
    double bn_layers;
    double fc;          /* classifier W and b: from the whole batch on every rank */
    double features;    /* feature width */
    double params;      /* mislas_model_num_parameters */
} census;

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

static census census_of(const mislas_model *m, int32_t classes)
{
    census c = {0};
    int32_t tensors = mislas_model_num_tensors(m);
    for (int32_t i = 0; i < tensors; i++) {
        const char *name;
        size_t count;
        CHECK(mislas_model_tensor_info(m, i, &name, &count));
        if (ends_with(name, ".running_mean")) {
            c.bn_channels += (double)count;
            c.bn_layers++;
            continue;
        }
        if (ends_with(name, ".running_var") || ends_with(name, ".num_batches_tracked")
                || strcmp(name, "learned_norm") == 0)
            continue;
        if (strncmp(name, "fc.", 3) == 0) {
            c.fc += (double)count;
            if (ends_with(name, ".weight"))
                c.features = (double)count / classes;
            continue;
        }
        /* a weight or bias with running statistics beside it is batch norm's */
        char prefix[256];
        const char *dot = strrchr(name, '.');
        snprintf(prefix, sizeof prefix, "%.*s.running_mean", (int)(dot - name), name);
        int bn = 0;
        for (int32_t j = 0; j < tensors && !bn; j++) {
            const char *other;
            size_t n;
            CHECK(mislas_model_tensor_info(m, j, &other, &n));
            bn = strcmp(other, prefix) == 0;
        }
        if (bn)
            c.bn_affine += (double)count;
        else
            c.conv += (double)count;
    }
    c.params = (double)mislas_model_num_parameters(m);
    return c;
}

static mislas_model *new_model(mislas_arch arch, int32_t channels, int32_t side, int32_t classes)
{
    mislas_model_options o;
    mislas_model_options_init(&o);
    o.arch = arch;
    o.in_channels = channels;
    o.height = o.width = side;
    o.num_classes = classes;
    mislas_model *m;
    CHECK(mislas_model_new(&m, &o));
    return m;
}

/* lib/util/comm.c's mislasi_share_of: whole quanta, as even as they allow,
 * in rank order. */
static void share_of(size_t total, size_t quantum, size_t size, size_t rank, size_t *first, size_t *n)
{
    size_t quanta = (total + quantum - 1) / quantum;
    size_t q0 = quanta * rank / size, q1 = quanta * (rank + 1) / size;
    size_t begin = q0 * quantum < total ? q0 * quantum : total, end = q1 * quantum < total ? q1 * quantum : total;
    *first = begin;
    *n = end - begin;
}

/* Bytes rank r of N receives in one training step of a batch of B images
 * (synchronised BN unless per_rank), by kind:
 *   chain      the conv weight gradients' running sum from rank r - 1
 *   broadcast  the whole batch's conv weight gradients from rank N - 1
 *   moments    every other image's BN moments, 2 doubles a channel, each layer
 *   slots      every other group's BN backward sums, 2 doubles a channel
 *   head       the other images' features and linear outputs
 *   agree      the three status exchanges of a step (512 bytes a rank)
 * Per-rank BN gathers no moments or slots; gamma and beta join the chain and
 * the broadcast, and rank 0's running statistics are broadcast. */
typedef struct traffic {
    double chain, broadcast, moments, slots, head, agree;
} traffic;

static double traffic_total(const traffic *t)
{
    return t->chain + t->broadcast + t->moments + t->slots + t->head + t->agree;
}

static traffic traffic_of(const census *c, size_t classes, size_t batch, size_t quantum, size_t ranks,
        size_t rank, int per_rank)
{
    traffic t = {0};
    size_t first, n;
    share_of(batch, quantum, ranks, rank, &first, &n);
    double chained = 4.0 * (c->conv + (per_rank ? c->bn_affine : 0.0));
    t.chain = rank > 0 ? chained : 0.0;
    t.broadcast = rank + 1 < ranks ? chained : 0.0;
    if (per_rank) {
        t.broadcast += rank > 0 ? 4.0 * 2.0 * c->bn_channels : 0.0;   /* running mean and var */
    } else {
        double others = (double)(batch - n);
        t.moments = others * 2.0 * 8.0 * c->bn_channels;
        size_t groups = (batch + quantum - 1) / quantum, mine = (n + quantum - 1) / quantum;
        t.slots = (double)(groups - mine) * 2.0 * 8.0 * c->bn_channels;
    }
    t.head = (double)(batch - n) * 4.0 * (c->features + (double)classes);
    t.agree = 3.0 * (double)(ranks - 1) * 512.0;
    return t;
}

static void count_model(const char *title, mislas_arch arch, int32_t channels, int32_t side, int32_t classes,
        size_t batch)
{
    /* the quantum: every conv's weight-gradient group is the largest power
     * of two of images with at most 1024 output pixels (lib/nn/conv.c); the
     * last stage's 7x7 outputs make it 16 for both models */
    const size_t quantum = 16;
    mislas_model *m = new_model(arch, channels, side, classes);
    census c = census_of(m, classes);
    mislas_model_free(m);
    double mb = 1e-6;
    printf("\n%s, batch %zu (quantum %zu): %.0f parameters (%.2f MB of float gradients), of which conv weights "
            "%.0f, BN gamma/beta %.0f, classifier %.0f; %.0f BN layers of %.0f channels in all, features %.0f\n",
            title, batch, quantum, c.params, 4.0 * c.params * mb, c.conv, c.bn_affine, c.fc, c.bn_layers,
            c.bn_channels, c.features);
    printf("  MB received per step by the busiest rank (synchronised BN):\n");
    printf("  %5s %8s %8s %8s %8s %8s %8s %8s  %10s %12s\n", "ranks", "chain", "bcast", "moments", "slots",
            "head", "agree", "total", "per-rank BN", "ring allred.");
    static const size_t rank_counts[] = {2, 4, 8, 16, 32, 64};
    for (size_t i = 0; i < sizeof rank_counts / sizeof rank_counts[0]; i++) {
        size_t ranks = rank_counts[i];
        if ((batch + quantum - 1) / quantum < ranks)
            break;
        traffic worst = {0}, worst_per_rank = {0};
        for (size_t r = 0; r < ranks; r++) {
            traffic t = traffic_of(&c, (size_t)classes, batch, quantum, ranks, r, 0);
            traffic p = traffic_of(&c, (size_t)classes, batch, quantum, ranks, r, 1);
            if (traffic_total(&t) > traffic_total(&worst))
                worst = t;
            if (traffic_total(&p) > traffic_total(&worst_per_rank))
                worst_per_rank = p;
        }
        /* a ring all-reduce (DDP) of every gradient: 2 (N - 1) / N of them in, and as much out */
        double ring = 2.0 * (double)(ranks - 1) / (double)ranks * 4.0 * c.params;
        printf("  %5zu %8.2f %8.2f %8.2f %8.2f %8.3f %8.3f %8.2f  %10.2f %12.2f\n", ranks, worst.chain * mb,
                worst.broadcast * mb, worst.moments * mb, worst.slots * mb, worst.head * mb, worst.agree * mb,
                traffic_total(&worst) * mb, traffic_total(&worst_per_rank) * mb, ring * mb);
    }
}

static void count_all(void)
{
    printf("Bytes per training step, from the design (docs/scale.md) and the models' tensors\n");
    count_model("ResNet-32, 1x28x28, 10 classes (fmnist)", MISLAS_RESNET32, 1, 28, 10, 128);
    count_model("ResNet-50, 3x224x224, 1000 classes (imagenet-lt)", MISLAS_RESNET50, 3, 224, 1000, 256);
    count_model("ResNet-50, 3x224x224, 1000 classes", MISLAS_RESNET50, 3, 224, 1000, 32);
    printf("\n  chain: from rank r - 1 (rank 0 receives none); bcast: the whole gradient from the last rank (which "
            "receives none; who forwards it in a tree is the MPI library's choice); moments, slots, head: "
            "allgathers, each rank receiving what the others hold.\n");
}

/* ---- training ------------------------------------------------------------ */

typedef struct timing {
    size_t batch, last, steps_per_epoch, skip;
    size_t step;            /* steps done, all epochs */
    size_t max_steps;       /* cancel after these (0: none) */
    double t_skip, t_end;   /* clock at the end of step `skip` and of the last step */
    double comm, data;      /* after step `skip`: comm and data waits, summed */
    double prev_comm, prev_data;    /* the epoch's totals at the step before */
    size_t images;          /* after step `skip` */
    double epoch_ips;       /* the library's figure for the last epoch */
} timing;

static int on_progress(const mislas_progress *p, void *user)
{
    timing *t = user;
    if (p->epoch_done) {
        t->epoch_ips = p->images_per_second;
        return 0;
    }
    if (p->step == 1)
        t->prev_comm = t->prev_data = 0.0;
    double now = bench_now();
    t->step++;
    if (t->step > t->skip) {
        t->comm += p->comm_wait_seconds - t->prev_comm;
        t->data += p->data_wait_seconds - t->prev_data;
        t->images += p->step == p->steps ? t->last : t->batch;
        t->t_end = now;
    } else if (t->step == t->skip) {
        t->t_skip = now;
    }
    t->prev_comm = p->comm_wait_seconds;
    t->prev_data = p->data_wait_seconds;
    return t->max_steps > 0 && t->step >= t->max_steps;
}

static uint64_t model_digest(const mislas_model *m)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int32_t i = 0; i < mislas_model_num_tensors(m); i++) {
        const char *name;
        size_t count;
        CHECK(mislas_model_tensor_info(m, i, &name, &count));
        float *v = checked_calloc(count, sizeof *v);
        CHECK(mislas_model_get_tensor(m, name, v, count));
        const unsigned char *b = (const unsigned char *)v;
        for (size_t j = 0; j < count * sizeof *v; j++) {
            h ^= b[j];
            h *= 0x100000001b3ull;
        }
        free(v);
    }
    return h;
}

/* Random images in 1000 classes for ResNet-50. */
static mislas_dataset *random_set(size_t n, int32_t side, int32_t classes)
{
    size_t bytes = n * 3 * (size_t)side * (size_t)side;
    uint8_t *pixels = checked_calloc(bytes, 1);
    int32_t *labels = checked_calloc(n, sizeof *labels);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < bytes; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        pixels[i] = (uint8_t)(x >> 56);
    }
    for (size_t i = 0; i < n; i++)
        labels[i] = (int32_t)((i * 7919) % (size_t)classes);
    mislas_dataset *d;
    CHECK(mislas_dataset_from_memory(&d, pixels, labels, n, 3, side, side, classes, MISLAS_COPY));
    free(pixels);
    free(labels);
    return d;
}

typedef struct settings {
    int mpi, threads, epochs, skip, steps, max_steps, resnet50, bn_per_rank;
    const char *data_dir;
} settings;

/* What each rank tells rank 0. */
enum { R_IPS, R_STEP, R_COMM, R_DATA, R_IMAGES, R_EPOCH_IPS, R_COUNT };

static void train(const settings *s)
{
    mislas_comm *comm = NULL;
    if (s->mpi)
        CHECK(mislas_mpi_comm_new(&comm, MPI_COMM_WORLD));
    int rank = mislas_comm_rank(comm), ranks = mislas_comm_size(comm);
    CHECK(mislas_set_num_threads(s->threads));

    static const float mean[] = MISLAS_FASHION_MNIST_MEAN, std[] = MISLAS_FASHION_MNIST_STD;
    mislas_dataset *train_set;
    mislas_model *m;
    mislas_train_stage1_options o;
    mislas_train_stage1_options_init(&o);
    const char *key;
    if (s->resnet50) {
        key = "resnet50_ips";
        o.batch_size = 32;
        o.epochs = 1;
        train_set = random_set((size_t)s->steps * (size_t)o.batch_size, 224, 1000);
        m = new_model(MISLAS_RESNET50, 3, 224, 1000);
        /* the imagenet-lt preset's, but for augmentation (random images) */
        o.schedule = MISLAS_SCHEDULE_COSINE;
        o.weight_decay = 5e-4;
        o.mixup_alpha = 0.2f;
        o.augment = 0;
    } else {
        key = s->bn_per_rank ? "fmnist_bn_per_rank_ips" : "fmnist_ips";
        mislas_dataset *full;
        CHECK(mislas_dataset_open(&full, "fashion-mnist", s->data_dir, MISLAS_SPLIT_TRAIN));
        CHECK(mislas_dataset_long_tail(&train_set, full, 0.01, MISLAS_IMBALANCE_EXP, 0));
        mislas_dataset_free(full);
        m = new_model(MISLAS_RESNET32, 1, 28, 10);
        /* the fmnist preset's stage 1 (examples/cli/presets.c), shortened */
        o.epochs = s->epochs;
        o.batch_size = 128;
        o.warmup_epochs = 5;
        o.lr = 0.1;
        o.weight_decay = 2e-4;
        o.mixup_alpha = 1.0f;
        o.mean = mean;
        o.std = std;
    }
    size_t n = mislas_dataset_size(train_set), batch = (size_t)o.batch_size;
    timing t = {.batch = batch, .steps_per_epoch = (n + batch - 1) / batch, .skip = (size_t)s->skip,
                .max_steps = (size_t)s->max_steps};
    t.last = n - (t.steps_per_epoch - 1) * batch;
    o.comm = comm;
    o.bn_per_rank = s->bn_per_rank;
    o.progress = on_progress;
    o.progress_data = &t;
    if (rank == 0) {
        size_t quantum = 16, first, mine;
        printf("%s, stage 1: %zu images, batch %zu, mixup alpha %g, %d epoch(s) of %zu steps; %d rank(s) x %d "
                "thread(s)%s; shares of a batch:", s->resnet50 ? "ResNet-50, 3x224x224, random images"
                : "ResNet-32, Fashion-MNIST-LT (IF 100)", n, batch, (double)o.mixup_alpha, (int)o.epochs,
                t.steps_per_epoch, ranks, (int)mislas_num_threads(), s->bn_per_rank ? ", per-rank BN" : "");
        for (int r = 0; r < ranks; r++) {
            share_of(batch, quantum, (size_t)ranks, (size_t)r, &first, &mine);
            printf("%s%zu", r == 0 ? " " : " + ", mine);
        }
        printf("\n");
        fflush(stdout);
    }
    double start = bench_now();
    t.t_skip = start;   /* --skip 0 */
    int status = mislas_train_stage1(m, train_set, &o);
    if (status != MISLAS_OK && !(status == MISLAS_ERR_CANCELLED && t.max_steps > 0)) {
        fprintf(stderr, "bench_mpi: mislas_train_stage1 failed: %s\n", mislas_last_error());
        exit(EXIT_FAILURE);
    }
    double total = bench_now() - start;
    size_t window = t.step > t.skip ? t.step - t.skip : 0;
    if (window == 0) {
        fprintf(stderr, "bench_mpi: %zu steps, none after the first %zu skipped\n", t.step, t.skip);
        exit(EXIT_FAILURE);
    }
    double elapsed = t.t_end - t.t_skip;
    double mine[R_COUNT] = {[R_IPS] = (double)t.images / elapsed, [R_STEP] = elapsed / (double)window,
                            [R_COMM] = t.comm / (double)window, [R_DATA] = t.data / (double)window,
                            [R_IMAGES] = (double)t.images, [R_EPOCH_IPS] = t.epoch_ips};
    double *all = checked_calloc((size_t)ranks * R_COUNT, sizeof *all);
    memcpy(all, mine, sizeof mine);
    if (s->mpi)
        MPI_Gather(mine, R_COUNT, MPI_DOUBLE, all, R_COUNT, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    uint64_t digest = model_digest(m);
    if (rank == 0) {
        /* the slowest rank's pace is the run's */
        double ips = INFINITY, step = 0, worst_comm = 0;
        for (int r = 0; r < ranks; r++) {
            double *x = all + (size_t)r * R_COUNT;
            ips = fmin(ips, x[R_IPS]);
            step = fmax(step, x[R_STEP]);
            worst_comm = fmax(worst_comm, x[R_COMM]);
        }
        printf("  %zu steps timed (after %zu): %.1f images/s, %.1f ms a step; the library's epoch figure %.1f "
                "images/s; %.1f s in all\n", window, t.skip, ips, 1e3 * step, all[R_EPOCH_IPS], total);
        for (int r = 0; r < ranks && s->mpi; r++) {
            double *x = all + (size_t)r * R_COUNT;
            printf("  rank %d: communication not hidden %.2f ms a step (%.1f%% of the step), data wait %.2f ms\n",
                    r, 1e3 * x[R_COMM], 100.0 * x[R_COMM] / x[R_STEP], 1e3 * x[R_DATA]);
        }
        if (!s->mpi)
            printf("  data wait %.2f ms a step\n", 1e3 * all[R_DATA]);
        double base = bench_baseline(key);
        if (isfinite(base))
            printf("  against one process (%.1f images/s): %.3fx (%+.1f%%)\n", base, ips / base,
                    100.0 * (ips / base - 1.0));
        printf("  model digest %016llx\n", (unsigned long long)digest);
        const char *record = getenv("MISLAS_BENCH_RECORD");
        FILE *f = record != NULL ? fopen(record, "a") : NULL;
        if (f != NULL) {
            const char *tag = s->mpi ? "_mpi" : "";
            fprintf(f, "%s%s %.6g\n", key, s->mpi ? "_mpi" : "", ips);
            char step_key[64];
            snprintf(step_key, sizeof step_key, "%.*s_step_seconds%s", (int)(strlen(key) - 4), key, tag);
            fprintf(f, "%s %.6g\n", step_key, step);
            if (s->mpi) {
                snprintf(step_key, sizeof step_key, "%.*s_comm_seconds_mpi", (int)(strlen(key) - 4), key);
                fprintf(f, "%s %.6g\n", step_key, worst_comm);
            }
            fclose(f);
        }
    }
    free(all);
    mislas_model_free(m);
    mislas_dataset_free(train_set);
    mislas_comm_free(comm);
}

int main(int argc, char **argv)
{
    settings s = {.threads = 0, .epochs = 1, .skip = -1, .steps = 4};
    int count = 0, quick = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (strcmp(a, "--mpi") == 0)
            s.mpi = 1;
        else if (strcmp(a, "--count") == 0)
            count = 1;
        else if (strcmp(a, "--quick") == 0)
            quick = 1;
        else if (strcmp(a, "--resnet50") == 0)
            s.resnet50 = 1;
        else if (strcmp(a, "--bn-per-rank") == 0)
            s.bn_per_rank = 1;
        else if (strcmp(a, "--threads") == 0 && more)
            s.threads = atoi(argv[++i]);
        else if (strcmp(a, "--epochs") == 0 && more)
            s.epochs = atoi(argv[++i]);
        else if (strcmp(a, "--skip") == 0 && more)
            s.skip = atoi(argv[++i]);
        else if (strcmp(a, "--max-steps") == 0 && more)
            s.max_steps = atoi(argv[++i]);
        else if (strcmp(a, "--steps") == 0 && more)
            s.steps = atoi(argv[++i]);
        else if (strcmp(a, "--data-dir") == 0 && more)
            s.data_dir = argv[++i];
        else {
            fprintf(stderr, "usage: bench_mpi [--mpi] [--threads T] [--epochs E] [--skip S] [--resnet50] "
                    "[--steps S] [--max-steps S] [--bn-per-rank] [--data-dir DIR] [--quick] | --count\n");
            return 2;
        }
    }
    if (count) {
        count_all();
        return 0;
    }
    if (quick && s.resnet50)
        s.steps = 2;
    else if (quick && s.max_steps == 0)
        s.max_steps = 25;
    if (s.skip < 0)
        s.skip = s.resnet50 ? 1 : 5;
    if (s.epochs < 1 || s.steps < 1 || s.threads < 0 || s.max_steps < 0) {
        fprintf(stderr, "bench_mpi: --epochs and --steps must be at least 1, --threads and --max-steps at least 0\n");
        return 2;
    }
    if (s.mpi) {
        int provided;
        MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
        if (provided < MPI_THREAD_FUNNELED) {
            fprintf(stderr, "bench_mpi: the MPI library gives no MPI_THREAD_FUNNELED\n");
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
    }
    int rank = 0;
    if (s.mpi)
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0)
        print_machine();
    train(&s);
    if (s.mpi)
        MPI_Finalize();
    return 0;
}
