/*
 * Counts the calls to malloc, calloc and realloc of each thread of the process it is preloaded
 * into (LD_PRELOAD), and appends the counts to $COUNT_MALLOC_OUTPUT when the process exits:
 *
 *   total N
 *   <tid> <thread name> <calls>
 *
 * Used by Benchmarks/allocations/run on the release signal-worker: allocations per request is a
 * figure that hardly moves with the machine's load, unlike rates or CPU time. Only counts; the
 * allocation itself is glibc's (__libc_malloc and friends).
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);

#define MAX_THREADS 128
static _Atomic long thread_ids[MAX_THREADS];
static _Atomic long thread_calls[MAX_THREADS];
static char thread_names[MAX_THREADS][16];
static _Atomic long overflow_calls;
static __thread int slot = -1;

static void count_call(void) {
    if (slot == -1) {
        long tid = syscall(SYS_gettid);
        slot = -2;
        for (int i = 0; i < MAX_THREADS; i++) {
            long empty = 0;
            if (atomic_compare_exchange_strong(&thread_ids[i], &empty, tid)) { slot = i; break; }
        }
    }
    if (slot < 0) {
        atomic_fetch_add_explicit(&overflow_calls, 1, memory_order_relaxed);
        return;
    }
    long calls = atomic_fetch_add_explicit(&thread_calls[slot], 1, memory_order_relaxed);
    // The name now and then: threads name themselves after they start, and are gone at exit.
    if ((calls & 0xFFF) == 0) prctl(PR_GET_NAME, thread_names[slot], 0, 0, 0);
}

void *malloc(size_t size) { count_call(); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { count_call(); return __libc_calloc(count, size); }
void *realloc(void *pointer, size_t size) { count_call(); return __libc_realloc(pointer, size); }

__attribute__((destructor)) static void write_counts(void) {
    const char *path = getenv("COUNT_MALLOC_OUTPUT");
    if (path == NULL) return;
    FILE *output = fopen(path, "a");
    if (output == NULL) return;
    long total = overflow_calls;
    for (int i = 0; i < MAX_THREADS; i++) total += thread_calls[i];
    fprintf(output, "total %ld\n", total);
    for (int i = 0; i < MAX_THREADS; i++) {
        long tid = thread_ids[i];
        if (tid == 0) continue;
        char name[17] = {0};
        memcpy(name, thread_names[i], 16);
        for (char *c = name; *c; c++) if (*c == ' ') *c = '_';
        fprintf(output, "%ld %s %ld\n", tid, name[0] ? name : "?", (long)thread_calls[i]);
    }
    if (overflow_calls > 0) fprintf(output, "0 other-threads %ld\n", (long)overflow_calls);
    fclose(output);
}
