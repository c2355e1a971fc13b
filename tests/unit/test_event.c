/* test_event.c — core/event.c: the setters, the arena, the field caps, and the
 * lookups (ev_find, ev_remove, ev_remove_keys).
 *
 * Setters: each field is checked byte for byte against one built the plain way
 * (zeroed, then its members set), so padding and value bytes a type leaves unused
 * are 0 whichever path wrote it; strings of every length across the short-copy
 * sizes come from exactly-sized heap buffers (ASan sees any read past them).
 * Caps: the arena grows in chunks up to max_event_bytes (a tight chunk when a
 * minimum one does not fit), the field array up to max_fields; what a cap refuses
 * returns -ENOSPC and is counted in dropped_fields and "events.fields_dropped".
 * Lookups are compared with a reference that compares key text with strcmp() on
 * random events whose keys are shared literals, copies of them at other addresses
 * (same text, other pointer), and array members.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostbeat/event.h"
#include "hostbeat/ip.h"
#include "hostbeat/metrics.h"

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static struct event *new_event(struct ev_pool **pool, size_t max_bytes, size_t max_fields)
{
	struct event *ev;

	*pool = ev_pool_new(4, max_bytes, max_fields);
	assert_non_null(*pool);
	ev = ev_pool_get(*pool, EV_KIND_TRANSACTION, "test");
	assert_non_null(ev);
	return ev;
}

static void free_event(struct ev_pool *pool, struct event *ev)
{
	ev_pool_put(ev);
	assert_int_equal(ev_pool_live(pool), 0);
	ev_pool_free(pool);
}

/* A field as the original ev_add() made it: zeroed, then key and placement. */
static struct ev_field plain_field(const char *key, enum ev_vtype type, const char *member,
				   unsigned elem, uint8_t flags)
{
	struct ev_field f;

	memset(&f, 0, sizeof(f));
	f.key = key;
	f.member = member;
	f.elem = (uint16_t)elem;
	f.type = (uint8_t)type;
	f.flags = flags;
	return f;
}

static void assert_field_bytes(const struct ev_field *got, const struct ev_field *want)
{
	assert_memory_equal(got, want, sizeof(*want));
}

