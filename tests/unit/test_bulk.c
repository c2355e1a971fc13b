/* test_bulk.c — shipper/bulk.c: index names, _bulk bodies (exact bytes, caps, retain,
 * split, gzip) and _bulk response verdicts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "hostbeat/mem.h"
#include "hostbeat/strbuf.h"
#include "shipper/bulk.h"

#define S(x) ((int64_t)(x)*1000000000LL)
#define T_EXAMPLE S(1714564800) /* 2024-05-01T12:00:00Z */
#define DAY1_LAST S(1440719999) /* 2015-08-27T23:59:59Z */

/* ---- index names ------------------------------------------------------------ */

static const char *fmt(const char *pattern, int64_t ts, const char *version)
{
	static char out[BULK_INDEX_MAX + 1];
	int n = bulk_index_format(pattern, ts, version, out, sizeof(out));

	assert_true(n >= 0);
	assert_int_equal((size_t)n, strlen(out));
	return out;
}

static void test_index_daily(void **state)
{
	(void)state;
	assert_string_equal(fmt("packetbeat-%{+yyyy.MM.dd}", T_EXAMPLE + 123000000, NULL),
			    "packetbeat-2024.05.01");
	assert_string_equal(fmt("topbeat-%{+yyyy.MM.dd}", T_EXAMPLE, NULL), "topbeat-2024.05.01");
	assert_string_equal(fmt("plain-name", T_EXAMPLE, NULL), "plain-name");
	/* every token */
	assert_string_equal(fmt("x-%{+yy}-%{+M.d.H}-%{+MM.dd.HH}", S(1425002405), NULL),
			    "x-15-2.27.2-02.27.02"); /* 2015-02-27T02:00:05Z */
	assert_string_equal(fmt("hb-%{+yyyy'w'MM''}", T_EXAMPLE, NULL), "hb-2024w05'");
	assert_string_equal(fmt("hb-%{+'it''s'-yyyy}", T_EXAMPLE, NULL), "hb-it's-2024");
	assert_string_equal(fmt("a%{+yyyy}b%{+MM}c", T_EXAMPLE, NULL), "a2024b05c");
}

static void test_index_rollover(void **state)
{
	(void)state;
	/* UTC midnight, to the nanosecond */
	assert_string_equal(fmt("p-%{+yyyy.MM.dd}", DAY1_LAST, NULL), "p-2015.08.27");
	assert_string_equal(fmt("p-%{+yyyy.MM.dd}", DAY1_LAST + S(1) - 1, NULL), "p-2015.08.27");
	assert_string_equal(fmt("p-%{+yyyy.MM.dd}", DAY1_LAST + S(1), NULL), "p-2015.08.28");
	assert_string_equal(fmt("p-%{+yyyy.MM.dd.HH}", DAY1_LAST, NULL), "p-2015.08.27.23");
	assert_string_equal(fmt("p-%{+yyyy.MM.dd.HH}", DAY1_LAST + S(1), NULL), "p-2015.08.28.00");
	/* month and year ends, leap days */
	assert_string_equal(fmt("p-%{+yyyy.MM.dd}", S(951782400) - 1, NULL), "p-2000.02.28");
	assert_string_equal(fmt("p-%{+yyyy.MM.dd}", S(951782400), NULL), "p-2000.02.29");
	assert_string_equal(fmt("p-%{+yyyy.MM.dd}", S(1704067200) - 1, NULL), "p-2023.12.31");
	assert_string_equal(fmt("p-%{+yyyy.MM.dd}", S(1704067200), NULL), "p-2024.01.01");
	/* 2038 and after: no 32-bit time_t anywhere */
	assert_string_equal(fmt("p-%{+yyyy.MM.dd.HH}", S(2147483647), NULL), "p-2038.01.19.03");
	assert_string_equal(fmt("p-%{+yyyy.MM.dd}", S(2147483648LL), NULL), "p-2038.01.19");
	assert_string_equal(fmt("p-%{+yyyy.MM.dd}", S(4107542400LL) - 1, NULL), "p-2100.02.28");
	assert_string_equal(fmt("p-%{+yyyy.MM.dd}", S(4107542400LL), NULL), "p-2100.03.01");
	assert_string_equal(fmt("p-%{+yyyy.MM.dd.HH}", INT64_MAX, NULL), "p-2262.04.11.23");
	/* before 1970: floor, not truncation */
	assert_string_equal(fmt("p-%{+yyyy.MM.dd.HH}", -1, NULL), "p-1969.12.31.23");
	assert_string_equal(fmt("p-%{+yyyy.MM.dd}", S(-86400), NULL), "p-1969.12.31");
	assert_string_equal(fmt("p-%{+yyyy.MM.dd}", S(-86400) - 1, NULL), "p-1969.12.30");
	assert_string_equal(fmt("p-%{+yyyy.MM.dd}", S(-2208988800LL), NULL), "p-1900.01.01");
	assert_string_equal(fmt("p-%{+yy.MM.dd}", S(-2208988800LL) - 1, NULL), "p-99.12.31");
	assert_string_equal(fmt("p-%{+yyyy.MM.dd.HH}", INT64_MIN, NULL), "p-1677.09.21.00");
}

static void test_index_version(void **state)
{
	char out[64];

	(void)state;
	assert_string_equal(fmt("hostbeat-%{[agent.version]}-%{+yyyy.MM.dd}", T_EXAMPLE, "0.1.0"),
			    "hostbeat-0.1.0-2024.05.01");
	assert_string_equal(fmt("hb-%{[agent.version]}", T_EXAMPLE, "8.13.0-SNAPSHOT"),
			    "hb-8.13.0-snapshot");
	assert_int_equal(bulk_index_format("hb-%{[agent.version]}", 0, NULL, out, sizeof(out)),
			 -EINVAL);
	assert_int_equal(bulk_index_format("hb-%{[agent.version]}", 0, "1/2", out, sizeof(out)),
			 -EINVAL);
	assert_int_equal(bulk_index_format("%{[agent.version]}", 0, "-x", out, sizeof(out)),
			 -EINVAL);
	assert_int_equal(bulk_index_format("%{[agent.version]}", 0, "", out, sizeof(out)), -EINVAL);
	assert_string_equal(out, "");
}

static void test_index_length(void **state)
{
	char pat[300], out[BULK_INDEX_MAX + 1], small[8];

	(void)state;
	memset(pat, 'a', 245);
	strcpy(pat + 245, "%{+yyyy.MM}"); /* 245 + 7 = 252 */
	assert_int_equal(bulk_index_format(pat, T_EXAMPLE, NULL, out, sizeof(out)), 252);
	memset(pat, 'a', 248);
	strcpy(pat + 248, "%{+yyyy.MM}"); /* 255: the limit */
	assert_int_equal(bulk_index_format(pat, T_EXAMPLE, NULL, out, sizeof(out)), 255);
	assert_int_equal(out[255], '\0');
	memset(pat, 'a', 249);
	strcpy(pat + 249, "%{+yyyy.MM}"); /* 256 */
	assert_int_equal(bulk_index_format(pat, T_EXAMPLE, NULL, out, sizeof(out)), -ENAMETOOLONG);
	assert_string_equal(out, "");
	assert_int_equal(bulk_index_format("p-%{+yyyy}", T_EXAMPLE, NULL, small, 6), -ENAMETOOLONG);
	assert_int_equal(bulk_index_format("p-%{+yyyy}", T_EXAMPLE, NULL, small, 7), 6);
	assert_string_equal(small, "p-2024");
}

/* The hour memo gives exactly bulk_index_format()'s answer, across hour and day
 * boundaries, before 1970, at the ends of int64 and for bad patterns. */
