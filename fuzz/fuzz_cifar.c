/* The CIFAR binary reader on any bytes: the test batch file in a folder
 * (one file in both sets). The first byte chooses CIFAR-10 or CIFAR-100. */
#include "fuzz_input.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char folder[64];

static void make_folder(void)
{
    if (folder[0] != '\0')
        return;
    snprintf(folder, sizeof folder, "/tmp/mislas-fuzz-cifar-XXXXXX");
    if (mkdtemp(folder) == NULL) {
        perror("mkdtemp");
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int32_t k = data[0] & 1 ? 100 : 10;
    data++;
    size--;
    make_folder();
    char path[128];
    snprintf(path, sizeof path, "%s/%s", folder, k == 10 ? "test_batch.bin" : "test.bin");
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        perror(path);
        abort();
    }
    mislas_dataset *d = NULL;
    mislas_dataset_load_cifar(&d, folder, k, MISLAS_SPLIT_TEST);
    mislas_dataset_free(d);
    unlink(path);
    return 0;
}
