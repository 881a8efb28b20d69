/* mislas_checkpoint_load on any bytes: a model (and optimiser) or a clean
 * MISLAS_ERR_FORMAT, never a crash, a leak or a huge allocation. */
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memory_file(data, size, path);
    fuzz_load_checkpoint(path);
    close(fd);
    return 0;
}
