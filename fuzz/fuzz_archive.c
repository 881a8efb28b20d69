/* The CIFAR reader on a tar archive, gzip-compressed or not (the reader
 * tells by content): the tar walk, the gzip stream and the batch inside.
 * The first byte chooses CIFAR-10 or CIFAR-100. */
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int32_t k = data[0] & 1 ? 100 : 10;
    char path[64];
    int fd = fuzz_memory_file(data + 1, size - 1, path);
    mislas_dataset *d = NULL;
    mislas_dataset_load_cifar(&d, path, k, MISLAS_SPLIT_TEST);
    mislas_dataset_free(d);
    close(fd);
    return 0;
}