static void test_index_cached(void **state)
{
	static const char *pats[] = {"p-%{+yyyy.MM.dd}", "p-%{+yyyy.MM.dd.HH}", "Bad-%{+yyyy}",
				     "hb-%{[agent.version]}-%{+yy.M.d.H}"};
	static const int64_t starts[] = {DAY1_LAST - S(7300), S(-7300), INT64_MIN,
					 INT64_MAX - S(7300)};
	char want[BULK_INDEX_MAX + 1];

	(void)state;
	for (size_t p = 0; p < sizeof(pats) / sizeof(pats[0]); p++) {
		for (size_t k = 0; k < sizeof(starts) / sizeof(starts[0]); k++) {
			struct bulk_index_cache c = {0};
			int64_t ts = starts[k];

			for (int i = 0; i < 2000; i++) {
				const char *name = NULL;
				int n = bulk_index_cached(&c, pats[p], ts, "8.0.0", &name);
				int w = bulk_index_format(pats[p], ts, "8.0.0", want, sizeof(want));

				assert_int_equal(n, w);
				assert_non_null(name);
				assert_string_equal(name, w >= 0 ? want : "");
				/* steps of ~31 s forward, an hour back every 200: ~7 h in all */
				if (ts > INT64_MAX - S(32))
					break;
				if (i % 200 == 199 && ts > INT64_MIN + S(3600))
					ts -= S(3600);
				else
					ts += S(31) + 333333333;
			}
		}
	}
}

static void expect_invalid(const char *pattern, size_t off, const char *needle)
{
	char msg[160], out[64];
	size_t at = 999;

	assert_int_equal(bulk_index_validate(pattern, &at, msg, sizeof(msg)), -EINVAL);
	if (!strstr(msg, needle))
		fail_msg("\"%s\": message \"%s\" lacks \"%s\"", pattern, msg, needle);
	assert_int_equal(at, off);
	/* format refuses exactly what validate refuses */
	assert_int_equal(bulk_index_format(pattern, T_EXAMPLE, "1.0", out, sizeof(out)), -EINVAL);
}

static void test_index_validate(void **state)
{
	static const char *good[] = {"packetbeat-%{+yyyy.MM.dd}",
				     "topbeat-%{+yyyy.MM.dd}",
				     "hostbeat-metrics-%{+yyyy.MM.dd}",
				     "hb-%{[agent.version]}-%{+yy.M.d.H}",
				     "logs",
				     "a.b-c_d+e%f",
				     "%{+yyyy}",
				     "é-%{+yyyy}"};
	char msg[160] = "x";
	size_t off = 7;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(bulk_index_validate(good[i], &off, msg, sizeof(msg)), 0);
		assert_string_equal(msg, "");
	}
	expect_invalid("packetbeat-%{+YYYY.MM.dd}", 14, "week-based year");
	expect_invalid("Packetbeat-%{+yyyy}", 0, "lowercase");
	expect_invalid("pb-%{+yyyy'X'}", 11, "lowercase");
	expect_invalid("pb-%{[host.name]}", 3, "%{[host.name]}");
	expect_invalid("pb-%{+yyyy", 3, "unterminated");
	expect_invalid("pb-%{+}", 3, "empty date format");
	expect_invalid("pb-%{+'x}", 6, "unterminated quote");
	expect_invalid("pb-%{+yyyy.MMM}", 11, "month names");
	expect_invalid("pb-%{+yyyy.mm}", 11, "minutes");
	expect_invalid("pb-%{+yyyy.DD}", 11, "day of the year");
	expect_invalid("pb-%{+yyyyy}", 6, "yyyy or yy");
	expect_invalid("pb-%{+yyyy.Q}", 11, "unsupported date token");
	expect_invalid("pb-%{+yyyy/MM}", 10, "not allowed");
	expect_invalid("pb*", 2, "not allowed");
	expect_invalid("pb 1", 2, "not allowed");
	expect_invalid("pb:1", 2, "not allowed");
	expect_invalid("pb\t", 2, "control");
	expect_invalid("-pb", 0, "must not start");
	expect_invalid("_pb", 0, "must not start");
	expect_invalid("..", 0, "cannot be");
	expect_invalid("", 0, "empty");
	/* NULL outputs are allowed */
	assert_int_equal(bulk_index_validate("Bad", NULL, NULL, 0), -EINVAL);
	assert_int_equal(bulk_index_validate(NULL, &off, msg, sizeof(msg)), -EINVAL);
}

/* ---- request bodies ----------------------------------------------------------- */

/* ecosystem.md §2.1, exact example */
static const char *ex_docs[3] = {
    "{\"@timestamp\":\"2024-05-01T12:00:00.123Z\",\"type\":\"dns\",\"network\":{\"protocol\":"
    "\"dns\",\"transport\":\"udp\"},\"source\":{\"ip\":\"172.17.0.2\",\"port\":40000},"
    "\"destination\":{\"ip\":\"8.8.8.8\",\"port\":53},\"event\":{\"duration\":20690000}}",
    "{\"@timestamp\":\"2024-05-01T12:00:00.456Z\",\"type\":\"http\",\"source\":{\"ip\":"
    "\"172.17.0.3\",\"port\":\"http\"}}",
    "{\"@timestamp\":\"2024-05-01T12:00:00.000Z\",\"system\":{\"load\":{\"1\":0.5,\"5\":0.4,"
    "\"15\":0.3}}}",
};

static const char ex_body[] =
    "{\"create\":{\"_index\":\"packetbeat-2024.05.01\"}}\n"
    "{\"@timestamp\":\"2024-05-01T12:00:00.123Z\",\"type\":\"dns\",\"network\":{\"protocol\":"
    "\"dns\",\"transport\":\"udp\"},\"source\":{\"ip\":\"172.17.0.2\",\"port\":40000},"
    "\"destination\":{\"ip\":\"8.8.8.8\",\"port\":53},\"event\":{\"duration\":20690000}}\n"
    "{\"create\":{\"_index\":\"packetbeat-2024.05.01\"}}\n"
    "{\"@timestamp\":\"2024-05-01T12:00:00.456Z\",\"type\":\"http\",\"source\":{\"ip\":"
    "\"172.17.0.3\",\"port\":\"http\"}}\n"
    "{\"create\":{\"_index\":\"topbeat-2024.05.01\"}}\n"
    "{\"@timestamp\":\"2024-05-01T12:00:00.000Z\",\"system\":{\"load\":{\"1\":0.5,\"5\":0.4,"
    "\"15\":0.3}}}\n";

static void add_example(struct bulk_batch *b)
{
	char ix[BULK_INDEX_MAX + 1];

	for (int i = 0; i < 3; i++) {
		int64_t ts = T_EXAMPLE + (i == 0 ? 123000000 : i == 1 ? 456000000 : 0);

		assert_true(bulk_index_format(i < 2 ? "packetbeat-%{+yyyy.MM.dd}"
						    : "topbeat-%{+yyyy.MM.dd}",
					      ts, NULL, ix, sizeof(ix)) > 0);
		assert_int_equal(bulk_batch_add(b, ix, NULL, ex_docs[i], strlen(ex_docs[i]),
						(void *)(uintptr_t)(i + 1)),
				 0);
	}
}

static void test_body_example(void **state)
{
	struct bulk_batch *b = bulk_batch_new(1600, 1 << 20, 0);
	struct bulk_payload pl;

	(void)state;
	assert_non_null(b);
	add_example(b);
	assert_int_equal(sizeof(ex_body) - 1, 536);
	assert_int_equal(bulk_batch_count(b), 3);
	assert_int_equal(bulk_batch_bytes(b), 536);
	assert_int_equal(bulk_batch_payload(b, 0, 3, &pl), 0);
	assert_false(pl.gzip);
	assert_int_equal(pl.len, 536);
	assert_int_equal(pl.raw_len, 536);
	assert_memory_equal(pl.p, ex_body, 536);
	assert_ptr_equal(bulk_batch_item(b, 2)->user, (void *)3);
	assert_null(bulk_batch_item(b, 3));
	/* one range = one byte span of the body */
	assert_int_equal(bulk_batch_payload(b, 1, 2, &pl), 0);
	assert_int_equal(pl.len, bulk_batch_item(b, 1)->len);
	assert_memory_equal(pl.p, strstr(ex_body, "}\n{\"create\"") + 2, pl.len);
	assert_int_equal(bulk_batch_payload(b, 2, 2, &pl), -EINVAL);
	assert_int_equal(bulk_batch_payload(b, 0, 4, &pl), -EINVAL);
	bulk_batch_reset(b);
	assert_int_equal(bulk_batch_count(b), 0);
	assert_int_equal(bulk_batch_bytes(b), 0);
	bulk_batch_free(b);
	bulk_batch_free(NULL);
}

