/* Output files written atomically (output.h). */
#define _POSIX_C_SOURCE 200809L

#include "output.h"

#include "paths.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool cli_output_is_stdout(const char *path)
{
    if (strcmp(path, "-") == 0)
        return true;
    struct stat file, out;
    return stat(path, &file) == 0 && fstat(STDOUT_FILENO, &out) == 0 && !S_ISCHR(out.st_mode)
            && file.st_dev == out.st_dev && file.st_ino == out.st_ino;
}

/* The temporary file beside the target, the path with its symbolic links
 * followed, so that the rename replaces the link's target and the link
 * stays; it takes the mode of the file it replaces, if any. */
static bool open_temporary(cli_output *o, const struct stat *replaced)
{
    o->kind = CLI_OUTPUT_REPLACE;
    o->target = cli_path_follow(o->path);
    size_t size = o->target != NULL ? strlen(o->target) + 32 : 0;
    o->temp_path = o->target != NULL ? malloc(size) : NULL;
    if (o->temp_path == NULL) {
        cli_report_failure("cannot write %s: %s", o->path, strerror(errno));
        return false;
    }
    snprintf(o->temp_path, size, "%s.tmp-%ld", o->target, (long)getpid());
    o->fd = open(o->temp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (o->fd < 0) {
        cli_report_failure("cannot write %s: cannot create %s: %s", o->path, o->temp_path, strerror(errno));
        free(o->temp_path);
        o->temp_path = NULL;
        return false;
    }
    if (replaced != NULL)
        (void)fchmod(o->fd, replaced->st_mode & 07777);     /* else the umask's, as a new file's */
    return true;
}

bool cli_output_open(cli_output *o, const char *path)
{
    *o = (cli_output){.path = path, .fd = -1};
    struct stat st;
    bool exists = strcmp(path, "-") != 0 && stat(path, &st) == 0;
    if (strcmp(path, "-") == 0) {
        o->kind = CLI_OUTPUT_STDOUT;
        o->fd = STDOUT_FILENO;
    } else if (exists && S_ISDIR(st.st_mode)) {
        cli_report_failure("cannot write %s: it is a folder", path);
        return false;
    } else if (exists && !S_ISREG(st.st_mode)) {
        /* a device, a FIFO: written as it is, never replaced by a file */
        o->kind = CLI_OUTPUT_IN_PLACE;
        o->fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
        if (o->fd < 0) {
            cli_report_failure("cannot write %s: %s", path, strerror(errno));
            return false;
        }
    } else if (!open_temporary(o, exists ? &st : NULL)) {
        cli_output_discard(o);
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

/* U+FFFD REPLACEMENT CHARACTER, in UTF-8. */
static const char REPLACEMENT[] = "\xEF\xBF\xBD";

/* The length (1 to 4) of the valid UTF-8 sequence text starts with, its
 * code point in *code; or 0 when none starts there, and *skip is then how
 * many bytes one U+FFFD replaces: the longest start of a valid sequence,
 * or 1 (the Unicode Standard's "maximal subpart", as Python decodes). A
 * valid sequence is the shortest form of a code point up to U+10FFFF that
 * is not a surrogate. */
static size_t utf8_sequence(const char *text, uint32_t *code, size_t *skip)
{
    const unsigned char *s = (const unsigned char *)text;
    uint32_t c = s[0];
    unsigned lo = 0x80, hi = 0xBF;  /* the range of the next byte */
    size_t n;
    if (c < 0x80) {
        *code = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        c &= 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;   /* no overlong form */
        hi = c == 0xED ? 0x9F : 0xBF;   /* no surrogate */
        c &= 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;   /* no overlong form */
        hi = c == 0xF4 ? 0x8F : 0xBF;   /* nothing beyond U+10FFFF */
        c &= 0x07;
    } else {
        *skip = 1;
        return 0;
    }
    for (size_t i = 1; i < n; i++) {    /* the terminating NUL is out of every range */
        if (s[i] < lo || s[i] > hi) {
            *skip = i;
            return 0;
        }
        c = c << 6 | (s[i] & 0x3Fu);
        lo = 0x80;
        hi = 0xBF;
    }
    *code = c;
    return n;
}

void cli_output_xml_text(cli_output *o, const char *s)
{
    while (*s != '\0') {
        uint32_t c = 0;
        size_t skip = 0, n = utf8_sequence(s, &c, &skip);
        /* XML 1.0's Char: no control character but tab, newline and return, even as a reference */
        bool allowed = n > 0 && (c >= 0x20 || c == '\t' || c == '\n' || c == '\r') && c != 0xFFFE && c != 0xFFFF;
        if (!allowed)
            cli_output_printf(o, "%s", REPLACEMENT);
        else if (c == '&')
            cli_output_printf(o, "&amp;");
        else if (c == '<')
            cli_output_printf(o, "&lt;");
        else if (c == '>')
            cli_output_printf(o, "&gt;");
        else if (c == '"')
            cli_output_printf(o, "&quot;");
        else if (c == '\r')
            cli_output_printf(o, "&#13;");  /* a parser reads a bare one as a newline */
        else
            cli_output_printf(o, "%.*s", (int)n, s);
        s += n > 0 ? n : skip;
    }
}

void cli_output_json_string(cli_output *o, const char *s)
{
    cli_output_printf(o, "\"");
    while (*s != '\0') {
        uint32_t c = 0;
        size_t skip = 0, n = utf8_sequence(s, &c, &skip);
        if (n == 0)
            cli_output_printf(o, "%s", REPLACEMENT);
        else if (c == '"' || c == '\\')
            cli_output_printf(o, "\\%c", (char)c);
        else if (c < 0x20)
            cli_output_printf(o, "\\u%04x", (unsigned)c);
        else
            cli_output_printf(o, "%.*s", (int)n, s);
        s += n > 0 ? n : skip;
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
    /* what the program printed before comes first, should this be the standard output */
    if (o->kind != CLI_OUTPUT_REPLACE)
        fflush(stdout);
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
    if (o->kind == CLI_OUTPUT_REPLACE && error == 0 && fsync(o->fd) != 0)
        error = errno;
    if (o->kind != CLI_OUTPUT_STDOUT && close(o->fd) != 0 && error == 0)
        error = errno;
    o->fd = -1;
    if (o->kind == CLI_OUTPUT_REPLACE && error == 0 && rename(o->temp_path, o->target) != 0)
        error = errno;
    if (error != 0) {
        if (o->kind == CLI_OUTPUT_STDOUT)
            cli_report_failure("cannot write the standard output: %s", strerror(error));
        else
            cli_report_failure("cannot write %s: %s%s", o->path, strerror(error),
                    o->kind == CLI_OUTPUT_REPLACE ? " (any previous file is unchanged)" : "");
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
    if (o->fd >= 0 && o->kind != CLI_OUTPUT_STDOUT)
        close(o->fd);
    if (o->temp_path != NULL)
        unlink(o->temp_path);
    free(o->temp_path);
    free(o->target);
    free(o->content);
    *o = (cli_output){.path = o->path, .fd = -1};
}
