/* Output files written atomically: all of a new file, or the old one left
 * as it was (a device, a FIFO and the standard output written in place). */
#ifndef MISLAS_EXAMPLES_CLI_OUTPUT_H
#define MISLAS_EXAMPLES_CLI_OUTPUT_H

#include "messages.h"   /* CLI_PRINTF_LIKE */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* An output file. A new file, or an existing regular file, is written to a
 * temporary file beside it and renamed over it only once all of it is
 * written and on disk, so that a failure (disk full, a bad folder, an
 * interrupt) leaves any previous file as it was; a symbolic link's target
 * is the file replaced, and the link stays a link. An existing file that
 * is not a regular file (a device, a FIFO, a socket) is opened and written
 * in place, never replaced. "-" is the standard output. Every write is
 * checked; the first failure is remembered and reported by commit. */
typedef enum cli_output_kind {
    CLI_OUTPUT_REPLACE,     /* a temporary file renamed over `target` */
    CLI_OUTPUT_IN_PLACE,    /* a device or FIFO, opened and written */
    CLI_OUTPUT_STDOUT       /* "-" */
} cli_output_kind;

typedef struct cli_output {
    const char *path;       /* as given, for messages */
    cli_output_kind kind;
    char *target;           /* REPLACE: path with its symbolic links followed */
    char *temp_path;        /* REPLACE: the temporary file beside target */
    int fd;                 /* the temporary file, the device, or the standard output */
    FILE *file;             /* the content, gathered in memory */
    char *content;
    size_t size;
    int error;              /* errno of the first failed write, or 0 */
} cli_output;

/* Whether path names the standard output: "-", or the very pipe or file
 * the standard output already is (a character device such as a terminal
 * or /dev/null aside). Whatever else the program prints on stdout should
 * then go to stderr. */
bool cli_output_is_stdout(const char *path);

/* Creates the temporary file (or opens the device, or takes the standard
 * output); on failure prints why and returns false. */
bool cli_output_open(cli_output *o, const char *path);
void cli_output_printf(cli_output *o, const char *format, ...) CLI_PRINTF_LIKE(2, 3);
/* Writes s as XML 1.0 text: &, <, > and " escaped as entities, and every
 * byte sequence that is not valid UTF-8 or not a character XML allows
 * (control characters but tab and newline, U+FFFE, U+FFFF) as U+FFFD. */
void cli_output_xml_text(cli_output *o, const char *s);
/* Writes s as a JSON string, quotes included: " and \ escaped, control
 * characters as \u00XX, and every byte sequence that is not valid UTF-8
 * as U+FFFD, so that the output is always valid UTF-8. */
void cli_output_json_string(cli_output *o, const char *s);
/* Writes the content: to the temporary file, synced, closed and renamed
 * over the target; or to the device or the standard output (flushed
 * first). On any failure removes the temporary file, prints why and
 * returns false. */
bool cli_output_commit(cli_output *o);
/* Removes the temporary file (a failure elsewhere means it is not wanted);
 * nothing reaches a device or the standard output before commit. */
void cli_output_discard(cli_output *o);

#endif
