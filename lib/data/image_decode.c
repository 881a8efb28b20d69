/* Image files to RGB pixels as Debian's python3-pil 9.4 gives them
 * (Image.open(path).convert("RGB")): JPEG through libjpeg(-turbo), PNG
 * through libpng, both with their errors caught here (setjmp), never printed.
 *
 * JPEG, as PIL's JpegImagePlugin sets up the same libjpeg:
 *   - libjpeg's defaults: integer ("islow") DCT, fancy upsampling, libjpeg's
 *     own choice of the file's colour space (JFIF / Adobe markers);
 *   - 8-bit samples and 1, 3 or 4 components only (PIL refuses the rest);
 *   - 1 component: grey, replicated into R, G and B;
 *   - 3 components: libjpeg's RGB output;
 *   - 4 components: libjpeg's CMYK output (YCCK converted by libjpeg), which
 *     PIL always reads as Adobe-inverted ("CMYK;I": every sample v becomes
 *     255 - v), then converts with its own formula: with nk = 255 - K,
 *     R = nk - (C * nk + 128 + ((C * nk + 128) >> 8)) >> 8, likewise G, B;
 *   - libjpeg's warnings (corrupt data it can step over) are ignored, as PIL
 *     ignores them; running out of data before the last row is an error (PIL:
 *     "image file is truncated"); once every row is decoded, a missing
 *     end-of-image marker is not (PIL stops there too), but other errors
 *     while libjpeg reads up to it still are.
 * PNG, as PIL's PngImagePlugin and its conversions to RGB:
 *   - 8-bit grey (and 1/2/4-bit grey scaled to 0..255 by x255, x85, x17)
 *     replicated; grey + alpha: grey replicated, alpha dropped;
 *   - 16-bit grey is PIL's mode "I": each value clipped to 0..255 (so most
 *     pixels become 255); other 16-bit samples keep their high byte;
 *   - RGB as is, RGBA with alpha dropped; transparency chunks ignored;
 *   - palettes through the PLTE entries, indices past its end as PIL's
 *     default palette (a grey ramp: entry i is i, i, i);
 *   - no gamma, sRGB or ICC handling (PIL applies none).
 * Both: sides up to MISLASI_IMAGE_MAX_SIDE, and at most PIL's
 * decompression-bomb limit of 2 x 89478485 pixels (beyond it PIL refuses
 * the file): MISLAS_ERR_UNSUPPORTED. */
#define _POSIX_C_SOURCE 200809L      /* fseeko, fileno */
#include "image.h"
#include "util/util.h"

#include <errno.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

static const char FN_PROBE[] = "mislasi_image_probe";
static const char FN_DECODE[] = "mislasi_image_decode";

/* PIL's Image.MAX_IMAGE_PIXELS; Image.open refuses more than twice that. */
#define PIL_BOMB_PIXELS (2 * (int64_t)89478485)

static const uint8_t PNG_SIGNATURE[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static int check_sides(const char *fn, const char *path, int64_t height, int64_t width)
{
    if (height < 1 || width < 1)
        return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: the image is %jd x %jd pixels", fn, path,
                (intmax_t)height, (intmax_t)width);
    if (height > MISLASI_IMAGE_MAX_SIDE || width > MISLASI_IMAGE_MAX_SIDE)
        return mislasi_fail(MISLAS_ERR_UNSUPPORTED,
                "%s: %s: the image is %jd x %jd pixels, a side longer than the %d pixels supported", fn,
                path, (intmax_t)height, (intmax_t)width, (int)MISLASI_IMAGE_MAX_SIDE);
    if (height * width > PIL_BOMB_PIXELS)
        return mislasi_fail(MISLAS_ERR_UNSUPPORTED,
                "%s: %s: the image is %jd x %jd pixels, more than the %jd PIL opens", fn, path,
                (intmax_t)height, (intmax_t)width, (intmax_t)PIL_BOMB_PIXELS);
    return MISLAS_OK;
}

/* ------------------------------------------------------------------------ */
/* Input: the whole file in memory (decoding), or a file read on demand     */
/* (probing, which reads the headers and the tail only).                    */

