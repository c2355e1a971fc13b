/* mem.c — allocation wrappers with an injectable failure point (tests, fuzzers). */
#include "hostbeat/mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Remaining successful allocations before injected failures; -1 = no injection. */
static _Atomic long fail_after = -1;

static int should_fail(void)
{
	long n = atomic_load_explicit(&fail_after, memory_order_relaxed);

	if (n < 0)
		return 0;
	if (n == 0)
		return 1;
	atomic_fetch_sub_explicit(&fail_after, 1, memory_order_relaxed);
	return 0;
}

void *hb_malloc(size_t n)
{
	return should_fail() ? NULL : malloc(n ? n : 1);
}

void *hb_calloc(size_t count, size_t n)
{
	return should_fail() ? NULL : calloc(count ? count : 1, n ? n : 1);
}

void *hb_realloc(void *p, size_t n)
{
	return should_fail() ? NULL : realloc(p, n ? n : 1);
}

char *hb_strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *r = hb_malloc(len + 1);

	if (!r)
		return NULL;
	memcpy(r, s, len);
	r[len] = '\0';
	return r;
}

char *hb_strdup(const char *s)
{
	return hb_strndup(s, strlen(s));
}

void hb_free(void *p)
{
	free(p);
}

void mem_fail_after(long n)
{
	atomic_store(&fail_after, n);
}

void mem_fail_reset(void)
{
	atomic_store(&fail_after, -1);
}
