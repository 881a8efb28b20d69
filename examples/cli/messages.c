/* The programs' messages and exit statuses (messages.h). */
#include "messages.h"

#include <mislas/mislas.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_report_library_failure(const char *what_format, ...)
{
    va_list args;
    va_start(args, what_format);
    fprintf(stderr, "%s: ", cli_program_name);
    vfprintf(stderr, what_format, args);
    fprintf(stderr, ": %s\n", mislas_last_error());
    va_end(args);
}

void cli_report_failure(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fprintf(stderr, "%s: ", cli_program_name);
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
    fprintf(stderr, "%s: ", cli_program_name);
    vfprintf(stderr, what_format, args);
    fprintf(stderr, ": %s\n", mislas_last_error());
    va_end(args);
    return false;
}

void cli_usage_error(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fprintf(stderr, "%s: ", cli_program_name);
    vfprintf(stderr, format, args);
    fprintf(stderr, " (see %s --help)\n", cli_program_name);
    va_end(args);
    exit(CLI_EXIT_USAGE);
}

int cli_exit_status(int status)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_report_failure("cannot write the standard output: %s", strerror(errno != 0 ? errno : EIO));
        return status == 0 ? CLI_EXIT_FAILURE : status;
    }
    return status;
}
