/* The progress line (progress.h). */
#define _POSIX_C_SOURCE 200809L

#include "progress.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The signal that asked the running call to stop, or 0. */
static volatile sig_atomic_t interrupted;
static void (*previous_sigint)(int);
static void (*previous_sigterm)(int);

/* A second signal finds the default action back and ends the program. */
static void on_interrupt(int signal_number)
{
    interrupted = signal_number;
    signal(signal_number, SIG_DFL);
}

/* A program started with the signal ignored (in the background of a
 * non-interactive shell, under nohup) keeps it ignored. */
static void (*catch_signal(int signal_number))(int)
{
    void (*previous)(int) = signal(signal_number, on_interrupt);
    if (previous == SIG_IGN)
        signal(signal_number, SIG_IGN);
    return previous;
}

double cli_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void cli_format_duration(char *buf, size_t size, double seconds)
{
    long s = seconds > 0 ? lround(seconds) : 0;
    if (seconds < 9.95)
        snprintf(buf, size, "%.1fs", seconds > 0 ? seconds : 0.0);
    else if (s < 60)
        snprintf(buf, size, "%lds", s);
    else if (s < 3600)
        snprintf(buf, size, "%ldm%02lds", s / 60, s % 60);
    else
        snprintf(buf, size, "%ldh%02ldm", s / 3600, s / 60 % 60);
}

void cli_progress_start(cli_progress *p, bool quiet)
{
    *p = (cli_progress){.quiet = quiet, .terminal = isatty(STDERR_FILENO) == 1};
    p->start = p->last_print = cli_seconds();
    interrupted = 0;
    previous_sigint = catch_signal(SIGINT);
    previous_sigterm = catch_signal(SIGTERM);
}

void cli_progress_stop(cli_progress *p)
{
    if (p->line_open)
        fputc('\n', stderr);
    p->line_open = false;
    signal(SIGINT, previous_sigint != SIG_ERR ? previous_sigint : SIG_DFL);
    signal(SIGTERM, previous_sigterm != SIG_ERR ? previous_sigterm : SIG_DFL);
}

int cli_progress_signal(void)
{
    return interrupted;
}

/* The whole run's remaining time, from this process's pace so far (each
 * epoch of a run has the same number of steps). */
static void format_eta(const cli_progress *p, const mislas_progress *r, double now, char *buf, size_t size)
{
    double done = (double)(r->epoch - p->first_epoch) * (double)r->steps + (double)r->step;
    double left = (double)(r->epochs - r->epoch) * (double)r->steps - (double)r->step;
    if (done <= 0) {
        snprintf(buf, size, "-");
        return;
    }
    cli_format_duration(buf, size, (now - p->start) / done * left);
}

static void print_line(cli_progress *p, const mislas_progress *r, double now)
{
    char eta[32], line[320], wait[64] = "";
    format_eta(p, r, now, eta, sizeof eta);
    double elapsed = fmax(now - p->epoch_start, 1e-9);
    double data_share = r->data_wait_seconds / elapsed, comm_share = r->comm_wait_seconds / elapsed;
    if (data_share >= 0.05)
        snprintf(wait, sizeof wait, "  data wait %.0f%%", 100 * fmin(data_share, 1.0));
    if (comm_share >= 0.05)     /* one of several ranks: waiting for the others */
        snprintf(wait + strlen(wait), sizeof wait - strlen(wait), "  comm wait %.0f%%",
                100 * fmin(comm_share, 1.0));
    if (r->stage == 0)
        snprintf(line, sizeof line, "evaluating  step %zu/%zu  %.0f img/s  ETA %s%s", r->step, r->steps,
                r->images_per_second, eta, wait);
    else
        snprintf(line, sizeof line, "epoch %d/%d  step %zu/%zu  loss %.4f  acc %.2f%%  %.0f img/s  lr %.4f  ETA %s%s",
                (int)r->epoch + 1, (int)r->epochs, r->step, r->steps, r->loss, 100 * r->accuracy,
                r->images_per_second, r->lr, eta, wait);
    if (!p->terminal) {
        fprintf(stderr, "%s\n", line);
        return;
    }
    /* An evaluation's line goes once it is done; an epoch's line stays. */
    bool evaluation_done = r->stage == 0 && r->epoch_done;
    fprintf(stderr, "\r%s\033[K%s", evaluation_done ? "" : line, r->epoch_done && !evaluation_done ? "\n" : "");
    p->line_open = !r->epoch_done;
}

int cli_progress_callback(const mislas_progress *r, void *user)
{
    cli_progress *p = user;
    double now = cli_seconds();
    if (!p->started) {
        p->started = true;
        p->first_epoch = r->epoch;
        p->epochs = r->epochs;
        p->epoch_now = r->epoch;
        p->epoch_start = p->start;
    } else if (r->epoch != p->epoch_now) {
        p->epoch_now = r->epoch;
        p->epoch_start = p->last_report;    /* the previous epoch's closing report */
    }
    p->last_report = now;
    if (r->epoch_done) {
        p->epochs_done++;
        p->last_loss = r->loss;
        p->last_accuracy = r->accuracy;
    }
    if (!p->quiet) {
        /* A plain log gets each epoch's line and a line every 30 s between;
         * an evaluation's closing line adds nothing to a log. */
        bool due = p->terminal ? r->epoch_done || now - p->last_print >= 0.1
                : (r->epoch_done && r->stage != 0) || now - p->last_print >= 30;
        if (due) {
            print_line(p, r, now);
            p->last_print = now;
        }
    }
    return interrupted != 0;
}
