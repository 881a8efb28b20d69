/* mislas_dataset_load_idx on any pair of files, plain or gzip (the reader
 * tells them apart by content). The first two bytes say where the images
 * file ends and the labels file begins. */
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t split = ((size_t)data[0] << 8 | data[1]) % (size - 1);
    data += 2;
    size -= 2;
    char images[64], labels[64];
    int fd_images = fuzz_memory_file(data, split, images);
    int fd_labels = fuzz_memory_file(data + split, size - split, labels);
    mislas_dataset *d = NULL;
    if (mislas_dataset_load_idx(&d, images, labels, 10) == MISLAS_OK) {
        size_t n = mislas_dataset_size(d);
        if (n > 0 && mislas_dataset_image(d, n - 1) == NULL)
            abort();
    }
    mislas_dataset_free(d);
    close(fd_images);
    close(fd_labels);
    return 0;
}
