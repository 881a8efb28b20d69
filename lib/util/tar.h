/* Member lookup in a tar archive held in memory (ustar, GNU and pax
 * variants, as tar(1) writes them). Not installed. */
#ifndef MISLAS_TAR_H
#define MISLAS_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mislasi_tar_member {
    size_t header_offset;   /* of the member's 512-byte header in the archive */
    size_t offset;          /* of its data */
    size_t size;            /* bytes of data */
    char name[512];         /* its full path in the archive, for messages
                             * (cut short if longer) */
} mislasi_tar_member;

/* Finds the first regular file whose base name (the part after the last
 * '/') is `base` in the archive data[0..size-1], reading headers in order up
 * to the end-of-archive zero block. Every header's checksum is verified on
 * the way. A bad checksum or size field, a member running past the end, or
 * an archive that stops before its end-of-archive block is
 * MISLAS_ERR_FORMAT naming `archive` and the byte offset (said to be an
 * offset in the decompressed archive when `decompressed`); no such member is
 * MISLAS_ERR_FORMAT "archive X has no member Y". `fn` names the public call. */
int mislasi_tar_find(const char *fn, const char *archive, bool decompressed,
        const uint8_t *data, size_t size, const char *base, mislasi_tar_member *member);

#endif