typedef struct input {
    const char *fn, *path;
    const uint8_t *data;      /* the whole file (decoding) ... */
    size_t size;
    FILE *file;               /* ... or this file, read through buf (probing) */
    int64_t file_size;
    int64_t consumed;         /* bytes of the file handed to the decoder so far */
    int read_errno;           /* a read that failed (not the end of the file) */
    uint8_t buf[1 << 14];     /* last, so that decoding need not clear it */
} input;

/* Up to `want` more bytes of the file into in->buf; the number read. */
static size_t input_read(input *in, size_t want)
{
    if (want > sizeof in->buf)
        want = sizeof in->buf;
    size_t got = fread(in->buf, 1, want, in->file);
    if (got < want && ferror(in->file))
        in->read_errno = errno != 0 ? errno : EIO;
    in->consumed += (int64_t)got;
    return got;
}

/* Skips n bytes of the file, or says that it ends first. */
static bool input_skip(input *in, int64_t n)
{
    if (in->consumed + n > in->file_size)
        return false;
    if (fseeko(in->file, (off_t)n, SEEK_CUR) != 0) {
        in->read_errno = errno;
        return false;
    }
    in->consumed += n;
    return true;
}

/* strerror, safe on the loader's threads. */
static const char *error_text(int err, char *buf, size_t cap)
{
    if (strerror_r(err, buf, cap) != 0)
        snprintf(buf, cap, "error %d", err);
    return buf;
}

static int open_input(const char *fn, const char *path, input *in)
{
    char why[128];
    in->fn = fn;
    in->path = path;
    in->file = fopen(path, "rb");
    if (in->file == NULL)
        return mislasi_fail(MISLAS_ERR_IO, "%s: cannot open %s: %s", fn, path, error_text(errno, why, sizeof why));
    struct stat st;
    if (fstat(fileno(in->file), &st) != 0) {
        int err = errno;
        fclose(in->file);
        return mislasi_fail(MISLAS_ERR_IO, "%s: cannot read %s: %s", fn, path, error_text(err, why, sizeof why));
    }
    if (S_ISDIR(st.st_mode)) {
        fclose(in->file);
        return mislasi_fail(MISLAS_ERR_IO, "%s: %s is a folder, not a file", fn, path);
    }
    /* Not a regular file (a pipe, /proc): its length is learned by reading. */
    in->file_size = S_ISREG(st.st_mode) ? (int64_t)st.st_size : INT64_MAX;
    return MISLAS_OK;
}

static int read_error(const input *in)
{
    char why[128];
    return mislasi_fail(MISLAS_ERR_IO, "%s: cannot read %s: %s", in->fn, in->path,
            error_text(in->read_errno, why, sizeof why));
}

/* ------------------------------------------------------------------------ */
/* JPEG                                                                     */

typedef struct jpeg_ctx {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    struct jpeg_source_mgr src;
    struct jpeg_decompress_struct cinfo;
    bool created;
    bool truncated;             /* the data ran out */
    bool finishing;             /* every row is decoded: running out is fine */
    char message[JMSG_LENGTH_MAX];
    input *in;
    uint8_t *rgb;               /* the output (decoding) */
    uint8_t *row;               /* one row of libjpeg's output (CMYK) */
} jpeg_ctx;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_ctx *c = (jpeg_ctx *)(void *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, c->message);
    longjmp(c->jump, 1);
}

static void jpeg_no_output(j_common_ptr cinfo)
{
    (void)cinfo;
}

static void src_nothing(j_decompress_ptr cinfo)
{
    (void)cinfo;
}

/* The data has run out: PIL's decoder suspends, finds no more data and
 * raises "image file is truncated" (unless all rows are in). */
static boolean src_out_of_data(j_decompress_ptr cinfo)
{
    jpeg_ctx *c = (jpeg_ctx *)(void *)cinfo->err;
    if (c->finishing)
        return FALSE;       /* suspends jpeg_finish_decompress, which then gives up quietly */
    c->truncated = true;
    ERREXIT(cinfo, JERR_INPUT_EOF);
    return FALSE;
}

