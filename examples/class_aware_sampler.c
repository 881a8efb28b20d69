/* The class-aware sampler feeding a data loader you already have.
 *
 * A long-tailed training set of ten classes (500 down to 5 samples, IF 100)
 * is described by the caller's own records. Two samplers over its labels,
 * instance (plain shuffling) and class-aware (MiSLAS's class-balanced
 * sampler), hand out indices batch by batch; the caller's loader copies the
 * records they name into its own batch arrays. Over the same number of
 * draws, instance sampling reproduces the imbalance while class-aware
 * sampling visits every class equally often, repeating the tail's samples.
 *
 * Build against the installed library:
 *   cc class_aware_sampler.c $(pkg-config --cflags --libs mislas) -o class_aware_sampler
 */
#include <mislas/mislas.h>

#include <stdio.h>
#include <stdlib.h>

enum { K = 10, BATCH = 32, SHOW = 24 };

#define CHECK(call) do { \
        int rc_ = (call); \
        if (rc_ != MISLAS_OK) { \
            fprintf(stderr, "%s failed: %s (%s)\n", #call, mislas_last_error(), mislas_status_string(rc_)); \
            exit(1); \
        } \
    } while (0)

/* The caller's own view of its data set: one record per sample. */
typedef struct record { int32_t label; uint32_t image_id; } record;

typedef struct tally { size_t draws[K]; size_t distinct[K]; } tally;

/* The caller's loader: `total` draws in batches of BATCH, each batch gathered
 * into the loader's own arrays (where a real one would decode images). */
static void run_epoch(mislas_sampler *s, const record *data, size_t n, size_t total,
                      const char *name, tally *t)
{
    size_t idx[BATCH];
    int32_t batch_labels[BATCH];
    uint32_t batch_ids[BATCH];
    unsigned char *seen = calloc(n, 1);
    if (seen == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t done = 0; done < total; ) {
        size_t m = total - done < BATCH ? total - done : BATCH;
        CHECK(mislas_sampler_next(s, idx, m));
        for (size_t r = 0; r < m; r++) {
            batch_labels[r] = data[idx[r]].label;
            batch_ids[r] = data[idx[r]].image_id;
            t->draws[batch_labels[r]]++;
            if (!seen[idx[r]]) {
                seen[idx[r]] = 1;
                t->distinct[batch_labels[r]]++;
            }
        }
        if (done == 0) {
            printf("first batch, %-12s labels:", name);
            for (int r = 0; r < SHOW; r++)
                printf(" %d", (int)batch_labels[r]);
            printf(" ... (image %u first)\n", (unsigned)batch_ids[0]);
        }
        done += m;
    }
    free(seen);
}

int main(void)
{
    int64_t counts[K];
    CHECK(mislas_long_tail_counts(counts, K, 500, 0.01, MISLAS_IMBALANCE_EXP));
    size_t n = 0;
    for (int c = 0; c < K; c++)
        n += (size_t)counts[c];
    record *data = malloc(n * sizeof *data);
    int32_t *labels = malloc(n * sizeof *labels);
    if (data == NULL || labels == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (size_t i = 0, c = 0; c < K; c++)
        for (int64_t j = 0; j < counts[c]; j++, i++) {
            data[i].label = labels[i] = (int32_t)c;
            data[i].image_id = (uint32_t)(1000 * c + (size_t)j);
        }
    printf("libmislas %s: %zu samples in %d classes (%lld ... %lld per class)\n",
           mislas_version(), n, K, (long long)counts[0], (long long)counts[K - 1]);

    /* Same seed, same budget of draws: one instance epoch (n indices). */
    mislas_sampler_options io, co;
    mislas_sampler_options_init(&io);
    io.kind = MISLAS_SAMPLER_INSTANCE;
    io.seed = 7;
    mislas_sampler_options_init(&co);
    co.kind = MISLAS_SAMPLER_CLASS_AWARE;
    co.seed = 7;
    co.samples_per_class = 4;    /* each class visit takes 4 consecutive draws */
    co.epoch_length = n;         /* natural length would be 500 x 10 */
    mislas_sampler *inst = NULL, *cas = NULL;
    CHECK(mislas_sampler_new(&inst, labels, n, K, &io));
    CHECK(mislas_sampler_new(&cas, labels, n, K, &co));
    free(labels);                /* the samplers keep their own copies */

    tally ti = { { 0 }, { 0 } }, tc = { { 0 }, { 0 } };
    run_epoch(inst, data, n, mislas_sampler_epoch_length(inst), "instance", &ti);
    run_epoch(cas, data, n, mislas_sampler_epoch_length(cas), "class-aware", &tc);
    printf("now at epoch %d (instance) and %d (class-aware)\n\n",
           (int)mislas_sampler_epoch(inst), (int)mislas_sampler_epoch(cas));

    printf("class  samples |  instance draws  share | class-aware draws  share  samples used, mean draws\n");
    size_t imin = n, imax = 0, cmin = n, cmax = 0;
    for (int c = 0; c < K; c++) {
        printf("%5d  %7lld | %15zu %5.1f%% | %17zu %5.1f%%  %3zu of %3lld, %4.1fx each\n", c,
               (long long)counts[c], ti.draws[c], 100.0 * (double)ti.draws[c] / (double)n,
               tc.draws[c], 100.0 * (double)tc.draws[c] / (double)n, tc.distinct[c],
               (long long)counts[c], (double)tc.draws[c] / (double)tc.distinct[c]);
        imin = ti.draws[c] < imin ? ti.draws[c] : imin;
        imax = ti.draws[c] > imax ? ti.draws[c] : imax;
        cmin = tc.draws[c] < cmin ? tc.draws[c] : cmin;
        cmax = tc.draws[c] > cmax ? tc.draws[c] : cmax;
    }
    printf("most / least drawn class: instance %.1fx, class-aware %.2fx\n",
           (double)imax / (double)imin, (double)cmax / (double)cmin);

    mislas_sampler_free(cas);
    mislas_sampler_free(inst);
    free(data);
    return 0;
}