static void test_setters(void **state)
{
	struct ev_pool *pool;
	struct event *ev = new_event(&pool, 1 << 16, 256);
	struct hb_ip ip4 = {.ver = 4, .a = {10, 0, 0, 10}},
		     ip6 = {.ver = 6, .a = {0xfe, 0x80, 15, 1}};
	struct ev_field want;
	size_t i = 0;

	(void)state;
	assert_int_equal(ev_set_int(ev, "i", -5), 0);
	assert_int_equal(ev_set_uint(ev, "u", UINT64_MAX), 0);
	assert_int_equal(ev_set_bool(ev, "b", true), 0);
	assert_int_equal(ev_set_double(ev, "d", 2.5), 0);
	assert_int_equal(ev_set_time(ev, "t", 123456789), 0);
	assert_int_equal(ev_set_ip(ev, "ip", &ip4), 0);
	assert_int_equal(ev_append_ip(ev, "ips", &ip6), 0);
	assert_int_equal(ev_obj_uint(ev, "o", 3, "mu", 7), 0);
	assert_int_equal(ev_obj_int(ev, "o", 4, "mi", -7), 0);
	assert_int_equal(ev_obj_bool(ev, "o", 5, "mb", true), 0);
	assert_int_equal(ev_set_str(ev, "s", "GET", 3), 0);
	assert_int_equal(ev_set_strz(ev, "z", "text"), 0);
	assert_int_equal(ev_append_str(ev, "a", "x", 1), 0);
	assert_int_equal(ev_obj_str(ev, "o", 6, "ms", "mem", 3), 0);
	assert_int_equal(ev_set_fmt(ev, "f", "%s-%d", "n", 42), 0);
	assert_int_equal(ev->nfields, 15);

	want = plain_field("i", EV_T_INT, NULL, 0, 0);
	want.v.i = -5;
	assert_field_bytes(&ev->fields[i++], &want);
	want = plain_field("u", EV_T_UINT, NULL, 0, 0);
	want.v.u = UINT64_MAX;
	assert_field_bytes(&ev->fields[i++], &want);
	want = plain_field("b", EV_T_BOOL, NULL, 0, 0);
	want.v.b = true;
	assert_field_bytes(&ev->fields[i++], &want);
	want = plain_field("d", EV_T_DOUBLE, NULL, 0, 0);
	want.v.d = 2.5;
	assert_field_bytes(&ev->fields[i++], &want);
	want = plain_field("t", EV_T_TIME, NULL, 0, 0);
	want.v.u = 123456789;
	assert_field_bytes(&ev->fields[i++], &want);
	want = plain_field("ip", EV_T_IP, NULL, 0, 0);
	want.v.ip = ip4;
	assert_field_bytes(&ev->fields[i++], &want);
	want = plain_field("ips", EV_T_IP, NULL, 0, EVF_ARRAY);
	want.v.ip = ip6;
	assert_field_bytes(&ev->fields[i++], &want);
	want = plain_field("o", EV_T_UINT, "mu", 3, EVF_ARRAY);
	want.v.u = 7;
	assert_field_bytes(&ev->fields[i++], &want);
	want = plain_field("o", EV_T_INT, "mi", 4, EVF_ARRAY);
	want.v.i = -7;
	assert_field_bytes(&ev->fields[i++], &want);
	want = plain_field("o", EV_T_BOOL, "mb", 5, EVF_ARRAY);
	want.v.b = true;
	assert_field_bytes(&ev->fields[i++], &want);

	/* strings: the arena copies, NUL-terminated, one after the other */
	static const struct {
		const char *key, *member, *text;
		unsigned elem;
		uint8_t flags;
	} strs[] = {
	    {"s", NULL, "GET", 0, 0},       {"z", NULL, "text", 0, 0},
	    {"a", NULL, "x", 0, EVF_ARRAY}, {"o", "ms", "mem", 6, EVF_ARRAY},
	    {"f", NULL, "n-42", 0, 0},
	};
	const char *expect_at = ev->fields[i].v.s.p;

	for (size_t k = 0; k < sizeof(strs) / sizeof(strs[0]); k++, i++) {
		const struct ev_field *f = &ev->fields[i];

		want =
		    plain_field(strs[k].key, EV_T_STR, strs[k].member, strs[k].elem, strs[k].flags);
		want.v.s.p = f->v.s.p;
		want.v.s.len = (uint32_t)strlen(strs[k].text);
		assert_field_bytes(f, &want);
		assert_ptr_equal(f->v.s.p, expect_at);
		assert_string_equal(f->v.s.p, strs[k].text);
		expect_at += want.v.s.len + 1;
	}
	assert_ptr_equal(ev->arena + ev->arena_used, expect_at);
	assert_int_equal(ev->dropped_fields, 0);
	free_event(pool, ev);
}

/* Every length from 0 to 300 (the inline copies and memcpy), from heap buffers of
 * exactly that size, into the inline arena and on into chunks. */
static void test_string_lengths(void **state)
{
	struct ev_pool *pool;
	struct event *ev = new_event(&pool, 1 << 20, 1024);

	(void)state;
	for (size_t len = 0; len <= 300; len++) {
		char *src = malloc(len ? len : 1);
		const struct ev_field *f;
		uint32_t used;
		char *arena;

		assert_non_null(src);
		for (size_t k = 0; k < len; k++)
			src[k] = (char)('a' + (len + k) % 26);
		arena = ev->arena;
		used = ev->arena_used;
		if (len % 3 == 0)
			assert_int_equal(ev_set_str(ev, "k", src, len), 0);
		else if (len % 3 == 1)
			assert_int_equal(ev_append_str(ev, "k", src, len), 0);
		else
			assert_int_equal(ev_obj_str(ev, "k", (unsigned)len, "m", src, len), 0);
		f = &ev->fields[ev->nfields - 1];
		assert_int_equal(f->v.s.len, len);
		assert_memory_equal(f->v.s.p, src, len);
		assert_int_equal(f->v.s.p[len], '\0');
		if (ev->arena == arena) /* same chunk: right after the previous string */
			assert_ptr_equal(f->v.s.p, arena + used);
		assert_ptr_equal(ev->arena + ev->arena_used, f->v.s.p + len + 1);
		free(src);
	}
	assert_non_null(ev->chunks);
	assert_int_equal(ev->nfields, 301);
	/* NUL-terminated sources */
	for (size_t len = 0; len <= 40; len++) {
		char *src = malloc(len + 1);

		assert_non_null(src);
		memset(src, 'q', len);
		src[len] = '\0';
		assert_int_equal(ev_set_strz(ev, "z", src), 0);
		assert_int_equal(ev->fields[ev->nfields - 1].v.s.len, len);
		assert_string_equal(ev->fields[ev->nfields - 1].v.s.p, src);
		free(src);
	}
	/* no source: a zero-length string, and reserved bytes */
	assert_int_equal(ev_set_str(ev, "n", NULL, 0), 0);
	assert_string_equal(ev->fields[ev->nfields - 1].v.s.p, "");
	assert_non_null(ev_arena_copy(ev, NULL, 10));
	assert_int_equal(ev->dropped_fields, 0);
	free_event(pool, ev);
}