static void src_skip_memory(j_decompress_ptr cinfo, long n)
{
    struct jpeg_source_mgr *s = cinfo->src;
    if (n <= 0)
        return;
    while ((size_t)n > s->bytes_in_buffer) {
        n -= (long)s->bytes_in_buffer;
        s->next_input_byte += s->bytes_in_buffer;
        s->bytes_in_buffer = 0;
        if (!s->fill_input_buffer(cinfo))
            return;
    }
    s->next_input_byte += n;
    s->bytes_in_buffer -= (size_t)n;
}

static boolean src_fill_file(j_decompress_ptr cinfo)
{
    jpeg_ctx *c = (jpeg_ctx *)(void *)cinfo->err;
    size_t got = input_read(c->in, sizeof c->in->buf);
    if (got == 0) {
        if (c->in->read_errno == 0)
            c->truncated = true;
        ERREXIT(cinfo, JERR_INPUT_EOF);
    }
    cinfo->src->next_input_byte = c->in->buf;
    cinfo->src->bytes_in_buffer = got;
    return TRUE;
}

static void src_skip_file(j_decompress_ptr cinfo, long n)
{
    jpeg_ctx *c = (jpeg_ctx *)(void *)cinfo->err;
    struct jpeg_source_mgr *s = cinfo->src;
    if (n <= 0)
        return;
    if ((size_t)n <= s->bytes_in_buffer) {
        s->next_input_byte += n;
        s->bytes_in_buffer -= (size_t)n;
        return;
    }
    int64_t rest = (int64_t)n - (int64_t)s->bytes_in_buffer;
    s->bytes_in_buffer = 0;
    if (!input_skip(c->in, rest)) {
        if (c->in->read_errno == 0)
            c->truncated = true;
        ERREXIT(cinfo, JERR_INPUT_EOF);
    }
}

/* The failure a longjmp out of libjpeg means. */
static int jpeg_failure(const jpeg_ctx *c)
{
    const input *in = c->in;
    if (in->read_errno != 0)
        return read_error(in);
    if (c->truncated)
        return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: the JPEG data ends early: the file is truncated", in->fn,
                in->path);
    if (c->pub.msg_code == JERR_OUT_OF_MEMORY)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: %s: out of memory decoding the JPEG image (%s)",
                in->fn, in->path, c->message);
    return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: not a JPEG image this library can decode: %s", in->fn,
            in->path, c->message);
}

/* Sets up c->cinfo on c->in (memory or file), reads the header and checks
 * it as PIL's plugin does. Call inside the setjmp. */
static int jpeg_begin(jpeg_ctx *c)
{
    c->cinfo.err = jpeg_std_error(&c->pub);
    c->pub.error_exit = jpeg_on_error;
    c->pub.output_message = jpeg_no_output;
    jpeg_create_decompress(&c->cinfo);
    c->created = true;
    c->src.init_source = src_nothing;
    c->src.term_source = src_nothing;
    c->src.resync_to_restart = jpeg_resync_to_restart;
    if (c->in->data != NULL) {
        c->src.fill_input_buffer = src_out_of_data;
        c->src.skip_input_data = src_skip_memory;
        c->src.next_input_byte = c->in->data;
        c->src.bytes_in_buffer = c->in->size;
    } else {
        c->src.fill_input_buffer = src_fill_file;
        c->src.skip_input_data = src_skip_file;
        c->src.next_input_byte = NULL;
        c->src.bytes_in_buffer = 0;
    }
    c->cinfo.src = &c->src;
    if (jpeg_read_header(&c->cinfo, TRUE) != JPEG_HEADER_OK)
        return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: a JPEG file without an image", c->in->fn, c->in->path);
    const struct jpeg_decompress_struct *ci = &c->cinfo;
    if (ci->data_precision != 8)
        return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: %d-bit JPEG samples (only 8-bit are read)", c->in->fn,
                c->in->path, ci->data_precision);
    if (ci->num_components != 1 && ci->num_components != 3 && ci->num_components != 4)
        return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: a JPEG image of %d components (1, 3 or 4 are read)",
                c->in->fn, c->in->path, ci->num_components);
    return check_sides(c->in->fn, c->in->path, ci->image_height, ci->image_width);
}

