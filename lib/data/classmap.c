/* The MiSLAS reference's renumbering of classes by training count
 * (mislas_long_tail_class_map in <mislas/long_tail.h>).
 *
 * The reference takes np.argsort(-counts) with NumPy's default kind, and the
 * released models' classifier rows follow that order, ties included. NumPy
 * 1.x sorts int64 indices for kind 'quicksort' with an introsort whose tie
 * order follows from its exact steps, so the sort below takes the same steps
 * (this file's own account of them, which the code is written from):
 *
 *   - A range of more than 16 indices is partitioned. Its first, middle
 *     (lo + (hi - lo) / 2) and last entries are put in order by three
 *     compare-and-swaps (first/middle, middle/last, first/middle); the middle
 *     one's key is the pivot, and that entry is swapped into hi - 1. Two
 *     scans start from lo and hi - 1: the left one moves right while the key
 *     is strictly below the pivot, the right one moves left while the key is
 *     strictly above; while they have not met, the two entries are swapped
 *     and both scans go on. Where the left scan stopped, its entry and the
 *     pivot in hi - 1 are swapped: the pivot's final place p.
 *   - Of lo..p-1 and p+1..hi the larger one (the upper one when both have
 *     the same size) is put on a stack with the depth budget less one, and
 *     the other one is partitioned at once with that same reduced budget,
 *     without looking at the budget again until a range is taken off the
 *     stack.
 *   - A range of 16 indices or fewer is insertion-sorted (stable).
 *   - The budget starts at 2 floor(log2(n)); a range taken off the stack (or
 *     the whole array at the start) whose budget is below zero is heapsorted
 *     instead: a binary max-heap (1-based, children 2i and 2i + 1) built by
 *     sifting down from n / 2 to 1, then the root swapped to the end one
 *     element at a time, the sift preferring the right child only when the
 *     left one's key is strictly below it, and moving a child up only when
 *     the sifted element's key is strictly below the child's.
 *
 * "Key" is -counts[c], compared as NumPy compares int64; since counts are
 * >= 0 the negation cannot overflow, and key(a) < key(b) is counts[a] >
 * counts[b], which is what the code compares. */
#include <mislas/long_tail.h>

#include "util/util.h"

#include <stdbool.h>

/* Ranges of at most this many entries are insertion-sorted. */
enum { INSERTION_MAX = 16 };

/* key(a) < key(b) with key = -counts */
static inline bool key_less(const int64_t *counts, int32_t a, int32_t b)
{
    return counts[a] > counts[b];
}

static inline void swap_at(int32_t *idx, int32_t i, int32_t j)
{
    int32_t t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
}

/* The heap's slots are numbered from 1 (children of s: 2s and 2s + 1);
 * slot s is idx[s - 1]. Sifts `moving` down from `slot` of slots 1..size. */
static void sift_down(int32_t *idx, int64_t slot, int64_t size, int32_t moving, const int64_t *counts)
{
    for (int64_t child = 2 * slot; child <= size; child = 2 * slot) {
        if (child < size && key_less(counts, idx[child - 1], idx[child]))
            child++;
        if (!key_less(counts, moving, idx[child - 1]))
            break;
        idx[slot - 1] = idx[child - 1];
        slot = child;
    }
    idx[slot - 1] = moving;
}

static void heap_sort(int32_t *idx, int64_t n, const int64_t *counts)
{
    for (int64_t slot = n / 2; slot >= 1; slot--)
        sift_down(idx, slot, n, idx[slot - 1], counts);
    for (int64_t size = n; size > 1; size--) {
        int32_t last = idx[size - 1];
        idx[size - 1] = idx[0];
        sift_down(idx, 1, size - 1, last, counts);
    }
}

static void insertion_sort(int32_t *idx, int32_t lo, int32_t hi, const int64_t *counts)
{
    for (int32_t i = lo + 1; i <= hi; i++) {
        int32_t moving = idx[i];
        int32_t j = i;
        for (; j > lo && key_less(counts, moving, idx[j - 1]); j--)
            idx[j] = idx[j - 1];
        idx[j] = moving;
    }
}

/* Puts the pivot of idx[lo..hi] (hi - lo >= INSERTION_MAX) in its place and
 * returns that place. */
