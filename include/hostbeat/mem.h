/* mem.h — allocation wrappers, so tests and fuzzers can inject failures.
 *
 * On the data path a NULL return drops that flow/event and counts it; at start-up
 * it is a clear message and exit. hb_free(NULL) is a no-op.
 */
#ifndef HOSTBEAT_MEM_H
#define HOSTBEAT_MEM_H

#include <stddef.h>

void *hb_malloc(size_t n);
void *hb_calloc(size_t count, size_t n);
void *hb_realloc(void *p, size_t n);
char *hb_strdup(const char *s);
char *hb_strndup(const char *s, size_t n);
void hb_free(void *p);

/* Test hook: the next `n` allocations succeed, then every one fails, until
 * mem_fail_reset(). Negative n disables injection. */
void mem_fail_after(long n);
void mem_fail_reset(void);

#endif
