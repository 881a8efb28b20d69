/* Output files written atomically (output.h). */
#define _POSIX_C_SOURCE 200809L

#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool cli_output_open(cli_output *o, const char *path)
{
    *o = (cli_output){.path = path, .fd = -1};
    size_t size = strlen(path) + 32;
    o->temp_path = malloc(size);
    if (o->temp_path == NULL) {
        cli_report_failure("cannot write %s: out of memory", path);
        return false;
    }
    snprintf(o->temp_path, size, "%s.tmp-%ld", path, (long)getpid());
    o->fd = open(o->temp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (o->fd < 0) {
        cli_report_failure("cannot write %s: cannot create %s: %s", path, o->temp_path, strerror(errno));
        free(o->temp_path);
        o->temp_path = NULL;
        return false;
    }
    o->file = open_memstream(&o->content, &o->size);
    if (o->file == NULL) {
        cli_report_failure("cannot write %s: out of memory", path);
        cli_output_discard(o);
        return false;
    }
    return true;
}

void cli_output_printf(cli_output *o, const char *format, ...)
{
    if (o->error != 0)
        return;
    va_list args;
    va_start(args, format);
    errno = 0;
    if (vfprintf(o->file, format, args) < 0)
        o->error = errno != 0 ? errno : ENOMEM;
    va_end(args);
}

void cli_output_xml_text(cli_output *o, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '&': cli_output_printf(o, "&amp;"); break;
        case '<': cli_output_printf(o, "&lt;"); break;
        case '>': cli_output_printf(o, "&gt;"); break;
        case '"': cli_output_printf(o, "&quot;"); break;
        default:
            /* XML 1.0 allows no control characters but tab, newline and return */
            if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r')
                cli_output_printf(o, "?");
            else
                cli_output_printf(o, "%c", *s);
        }
    }
}

void cli_output_json_string(cli_output *o, const char *s)
{
    cli_output_printf(o, "\"");
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            cli_output_printf(o, "\\%c", c);
        else if (c < 0x20)
            cli_output_printf(o, "\\u%04x", c);
        else
            cli_output_printf(o, "%c", c);
    }
    cli_output_printf(o, "\"");
}

/* The content goes out with write(2) in a loop: a short write continues,
 * a write of nothing is a full disk, and nothing sits in a stdio buffer
 * whose failure could be lost. */
bool cli_output_commit(cli_output *o)
{
    int error = o->error;
    if (fclose(o->file) != 0 && error == 0)
        error = errno;
    o->file = NULL;
    const char *p = o->content;
    size_t left = error == 0 ? o->size : 0;
    while (left > 0) {
        ssize_t wrote = write(o->fd, p, left);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote <= 0) {
            error = wrote < 0 ? errno : ENOSPC;
            break;
        }
        p += wrote;
        left -= (size_t)wrote;
    }
    if (error == 0 && fsync(o->fd) != 0)
        error = errno;
    if (close(o->fd) != 0 && error == 0)
        error = errno;
    o->fd = -1;
    if (error == 0 && rename(o->temp_path, o->path) != 0)
        error = errno;
    if (error != 0) {
        cli_report_failure("cannot write %s: %s (any previous file is unchanged)", o->path, strerror(error));
    } else {
        free(o->temp_path);     /* renamed: nothing left to remove */
        o->temp_path = NULL;
    }
    cli_output_discard(o);
    return error == 0;
}

void cli_output_discard(cli_output *o)
{
    if (o->file != NULL)
        fclose(o->file);
    if (o->fd >= 0)
        close(o->fd);
    if (o->temp_path != NULL)
        unlink(o->temp_path);
    free(o->temp_path);
    free(o->content);
    *o = (cli_output){.path = o->path, .fd = -1};
}