static void test_body_escape_pipeline(void **state)
{
	struct bulk_batch *b = bulk_batch_new(10, 4096, 0);
	struct bulk_payload pl;
	static const char want[] = "{\"create\":{\"_index\":\"a\\\"b\\\\c\\u0001\",\"pipeline\":"
				   "\"geo\\\"ip\"}}\n{}\n"
				   "{\"create\":{\"_index\":\"x\"}}\n{\"a\":1}\n";

	(void)state;
	assert_non_null(b);
	assert_int_equal(bulk_batch_add(b, "a\"b\\c\x01", "geo\"ip", "{}", 2, NULL), 0);
	assert_int_equal(bulk_batch_add(b, "x", "", "{\"a\":1}", 7, NULL), 0);
	assert_int_equal(bulk_batch_payload(b, 0, 2, &pl), 0);
	assert_int_equal(pl.len, sizeof(want) - 1);
	assert_memory_equal(pl.p, want, pl.len);
	/* bad input changes nothing */
	assert_int_equal(bulk_batch_add(b, "x", NULL, "{\n}", 3, NULL), -EINVAL);
	assert_int_equal(bulk_batch_add(b, "", NULL, "{}", 2, NULL), -EINVAL);
	assert_int_equal(bulk_batch_add(b, NULL, NULL, "{}", 2, NULL), -EINVAL);
	assert_int_equal(bulk_batch_add(b, "x", NULL, "{}", 0, NULL), -EINVAL);
	assert_int_equal(bulk_batch_count(b), 2);
	assert_int_equal(bulk_batch_bytes(b), sizeof(want) - 1);
	bulk_batch_free(b);
	assert_null(bulk_batch_new(0, 10, 0));
	assert_null(bulk_batch_new(10, 0, 0));
	assert_null(bulk_batch_new(10, 10, 10));
	assert_null(bulk_batch_new(10, 10, -1));
}

/* An _id makes a repeated create answer 409 instead of indexing twice. */
static void test_body_id(void **state)
{
	struct bulk_batch *b = bulk_batch_new(10, 4096, 0);
	struct bulk_payload pl;
	static const char want[] =
	    "{\"create\":{\"_index\":\"p-1\",\"_id\":\"AbC-_9\",\"pipeline\":"
	    "\"g\"}}\n{}\n"
	    "{\"create\":{\"_index\":\"p-1\",\"_id\":\"q\\\"\"}}\n{\"a\":1}\n"
	    "{\"create\":{\"_index\":\"p-1\"}}\n{}\n";

	(void)state;
	assert_non_null(b);
	assert_int_equal(bulk_batch_add_id(b, "p-1", "AbC-_9", "g", "{}", 2, NULL), 0);
	assert_int_equal(bulk_batch_add_id(b, "p-1", "q\"", NULL, "{\"a\":1}", 7, NULL), 0);
	assert_int_equal(bulk_batch_add_id(b, "p-1", "", NULL, "{}", 2, NULL), 0);
	assert_int_equal(bulk_batch_payload(b, 0, 3, &pl), 0);
	assert_int_equal(pl.len, sizeof(want) - 1);
	assert_memory_equal(pl.p, want, pl.len);
	assert_memory_equal(bulk_batch_raw(b) + bulk_batch_item(b, 2)->off,
			    "{\"create\":{\"_index\":\"p-1\"}}\n", 28);
	bulk_batch_free(b);
}

static void test_body_caps(void **state)
{
	/* "{\"create\":{\"_index\":\"i\"}}\n" is 26 bytes; with "{}\n" an item is 29 */
	struct bulk_batch *b = bulk_batch_new(3, 58, 0);
	char big[64];

	(void)state;
	assert_non_null(b);
	assert_int_equal(bulk_batch_add(b, "i", NULL, "{}", 2, NULL), 0);
	assert_int_equal(bulk_batch_item(b, 0)->len, 29);
	assert_int_equal(bulk_batch_add(b, "i", NULL, "{}", 2, NULL), 0);
	assert_int_equal(bulk_batch_bytes(b), 58);
	assert_int_equal(bulk_batch_add(b, "i", NULL, "{}", 2, NULL), -ENOSPC); /* bytes */
	assert_int_equal(bulk_batch_count(b), 2);
	/* a document that can never fit vs one that fits an empty batch exactly */
	memset(big, ' ', sizeof(big));
	big[0] = '{';
	assert_int_equal(bulk_batch_add(b, "i", NULL, big, 32, NULL), -E2BIG);  /* 26+33 > 58 */
	assert_int_equal(bulk_batch_add(b, "i", NULL, big, 31, NULL), -ENOSPC); /* 26+32 = 58 */
	assert_int_equal(bulk_batch_add(b, "i", NULL, big, 58, NULL), -E2BIG);
	assert_int_equal(bulk_batch_add(b, "i", NULL, big, 64, NULL), -E2BIG);
	bulk_batch_reset(b);
	big[30] = '}';
	assert_int_equal(bulk_batch_add(b, "i", NULL, big, 31, NULL), 0);
	assert_int_equal(bulk_batch_bytes(b), 58);
	bulk_batch_free(b);

	b = bulk_batch_new(2, 1 << 20, 0); /* count */
	assert_int_equal(bulk_batch_add(b, "i", NULL, "{}", 2, NULL), 0);
	assert_int_equal(bulk_batch_add(b, "i", NULL, "{}", 2, NULL), 0);
	assert_int_equal(bulk_batch_add(b, "i", NULL, "{}", 2, NULL), -ENOSPC);
	assert_int_equal(bulk_batch_count(b), 2);
	bulk_batch_free(b);
}

static void test_body_out_of_memory(void **state)
{
	struct bulk_batch *b = bulk_batch_new(1000, 1 << 20, 0);
	struct bulk_payload pl;
	char doc[200];
	size_t bytes;
	bool hit = false;

	(void)state;
	assert_non_null(b);
	memset(doc, 'x', sizeof(doc));
	doc[0] = '"';
	doc[sizeof(doc) - 1] = '"';
	mem_fail_after(0);
	assert_int_equal(bulk_batch_add(b, "i", NULL, doc, sizeof(doc), NULL), -ENOMEM);
	mem_fail_reset();
	assert_int_equal(bulk_batch_count(b), 0);
	assert_int_equal(bulk_batch_add(b, "i", NULL, doc, sizeof(doc), NULL), 0);
	/* add with allocation failing: fine while the buffers have room, then -ENOMEM
	 * with the batch unchanged */
	for (int i = 0; i < 100; i++) {
		size_t n = bulk_batch_count(b);
		int rc;

		bytes = bulk_batch_bytes(b);
		mem_fail_after(0);
		rc = bulk_batch_add(b, "i", NULL, doc, sizeof(doc), NULL);
		mem_fail_reset();
		if (rc == 0)
			continue;
		assert_int_equal(rc, -ENOMEM);
		assert_true(n > 0);
		assert_int_equal(bulk_batch_count(b), n);
		assert_int_equal(bulk_batch_bytes(b), bytes);
		assert_int_equal(bulk_batch_add(b, "i", NULL, doc, sizeof(doc), NULL), 0);
		hit = true;
		break;
	}
	assert_true(hit);
	/* and the batch is still whole and usable */
	assert_int_equal(bulk_batch_payload(b, 0, bulk_batch_count(b), &pl), 0);
	assert_int_equal(pl.len, bulk_batch_count(b) * (sizeof(doc) + 27));
	for (size_t i = 0; i < bulk_batch_count(b); i++)
		assert_memory_equal(pl.p + i * (sizeof(doc) + 27) + 26, doc, sizeof(doc));
	bulk_batch_free(b);
}

static int parse(struct bulk_response *r, int status, const char *body, size_t nitems)
{
	return bulk_response_parse(r, status, body, strlen(body), nitems);
}