/* True if b[0..n-1] holds FF D9. */
static bool has_eoi(const uint8_t *b, size_t n)
{
    for (size_t i = n; i >= 2; i--)
        if (b[i - 2] == 0xff && b[i - 1] == 0xd9)
            return true;
    return false;
}

/* The last `n` bytes of the file into buf. */
static int read_tail(input *in, uint8_t *buf, size_t n)
{
    if (fseeko(in->file, (off_t)(in->file_size - (int64_t)n), SEEK_SET) != 0) {
        in->read_errno = errno;
        return read_error(in);
    }
    size_t got = fread(buf, 1, n, in->file);
    if (got != n) {
        if (ferror(in->file)) {
            in->read_errno = errno != 0 ? errno : EIO;
            return read_error(in);
        }
        memset(buf + got, 0, n - got);      /* the file shrank meanwhile */
    }
    return MISLAS_OK;
}

/* The end-of-image marker (FF D9) among the last bytes of the file, after
 * byte `scan_at` where the first scan's data starts; bytes after the marker
 * are allowed, as PIL never reads them. Looks at the last 16 KiB, then at
 * the last 64 KiB (a file with more trailing bytes than that is refused). */
static int jpeg_check_end(input *in, int64_t scan_at)
{
    bool found = false;
    if (in->file_size == INT64_MAX) {
        /* Not a regular file: read to its end, watching for the marker. */
        uint8_t previous = 0;
        for (;;) {
            size_t got = input_read(in, sizeof in->buf);
            if (got == 0)
                break;
            found = found || (previous == 0xff && in->buf[0] == 0xd9) || has_eoi(in->buf, got);
            previous = in->buf[got - 1];
        }
        if (in->read_errno != 0)
            return read_error(in);
    } else {
        const int64_t after = in->file_size - scan_at;
        size_t n = after < (int64_t)sizeof in->buf ? (size_t)after : sizeof in->buf;
        int rc = read_tail(in, in->buf, n);
        if (rc != MISLAS_OK)
            return rc;
        found = has_eoi(in->buf, n);
        if (!found && after > (int64_t)n) {
            n = after < (1 << 16) ? (size_t)after : 1 << 16;
            uint8_t *buf = mislasi_alloc(n);
            if (buf == NULL)
                return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: %s: out of memory", in->fn, in->path);
            rc = read_tail(in, buf, n);
            found = rc == MISLAS_OK && has_eoi(buf, n);
            mislasi_free(buf);
            if (rc != MISLAS_OK)
                return rc;
        }
    }
    if (found)
        return MISLAS_OK;
    return mislasi_fail(MISLAS_ERR_FORMAT,
            "%s: %s: no JPEG end-of-image marker (FF D9) near the end of the file: the file is truncated",
            in->fn, in->path);
}

