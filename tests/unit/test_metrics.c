/* test_metrics.c — the counter registry: one pointer per name, the cap, lookups by
 * name from several threads while others register. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hostbeat/metrics.h"

#define NTHREADS 4

static void name_of(char *buf, size_t size, unsigned i)
{
	snprintf(buf, size, "test.counter.%u", i);
}

/* Every thread registers the same names in a different order; all must get the same
 * pointer per name and no name may get two slots. */
static void *register_all(void *arg)
{
	unsigned start = (unsigned)(uintptr_t)arg;
	struct metric **got = calloc(METRICS_MAX, sizeof(*got));
	char name[64];

	for (unsigned k = 0; k < 300; k++) {
		unsigned i = (k * 7 + start * 31) % 300;

		name_of(name, sizeof(name), i);
		got[i] = metrics_counter(name);
	}
	return got;
}

static void test_same_pointer_per_name_across_threads(void **state)
{
	pthread_t t[NTHREADS];
	struct metric **got[NTHREADS];
	char name[64];

	(void)state;
	for (unsigned i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, register_all, (void *)(uintptr_t)i), 0);
	for (unsigned i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_join(t[i], (void **)&got[i]), 0);
	for (unsigned i = 0; i < 300; i++) {
		assert_non_null(got[0][i]);
		for (unsigned k = 1; k < NTHREADS; k++)
			assert_ptr_equal(got[0][i], got[k][i]);
		name_of(name, sizeof(name), i);
		assert_string_equal(got[0][i]->name, name);
		assert_ptr_equal(metrics_counter(name), got[0][i]);
		for (unsigned j = 0; j < i; j++)
			assert_ptr_not_equal(got[0][j], got[0][i]);
	}
	metric_add(got[0][17], 5);
	name_of(name, sizeof(name), 17);
	assert_int_equal(metrics_get(name), 5);
	assert_int_equal(metrics_get("test.never.registered"), 0);
	for (unsigned i = 0; i < NTHREADS; i++)
		free(got[i]);
}

/* Past METRICS_MAX names: NULL (a no-op counter), and the earlier ones still resolve. */
static void test_cap(void **state)
{
	char name[64];
	struct metric *first = metrics_counter("test.cap.first"), *m = first;
	unsigned i;

	(void)state;
	assert_non_null(first);
	for (i = 0; m && i < 2 * METRICS_MAX; i++) {
		snprintf(name, sizeof(name), "test.cap.%u", i);
		m = metrics_counter(name);
	}
	assert_null(m);
	assert_true(i <= METRICS_MAX);
	metric_inc(m); /* harmless */
	assert_ptr_equal(metrics_counter("test.cap.first"), first);
	assert_ptr_equal(metrics_gauge("test.cap.first"), first);
	assert_non_null(metrics_counter("test.cap.0"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_same_pointer_per_name_across_threads),
	    cmocka_unit_test(test_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
