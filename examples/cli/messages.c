/* The programs' messages and exit statuses (messages.h). */
#include "messages.h"

#include "parallel.h"

#include <mislas/mislas.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "<program>: ", or "<program> (rank R of N): " as one of several ranks:
 * each rank prints its own failures, and the library's messages on the
 * others name the rank that failed. */
static void print_name(void)
{
    if (cli_parallel_size() > 1)
        fprintf(stderr, "%s (rank %d of %d): ", cli_program_name, (int)cli_parallel_rank(),
                (int)cli_parallel_size());
    else
        fprintf(stderr, "%s: ", cli_program_name);
}

void cli_report_library_failure(const char *what_format, ...)
{
    va_list args;
    va_start(args, what_format);
    print_name();
    vfprintf(stderr, what_format, args);
    fprintf(stderr, ": %s\n", mislas_last_error());
    va_end(args);
}

void cli_report_failure(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    print_name();
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
}

bool cli_succeeded(int status, const char *what_format, ...)
{
    if (status == MISLAS_OK)
        return true;
    va_list args;
    va_start(args, what_format);
    print_name();
    vfprintf(stderr, what_format, args);
    fprintf(stderr, ": %s\n", mislas_last_error());
    va_end(args);
    return false;
}

void cli_usage_error(const char *format, ...)
{
    /* every rank of a job reads the same command line and data: one says it */
    if (!cli_parallel_leader())
        exit(CLI_EXIT_USAGE);
    va_list args;
    va_start(args, format);
    fprintf(stderr, "%s: ", cli_program_name);
    vfprintf(stderr, format, args);
    fprintf(stderr, " (see %s --help)\n", cli_program_name);
    va_end(args);
    exit(CLI_EXIT_USAGE);
}

void cli_check_thread_environment(int threads)
{
    const char *env = getenv("MISLAS_NUM_THREADS");
    if (threads != 0 || env == NULL || env[0] == '\0' || !cli_parallel_leader())
        return;     /* --threads wins over the variable; an empty one is none; rank 0 speaks for all */
    /* what lib/util/threads.c does: strtol, then 1 to 256 or the default */
    enum { MAX_THREADS = 256 };
    char *end;
    errno = 0;
    long v = strtol(env, &end, 10);
    if (errno != 0 || v < 1 || v > MAX_THREADS) {
        /* the default the library falls back to, the variable being unusable */
        cli_report_failure("MISLAS_NUM_THREADS=%s is not a thread count from 1 to %d; using the default (%d)",
                env, MAX_THREADS, (int)mislas_num_threads());
        return;
    }
    while (*end == ' ' || *end == '\t' || *end == '\n')
        end++;
    if (*end != '\0')
        cli_report_failure("MISLAS_NUM_THREADS=%s is read as %ld (what follows the number is ignored)", env, v);
}

int cli_exit_status(int status)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_report_failure("cannot write the standard output: %s", strerror(errno != 0 ? errno : EIO));
        return status == 0 ? CLI_EXIT_FAILURE : status;
    }
    return status;
}