static void test_arena_cap(void **state)
{
	/* inline arena plus 100 bytes: a minimum chunk never fits, a tight one may */
	struct ev_pool *pool;
	struct event *ev;
	uint64_t dropped = metrics_get("events.fields_dropped");
	char big[EV_INLINE_ARENA];
	uint32_t used;

	(void)state;
	ev = new_event(&pool, EV_INLINE_ARENA + 100, 256);
	memset(big, 'b', sizeof(big));
	assert_int_equal(ev_set_str(ev, "big", big, EV_INLINE_ARENA - 10), 0);
	assert_null(ev->chunks);
	/* 12 bytes do not fit the 9 left: a tight chunk of 13 */
	assert_int_equal(ev_set_str(ev, "s", "0123456789ab", 12), 0);
	assert_non_null(ev->chunks);
	assert_int_equal(ev->arena_size, 13);
	assert_int_equal(ev->arena_total, EV_INLINE_ARENA + 13);
	assert_string_equal(ev->fields[1].v.s.p, "0123456789ab");
	/* 87 left under the cap: 86 + NUL fits, then nothing does */
	assert_int_equal(ev_set_str(ev, "s", big, 86), 0);
	assert_int_equal(ev->arena_total, EV_INLINE_ARENA + 100);
	assert_int_equal(ev_set_str(ev, "s", "x", 1), -ENOSPC);
	assert_int_equal(ev_set_strz(ev, "s", ""), -ENOSPC);
	assert_int_equal(ev_obj_str(ev, "o", 0, "m", "x", 1), -ENOSPC);
	assert_int_equal(ev_set_fmt(ev, "f", "%d", 1), -ENOSPC);
	assert_null(ev_arena_copy(ev, "x", 1));
	assert_int_equal(ev->nfields, 3);
	assert_int_equal(ev->dropped_fields, 4);
	assert_int_equal(metrics_get("events.fields_dropped") - dropped, 4);
	/* fields without text still fit */
	assert_int_equal(ev_set_uint(ev, "u", 1), 0);
	used = ev->arena_used;
	assert_int_equal(used, 87);
	free_event(pool, ev);
}

