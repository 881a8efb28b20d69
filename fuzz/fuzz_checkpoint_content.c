/* The checkpoint loader past its compression: the fuzzer's bytes are the
 * decompressed content (the sections), which the harness deflates and wraps
 * in a valid header with correct checksums, as mislas_checkpoint_save would.
 * Mutating a compressed file almost never gets through inflate; this way
 * every mutation reaches the section parsers (model shape, tensors, class
 * counts, optimiser state, run record). A model (and optimiser) or a clean
 * MISLAS_ERR_FORMAT, never a crash, a leak or a huge allocation. Seeds are
 * the contents of the checkpoint harness's seeds (1.1 to 2.2 MB, hence
 * this harness's larger -max_len in scripts/fuzz). */
#include "fuzz_input.h"

#include <string.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum { HEADER = 40 };
    uLong bound = compressBound((uLong)size);
    uint8_t *file = malloc(HEADER + bound);
    if (file == NULL)
        return 0;
    uLongf compressed = bound;
    if (compress2(file + HEADER, &compressed, data, (uLong)size, 1) != Z_OK)
        abort();
    memcpy(file, "MISLASCK", 8);
    put_le(file + 8, 1, 4);                 /* format version */
    put_le(file + 12, 0, 4);                /* flags */
    put_le(file + 16, size, 8);             /* content size */
    put_le(file + 24, compressed, 8);       /* compressed size */
    put_le(file + 32, crc32(crc32(0L, Z_NULL, 0), data, (uInt)size), 4);
    put_le(file + 36, crc32(crc32(0L, Z_NULL, 0), file, 36), 4);
    char path[64];
    int fd = fuzz_memory_file(file, HEADER + compressed, path);
    free(file);
    fuzz_load_checkpoint(path);
    close(fd);
    return 0;
}
