/* The progress line of a long library call, and stopping one cleanly on
 * SIGINT or SIGTERM. */
#ifndef MISLAS_EXAMPLES_CLI_PROGRESS_H
#define MISLAS_EXAMPLES_CLI_PROGRESS_H

#include <mislas/mislas.h>

#include <stdbool.h>
#include <stddef.h>

/* The progress line on stderr, fed by the library's progress callback. On a
 * terminal it is redrawn in place (at most ten times a second) and ends
 * with a newline at each epoch's end; otherwise a plain line is printed at
 * each epoch's end and at most every 30 s between. When the step waited for
 * its batches (decoded and assembled while the previous step ran) for 5 %
 * or more of the epoch so far, the line ends with that share ("data wait
 * 40%": the data, not the model, sets the pace), and likewise when one of
 * several ranks (parallel.h) waited for the others ("comm wait 12%":
 * communication the computation did not hide). SIGINT or SIGTERM while a
 * reporter is active cancels the running call at its next step (on every
 * rank: the library agrees on it). */
typedef struct cli_progress {
    bool quiet;             /* nothing printed; cancelling and the figures still work */
    bool terminal;
    bool line_open;         /* a redrawn line is on the terminal without its newline */
    double start, last_print;
    int32_t first_epoch;    /* the first epoch this process ran (a resume starts later) */
    int32_t epochs;         /* in the run */
    bool started;
    int32_t epochs_done;    /* epochs this process finished */
    double last_loss, last_accuracy;    /* of the last finished epoch */
    int32_t epoch_now;      /* the epoch being reported, and when it started (the previous */
    double epoch_start;     /* epoch's last report, or the start) */
    double last_report;
} cli_progress;

void cli_progress_start(cli_progress *p, bool quiet);
/* For mislas_*_options.progress, with the cli_progress as progress_data. */
int cli_progress_callback(const mislas_progress *progress, void *user);
/* Ends a line left open and restores the default signal handling. */
void cli_progress_stop(cli_progress *p);
/* The signal that cancelled the last call reported to a progress line, or
 * 0: a run stopped by it exits with 128 + its number. */
int cli_progress_signal(void);
/* Seconds on a monotonic clock. */
double cli_seconds(void);
/* "5m12s", "1h02m" or "12s" into buf. */
void cli_format_duration(char *buf, size_t size, double seconds);

#endif
