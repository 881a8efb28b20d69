/* All library memory goes through here, so a user's allocator sees every byte.
 * Each block carries a 64-byte header holding the allocator that made it:
 * changing the hook later cannot send a block to the wrong release function,
 * and the payload comes out 64-byte aligned for vector code. */
#include "util.h"

#include <stdlib.h>
#include <string.h>

enum { HEADER = 64 };

typedef struct block_header {
    mislas_release_fn release;
    void *user;
    void *raw;          /* what the allocator returned */
} block_header;

static void *default_alloc(size_t size, void *user) { (void)user; return malloc(size); }
static void default_release(void *ptr, void *user) { (void)user; free(ptr); }

static mislas_alloc_fn current_alloc = default_alloc;
static mislas_release_fn current_release = default_release;
static void *current_user;

int mislas_set_allocator(mislas_alloc_fn alloc, mislas_release_fn release, void *user)
{
    if ((alloc == NULL) != (release == NULL))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "mislas_set_allocator: alloc and release must both be set or both be NULL");
    if (alloc == NULL) {
        current_alloc = default_alloc;
        current_release = default_release;
        current_user = NULL;
    } else {
        current_alloc = alloc;
        current_release = release;
        current_user = user;
    }
    return MISLAS_OK;
}

void *mislasi_alloc(size_t size)
{
    if (size > SIZE_MAX - 2 * HEADER)
        return NULL;
    unsigned char *raw = current_alloc(size + 2 * HEADER, current_user);
    if (raw == NULL)
        return NULL;
    /* Round up past a header's worth of room to the next 64-byte boundary. */
    uintptr_t payload = ((uintptr_t)raw + 2 * HEADER) & ~(uintptr_t)(HEADER - 1);
    block_header h = { current_release, current_user, raw };
    memcpy((unsigned char *)payload - sizeof h, &h, sizeof h);
    return (void *)payload;
}

void *mislasi_calloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    void *p = mislasi_alloc(count * size);
    if (p != NULL)
        memset(p, 0, count * size);
    return p;
}

void mislasi_free(void *ptr)
{
    if (ptr == NULL)
        return;
    block_header h;
    memcpy(&h, (unsigned char *)ptr - sizeof h, sizeof h);
    h.release(h.raw, h.user);
}
