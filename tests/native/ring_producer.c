/*
 * Host-side producer for the ring reader tests: hv/core/trace/ring.c (the hypervisor's own publication code)
 * publishing into a ring that lives in a shared file, while the Python RingReader reads it live.
 *
 *   ring_producer FILE CAPACITY POLICY COUNT RATE [CPU [WAIT_TICKS]]
 *     FILE      created/truncated to ring_bytes(CAPACITY) and mmapped MAP_SHARED
 *     POLICY    0 = drop newest (consumer tail honoured), 1 = overwrite oldest
 *     COUNT     records to attempt (every one numbered: arg0 = attempt number, 1-based)
 *     RATE      attempts per second, 0 = as fast as possible
 *     WAIT_TICKS how long a full ring waits for its reader (TSC ticks; default 0 = never)
 * Every record carries a checkable payload: tsc = attempt, qual = rip = gpa = arg1 = f(attempt), so a
 * torn record (fields from two different attempts) is detectable. Prints "published P dropped D" at
 * the end. With GO=1 in the environment it starts publishing only after one byte arrives on stdin
 * (the reader is attached by then).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <hv/ring.h>

static u64 mix(u64 x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s FILE CAPACITY POLICY COUNT RATE [CPU [WAIT_TICKS]]\n", argv[0]);
        return 2;
    }
    u32 cap = (u32)strtoul(argv[2], NULL, 0);
    u32 policy = (u32)strtoul(argv[3], NULL, 0);
    u64 count = strtoull(argv[4], NULL, 0);
    double rate = strtod(argv[5], NULL);
    u32 cpu = argc > 6 ? (u32)strtoul(argv[6], NULL, 0) : 0;
    u64 wait_ticks = argc > 7 ? strtoull(argv[7], NULL, 0) : 0;
    if (!cap || (cap & (cap - 1))) {
        fprintf(stderr, "capacity must be a power of two\n");
        return 2;
    }
    size_t bytes = ring_bytes(cap);
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)bytes) != 0) {
        perror(argv[1]);
        return 1;
    }
    struct hv_ring *r = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (r == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    ring_init(r, cpu, cap, policy, true, wait_ticks);
    printf("ready\n");
    fflush(stdout);
    if (getenv("GO")) {     /* wait for one byte on stdin: the reader is attached */
        char go;
        if (read(0, &go, 1) != 1)
            return 1;
    }
    u64 published = 0;
    double t0 = now();
    for (u64 i = 1; i <= count; i++) {
        struct hv_record rec = { 0 };
        rec.tsc = i;
        rec.kind = (u8)(i % HV_EXIT_KIND_COUNT);
        rec.reason = (u16)(i % 65);
        rec.insn_len = (u8)(i % 16);
        u64 m = mix(i);
        rec.qual = m;
        rec.rip = m ^ 0x5555555555555555ull;
        rec.gpa = ~m;
        rec.arg0 = i;
        rec.arg1 = m + i;
        if (ring_publish(r, &rec))
            published++;
        if (rate > 0) {
            double due = t0 + (double)i / rate;
            while (now() < due)
                ;
        }
    }
    printf("published %llu dropped %llu head %llu\n", (unsigned long long)published,
           (unsigned long long)r->dropped, (unsigned long long)r->head);
    fflush(stdout);
    munmap(r, bytes);
    close(fd);
    return 0;
}
