/* What surrounds the training calls (training.h). */
#define _POSIX_C_SOURCE 200809L

#include "training.h"

#include "messages.h"
#include "parallel.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

bool cli_announce_checkpoint(const char *checkpoint, bool resume, bool quiet)
{
    if (access(checkpoint, F_OK) != 0) {
        if (resume && !quiet)
            fprintf(stderr, "%s: %s does not exist yet: the run starts at epoch 1\n", cli_program_name, checkpoint);
        return true;
    }
    if (!resume) {
        if (!quiet)
            fprintf(stderr, "%s: %s exists and will be replaced (--resume continues it)\n", cli_program_name,
                    checkpoint);
        return true;
    }
    int32_t stage, done, epochs;
    if (mislas_checkpoint_training(&stage, &done, &epochs, checkpoint) != MISLAS_OK) {
        cli_report_library_failure("cannot resume %s", checkpoint);
        return false;
    }
    if (!quiet)
        fprintf(stderr, "%s: %s holds stage %d at epoch %d of %d; continuing\n", cli_program_name, checkpoint,
                (int)stage, (int)done, (int)epochs);
    return true;
}

void cli_describe_training_set(const mislas_dataset *train, const cli_dataset *dataset, double imb_factor,
        mislas_imbalance imb_type, bool quiet)
{
    if (dataset->list)
        return;     /* described as its list was read (cli_open_training_set) */
    int32_t k = mislas_dataset_num_classes(train);
    int64_t *counts = malloc((size_t)k * sizeof *counts);
    if (!quiet && counts != NULL && mislas_dataset_class_counts(train, counts) == MISLAS_OK) {
        int64_t largest = counts[0], smallest = counts[0];
        for (int32_t c = 1; c < k; c++) {
            largest = counts[c] > largest ? counts[c] : largest;
            smallest = counts[c] < smallest ? counts[c] : smallest;
        }
        fprintf(stderr, "%s: %s-LT (IF %g, %s profile): %zu images, %" PRId64 " to %" PRId64 " per class\n",
                cli_program_name, dataset->name, 1 / imb_factor, imb_type == MISLAS_IMBALANCE_EXP ? "exp" : "step",
                mislas_dataset_size(train), largest, smallest);
    }
    free(counts);
}

void cli_training_start(cli_training *run, int stage, const char *checkpoint, int32_t epochs, bool quiet)
{
    run->stage = stage;
    run->checkpoint = checkpoint;
    run->epochs = epochs;
    cli_progress_start(&run->progress, quiet);
    run->start = cli_seconds();
}

/* The call's outcome: 0, or the exit code after printing why. */
static int training_outcome(int status, const char *checkpoint, const cli_progress *p)
{
    if (status == MISLAS_OK)
        return 0;
    if (status == MISLAS_ERR_CANCELLED) {
        /* a signal to any rank of a job stops them all: rank 0 says where the checkpoint is */
        int signal_number = cli_progress_signal();
        const char *where = signal_number != 0 ? "interrupted" : "interrupted on another rank";
        bool leader = cli_parallel_leader();
        if (leader && p->epochs_done > 0)
            cli_report_failure("%s; %s holds epoch %d of %d (--resume continues the run)", where, checkpoint,
                    (int)(p->first_epoch + p->epochs_done), (int)p->epochs);
        else if (leader)
            cli_report_failure("%s before an epoch ended; %s was not written", where, checkpoint);
        return signal_number != 0 ? 128 + signal_number : CLI_EXIT_FAILURE;
    }
    cli_report_library_failure("training failed");
    return CLI_EXIT_FAILURE;
}

/* The one-line summary of a finished training call on stdout. */
static void print_training_summary(int stage, const cli_progress *p, int32_t epochs, double seconds,
        const char *checkpoint)
{
    char took[32];
    cli_format_duration(took, sizeof took, seconds);
    if (p->epochs_done == 0) {
        printf("stage %d: %s already holds all %d epochs; nothing to train\n", stage, checkpoint, (int)epochs);
        return;
    }
    int32_t first = p->first_epoch + 1, last = p->first_epoch + p->epochs_done;
    char span[64];
    if (first == last)
        snprintf(span, sizeof span, "epoch %d", (int)last);
    else
        snprintf(span, sizeof span, "epochs %d-%d", (int)first, (int)last);
    printf("stage %d: %s of %d in %s, final train loss %.4f, acc %.2f%%, checkpoint %s\n", stage, span,
            (int)epochs, took, p->last_loss, 100 * p->last_accuracy, checkpoint);
}

int cli_training_finish(cli_training *run, int status)
{
    cli_progress_stop(&run->progress);
    int code = training_outcome(status, run->checkpoint, &run->progress);
    if (code == 0)
        print_training_summary(run->stage, &run->progress, run->epochs, cli_seconds() - run->start,
                run->checkpoint);
    return code;
}
