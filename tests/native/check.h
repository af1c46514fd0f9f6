/*
 * The native tests' assertion and summary: CHECK() counts a check and prints a failure with its place;
 * check_summary() prints "N checks passed" (what tests/unit/test_native_checks.py reads) or
 * "M of N checks failed" and gives main()'s exit status.
 */
#ifndef NATIVE_CHECK_H
#define NATIVE_CHECK_H

#include <stdio.h>

static unsigned checks, failures;

#define CHECK(cond, ...)                                            \
    do {                                                            \
        checks++;                                                   \
        if (!(cond)) {                                              \
            failures++;                                             \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            printf(__VA_ARGS__);                                    \
            printf("\n");                                           \
        }                                                           \
    } while (0)

static inline int check_summary(void)
{
    if (failures) {
        printf("%u of %u checks failed\n", failures, checks);
        return 1;
    }
    printf("%u checks passed\n", checks);
    return 0;
}

#endif
