/* Output files written atomically: all of a new file, or the old one left
 * as it was. */
#ifndef MISLAS_EXAMPLES_CLI_OUTPUT_H
#define MISLAS_EXAMPLES_CLI_OUTPUT_H

#include "messages.h"   /* CLI_PRINTF_LIKE */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* An output file written to a temporary file beside it and renamed over it
 * only once all of it is written and on disk, so that a failure (disk full,
 * a bad folder, an interrupt) leaves any previous file as it was. Every
 * write is checked; the first failure is remembered and reported by commit. */
typedef struct cli_output {
    const char *path;
    char *temp_path;
    int fd;                 /* the temporary file */
    FILE *file;             /* the content, gathered in memory */
    char *content;
    size_t size;
    int error;              /* errno of the first failed write, or 0 */
} cli_output;

/* Creates the temporary file; on failure prints why and returns false. */
bool cli_output_open(cli_output *o, const char *path);
void cli_output_printf(cli_output *o, const char *format, ...) CLI_PRINTF_LIKE(2, 3);
/* Writes s with &, <, > and " escaped as XML entities. */
void cli_output_xml_text(cli_output *o, const char *s);
/* Writes s as a JSON string, quotes included. */
void cli_output_json_string(cli_output *o, const char *s);
/* Writes the content to the temporary file, syncs, closes and renames; on
 * any failure removes the temporary file, prints why and returns false. */
bool cli_output_commit(cli_output *o);
/* Removes the temporary file (a failure elsewhere means it is not wanted). */
void cli_output_discard(cli_output *o);

#endif