/* The body line of item i of a batch whose documents are {"n":i}. */
static void add_numbered(struct bulk_batch *b, int n)
{
	for (int i = 0; i < n; i++) {
		char doc[32];
		int len = snprintf(doc, sizeof(doc), "{\"n\":%d}", i);

		assert_int_equal(
		    bulk_batch_add(b, "i", NULL, doc, (size_t)len, (void *)(uintptr_t)(i + 100)),
		    0);
	}
}

static void test_retain_subset(void **state)
{
	struct bulk_batch *b = bulk_batch_new(100, 1 << 20, 0);
	struct bulk_response r;
	struct bulk_payload pl;
	static const char resp[] = "{\"errors\":true,\"items\":[{\"create\":{\"status\":201}},"
				   "{\"create\":{\"status\":429}},{\"create\":{\"status\":400}},"
				   "{\"create\":{\"status\":503}},{\"create\":{\"status\":409}}]}";
	static const char want[] = "{\"create\":{\"_index\":\"i\"}}\n{\"n\":1}\n"
				   "{\"create\":{\"_index\":\"i\"}}\n{\"n\":3}\n";

	(void)state;
	assert_non_null(b);
	bulk_response_init(&r);
	add_numbered(b, 5);
	assert_int_equal(parse(&r, 200, resp, 5), 0);
	bulk_batch_record(b, 0, &r);
	assert_int_equal(bulk_batch_item(b, 0)->verdict, BULK_ACK);
	assert_int_equal(bulk_batch_item(b, 2)->verdict, BULK_DEAD);
	assert_int_equal(bulk_batch_item(b, 4)->verdict, BULK_DUPLICATE);
	assert_int_equal(bulk_batch_retain(b), 2);
	assert_int_equal(bulk_batch_count(b), 2);
	assert_int_equal(bulk_batch_payload(b, 0, 2, &pl), 0);
	assert_int_equal(pl.len, sizeof(want) - 1);
	assert_memory_equal(pl.p, want, pl.len);
	assert_ptr_equal(bulk_batch_item(b, 0)->user, (void *)101);
	assert_ptr_equal(bulk_batch_item(b, 1)->user, (void *)103);
	assert_int_equal(bulk_batch_item(b, 1)->retries, 1);
	assert_int_equal(bulk_batch_item(b, 1)->verdict, BULK_RETRY);
	/* top up after a retain: appended after the kept ones */
	assert_int_equal(bulk_batch_add(b, "j", NULL, "{}", 2, NULL), 0);
	assert_int_equal(bulk_batch_payload(b, 0, 3, &pl), 0);
	assert_int_equal(pl.len, sizeof(want) - 1 + 29);
	assert_memory_equal(pl.p + sizeof(want) - 1, "{\"create\":{\"_index\":\"j\"}}\n{}\n", 29);
	/* second round: all retry again → nothing moves, retries counts up */
	assert_int_equal(bulk_batch_retain(b), 3);
	assert_int_equal(bulk_batch_item(b, 0)->retries, 2);
	assert_int_equal(bulk_batch_item(b, 2)->retries, 1);
	/* everything acked → empty */
	assert_int_equal(parse(&r, 200, "{\"errors\":false}", 3), 0);
	bulk_batch_record(b, 0, &r);
	assert_int_equal(bulk_batch_retain(b), 0);
	assert_int_equal(bulk_batch_bytes(b), 0);
	bulk_response_free(&r);
	bulk_batch_free(b);
}

/* 413: resend the halves; each half's answer is recorded at its offset. */
static void test_split(void **state)
{
	struct bulk_batch *b = bulk_batch_new(1600, 1 << 24, 0);
	struct bulk_response r;
	struct bulk_payload pl;
	struct strbuf whole, halves, resp;

	(void)state;
	assert_non_null(b);
	bulk_response_init(&r);
	strbuf_init(&whole);
	strbuf_init(&halves);
	strbuf_init(&resp);
	add_numbered(b, 1600);
	assert_int_equal(bulk_batch_payload(b, 0, 1600, &pl), 0);
	strbuf_append(&whole, pl.p, pl.len);
	assert_int_equal(parse(&r, 413,
			       "{\"error\":{\"type\":\"content_too_long_exception\"},"
			       "\"status\":413}",
			       1600),
			 0);
	assert_int_equal(r.outcome, BULK_OUT_SPLIT);
	assert_int_equal(r.n_retry, 1600);
	bulk_batch_record(b, 0, &r);
	assert_int_equal(bulk_batch_payload(b, 0, 800, &pl), 0);
	strbuf_append(&halves, pl.p, pl.len);
	assert_int_equal(bulk_batch_payload(b, 800, 1600, &pl), 0);
	strbuf_append(&halves, pl.p, pl.len);
	assert_int_equal(halves.len, whole.len);
	assert_memory_equal(halves.p, whole.p, whole.len);
	assert_memory_equal(whole.p + whole.len - 11, "{\"n\":1599}\n", 11);
	/* first half fine, second half: every 4th item rejected */
	assert_int_equal(parse(&r, 200, "{\"errors\":false}", 800), 0);
	bulk_batch_record(b, 0, &r);
	strbuf_puts(&resp, "{\"errors\":true,\"items\":[");
	for (int i = 0; i < 800; i++)
		strbuf_appendf(&resp, "%s{\"create\":{\"status\":%d}}", i ? "," : "",
			       i % 4 ? 201 : 503);
	strbuf_puts(&resp, "]}");
	assert_int_equal(bulk_response_parse(&r, 200, resp.p, resp.len, 800), 0);
	assert_int_equal(r.n_retry, 200);
	bulk_batch_record(b, 800, &r);
	assert_int_equal(bulk_batch_retain(b), 200);
	assert_ptr_equal(bulk_batch_item(b, 0)->user, (void *)(uintptr_t)(800 + 100));
	assert_ptr_equal(bulk_batch_item(b, 199)->user, (void *)(uintptr_t)(1596 + 100));
	/* one document alone that is still too large is dead */
	assert_int_equal(parse(&r, 413, "", 1), 0);
	assert_int_equal(r.outcome, BULK_OUT_SPLIT);
	assert_int_equal(r.item[0].verdict, BULK_DEAD);
	assert_int_equal(r.item[0].status, 413);
	assert_int_equal(r.n_dead, 1);
	strbuf_free(&whole);
	strbuf_free(&halves);
	strbuf_free(&resp);
	bulk_response_free(&r);
	bulk_batch_free(b);
}

static void inflate_all(const char *gz, size_t len, struct strbuf *out)
{
	z_stream z = {0};
	int rc;

	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK); /* gzip only */
	z.next_in = (Bytef *)(uintptr_t)gz;
	z.avail_in = (uInt)len;
	do {
		assert_int_equal(strbuf_grow(out, 65536), 0);
		z.next_out = (Bytef *)out->p + out->len;
		z.avail_out = 65536;
		rc = inflate(&z, Z_NO_FLUSH);
		assert_true(rc == Z_OK || rc == Z_STREAM_END);
		out->len = (size_t)((char *)z.next_out - out->p);
	} while (rc != Z_STREAM_END);
	assert_int_equal(z.avail_in, 0); /* nothing after the gzip member */
	inflateEnd(&z);
}

