/* Trains and evaluates one small ResNet-32 the same way alone or as one
 * rank of an MPI job, and prints digests of what came out, for
 * mpi_check.py to compare across rank counts: the model after each stage
 * (every tensor's bits) and the evaluation's figures (as exact hex floats).
 *
 *   mpi_train [--mpi] [--per-rank] [--images N] [--checkpoint PATH] [--resume]
 *             [--stop-after E] [--kill-at RANK:EPOCH:STEP] [--differ data|model]
 *
 * --mpi joins MPI_COMM_WORLD (else one process without MPI); --per-rank
 * normalises each rank's share with its own statistics; --checkpoint writes
 * stage 1's checkpoint to PATH, --resume continues it; --stop-after E
 * cancels stage 1 after epoch E (printing "stopped"); --kill-at kills rank
 * RANK with SIGKILL at that 1-based epoch and step of stage 1; --differ
 * gives rank 1 ten more images or another model seed. The data: N
 * (290) random 28x28 images in 10 long-tailed classes; stage 1 in batches of
 * 96 (the last of 290's, 2 images, on one rank alone), with mixup; stage 2
 * MiSLAS with shifted BN. */
#include <mislas/mislas.h>
#include <mislas/mpi.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what)
{
    fprintf(stderr, "mpi_train: %s: %s\n", what, mislas_last_error());
    exit(1);
}

static uint64_t model_digest(const mislas_model *m)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int32_t i = 0; i < mislas_model_num_tensors(m); i++) {
        const char *name;
        size_t count;
        mislas_model_tensor_info(m, i, &name, &count);
        float *v = malloc(count * sizeof *v);
        if (v == NULL || mislas_model_get_tensor(m, name, v, count) != MISLAS_OK)
            fail("reading the model");
        const unsigned char *b = (const unsigned char *)v;
        for (size_t j = 0; j < count * sizeof *v; j++) {
            h ^= b[j];
            h *= 0x100000001b3ull;
        }
        free(v);
    }
    return h;
}

typedef struct stop {
    int32_t after;
    int rank, kill_rank, kill_epoch, kill_step;
} stop;

static int stop_after(const mislas_progress *p, void *user)
{
    const stop *s = user;
    if (s->kill_epoch > 0 && s->rank == s->kill_rank && p->epoch + 1 == s->kill_epoch
            && p->step == (size_t)s->kill_step && !p->epoch_done)
        raise(SIGKILL);
    return p->epoch_done && s->after > 0 && p->epoch + 1 == s->after;
}

int main(int argc, char **argv)
{
    int use_mpi = 0, per_rank = 0, resume = 0;
    const char *checkpoint = NULL;
    stop s = {0};
    int images = 290;
    const char *differ = "";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mpi") == 0)
            use_mpi = 1;
        else if (strcmp(argv[i], "--per-rank") == 0)
            per_rank = 1;
        else if (strcmp(argv[i], "--resume") == 0)
            resume = 1;
        else if (strcmp(argv[i], "--checkpoint") == 0 && i + 1 < argc)
            checkpoint = argv[++i];
        else if (strcmp(argv[i], "--stop-after") == 0 && i + 1 < argc)
            s.after = atoi(argv[++i]);
        else if (strcmp(argv[i], "--differ") == 0 && i + 1 < argc)
            differ = argv[++i];
        else if (strcmp(argv[i], "--images") == 0 && i + 1 < argc)
            images = atoi(argv[++i]);
        else if (strcmp(argv[i], "--kill-at") == 0 && i + 1 < argc)
            sscanf(argv[++i], "%d:%d:%d", &s.kill_rank, &s.kill_epoch, &s.kill_step);
        else {
            fprintf(stderr, "mpi_train: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    mislas_comm *comm = NULL;
    if (use_mpi) {
        int provided;
        MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
        if (mislas_mpi_comm_new(&comm, MPI_COMM_WORLD) != MISLAS_OK)
            fail("mislas_mpi_comm_new");
    }
    s.rank = mislas_comm_rank(comm);
    enum { K = 10, SIDE = 28 };
    const int N = images + (s.rank == 1 && strcmp(differ, "data") == 0 ? 10 : 0);
    uint8_t *pixels = malloc((size_t)N * SIDE * SIDE);
    int32_t *labels = malloc((size_t)N * sizeof *labels);
    if (N < 240 || pixels == NULL || labels == NULL)
        return 2;
    uint64_t x = 12345;
    for (size_t i = 0; i < (size_t)N * SIDE * SIDE; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        pixels[i] = (uint8_t)(x >> 56);
    }
    for (int i = 0; i < N; i++)
        labels[i] = i < 120 ? 0 : i < 190 ? 1 : i < 230 ? 2 : 3 + i % 7;
    mislas_dataset *d;
    if (mislas_dataset_from_memory(&d, pixels, labels, N, 1, SIDE, SIDE, K, MISLAS_COPY) != MISLAS_OK)
        fail("the data set");
    mislas_model_options mo;
    mislas_model_options_init(&mo);
    mo.in_channels = 1;
    mo.height = mo.width = SIDE;
    mo.num_classes = K;
    mo.seed = s.rank == 1 && strcmp(differ, "model") == 0 ? 1 : 0;
    mislas_model *m;
    if (mislas_model_new(&m, &mo) != MISLAS_OK)
        fail("mislas_model_new");

    mislas_train_stage1_options o1;
    mislas_train_stage1_options_init(&o1);
    o1.epochs = 3;
    o1.batch_size = 96;
    o1.warmup_epochs = 1;
    o1.comm = comm;
    o1.bn_per_rank = per_rank;
    o1.checkpoint_path = checkpoint;
    o1.resume = resume;
    o1.progress = stop_after;
    o1.progress_data = &s;
    int status = mislas_train_stage1(m, d, &o1);
    if (status == MISLAS_ERR_CANCELLED) {
        printf("rank %d stopped\n", mislas_comm_rank(comm));
        mislas_comm_free(comm);
        if (use_mpi)
            MPI_Finalize();
        return 0;
    }
    if (status != MISLAS_OK)
        fail("mislas_train_stage1");
    int rank = mislas_comm_rank(comm);
    printf("rank %d stage1 %016llx\n", rank, (unsigned long long)model_digest(m));

    mislas_train_stage2_options o2;
    mislas_train_stage2_options_init(&o2);
    o2.epochs = 1;
    o2.batch_size = 64;
    o2.comm = comm;
    o2.bn_per_rank = per_rank;
    if (mislas_train_stage2(m, d, &o2) != MISLAS_OK)
        fail("mislas_train_stage2");
    printf("rank %d stage2 %016llx\n", rank, (unsigned long long)model_digest(m));

    mislas_eval_options eo;
    mislas_eval_options_init(&eo);
    eo.batch_size = 100;
    eo.comm = comm;
    mislas_eval_report report;
    mislas_eval_report_init(&report);
    double class_accuracy[K];
    if (mislas_eval_run(m, d, &eo, NULL, class_accuracy, &report) != MISLAS_OK)
        fail("mislas_eval_run");
    printf("rank %d eval %a %a %a %a %a\n", rank, report.top1, report.ece, report.nll, report.many,
            class_accuracy[K - 1]);
    mislas_model_free(m);
    mislas_dataset_free(d);
    free(pixels);
    free(labels);
    mislas_comm_free(comm);
    if (use_mpi)
        MPI_Finalize();
    return 0;
}