static int jpeg_probe(input *in, int32_t *height, int32_t *width)
{
    jpeg_ctx *c = mislasi_calloc(1, sizeof *c);
    if (c == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: %s: out of memory", in->fn, in->path);
    c->in = in;
    int rc;
    if (setjmp(c->jump)) {
        rc = jpeg_failure(c);
    } else {
        rc = jpeg_begin(c);
        if (rc == MISLAS_OK) {
            *height = (int32_t)c->cinfo.image_height;
            *width = (int32_t)c->cinfo.image_width;
        }
    }
    int64_t scan_at = in->consumed - (int64_t)c->src.bytes_in_buffer;
    if (c->created)
        jpeg_destroy_decompress(&c->cinfo);
    mislasi_free(c);
    if (rc == MISLAS_OK)
        rc = jpeg_check_end(in, scan_at);
    return rc;
}

/* PIL's "CMYK;I" unpacking, then its cmyk2rgb. */
static void cmyk_inverted_to_rgb(uint8_t *out, const uint8_t *in, size_t pixels)
{
    for (size_t i = 0; i < pixels; i++, in += 4, out += 3) {
        int k = 255 - in[3];
        int nk = 255 - k;
        for (int ch = 0; ch < 3; ch++) {
            int t = (255 - in[ch]) * nk + 128;
            int v = nk - ((t >> 8) + t) / 256;
            out[ch] = (uint8_t)(v <= 0 ? 0 : v < 256 ? v : 255);
        }
    }
}

/* Pixels decoded beyond each side of a box (see jpeg_decode). */
enum { BOX_MARGIN = 2 };

/* What mislasi_image_decode_box asks of a decoder: the caller's choice of
 * box once the size is known, and where the box starts in what was decoded. */
typedef struct box_request {
    mislasi_image_box_fn choose;
    void *ctx;
    int32_t box[4];             /* top, left, height, width */
    int32_t at[2];              /* the box's top-left pixel in the decoded image */
} box_request;

/* The box `want` asks for in an h x w image (the whole image without one). */
static void choose_box(box_request *want, int32_t h, int32_t w)
{
    if (want == NULL)
        return;
    want->box[0] = want->box[1] = 0;
    want->box[2] = h;
    want->box[3] = w;
    want->choose(want->ctx, h, w, want->box);
    want->at[0] = want->box[0];
    want->at[1] = want->box[1];
}

/* Decodes the image, or with `want` only the rows of its box and the columns
 * of the iMCU grid around it (libjpeg-turbo's skip and crop: entropy decoding
 * of the rest, no inverse DCT, upsampling or colour conversion). */
static int jpeg_decode(jpeg_ctx *c, mislasi_image *img, box_request *want)
{
    int rc;
    if (setjmp(c->jump)) {
        rc = jpeg_failure(c);
    } else {
        rc = jpeg_begin(c);
        if (rc == MISLAS_OK) {
            struct jpeg_decompress_struct *ci = &c->cinfo;
            ci->out_color_space = ci->num_components == 1 ? JCS_GRAYSCALE
                                : ci->num_components == 3 ? JCS_RGB : JCS_CMYK;
            choose_box(want, (int32_t)ci->image_height, (int32_t)ci->image_width);
            jpeg_start_decompress(ci);
            JDIMENSION first_row = 0, rows = ci->output_height;
            if (want != NULL && !ci->progressive_mode) {     /* progressive: cropped pixels differed */
                /* A margin around the box: upsampling reads a neighbour on
                 * each side, which a crop at the box itself would leave out. */
                const int32_t ih = (int32_t)ci->output_height, iw = (int32_t)ci->output_width;
                int32_t top = want->box[0] - BOX_MARGIN, left = want->box[1] - BOX_MARGIN;
                int32_t bottom = want->box[0] + want->box[2] + BOX_MARGIN;
                int32_t right = want->box[1] + want->box[3] + BOX_MARGIN;
                top = top < 0 ? 0 : top;
                left = left < 0 ? 0 : left;
                bottom = bottom > ih ? ih : bottom;
                right = right > iw ? iw : right;
                JDIMENSION x0 = (JDIMENSION)left, cols = (JDIMENSION)(right - left);
                if (cols < ci->output_width)
                    jpeg_crop_scanline(ci, &x0, &cols);
                want->at[0] = want->box[0] - top;
                want->at[1] = want->box[1] - (int32_t)x0;
                first_row = (JDIMENSION)top;
                rows = (JDIMENSION)(bottom - top);
            }
            size_t h = rows, w = ci->output_width;
            c->rgb = mislasi_alloc(h * w * 3);
            if (ci->out_color_space == JCS_CMYK)
                c->row = mislasi_alloc(w * 4);
            if (c->rgb == NULL || (ci->out_color_space == JCS_CMYK && c->row == NULL)) {
                rc = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: %s: out of memory for a %zu x %zu image",
                        c->in->fn, c->in->path, h, w);
            } else {
                if (first_row > 0)
                    jpeg_skip_scanlines(ci, first_row);
                while (ci->output_scanline < first_row + rows) {
                    uint8_t *out = c->rgb + (size_t)(ci->output_scanline - first_row) * w * 3;
                    JSAMPROW row = ci->out_color_space == JCS_CMYK ? c->row : out;
                    jpeg_read_scanlines(ci, &row, 1);
                    if (ci->out_color_space == JCS_CMYK) {
                        cmyk_inverted_to_rgb(out, c->row, w);
                    } else if (ci->out_color_space == JCS_GRAYSCALE) {
                        for (size_t x = w; x-- > 0;)
                            out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = out[x];
                    }
                }
                c->finishing = true;
                if (ci->output_scanline < ci->output_height)
                    jpeg_abort_decompress(ci);      /* the rows below the box are not wanted */
                else
                    jpeg_finish_decompress(ci);
                img->height = (int32_t)h;
                img->width = (int32_t)w;
                img->rgb = c->rgb;
                c->rgb = NULL;
            }
        }
    }
    if (c->created)
        jpeg_destroy_decompress(&c->cinfo);
    mislasi_free(c->rgb);
    mislasi_free(c->row);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* PNG                                                                      */

typedef struct png_ctx {
    png_structp png;
    png_infop info;
    char message[256];
    bool truncated;
    bool oom;
    input *in;
    size_t at;                  /* next byte of in->data */
    uint8_t *pixels;            /* libpng's rows (decoding) */
    png_bytep *rows;
    uint8_t *rgb;
} png_ctx;

static void png_on_error(png_structp png, png_const_charp message)
{
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->message, sizeof c->message, "%s", message);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp message)
{
    (void)png;
    (void)message;
}