static void test_gzip(void **state)
{
	/* 1..3 go to igzip, 4..9 to libdeflate (bulk.c GZIP_ISAL_MAX) */
	static const int levels[] = {1, 3, 4, 6, 9};

	(void)state;
	for (size_t l = 0; l < sizeof(levels) / sizeof(levels[0]); l++) {
		struct bulk_batch *b = bulk_batch_new(4000, 1 << 24, levels[l]);
		struct bulk_payload pl;
		struct strbuf out;

		assert_non_null(b);
		strbuf_init(&out);
		for (int k = 0; k < 1000; k++)
			add_example(b);
		assert_int_equal(bulk_batch_payload(b, 0, 3000, &pl), 0);
		assert_true(pl.gzip);
		assert_int_equal(pl.raw_len, 536 * 1000);
		assert_true(pl.len < pl.raw_len / 10); /* repetitive: compresses well */
		assert_int_equal((unsigned char)pl.p[0], 0x1f);
		assert_int_equal((unsigned char)pl.p[1], 0x8b);
		inflate_all(pl.p, pl.len, &out);
		assert_int_equal(out.len, 536 * 1000);
		for (int k = 0; k < 1000; k++)
			assert_memory_equal(out.p + 536 * k, ex_body, 536);
		/* warm: compressing again (another range) allocates nothing */
		mem_fail_after(0);
		assert_int_equal(bulk_batch_payload(b, 3, 6, &pl), 0);
		mem_fail_reset();
		strbuf_reset(&out);
		inflate_all(pl.p, pl.len, &out);
		assert_int_equal(out.len, 536);
		assert_memory_equal(out.p, ex_body, 536);
		/* warm: refilling the batch allocates nothing either */
		bulk_batch_reset(b);
		mem_fail_after(0);
		for (int k = 0; k < 1000; k++)
			add_example(b);
		assert_int_equal(bulk_batch_payload(b, 0, 3000, &pl), 0);
		mem_fail_reset();
		strbuf_free(&out);
		bulk_batch_free(b);
	}
}

/* Documents that do not compress (random bytes; the batch does not parse documents,
 * it only refuses newlines): the deflate output is about as large as the input, so
 * igzip's buffer has to grow past its first guess (half the input); inflating gives
 * the input back, at both engines. */
static void test_gzip_incompressible(void **state)
{
	static const int levels[] = {1, 9};
	static char doc[60000];
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	(void)state;
	for (size_t i = 0; i < sizeof(doc); i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		doc[i] = (char)(x >> 56);
		if (doc[i] == '\n')
			doc[i] = 'n';
	}
	for (size_t l = 0; l < 2; l++) {
		struct bulk_batch *b = bulk_batch_new(100, 1 << 24, levels[l]);
		struct bulk_payload pl;
		struct strbuf out;

		assert_non_null(b);
		strbuf_init(&out);
		for (int k = 0; k < 50; k++) {
			doc[1 + k] ^= 1; /* no two documents alike */
			assert_int_equal(bulk_batch_add(b, "packetbeat-2024.05.01", NULL, doc,
							sizeof(doc), NULL),
					 0);
		}
		assert_int_equal(bulk_batch_payload(b, 0, 50, &pl), 0);
		assert_true(pl.gzip);
		assert_true(pl.len > pl.raw_len * 99 / 100);
		inflate_all(pl.p, pl.len, &out);
		assert_int_equal(out.len, pl.raw_len);
		assert_memory_equal(out.p, bulk_batch_raw(b), pl.raw_len);
		strbuf_free(&out);
		bulk_batch_free(b);
	}
}

/* ---- responses ----------------------------------------------------------------- */

/* ecosystem.md §2.1 partial failure, unfiltered (ES 8.x) */
static const char ex_resp[] =
    "{\"took\":12,\"errors\":true,\"items\":[\n"
    " {\"create\":{\"_index\":\"packetbeat-2024.05.01\",\"_id\":\"kX3aM48BqN3vE0xKcJ9u\","
    "\"_version\":1,\n"
    "   \"result\":\"created\",\"_shards\":{\"total\":1,\"successful\":1,\"failed\":0},\n"
    "   \"_seq_no\":0,\"_primary_term\":1,\"status\":201}},\n"
    " {\"create\":{\"_index\":\"packetbeat-2024.05.01\",\"_id\":\"lH3aM48BqN3vE0xKcJ9u\","
    "\"status\":400,\n"
    "   \"error\":{\"type\":\"document_parsing_exception\",\n"
    "     \"reason\":\"[1:94] failed to parse field [source.port] of type [long] in document "
    "with id 'lH3aM48BqN3vE0xKcJ9u'. Preview of field's value: 'http'\",\n"
    "     \"caused_by\":{\"type\":\"illegal_argument_exception\",\"reason\":\"For input "
    "string: \\\"http\\\"\"}}}},\n"
    " {\"create\":{\"_index\":\"topbeat-2024.05.01\",\"_id\":\"mH3aM48BqN3vE0xKcJ9u\","
    "\"status\":429,\n"
    "   \"error\":{\"type\":\"es_rejected_execution_exception\",\n"
    "     \"reason\":\"rejected execution of coordinating operation [...]\"}}}]}";

static const char ex_resp_filtered[] =
    "{\"errors\":true,\"items\":[{\"create\":{\"status\":201}},{\"create\":{\"status\":400,"
    "\"error\":{\"type\":\"document_parsing_exception\",\"reason\":\"[1:94] failed to parse "
    "field [source.port] of type [long] in document with id 'lH3aM48BqN3vE0xKcJ9u'. Preview "
    "of field's value: 'http'\",\"caused_by\":{\"type\":\"illegal_argument_exception\","
    "\"reason\":\"For input string: \\\"http\\\"\"}}}},{\"create\":{\"status\":429,\"error\":"
    "{\"type\":\"es_rejected_execution_exception\",\"reason\":\"rejected execution of "
    "coordinating operation [...]\"}}}]}";

static void assert_text(const char *p, size_t len, const char *want)
{
	if (!want) {
		assert_null(p);
		assert_int_equal(len, 0);
		return;
	}
	assert_non_null(p);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(p, want, len);
}

static void assert_err(const struct bulk_response *r, size_t i, const char *type,
		       const char *reason)
{
	size_t len;
	const char *p = bulk_item_err_type(r, i, &len);

	assert_text(p, len, type);
	p = bulk_item_err_reason(r, i, &len);
	assert_text(p, len, reason);
}

static void assert_counts(const struct bulk_response *r, size_t ack, size_t dup, size_t retry,
			  size_t dead)
{
	assert_int_equal(r->n_ack, ack);
	assert_int_equal(r->n_duplicate, dup);
	assert_int_equal(r->n_retry, retry);
	assert_int_equal(r->n_dead, dead);
}

static void check_partial_failure(const char *body)
{
	struct bulk_response r;

	bulk_response_init(&r);
	assert_int_equal(parse(&r, 200, body, 3), 0);
	assert_int_equal(r.outcome, BULK_OUT_ITEMS);
	assert_int_equal(r.proto, BULK_PROTO_OK);
	assert_counts(&r, 1, 0, 1, 1);
	assert_int_equal(r.item[0].verdict, BULK_ACK);
	assert_int_equal(r.item[0].status, 201);
	assert_err(&r, 0, NULL, NULL);
	assert_int_equal(r.item[1].verdict, BULK_DEAD);
	assert_int_equal(r.item[1].status, 400);
	assert_err(&r, 1, "document_parsing_exception",
		   "[1:94] failed to parse field [source.port] of type [long] in document with id "
		   "'lH3aM48BqN3vE0xKcJ9u'. Preview of field's value: 'http'");
	assert_int_equal(r.item[2].verdict, BULK_RETRY);
	assert_int_equal(r.item[2].status, 429);
	assert_err(&r, 2, "es_rejected_execution_exception",
		   "rejected execution of coordinating operation [...]");
	bulk_response_free(&r);
}

static void test_resp_partial_failure(void **state)
{
	(void)state;
	check_partial_failure(ex_resp);
	check_partial_failure(ex_resp_filtered);
}

static void test_resp_fast_path(void **state)
{
	struct bulk_response r;

	(void)state;
	bulk_response_init(&r);
	assert_int_equal(
	    parse(&r, 200,
		  "{\"took\":3,\"errors\":false,\"items\":[{\"create\":{\"status\":201}},"
		  "{\"create\":{\"status\":201}}]}",
		  2),
	    0);
	assert_counts(&r, 2, 0, 0, 0);
	assert_int_equal(r.proto, BULK_PROTO_OK);
	/* errors:false is believed without reading the items (they come after it) */
	assert_int_equal(
	    parse(&r, 200, "{\"errors\":false,\"items\":[{\"create\":{\"status\":500", 3), 0);
	assert_counts(&r, 3, 0, 0, 0);
	/* ES 7.x, index op, _type, 200 OK and filtered 201 */
	assert_int_equal(
	    parse(&r, 201,
		  "{\"took\":30,\"errors\":false,\"items\":[{\"index\":{\"_index\":\"test\",\"_"
		  "type\":"
		  "\"_doc\",\"_id\":\"1\",\"_version\":1,\"result\":\"created\",\"status\":201}}]}",
		  1),
	    0);
	assert_counts(&r, 1, 0, 0, 0);
	/* items before errors (not what ES writes): the items decide */
	assert_int_equal(
	    parse(&r, 200,
		  "{\"items\":[{\"create\":{\"status\":201}},{\"create\":{\"status\":503}}],"
		  "\"errors\":false}",
		  2),
	    0);
	assert_counts(&r, 1, 0, 1, 0);
	bulk_response_free(&r);
}