static void test_field_cap(void **state)
{
	struct ev_pool *pool;
	struct event *ev;
	struct hb_ip ip = {.ver = 4, .a = {1, 2, 3, 4}};
	uint64_t dropped = metrics_get("events.fields_dropped");
	uint32_t used;
	char key[16];

	(void)state;
	/* max_fields below the inline count is raised to it */
	ev = new_event(&pool, 1 << 20, 10);
	for (unsigned i = 0; i < EV_INLINE_FIELDS; i++)
		assert_int_equal(ev_set_uint(ev, "u", i), 0);
	assert_int_equal(ev_set_uint(ev, "u", 0), -ENOSPC);
	assert_ptr_equal(ev->fields, ev->inline_fields);
	free_event(pool, ev);

	/* 100 fields: the array grows past the inline ones, keeping them */
	ev = new_event(&pool, 1 << 20, 100);
	for (unsigned i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "v%u", i);
		switch (i % 4) {
		case 0:
			assert_int_equal(ev_set_str(ev, "s", key, strlen(key)), 0);
			break;
		case 1:
			assert_int_equal(ev_set_uint(ev, "u", i), 0);
			break;
		case 2:
			assert_int_equal(ev_append_ip(ev, "ip", &ip), 0);
			break;
		default:
			assert_int_equal(ev_obj_int(ev, "o", i, "m", -(int64_t)i), 0);
			break;
		}
	}
	assert_ptr_not_equal(ev->fields, ev->inline_fields);
	assert_int_equal(ev->fields_cap, 100);
	for (unsigned i = 0; i < 100; i += 4) {
		snprintf(key, sizeof(key), "v%u", i);
		assert_string_equal(ev->fields[i].v.s.p, key);
		assert_int_equal(ev->fields[i + 1].v.u, i + 1);
		assert_int_equal(ev->fields[i + 3].v.i, -(int64_t)(i + 3));
		assert_int_equal(ev->fields[i + 3].elem, i + 3);
	}
	/* each setter is refused and counted; a refused string still used its arena
	 * bytes (the text is copied before the field is taken) */
	used = ev->arena_used;
	assert_int_equal(ev_set_str(ev, "s", "abc", 3), -ENOSPC);
	assert_int_equal(ev->arena_used, used + 4);
	assert_int_equal(ev_set_strz(ev, "s", "abc"), -ENOSPC);
	assert_int_equal(ev_append_str(ev, "s", "abc", 3), -ENOSPC);
	assert_int_equal(ev_obj_str(ev, "s", 0, "m", "abc", 3), -ENOSPC);
	assert_int_equal(ev_set_fmt(ev, "s", "%s", "abc"), -ENOSPC);
	assert_int_equal(ev_set_int(ev, "i", 1), -ENOSPC);
	assert_int_equal(ev_set_uint(ev, "u", 1), -ENOSPC);
	assert_int_equal(ev_set_bool(ev, "b", true), -ENOSPC);
	assert_int_equal(ev_set_double(ev, "d", 1.0), -ENOSPC);
	assert_int_equal(ev_set_time(ev, "t", 1), -ENOSPC);
	assert_int_equal(ev_set_ip(ev, "ip", &ip), -ENOSPC);
	assert_int_equal(ev_append_ip(ev, "ip", &ip), -ENOSPC);
	assert_int_equal(ev_obj_uint(ev, "o", 0, "m", 1), -ENOSPC);
	assert_int_equal(ev_obj_int(ev, "o", 0, "m", 1), -ENOSPC);
	assert_int_equal(ev_obj_bool(ev, "o", 0, "m", true), -ENOSPC);
	assert_int_equal(ev->nfields, 100);
	assert_int_equal(ev->dropped_fields, 15);
	assert_int_equal(metrics_get("events.fields_dropped") - dropped, 16);
	free_event(pool, ev);
}

/* ---- lookups against a strcmp() reference ----------------------------------- */

static const char *const literal_keys[] = {
    "dns.id",
    "dns.type",
    "dns.question.name",
    "dns.question.type",
    "dns.answers",
    "related.ip",
    "resource",
    "method",
    "query",
    "status",
    "http.request",
    "http.request.method",
    "a",
    "b",
    "",
};
#define NKEYS (sizeof(literal_keys) / sizeof(literal_keys[0]))

/* the same texts at other addresses */
static char copied_keys[NKEYS][32];

static const char *random_key(void)
{
	size_t k = next_rand() % NKEYS;

	return next_rand() % 4 ? literal_keys[k] : copied_keys[k];
}

static void fill_random(struct event *ev, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *key = random_key();

		if (next_rand() % 5 == 0)
			assert_int_equal(ev_obj_uint(ev, key, (unsigned)i, "m", i), 0);
		else
			assert_int_equal(ev_set_uint(ev, key, i), 0);
	}
}

static const struct ev_field *ref_find(const struct event *ev, const char *key)
{
	for (size_t i = ev->nfields; i-- > 0;)
		if (!ev->fields[i].member && strcmp(ev->fields[i].key, key) == 0)
			return &ev->fields[i];
	return NULL;
}