static png_voidp png_alloc(png_structp png, png_alloc_size_t size)
{
    png_ctx *c = png_get_mem_ptr(png);
    void *p = mislasi_alloc(size);
    if (p == NULL && c != NULL)
        c->oom = true;
    return p;
}

static void png_release(png_structp png, png_voidp p)
{
    (void)png;
    mislasi_free(p);
}

static void png_read_memory(png_structp png, png_bytep out, size_t n)
{
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->in->size - c->at) {
        c->truncated = true;
        png_error(png, "the data ends early");
    }
    memcpy(out, c->in->data + c->at, n);
    c->at += n;
}

static void png_read_stream(png_structp png, png_bytep out, size_t n)
{
    png_ctx *c = png_get_io_ptr(png);
    size_t got = fread(out, 1, n, c->in->file);
    c->in->consumed += (int64_t)got;
    if (got != n) {
        if (ferror(c->in->file))
            c->in->read_errno = errno != 0 ? errno : EIO;
        else
            c->truncated = true;
        png_error(png, "the data ends early");
    }
}

static int png_failure(const png_ctx *c)
{
    const input *in = c->in;
    if (in->read_errno != 0)
        return read_error(in);
    if (c->truncated)
        return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: the PNG data ends early: the file is truncated", in->fn,
                in->path);
    if (c->oom)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: %s: out of memory decoding the PNG image", in->fn,
                in->path);
    return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: not a PNG image this library can decode: %s", in->fn,
            in->path, c->message);
}

/* Creates the reader and reads the chunks up to the image data. Call inside
 * the setjmp, after png_create. */
static int png_begin(png_ctx *c)
{
    /* The checksums of ancillary chunks before the image data are errors as
     * in PIL, which checks every chunk it reads there. */
    png_set_crc_action(c->png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
    /* Sides are judged here (MISLAS_ERR_UNSUPPORTED), not by libpng's limit. */
    png_set_user_limits(c->png, 0x7fffffff, 0x7fffffff);
    png_set_read_fn(c->png, c, c->in->data != NULL ? png_read_memory : png_read_stream);
    png_read_info(c->png, c->info);
    return check_sides(c->in->fn, c->in->path, png_get_image_height(c->png, c->info),
            png_get_image_width(c->png, c->info));
}

static bool png_create(png_ctx *c)
{
    c->png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, c, png_on_error, png_on_warning, c, png_alloc,
            png_release);
    if (c->png == NULL)
        return false;
    c->info = png_create_info_struct(c->png);
    return c->info != NULL;
}

static void png_destroy(png_ctx *c)
{
    if (c->png != NULL)
        png_destroy_read_struct(&c->png, c->info != NULL ? &c->info : NULL, NULL);
    mislasi_free(c->pixels);
    mislasi_free(c->rows);
    mislasi_free(c->rgb);
}