static void test_resp_item_statuses(void **state)
{
	static const struct {
		int status;
		uint8_t verdict;
	} cases[] = {
	    {200, BULK_ACK},   {201, BULK_ACK},   {299, BULK_ACK},   {409, BULK_DUPLICATE},
	    {429, BULK_RETRY}, {500, BULK_RETRY}, {503, BULK_RETRY}, {599, BULK_RETRY},
	    {400, BULK_DEAD},  {403, BULK_DEAD},  {404, BULK_DEAD},  {413, BULK_DEAD},
	    {100, BULK_RETRY}, {301, BULK_RETRY},
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);
	struct bulk_response r;
	struct strbuf body;

	(void)state;
	bulk_response_init(&r);
	strbuf_init(&body);
	strbuf_puts(&body, "{\"took\":1,\"errors\":true,\"items\":[");
	for (size_t i = 0; i < n; i++)
		strbuf_appendf(&body,
			       "%s{\"%s\":{\"_index\":\"x\",\"_type\":\"_doc\",\"status\":%d}}",
			       i ? "," : "", i % 2 ? "index" : "create", cases[i].status);
	strbuf_puts(&body, "]}");
	assert_int_equal(bulk_response_parse(&r, 200, body.p, body.len, n), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(r.item[i].status, cases[i].status);
		if (r.item[i].verdict != cases[i].verdict)
			fail_msg("status %d: %s", cases[i].status,
				 bulk_verdict_name(r.item[i].verdict));
	}
	assert_counts(&r, 3, 1, 6, 4);
	assert_int_equal(r.proto, BULK_PROTO_OK);
	/* a 409 with its error (ES 7.x shape) */
	assert_int_equal(
	    parse(&r, 200,
		  "{\"took\":1,\"errors\":true,\"items\":[{\"create\":{\"_index\":\"x\",\"_type\":"
		  "\"_doc\",\"_id\":\"1\",\"status\":409,\"error\":{\"type\":"
		  "\"version_conflict_engine_exception\",\"reason\":\"[1]: version conflict, "
		  "document already exists (current version [1])\",\"index_uuid\":\"u\",\"shard\":"
		  "\"0\",\"index\":\"x\"}}}]}",
		  1),
	    0);
	assert_counts(&r, 0, 1, 0, 0);
	assert_err(&r, 0, "version_conflict_engine_exception",
		   "[1]: version conflict, document already exists (current version [1])");
	strbuf_free(&body);
	bulk_response_free(&r);
}

static void test_resp_whole_request(void **state)
{
	static const int retry_all[] = {429, 500, 502, 503, 504, 400, 401,
					403, 404, 100, 302, 0,   -1};
	struct bulk_response r;

	(void)state;
	bulk_response_init(&r);
	for (size_t i = 0; i < sizeof(retry_all) / sizeof(retry_all[0]); i++) {
		/* even with an items array that says otherwise */
		assert_int_equal(
		    parse(&r, retry_all[i],
			  "{\"errors\":false,\"items\":[{\"create\":{\"status\":201}}]}", 4),
		    0);
		assert_int_equal(r.outcome, BULK_OUT_RETRY);
		assert_counts(&r, 0, 0, 4, 0);
	}
	assert_int_equal(
	    parse(
		&r, 404,
		"{\"error\":{\"root_cause\":[{\"type\":\"index_not_found_exception\",\"reason\":"
		"\"no such index [x]\",\"resource.type\":\"index_or_alias\",\"resource.id\":\"x\","
		"\"index_uuid\":\"_na_\",\"index\":\"x\"}],\"type\":\"index_not_found_exception\","
		"\"reason\":\"no such index [x]\"},\"status\":404}",
		2),
	    0);
	assert_int_equal(r.outcome, BULK_OUT_RETRY);
	assert_counts(&r, 0, 0, 2, 0);
	assert_int_equal(r.err_type_len, strlen("index_not_found_exception"));
	assert_memory_equal(r.text.p + r.err_type_off, "index_not_found_exception", r.err_type_len);
	assert_int_equal(r.err_reason_len, strlen("no such index [x]"));
	assert_memory_equal(r.text.p + r.err_reason_off, "no such index [x]", r.err_reason_len);
	assert_int_equal(parse(&r, 405, "{\"error\":\"Incorrect HTTP method\",\"status\":405}", 1),
			 0);
	assert_int_equal(r.err_type_len, 0);
	assert_int_equal(r.err_reason_len, strlen("Incorrect HTTP method"));
	assert_int_equal(parse(&r, 502, "<html><body>Bad Gateway</body></html>", 2), 0);
	assert_int_equal(r.outcome, BULK_OUT_RETRY);
	assert_counts(&r, 0, 0, 2, 0);
	assert_int_equal(r.err_reason_len, 0);
	/* 413 with several items: split */
	assert_int_equal(parse(&r, 413, "<html>Request Entity Too Large</html>", 7), 0);
	assert_int_equal(r.outcome, BULK_OUT_SPLIT);
	assert_counts(&r, 0, 0, 7, 0);
	/* 2xx without a usable body */
	static const char *unreadable[] = {
	    "",
	    "<html>OK</html>",
	    "{}",
	    "[]",
	    "null",
	    "{\"errors\":true}",
	    "{\"errors\":true,\"items\":{}}",
	    "{\"errors\":\"false\"}",
	    "{\"took\":1}",
	    "{\"errors\":fals}",
	};
	for (size_t i = 0; i < sizeof(unreadable) / sizeof(unreadable[0]); i++) {
		assert_int_equal(parse(&r, 200, unreadable[i], 3), 0);
		assert_int_equal(r.outcome, BULK_OUT_ITEMS);
		assert_int_equal(r.proto, BULK_PROTO_UNREADABLE);
		assert_counts(&r, 0, 0, 3, 0);
	}
	assert_int_equal(bulk_response_parse(&r, 200, NULL, 0, 2), 0);
	assert_int_equal(r.proto, BULK_PROTO_UNREADABLE);
	assert_counts(&r, 0, 0, 2, 0);
	bulk_response_free(&r);
}

static void test_resp_count_mismatch(void **state)
{
	struct bulk_response r;
	static const char two[] = "{\"errors\":true,\"items\":[{\"create\":{\"status\":201}},"
				  "{\"create\":{\"status\":400}}]}";

	(void)state;
	bulk_response_init(&r);
	assert_int_equal(parse(&r, 200, two, 3), 0);
	assert_int_equal(r.proto, BULK_PROTO_TOO_FEW);
	assert_int_equal(r.item[0].verdict, BULK_ACK);
	assert_int_equal(r.item[1].verdict, BULK_DEAD);
	assert_int_equal(r.item[2].verdict, BULK_RETRY);
	assert_int_equal(r.item[2].status, 0);
	assert_counts(&r, 1, 0, 1, 1);
	assert_int_equal(parse(&r, 200, two, 1), 0);
	assert_int_equal(r.proto, BULK_PROTO_TOO_MANY);
	assert_int_equal(r.n_extra, 1);
	assert_counts(&r, 1, 0, 0, 0);
	assert_int_equal(parse(&r, 200, "{\"errors\":true,\"items\":[]}", 2), 0);
	assert_int_equal(r.proto, BULK_PROTO_TOO_FEW);
	assert_counts(&r, 0, 0, 2, 0);
	assert_int_equal(parse(&r, 200, two, 0), 0);
	assert_int_equal(r.n_extra, 2);
	assert_counts(&r, 0, 0, 0, 0);
	bulk_response_free(&r);
}

