/* The programs' messages and exit statuses: every message on stderr starts
 * with the program's name (and, as one of several ranks of an MPI job,
 * parallel.h, "(rank R of N)" after it in a failure's). */
#ifndef MISLAS_EXAMPLES_CLI_MESSAGES_H
#define MISLAS_EXAMPLES_CLI_MESSAGES_H

#include <stdbool.h>

/* Each program defines its own name, which prefixes every message. */
extern const char cli_program_name[];

#if defined(__GNUC__) || defined(__clang__)
#define CLI_PRINTF_LIKE(format_index, first_arg) __attribute__((format(printf, format_index, first_arg)))
#else
#define CLI_PRINTF_LIKE(format_index, first_arg)
#endif

/* "<program>: <what>: <mislas_last_error()>" on stderr, what printf-formatted. */
void cli_report_library_failure(const char *what_format, ...) CLI_PRINTF_LIKE(1, 2);
/* "<program>: <message>" on stderr. */
void cli_report_failure(const char *format, ...) CLI_PRINTF_LIKE(1, 2);

/* Whether a library call returned MISLAS_OK; when it did not, says so as
 * cli_report_library_failure does (what_format says what failed):
 *   cli_succeeded(mislas_model_new(&model, &shape), "cannot make the model") */
bool cli_succeeded(int status, const char *what_format, ...) CLI_PRINTF_LIKE(2, 3);

/* Exit codes: 1 for a failure while running, 2 for a bad command line, and
 * 128 + the signal's number when SIGINT or SIGTERM stopped a run (the
 * shells' convention). */
enum { CLI_EXIT_FAILURE = 1, CLI_EXIT_USAGE = 2 };

/* A command-line error detected after parsing: message, exit CLI_EXIT_USAGE
 * (the ranks of a job read the same command line: rank 0 alone says it). */
_Noreturn void cli_usage_error(const char *format, ...) CLI_PRINTF_LIKE(1, 2);

/* Before a run with `threads` (--threads; 0 lets the library choose): one
 * line on stderr when MISLAS_NUM_THREADS holds what the library does not
 * take as a thread count (it then falls back to one thread per CPU
 * without a word: the library never prints), or a number with something
 * after it, which the library reads as the number. Rank 0 of a job alone
 * says it. */
void cli_check_thread_environment(int threads);

/* The program's exit status once the standard output is flushed: `status`,
 * or CLI_EXIT_FAILURE after saying so if what was printed could not all be
 * written (a full disk under a redirection, a closed pipe). */
int cli_exit_status(int status);

#endif
