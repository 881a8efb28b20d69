/* What the harnesses share: the fuzzer's bytes as files the library can
 * open by path, without touching the disk (memfd_create, opened again
 * through /proc/self/fd), so a harness runs thousands of times a second. */
#ifndef MISLAS_FUZZ_INPUT_H
#define MISLAS_FUZZ_INPUT_H

#define _GNU_SOURCE
#include <mislas/mislas.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* A memory file holding data[0..size-1]; its path goes to path[64].
 * Returns the descriptor (close it when done); aborts if the kernel
 * refuses, which is the harness's fault, not an input's. */
static inline int fuzz_memory_file(const uint8_t *data, size_t size, char path[64])
{
    int fd = memfd_create("mislas-fuzz", MFD_CLOEXEC);
    if (fd < 0) {
        perror("memfd_create");
        abort();
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) {
            perror("write");
            abort();
        }
        done += (size_t)n;
    }
    snprintf(path, 64, "/proc/self/fd/%d", fd);
    return fd;
}

/* Both checkpoint entry points on the file at path: a model (and optimiser)
 * or a clean status, everything released; aborts if a load reports success
 * without a model. */
static inline void fuzz_load_checkpoint(const char *path)
{
    mislas_model *model = NULL;
    mislas_optimizer *opt = NULL;
    if (mislas_checkpoint_load(&model, &opt, path) == MISLAS_OK && model == NULL)
        abort();
    mislas_optimizer_free(opt);
    mislas_model_free(model);
    int32_t stage, done, epochs;
    mislas_checkpoint_training(&stage, &done, &epochs, path);
}

#endif