static void test_resp_bad_items(void **state)
{
	static const char *bad[] = {
	    "{\"create\":{}}",
	    "{\"create\":{\"status\":\"201\"}}",
	    "{\"create\":{\"status\":201.0}}",
	    "{\"create\":{\"status\":2.01e2}}",
	    "{\"create\":{\"status\":-201}}",
	    "{\"create\":{\"status\":null}}",
	    "{\"create\":{\"status\":true}}",
	    "{\"create\":{\"status\":[201]}}",
	    "{\"create\":{\"status\":{\"code\":201}}}",
	    "{\"create\":{\"status\":1e400}}",
	    "{\"create\":{\"status\":99}}",
	    "{\"create\":{\"status\":600}}",
	    "{\"create\":{\"status\":18446744073709551617}}",
	    ("{\"create\":{\"status\":"
	     "201000000000000000000000000000000000000000000000000000000000000000000000000}}"),
	    "{\"create\":{\"status\":201,\"status\":\"x\"}}",
	    "{}",
	    "{\"create\":201}",
	    "{\"create\":\"x\"}",
	    "[201]",
	    "201",
	    "null",
	    "\"create\"",
	};
	struct bulk_response r;
	struct strbuf body;

	(void)state;
	bulk_response_init(&r);
	strbuf_init(&body);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strbuf_reset(&body);
		strbuf_appendf(&body,
			       "{\"took\":1e999999,\"errors\":true,\"items\":[{\"create\":{"
			       "\"status\":201}},%s,{\"create\":{\"status\":400}}]}",
			       bad[i]);
		assert_int_equal(bulk_response_parse(&r, 200, body.p, body.len, 3), 0);
		if (r.proto != BULK_PROTO_BAD_ITEM)
			fail_msg("%s: %s", bad[i], bulk_proto_err_name(r.proto));
		assert_int_equal(r.n_bad_items, 1);
		assert_int_equal(r.item[0].verdict, BULK_ACK);
		assert_int_equal(r.item[1].verdict, BULK_RETRY);
		assert_int_equal(r.item[1].status, 0);
		assert_int_equal(r.item[2].verdict, BULK_DEAD);
	}
	/* an escaped key is the same key; other ops and extra op members are fine */
	assert_int_equal(parse(&r, 200,
			       "{\"errors\":true,\"items\":[{\"create\":{\"st\\u0061tus\":409}},"
			       "{\"delete\":{\"status\":404},\"x\":{\"status\":201}},"
			       "{\"x\":1,\"update\":{\"status\":200}}]}",
			       3),
			 0);
	assert_int_equal(r.proto, BULK_PROTO_OK);
	assert_int_equal(r.item[0].verdict, BULK_DUPLICATE);
	assert_int_equal(r.item[1].verdict, BULK_DEAD);
	assert_int_equal(r.item[2].verdict, BULK_ACK);
	strbuf_free(&body);
	bulk_response_free(&r);
}

/* Cut the response at every byte: nothing crashes, counts add up, and no item is acked or
 * declared dead that the whole response does not ack or declare dead. */
static void check_prefixes(const char *body, size_t nitems)
{
	struct bulk_response full, r;
	size_t len = strlen(body);

	bulk_response_init(&full);
	bulk_response_init(&r);
	assert_int_equal(bulk_response_parse(&full, 200, body, len, nitems), 0);
	for (size_t cut = 0; cut < len; cut++) {
		/* a copy of exactly `cut` bytes, so ASan sees any over-read */
		char *p = malloc(cut ? cut : 1);

		assert_non_null(p);
		memcpy(p, body, cut);
		assert_int_equal(bulk_response_parse(&r, 200, p, cut, nitems), 0);
		assert_int_equal(r.n_ack + r.n_duplicate + r.n_retry + r.n_dead, nitems);
		if (r.proto == BULK_PROTO_OK)
			fail_msg("cut at %zu of %zu read as complete", cut, len);
		for (size_t i = 0; i < nitems; i++)
			if (r.item[i].verdict != BULK_RETRY &&
			    r.item[i].verdict != full.item[i].verdict)
				fail_msg("cut %zu: item %zu %s", cut, i,
					 bulk_verdict_name(r.item[i].verdict));
		free(p);
	}
	bulk_response_free(&full);
	bulk_response_free(&r);
}

static void test_resp_truncated(void **state)
{
	(void)state;
	check_prefixes(ex_resp, 3);
	check_prefixes(ex_resp_filtered, 3);
}

static void test_resp_malformed(void **state)
{
	static const char *bad_tail[] = {
	    "{\"create\":{\"status\":201 \"x\":1}},{\"create\":{\"status\":201}}]}",
	    "{\"create\":{\"status\":201,}},{\"create\":{\"status\":201}}]}", /* trailing comma */
	    "{\"create\":{\"status\" 201}},{\"create\":{\"status\":201}}]}",
	    "{\"create\":{\"status\":201x}},{\"create\":{\"status\":201}}]}",
	    "{\"create\":{\"status\":201,\"error\":{\"reason\":\"a\tb\"}}}]}", /* raw tab */
	    "{\"create\":{\"status\":201,\"error\":{\"reason\":\"\\x\"}}}]}",  /* bad escape */
	    "{\"create\":{\"status\":201,\"error\":{\"reason\":\"\\u12g4\"}}}]}",
	    "{\"create\":{\"status\":201,\"x\":tru}}]}",
	    "{\"create\":{\"status\":201,\"x\":-}}]}",
	    "{\"create\":{\"status\":201,\"x\":01}}]}",
	    "{\"create\":{\"status\":201,\"x\":1.}}]}",
	    "{\"create\":{\"status\":201,\"x\":1e}}]}",
	    "{\"create\":{\"status\":201,\"x\":'a'}}]}",
	    "{\"create\":{\"status\":201,\"x\":[1,2}}]}",
	    "{\"create\":{201:\"status\"}}]}",
	};
	struct bulk_response r;
	struct strbuf body;

	(void)state;
	bulk_response_init(&r);
	strbuf_init(&body);
	for (size_t i = 0; i < sizeof(bad_tail) / sizeof(bad_tail[0]); i++) {
		strbuf_reset(&body);
		strbuf_appendf(&body,
			       "{\"errors\":true,\"items\":[{\"create\":{\"status\":400}},%s",
			       bad_tail[i]);
		assert_int_equal(bulk_response_parse(&r, 200, body.p, body.len, 3), 0);
		if (r.proto != BULK_PROTO_MALFORMED)
			fail_msg("%s: %s", bad_tail[i], bulk_proto_err_name(r.proto));
		/* the complete first item counts; the broken one and the rest are retried */
		assert_int_equal(r.item[0].verdict, BULK_DEAD);
		assert_counts(&r, 0, 0, 2, 1);
	}
	/* a missing comma between items: the complete item before it counts */
	assert_int_equal(parse(&r, 200,
			       "{\"errors\":true,\"items\":[{\"create\":{\"status\":400}}"
			       "{\"create\":{\"status\":201}},{\"create\":{\"status\":201}}]}",
			       3),
			 0);
	assert_int_equal(r.proto, BULK_PROTO_MALFORMED);
	assert_counts(&r, 0, 0, 2, 1);
	strbuf_free(&body);
	bulk_response_free(&r);
}