static int32_t partition(int32_t *idx, int32_t lo, int32_t hi, const int64_t *counts)
{
    int32_t mid = lo + ((hi - lo) >> 1);
    if (key_less(counts, idx[mid], idx[lo]))
        swap_at(idx, mid, lo);
    if (key_less(counts, idx[hi], idx[mid]))
        swap_at(idx, hi, mid);
    if (key_less(counts, idx[mid], idx[lo]))
        swap_at(idx, mid, lo);
    const int64_t pivot = counts[idx[mid]];
    swap_at(idx, mid, hi - 1);
    /* idx[lo]'s key <= pivot <= idx[hi - 1]'s key: both scans stop in range */
    int32_t left = lo, right = hi - 1;
    for (;;) {
        do
            left++;
        while (counts[idx[left]] > pivot);
        do
            right--;
        while (pivot > counts[idx[right]]);
        if (left >= right)
            break;
        swap_at(idx, left, right);
    }
    swap_at(idx, left, hi - 1);
    return left;
}

/* Sorts idx[0..n-1] by key, ties as NumPy 1.x's quicksort-kind argsort
 * leaves them (see the top of the file). */
static void introsort(int32_t *idx, int32_t n, const int64_t *counts)
{
    /* The stacked range is always the larger part and the one kept the
     * smaller, so each stacked range is less than half of the one below it:
     * at most 31 are waiting for n < 2^31. */
    struct pending { int32_t lo, hi, budget; } stack[64];
    int top = 0;
    int32_t lo = 0, hi = n - 1;
    int32_t budget = 0;
    for (uint32_t rest = (uint32_t)n; rest >>= 1;)
        budget++;
    budget *= 2;
    for (;;) {
        if (budget < 0) {
            heap_sort(idx + lo, (int64_t)hi - lo + 1, counts);
        } else {
            while (hi - lo >= INSERTION_MAX) {
                int32_t p = partition(idx, lo, hi, counts);
                budget--;
                if (p - lo < hi - p) {
                    stack[top++] = (struct pending){ p + 1, hi, budget };
                    hi = p - 1;
                } else {
                    stack[top++] = (struct pending){ lo, p - 1, budget };
                    lo = p + 1;
                }
            }
            insertion_sort(idx, lo, hi, counts);
        }
        if (top == 0)
            break;
        top--;
        lo = stack[top].lo;
        hi = stack[top].hi;
        budget = stack[top].budget;
    }
}

/* perm[i] = j becomes perm[j] = i, in place: each cycle is walked once,
 * written entries marked by complementing them (~j < 0 for j >= 0). */
static void invert_in_place(int32_t *perm, int32_t n)
{
    for (int32_t start = 0; start < n; start++) {
        if (perm[start] < 0)
            continue;
        int32_t from = start, to = perm[start];
        while (to != start) {
            int32_t next = perm[to];
            perm[to] = ~from;
            from = to;
            to = next;
        }
        perm[start] = ~from;
    }
    for (int32_t i = 0; i < n; i++)
        perm[i] = ~perm[i];
}

int mislas_long_tail_class_map(int32_t *old_to_new, int32_t *new_to_old, const int64_t *counts,
        int32_t num_classes)
{
    static const char fn[] = "mislas_long_tail_class_map";
    MISLASI_CHECK_NOT_NULL(fn, counts);
    if (old_to_new == NULL && new_to_old == NULL)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: old_to_new and new_to_old are both NULL", fn);
    if (old_to_new == new_to_old)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: old_to_new and new_to_old are the same array", fn);
    int status = mislasi_check_counts(fn, counts, num_classes);
    if (status != MISLAS_OK)
        return status;
    /* the order is built in new_to_old, or in old_to_new and inverted there */
    int32_t *order = new_to_old != NULL ? new_to_old : old_to_new;
    for (int32_t i = 0; i < num_classes; i++)
        order[i] = i;
    introsort(order, num_classes, counts);
    if (new_to_old == NULL)
        invert_in_place(old_to_new, num_classes);
    else if (old_to_new != NULL)
        for (int32_t i = 0; i < num_classes; i++)
            old_to_new[new_to_old[i]] = i;
    return MISLAS_OK;
}