static int png_probe(input *in, int32_t *height, int32_t *width)
{
    png_ctx *c = mislasi_calloc(1, sizeof *c);
    if (c == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: %s: out of memory", in->fn, in->path);
    c->in = in;
    int rc;
    if (!png_create(c)) {
        rc = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: %s: out of memory", in->fn, in->path);
    } else if (setjmp(png_jmpbuf(c->png))) {
        rc = png_failure(c);
    } else {
        rc = png_begin(c);
        if (rc == MISLAS_OK) {
            *height = (int32_t)png_get_image_height(c->png, c->info);
            *width = (int32_t)png_get_image_width(c->png, c->info);
        }
    }
    png_destroy(c);
    mislasi_free(c);
    return rc;
}

/* The decoded rows to RGB, as PIL converts its PNG modes. */
static void png_to_rgb(png_ctx *c, size_t h, size_t w, int color_type, int bit_depth)
{
    uint8_t palette[256][3];
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        for (int i = 0; i < 256; i++)
            palette[i][0] = palette[i][1] = palette[i][2] = (uint8_t)i;
        png_colorp entries = NULL;
        int count = 0;
        if (png_get_PLTE(c->png, c->info, &entries, &count) != 0)
            for (int i = 0; i < count && i < 256; i++) {
                palette[i][0] = entries[i].red;
                palette[i][1] = entries[i].green;
                palette[i][2] = entries[i].blue;
            }
    }
    for (size_t y = 0; y < h; y++) {
        const uint8_t *in = c->rows[y];
        uint8_t *out = c->rgb + y * w * 3;
        switch (color_type) {
        case PNG_COLOR_TYPE_GRAY:
            if (bit_depth == 16) {
                for (size_t x = 0; x < w; x++) {
                    unsigned v = (unsigned)in[2 * x] << 8 | in[2 * x + 1];
                    out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = (uint8_t)(v > 255 ? 255 : v);
                }
            } else {
                for (size_t x = 0; x < w; x++)
                    out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[x];
            }
            break;
        case PNG_COLOR_TYPE_GRAY_ALPHA:
            for (size_t x = 0; x < w; x++)
                out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[2 * x];
            break;
        case PNG_COLOR_TYPE_PALETTE:
            for (size_t x = 0; x < w; x++)
                memcpy(out + 3 * x, palette[in[x]], 3);
            break;
        case PNG_COLOR_TYPE_RGB:
            memcpy(out, in, w * 3);
            break;
        default:    /* RGBA */
            for (size_t x = 0; x < w; x++)
                memcpy(out + 3 * x, in + 4 * x, 3);
            break;
        }
    }
}