static void test_resp_deep_nesting(void **state)
{
	struct bulk_response r;
	struct strbuf body;

	(void)state;
	bulk_response_init(&r);
	strbuf_init(&body);
	/* under the cap: parses (the item is at depth 5, its error at 6) */
	strbuf_puts(&body, "{\"errors\":true,\"items\":[{\"create\":{\"status\":400,\"error\":{"
			   "\"type\":\"t\",\"caused_by\":");
	for (int i = 0; i < 50; i++)
		strbuf_puts(&body, "{\"caused_by\":");
	strbuf_puts(&body, "null");
	for (int i = 0; i < 50; i++)
		strbuf_puts(&body, "}");
	strbuf_puts(&body, "}}},{\"create\":{\"status\":201}}]}");
	assert_int_equal(bulk_response_parse(&r, 200, body.p, body.len, 2), 0);
	assert_int_equal(r.proto, BULK_PROTO_OK);
	assert_counts(&r, 1, 0, 0, 1);
	assert_err(&r, 0, "t", NULL);
	/* 100 000 levels: refused at the cap, no stack overflow */
	strbuf_reset(&body);
	strbuf_puts(
	    &body, "{\"errors\":true,\"items\":[{\"create\":{\"status\":201}},{\"create\":{\"x\":");
	for (int i = 0; i < 100000; i++)
		strbuf_putc(&body, i % 2 ? '{' : '[');
	assert_false(body.err);
	assert_int_equal(bulk_response_parse(&r, 200, body.p, body.len, 2), 0);
	assert_int_equal(r.proto, BULK_PROTO_MALFORMED);
	assert_counts(&r, 1, 0, 1, 0);
	/* the same at the top level */
	strbuf_reset(&body);
	strbuf_puts(&body, "{\"x\":");
	for (int i = 0; i < 100000; i++)
		strbuf_putc(&body, '[');
	assert_int_equal(bulk_response_parse(&r, 200, body.p, body.len, 2), 0);
	assert_int_equal(r.proto, BULK_PROTO_UNREADABLE);
	assert_counts(&r, 0, 0, 2, 0);
	strbuf_free(&body);
	bulk_response_free(&r);
}

static void test_resp_texts(void **state)
{
	struct bulk_response r;
	struct strbuf body, want;

	(void)state;
	bulk_response_init(&r);
	strbuf_init(&body);
	strbuf_init(&want);
	/* escapes, surrogate pairs, lone surrogates, invalid UTF-8, error as a string */
	assert_int_equal(
	    parse(
		&r, 200,
		"{\"errors\":true,\"items\":["
		"{\"create\":{\"status\":400,\"error\":{\"type\":\"a\\\"b\\\\c\\/d\",\"reason\":"
		"\"\\u00e9\\ud83d\\ude00 \\ud800x \\udc00 \\b\\f\\n\\r\\t \xff\xc3\xa9\xed\xa0\x80"
		"\"}}},"
		"{\"index\":{\"status\":400,\"error\":\"plain text\"}},"
		"{\"index\":{\"status\":400,\"error\":{\"type\":7,\"reason\":null,"
		"\"type\":\"second\"}}}]}",
		3),
	    0);
	assert_err(
	    &r, 0, "a\"b\\c/d",
	    "\xc3\xa9\xf0\x9f\x98\x80 \xef\xbf\xbdx \xef\xbf\xbd \b\f\n\r\t \xef\xbf\xbd\xc3\xa9"
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	assert_err(&r, 1, NULL, "plain text");
	assert_err(&r, 2, "second", NULL);
	/* caps, at a character boundary */
	for (int w = 1; w <= 3; w++) {
		static const char *ch[] = {"", "a", "\xc3\xa9", "\xe2\x82\xac"};
		size_t keep = BULK_ERR_REASON_MAX / (size_t)w * (size_t)w;

		strbuf_reset(&body);
		strbuf_reset(&want);
		strbuf_puts(&body,
			    "{\"errors\":true,\"items\":[{\"create\":{\"status\":400,\"error\":"
			    "{\"type\":\"");
		for (int i = 0; i < 300; i++)
			strbuf_puts(&body, "t");
		strbuf_puts(&body, "\",\"reason\":\"");
		for (int i = 0; i < 1000; i++)
			strbuf_puts(&body, ch[w]);
		for (size_t i = 0; i < keep / (size_t)w; i++)
			strbuf_puts(&want, ch[w]);
		strbuf_puts(&body, "\"}}}]}");
		assert_int_equal(bulk_response_parse(&r, 200, body.p, body.len, 1), 0);
		assert_int_equal(r.item[0].type_len, BULK_ERR_TYPE_MAX);
		assert_int_equal(r.item[0].reason_len, keep);
		assert_memory_equal(r.text.p + r.item[0].reason_off, want.p, keep);
	}
	strbuf_free(&body);
	strbuf_free(&want);
	bulk_response_free(&r);
}

/* A 1,600-item answer, mixed; then the same parse again allocates nothing. */
static void test_resp_big_and_warm(void **state)
{
	struct bulk_response r;
	struct strbuf body;
	size_t n = 1600;

	(void)state;
	bulk_response_init(&r);
	strbuf_init(&body);
	strbuf_puts(&body, "{\"took\":812,\"errors\":true,\"items\":[");
	for (size_t i = 0; i < n; i++) {
		int st = i % 10 == 3 ? 429 : i % 10 == 7 ? 400 : i % 10 == 9 ? 409 : 201;

		strbuf_appendf(&body,
			       "%s{\"create\":{\"_index\":\"packetbeat-2024.05.01\",\"status\":%d",
			       i ? "," : "", st);
		if (st != 201)
			strbuf_appendf(
			    &body, ",\"error\":{\"type\":\"t%d\",\"reason\":\"item %zu failed\"}",
			    st, i);
		strbuf_puts(&body, "}}");
	}
	strbuf_puts(&body, "]}");
	assert_int_equal(bulk_response_parse(&r, 200, body.p, body.len, n), 0);
	assert_counts(&r, 1120, 160, 160, 160);
	assert_err(&r, 1597, "t400", "item 1597 failed");
	mem_fail_after(0);
	assert_int_equal(bulk_response_parse(&r, 200, body.p, body.len, n), 0);
	assert_int_equal(bulk_response_parse(&r, 200, body.p, body.len, 100), 0);
	mem_fail_reset();
	assert_int_equal(r.proto, BULK_PROTO_TOO_MANY);
	assert_counts(&r, 70, 10, 10, 10);
	assert_err(&r, 97, "t400", "item 97 failed");
	/* a fresh response that cannot get memory: everything is retried by the caller */
	bulk_response_free(&r);
	mem_fail_after(0);
	assert_int_equal(bulk_response_parse(&r, 200, body.p, body.len, n), -ENOMEM);
	mem_fail_reset();
	assert_int_equal(r.nitems, 0);
	assert_int_equal(r.outcome, BULK_OUT_RETRY);
	/* ... and with item[] but no room for the texts: verdicts still right */
	bulk_response_free(&r);
	mem_fail_after(1);
	assert_int_equal(bulk_response_parse(&r, 200, body.p, body.len, n), 0);
	mem_fail_reset();
	assert_counts(&r, 1120, 160, 160, 160);
	assert_err(&r, 1597, NULL, NULL);
	strbuf_free(&body);
	bulk_response_free(&r);
	bulk_response_free(NULL);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(bulk_verdict_name(BULK_ACK), "ack");
	assert_string_equal(bulk_verdict_name(BULK_DEAD), "dead");
	assert_string_equal(bulk_proto_err_name(BULK_PROTO_TOO_FEW), "fewer items than sent");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_index_daily),
	    cmocka_unit_test(test_body_id),
	    cmocka_unit_test(test_index_rollover),
	    cmocka_unit_test(test_index_version),
	    cmocka_unit_test(test_index_length),
	    cmocka_unit_test(test_index_cached),
	    cmocka_unit_test(test_index_validate),
	    cmocka_unit_test(test_body_example),
	    cmocka_unit_test(test_body_escape_pipeline),
	    cmocka_unit_test(test_body_caps),
	    cmocka_unit_test(test_body_out_of_memory),
	    cmocka_unit_test(test_retain_subset),
	    cmocka_unit_test(test_split),
	    cmocka_unit_test(test_gzip),
	    cmocka_unit_test(test_gzip_incompressible),
	    cmocka_unit_test(test_resp_partial_failure),
	    cmocka_unit_test(test_resp_fast_path),
	    cmocka_unit_test(test_resp_item_statuses),
	    cmocka_unit_test(test_resp_whole_request),
	    cmocka_unit_test(test_resp_count_mismatch),
	    cmocka_unit_test(test_resp_bad_items),
	    cmocka_unit_test(test_resp_truncated),
	    cmocka_unit_test(test_resp_malformed),
	    cmocka_unit_test(test_resp_deep_nesting),
	    cmocka_unit_test(test_resp_texts),
	    cmocka_unit_test(test_resp_big_and_warm),
	    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