/* The fields left after removing keys[0, n), by text, in order. */
static size_t ref_remove(const struct event *ev, const char *const *keys, size_t n,
			 struct ev_field *out)
{
	size_t m = 0;

	for (size_t i = 0; i < ev->nfields; i++) {
		bool hit = false;

		for (size_t k = 0; k < n && !hit; k++)
			hit = strcmp(ev->fields[i].key, keys[k]) == 0;
		if (!hit)
			out[m++] = ev->fields[i];
	}
	return m;
}

static void assert_same_field(const struct ev_field *got, const struct ev_field *want)
{
	assert_ptr_equal(got->key, want->key);
	assert_ptr_equal(got->member, want->member);
	assert_int_equal(got->elem, want->elem);
	assert_int_equal(got->type, want->type);
	assert_int_equal(got->flags, want->flags);
	assert_int_equal(got->v.u, want->v.u);
}

static void test_lookups_random(void **state)
{
	static struct ev_field want[512];
	const char *keys[200];
	struct ev_pool *pool;

	(void)state;
	for (size_t k = 0; k < NKEYS; k++)
		strcpy(copied_keys[k], literal_keys[k]);
	pool = ev_pool_new(4, 1 << 20, 512);
	assert_non_null(pool);
	for (unsigned round = 0; round < 20000; round++) {
		struct event *ev = ev_pool_get(pool, EV_KIND_TRANSACTION, "test");
		size_t nf = next_rand() % 120, n, m;
		char probe[32];

		assert_non_null(ev);
		fill_random(ev, nf);

		/* ev_find, by literal, by a copy and by a stack buffer */
		for (size_t k = 0; k < NKEYS; k++) {
			strcpy(probe, literal_keys[k]);
			assert_ptr_equal(ev_find(ev, literal_keys[k]),
					 ref_find(ev, literal_keys[k]));
			assert_ptr_equal(ev_find(ev, copied_keys[k]),
					 ref_find(ev, literal_keys[k]));
			assert_ptr_equal(ev_find(ev, probe), ref_find(ev, literal_keys[k]));
		}
		assert_null(ev_find(ev, "not.there"));

		/* ev_remove_keys: up to 200 keys (more than its set holds), literals,
		 * copies, duplicates and absent ones */
		switch (round % 4) {
		case 0:
			n = next_rand() % 8;
			break;
		case 1:
			n = next_rand() % 64;
			break;
		case 2:
			n = 60 + next_rand() % 10; /* around the set's capacity */
			break;
		default:
			n = next_rand() % 200;
			break;
		}
		for (size_t k = 0; k < n; k++)
			keys[k] = next_rand() % 10 ? random_key() : "absent.key";
		m = ref_remove(ev, keys, n, want);
		if (round % 8 == 7) {
			/* ev_remove of one key */
			const char *key = random_key();

			m = ref_remove(ev, &key, 1, want);
			ev_remove(ev, key);
		} else {
			ev_remove_keys(ev, keys, n);
		}
		assert_int_equal(ev->nfields, m);
		for (size_t i = 0; i < m; i++)
			assert_same_field(&ev->fields[i], &want[i]);
		ev_pool_put(ev);
	}
	ev_pool_free(pool);
}

static void test_lookups_known(void **state)
{
	static const char *const dns_keys[] = {"dns.id", "dns.type", "dns.answers", "related.ip"};
	struct ev_pool *pool;
	struct event *ev = new_event(&pool, 1 << 16, 256);
	char copy[] = "dns.id";

	(void)state;
	assert_null(ev_find(ev, "dns.id"));
	ev_remove_keys(ev, dns_keys, 4);
	assert_int_equal(ev->nfields, 0);

	ev_set_uint(ev, "dns.id", 1);
	ev_set_strz(ev, "method", "QUERY");
	ev_obj_str(ev, "dns.answers", 0, "name", "a", 1);
	ev_set_uint(ev, copy, 2);             /* same text, other pointer: the last one wins */
	ev_obj_uint(ev, "dns.id", 0, "x", 3); /* a member: never found */
	ev_append_str(ev, "related.ip", "1.2.3.4", 7);
	ev_set_strz(ev, "resource", "r");

	assert_ptr_equal(ev_find(ev, "dns.id"), &ev->fields[3]);
	assert_int_equal(ev_find(ev, "dns.id")->v.u, 2);
	assert_ptr_equal(ev_find(ev, "method"), &ev->fields[1]);
	assert_null(ev_find(ev, "dns.answers"));
	assert_null(ev_find(ev, "dns"));
	assert_null(ev_find(ev, "dns.id.x"));

	ev_remove_keys(ev, dns_keys, 4);
	assert_int_equal(ev->nfields, 2);
	assert_string_equal(ev->fields[0].key, "method");
	assert_string_equal(ev->fields[1].key, "resource");
	ev_remove(ev, "method");
	assert_int_equal(ev->nfields, 1);
	assert_string_equal(ev->fields[0].key, "resource");
	free_event(pool, ev);
}