static int png_decode(png_ctx *c, mislasi_image *img)
{
    int rc;
    if (!png_create(c))
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: %s: out of memory", c->in->fn, c->in->path);
    if (setjmp(png_jmpbuf(c->png)))
        return png_failure(c);
    rc = png_begin(c);
    if (rc != MISLAS_OK)
        return rc;
    png_structp png = c->png;
    png_infop info = c->info;
    const int color_type = png_get_color_type(png, info);
    const int bit_depth = png_get_bit_depth(png, info);
    const size_t h = png_get_image_height(png, info), w = png_get_image_width(png, info);
    if (bit_depth == 16 && color_type != PNG_COLOR_TYPE_GRAY)
        png_set_strip_16(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (color_type == PNG_COLOR_TYPE_PALETTE && bit_depth < 8)
        png_set_packing(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const size_t row_bytes = png_get_rowbytes(png, info);
    c->pixels = mislasi_alloc(h * row_bytes);
    c->rows = mislasi_alloc(h * sizeof *c->rows);
    c->rgb = mislasi_alloc(h * w * 3);
    if (c->pixels == NULL || c->rows == NULL || c->rgb == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: %s: out of memory for a %zu x %zu image", c->in->fn,
                c->in->path, h, w);
    for (size_t y = 0; y < h; y++)
        c->rows[y] = c->pixels + y * row_bytes;
    png_read_image(png, c->rows);
    png_to_rgb(c, h, w, color_type, bit_depth);
    img->height = (int32_t)h;
    img->width = (int32_t)w;
    img->rgb = c->rgb;
    c->rgb = NULL;
    return MISLAS_OK;
}

/* ------------------------------------------------------------------------ */

typedef enum kind { KIND_JPEG, KIND_PNG } kind;

static int identify(const char *fn, const char *path, const uint8_t *head, size_t got, kind *k)
{
    if (got >= 3 && head[0] == 0xff && head[1] == 0xd8 && head[2] == 0xff) {
        *k = KIND_JPEG;
        return MISLAS_OK;
    }
    if (got >= 8 && memcmp(head, PNG_SIGNATURE, 8) == 0) {
        *k = KIND_PNG;
        return MISLAS_OK;
    }
    if (got == 0)
        return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: an empty file, not an image", fn, path);
    return mislasi_fail(MISLAS_ERR_FORMAT, "%s: %s: neither a JPEG nor a PNG file (it starts %02x %02x %02x)", fn,
            path, head[0], got > 1 ? head[1] : 0, got > 2 ? head[2] : 0);
}

int mislasi_image_probe(const char *path, int32_t *height, int32_t *width)
{
    input *in = mislasi_calloc(1, sizeof *in);
    if (in == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory probing %s", FN_PROBE, path);
    int rc = open_input(FN_PROBE, path, in);
    if (rc != MISLAS_OK) {
        mislasi_free(in);
        return rc;
    }
    uint8_t head[8];
    size_t got = fread(head, 1, sizeof head, in->file);
    kind k = KIND_JPEG;
    if (got < sizeof head && ferror(in->file)) {
        in->read_errno = errno != 0 ? errno : EIO;
        rc = read_error(in);
    } else {
        rc = identify(FN_PROBE, path, head, got, &k);
    }
    int32_t h = 0, w = 0;
    if (rc == MISLAS_OK) {
        rewind(in->file);
        in->consumed = 0;
        rc = k == KIND_JPEG ? jpeg_probe(in, &h, &w) : png_probe(in, &h, &w);
    }
    fclose(in->file);
    mislasi_free(in);
    if (rc == MISLAS_OK) {
        if (height != NULL)
            *height = h;
        if (width != NULL)
            *width = w;
    }
    return rc;
}

/* mislasi_image_decode, or with `want` mislasi_image_decode_box. */
static int decode(const char *path, mislasi_image *img, box_request *want)
{
    input in;
    memset(&in, 0, offsetof(input, buf));
    in.fn = FN_DECODE;
    in.path = path;
    uint8_t *data = NULL;
    size_t size = 0;
    int rc = mislasi_read_file(FN_DECODE, path, &data, &size);
    if (rc != MISLAS_OK)
        return rc;
    in.data = data;
    in.size = size;
    kind k = KIND_JPEG;
    rc = identify(FN_DECODE, path, data, size, &k);
    mislasi_image out = {0, 0, NULL};
    if (rc == MISLAS_OK && k == KIND_JPEG) {
        jpeg_ctx *c = mislasi_calloc(1, sizeof *c);
        if (c == NULL) {
            rc = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: %s: out of memory", FN_DECODE, path);
        } else {
            c->in = &in;
            rc = jpeg_decode(c, &out, want);
            mislasi_free(c);
        }
    } else if (rc == MISLAS_OK) {
        png_ctx *c = mislasi_calloc(1, sizeof *c);
        if (c == NULL) {
            rc = mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: %s: out of memory", FN_DECODE, path);
        } else {
            c->in = &in;
            rc = png_decode(c, &out);      /* PNG has no cheaper part: the whole image */
            png_destroy(c);
            mislasi_free(c);
            if (rc == MISLAS_OK)
                choose_box(want, out.height, out.width);
        }
    }
    mislasi_free(data);
    if (rc == MISLAS_OK)
        *img = out;
    return rc;
}

int mislasi_image_decode(const char *path, mislasi_image *img)
{
    return decode(path, img, NULL);
}

int mislasi_image_decode_box(const char *path, mislasi_image_box_fn choose, void *ctx, mislasi_image *img,
        int32_t at[2])
{
    box_request want = { choose, ctx, { 0, 0, 0, 0 }, { 0, 0 } };
    int rc = decode(path, img, &want);
    if (rc == MISLAS_OK) {
        at[0] = want.at[0];
        at[1] = want.at[1];
    }
    return rc;
}

void mislasi_image_release(mislasi_image *img)
{
    if (img == NULL)
        return;
    mislasi_free(img->rgb);
    img->rgb = NULL;
    img->height = img->width = 0;
}