/* ev_pool_put_many(): events of two pools interleaved, NULLs among them, events
 * that grew past their inline arrays; every one goes back to its own pool, the live
 * counts drop to 0, and the pools hand them out again up to their caps. */
static void test_put_many(void **state)
{
	struct ev_pool *a = ev_pool_new(4, 1 << 20, 512), *b = ev_pool_new(3, 1 << 20, 512);
	struct event *evs[9], *again[8];
	char big[4096];
	size_t i, n = 0;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	memset(big, 'x', sizeof(big));
	evs[n++] = ev_pool_get(a, EV_KIND_TRANSACTION, "a");
	evs[n++] = ev_pool_get(a, EV_KIND_TRANSACTION, "a");
	evs[n++] = NULL;
	evs[n++] = ev_pool_get(b, EV_KIND_TRANSACTION, "b");
	evs[n++] = ev_pool_get(a, EV_KIND_TRANSACTION, "a");
	evs[n++] = ev_pool_get(b, EV_KIND_TRANSACTION, "b");
	evs[n++] = ev_pool_get(b, EV_KIND_TRANSACTION, "b");
	evs[n++] = ev_pool_get(a, EV_KIND_TRANSACTION, "a");
	evs[n++] = NULL;
	for (i = 0; i < n; i++) {
		if (!evs[i])
			continue;
		assert_int_equal(ev_set_str(evs[i], "k", big, sizeof(big)), 0); /* past inline */
		for (int f = 0; f < 300; f++)
			assert_int_equal(ev_set_uint(evs[i], "u", (uint64_t)f), 0);
	}
	assert_int_equal(ev_pool_live(a), 4);
	assert_int_equal(ev_pool_live(b), 3);
	assert_null(ev_pool_get(a, EV_KIND_TRANSACTION, "a")); /* at their caps */
	assert_null(ev_pool_get(b, EV_KIND_TRANSACTION, "b"));
	ev_pool_put_many(evs, n);
	assert_int_equal(ev_pool_live(a), 0);
	assert_int_equal(ev_pool_live(b), 0);
	for (i = 0; i < 4; i++) {
		again[i] = ev_pool_get(a, EV_KIND_TRANSACTION, "a");
		assert_non_null(again[i]);
		assert_ptr_equal(again[i]->pool, a);
		assert_int_equal(again[i]->nfields, 0);
	}
	for (i = 4; i < 7; i++) {
		again[i] = ev_pool_get(b, EV_KIND_TRANSACTION, "b");
		assert_non_null(again[i]);
		assert_ptr_equal(again[i]->pool, b);
	}
	assert_null(ev_pool_get(a, EV_KIND_TRANSACTION, "a"));
	ev_pool_put_many(again, 7);
	ev_pool_put_many(again, 0);
	assert_int_equal(ev_pool_live(a), 0);
	assert_int_equal(ev_pool_live(b), 0);
	ev_pool_free(a);
	ev_pool_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_setters),       cmocka_unit_test(test_string_lengths),
	    cmocka_unit_test(test_arena_cap),     cmocka_unit_test(test_field_cap),
	    cmocka_unit_test(test_lookups_known), cmocka_unit_test(test_lookups_random),
	    cmocka_unit_test(test_put_many),
	};

	metrics_reset();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
