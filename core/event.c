/* event.c — event pool, per-event arena and the protocol field list.
 *
 * Events are recycled through a free list, so once the pool is warm no event costs a
 * malloc. An event's strings live in its inline arena; only events that carry large
 * opt-in text (send_response, bodies) grow extra chunks, up to max_event_bytes.
 */
#include "hostbeat/event.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"

#define EV_CHUNK_MIN 16384

struct ev_chunk {
	struct ev_chunk *next;
	size_t size;
	char data[];
};

struct ev_pool {
	pthread_mutex_t lock;
	struct event *free_list;
	size_t live;      /* handed out, not yet returned */
	size_t allocated; /* events that exist (free + live) */
	size_t max_events;
	size_t max_event_bytes;
	size_t max_fields;
	struct metric *exhausted;
	struct metric *fields_dropped;
};

struct ev_pool *ev_pool_new(size_t max_events, size_t max_event_bytes, size_t max_fields)
{
	struct ev_pool *p = hb_calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	p->max_events = max_events ? max_events : 1;
	p->max_event_bytes = max_event_bytes < EV_INLINE_ARENA ? EV_INLINE_ARENA : max_event_bytes;
	p->max_fields = max_fields < EV_INLINE_FIELDS ? EV_INLINE_FIELDS : max_fields;
	p->exhausted = metrics_counter("events.pool_exhausted");
	p->fields_dropped = metrics_counter("events.fields_dropped");
	return p;
}

static void ev_release_extra(struct event *ev)
{
	struct ev_chunk *c = ev->chunks, *next;

	for (; c; c = next) {
		next = c->next;
		hb_free(c);
	}
	ev->chunks = NULL;
	if (ev->fields != ev->inline_fields)
		hb_free(ev->fields);
}

void ev_pool_free(struct ev_pool *p)
{
	struct event *ev, *next;

	if (!p)
		return;
	for (ev = p->free_list; ev; ev = next) {
		next = ev->next;
		ev_release_extra(ev);
		hb_free(ev);
	}
	pthread_mutex_destroy(&p->lock);
	hb_free(p);
}

static void ev_reset(struct event *ev, struct ev_pool *p, enum ev_kind kind, const char *dataset)
{
	/* Clear the envelope only: the inline arrays are overwritten as they fill. */
	memset(ev, 0, offsetof(struct event, inline_fields));
	ev->pool = p;
	ev->kind = kind;
	ev->dataset = dataset;
	ev->fields = ev->inline_fields;
	ev->fields_cap = EV_INLINE_FIELDS;
	ev->arena = ev->inline_arena;
	ev->arena_size = EV_INLINE_ARENA;
	ev->arena_total = EV_INLINE_ARENA;
}

struct event *ev_pool_get(struct ev_pool *p, enum ev_kind kind, const char *dataset)
{
	struct event *ev = NULL;

	pthread_mutex_lock(&p->lock);
	if (p->free_list) {
		ev = p->free_list;
		p->free_list = ev->next;
		p->live++;
	} else if (p->allocated < p->max_events) {
		ev = hb_malloc(sizeof(*ev));
		if (ev) {
			p->allocated++;
			p->live++;
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (!ev) {
		metric_inc(p->exhausted);
		return NULL;
	}
	ev_reset(ev, p, kind, dataset);
	return ev;
}

void ev_pool_put(struct event *ev)
{
	struct ev_pool *p;

	if (!ev)
		return;
	p = ev->pool;
	ev_release_extra(ev);
	ev->fields = ev->inline_fields;
	pthread_mutex_lock(&p->lock);
	ev->next = p->free_list;
	p->free_list = ev;
	p->live--;
	pthread_mutex_unlock(&p->lock);
}

void ev_pool_put_many(struct event **evs, size_t n)
{
	struct ev_pool *p;
	struct event *head, *tail;
	size_t i = 0, j, k;

	while (i < n) {
		if (!evs[i]) {
			i++;
			continue;
		}
		/* one lock for each run of events of one pool */
		p = evs[i]->pool;
		head = tail = NULL;
		for (j = i, k = 0; j < n && (!evs[j] || evs[j]->pool == p); j++) {
			if (!evs[j])
				continue;
			ev_release_extra(evs[j]);
			evs[j]->fields = evs[j]->inline_fields;
			evs[j]->next = head;
			head = evs[j];
			if (!tail)
				tail = evs[j];
			k++;
		}
		pthread_mutex_lock(&p->lock);
		tail->next = p->free_list;
		p->free_list = head;
		p->live -= k;
		pthread_mutex_unlock(&p->lock);
		i = j;
	}
}

size_t ev_pool_live(const struct ev_pool *p)
{
	size_t n;

	pthread_mutex_lock((pthread_mutex_t *)&p->lock);
	n = p->live;
	pthread_mutex_unlock((pthread_mutex_t *)&p->lock);
	return n;
}

const char *ev_status_name(enum ev_status s)
{
	switch (s) {
	case EV_STATUS_OK:
		return "OK";
	case EV_STATUS_ERROR:
		return "Error";
	case EV_STATUS_SERVER_ERROR:
		return "Server Error";
	case EV_STATUS_CLIENT_ERROR:
		return "Client Error";
	case EV_STATUS_NONE:
		break;
	}
	return NULL;
}

/* ---- arena ------------------------------------------------------------------ */

/* A new chunk that holds at least len + 1 bytes, or false when the cap or memory
 * refuses it. */
static bool arena_grow(struct event *ev, size_t len)
{
	struct ev_chunk *c;
	size_t want = len + 1 > EV_CHUNK_MIN ? len + 1 : EV_CHUNK_MIN;

	if (ev->pool->max_event_bytes - ev->arena_total < want) {
		want = len + 1; /* a tight chunk may still fit under the cap */
		if (ev->pool->max_event_bytes - ev->arena_total < want)
			return false;
	}
	c = hb_malloc(sizeof(*c) + want);
	if (!c)
		return false;
	c->size = want;
	c->next = ev->chunks;
	ev->chunks = c;
	ev->arena = c->data;
	ev->arena_size = (uint32_t)want;
	ev->arena_used = 0;
	ev->arena_total += (uint32_t)want;
	return true;
}

char *ev_arena_copy(struct event *ev, const void *s, size_t len)
{
	char *r;

	if (ev->arena_size - ev->arena_used < len + 1 && !arena_grow(ev, len))
		return NULL;
	r = ev->arena + ev->arena_used;
	if (len && s)
		memcpy(r, s, len);
	r[len] = '\0';
	ev->arena_used += (uint32_t)len + 1;
	return r;
}

/* ---- fields -----------------------------------------------------------------
 *
 * The setters run for every field of every event, so each has a short common path
 * (room in the field array, a short string that fits the current arena chunk) with
 * no call in it, and hands everything else to the general code. */

static void count_dropped(struct event *ev)
{
	ev->dropped_fields++;
	metric_inc(ev->pool->fields_dropped);
}

/* Room for one more field: the array doubles up to max_fields. False (counted)
 * when the cap or memory refuses it. */
static bool fields_grow(struct event *ev)
{
	size_t cap = (size_t)ev->fields_cap * 2;
	struct ev_field *grown;

	if (cap > ev->pool->max_fields)
		cap = ev->pool->max_fields;
	grown = cap > ev->fields_cap ? hb_malloc(cap * sizeof(*grown)) : NULL;
	if (!grown) {
		count_dropped(ev);
		return false;
	}
	memcpy(grown, ev->fields, ev->nfields * sizeof(*grown));
	if (ev->fields != ev->inline_fields)
		hb_free(ev->fields);
	ev->fields = grown;
	ev->fields_cap = (uint16_t)cap;
	return true;
}

/* The next field, which the caller made sure exists, zeroed (value bytes a type
 * leaves unused stay 0) with its key and placement set. */
static inline struct ev_field *field_take(struct event *ev, const char *key, enum ev_vtype type,
					  const char *member, unsigned elem, uint8_t flags)
{
	struct ev_field *f = &ev->fields[ev->nfields++];

	memset(f, 0, sizeof(*f));
	f->key = key;
	f->member = member;
	f->elem = (uint16_t)elem;
	f->type = (uint8_t)type;
	f->flags = flags;
	return f;
}

/* A string field, any length: the text goes into the arena before the field is
 * taken (a refused field still used its arena bytes). */
static int add_str_general(struct event *ev, const char *key, const char *member, unsigned elem,
			   uint8_t flags, const void *s, size_t len)
{
	struct ev_field *f;
	char *copy;

	if (len > UINT32_MAX - 1)
		len = UINT32_MAX - 1;
	copy = ev_arena_copy(ev, s, len);
	if (!copy) {
		count_dropped(ev);
		return -ENOSPC;
	}
	if (ev->nfields == ev->fields_cap && !fields_grow(ev))
		return -ENOSPC;
	f = field_take(ev, key, EV_T_STR, member, elem, flags);
	f->v.s.p = copy;
	f->v.s.len = (uint32_t)len;
	return 0;
}

#define SHORT_STR 32 /* most field values: methods, codes, names, addresses, short queries */

/* memcpy() of n <= SHORT_STR bytes without the call: two overlapping moves. */
static inline void copy_short(char *d, const char *s, size_t n)
{
	char a16[16], b16[16];
	uint64_t a8, b8;
	uint32_t a4, b4;

	if (n >= 16) {
		memcpy(a16, s, 16);
		memcpy(b16, s + n - 16, 16);
		memcpy(d, a16, 16);
		memcpy(d + n - 16, b16, 16);
	} else if (n >= 8) {
		memcpy(&a8, s, 8);
		memcpy(&b8, s + n - 8, 8);
		memcpy(d, &a8, 8);
		memcpy(d + n - 8, &b8, 8);
	} else if (n >= 4) {
		memcpy(&a4, s, 4);
		memcpy(&b4, s + n - 4, 4);
		memcpy(d, &a4, 4);
		memcpy(d + n - 4, &b4, 4);
	} else if (n) {
		d[0] = s[0];
		d[n / 2] = s[n / 2];
		d[n - 1] = s[n - 1];
	}
}

/* add_str_general() with the common case inline: a short string, room in the
 * current arena chunk and in the field array. */
static inline int add_str(struct event *ev, const char *key, const char *member, unsigned elem,
			  uint8_t flags, const void *s, size_t len)
{
	struct ev_field *f;
	char *copy;

	if (len > SHORT_STR || !s || ev->arena_size - ev->arena_used < len + 1 ||
	    ev->nfields == ev->fields_cap)
		return add_str_general(ev, key, member, elem, flags, s, len);
	copy = ev->arena + ev->arena_used;
	copy_short(copy, s, len);
	copy[len] = '\0';
	ev->arena_used += (uint32_t)len + 1;
	f = field_take(ev, key, EV_T_STR, member, elem, flags);
	f->v.s.p = copy;
	f->v.s.len = (uint32_t)len;
	return 0;
}

int ev_set_str(struct event *ev, const char *key, const void *s, size_t len)
{
	return add_str(ev, key, NULL, 0, 0, s, len);
}

int ev_set_strz(struct event *ev, const char *key, const char *s)
{
	return add_str(ev, key, NULL, 0, 0, s, strlen(s));
}

int ev_set_fmt(struct event *ev, const char *key, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	return add_str_general(ev, key, NULL, 0, 0, buf,
			       (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

int ev_append_str(struct event *ev, const char *key, const void *s, size_t len)
{
	return add_str(ev, key, NULL, 0, EVF_ARRAY, s, len);
}

int ev_obj_str(struct event *ev, const char *key, unsigned elem, const char *member, const void *s,
	       size_t len)
{
	return add_str(ev, key, member, elem, EVF_ARRAY, s, len);
}

/* The other setters. A full field array is grown by fn_full(), which then calls
 * the setter again (it has room now); it is kept out of line so that the common
 * path needs no stack frame. */
#define EV_SETTER(fn, params, args, vtype, member, elem, flags, assign) \
	static __attribute__((noinline)) int fn##_full params           \
	{                                                               \
		return fields_grow(ev) ? fn args : -ENOSPC;             \
	}                                                               \
	int fn params                                                   \
	{                                                               \
		struct ev_field *f;                                     \
		if (ev->nfields == ev->fields_cap)                      \
			return fn##_full args;                          \
		f = field_take(ev, key, vtype, member, elem, flags);    \
		assign;                                                 \
		return 0;                                               \
	}

EV_SETTER(ev_set_int, (struct event * ev, const char *key, int64_t v), (ev, key, v), EV_T_INT, NULL,
	  0, 0, f->v.i = v)
EV_SETTER(ev_set_uint, (struct event * ev, const char *key, uint64_t v), (ev, key, v), EV_T_UINT,
	  NULL, 0, 0, f->v.u = v)
EV_SETTER(ev_set_bool, (struct event * ev, const char *key, bool v), (ev, key, v), EV_T_BOOL, NULL,
	  0, 0, f->v.b = v)
EV_SETTER(ev_set_double, (struct event * ev, const char *key, double v), (ev, key, v), EV_T_DOUBLE,
	  NULL, 0, 0, f->v.d = v)
EV_SETTER(ev_set_time, (struct event * ev, const char *key, uint64_t v), (ev, key, v), EV_T_TIME,
	  NULL, 0, 0, f->v.u = v)
EV_SETTER(ev_set_ip, (struct event * ev, const char *key, const struct hb_ip *ip), (ev, key, ip),
	  EV_T_IP, NULL, 0, 0, f->v.ip = *ip)
EV_SETTER(ev_append_ip, (struct event * ev, const char *key, const struct hb_ip *ip), (ev, key, ip),
	  EV_T_IP, NULL, 0, EVF_ARRAY, f->v.ip = *ip)
EV_SETTER(ev_obj_uint,
	  (struct event * ev, const char *key, unsigned elem, const char *member, uint64_t v),
	  (ev, key, elem, member, v), EV_T_UINT, member, elem, EVF_ARRAY, f->v.u = v)
EV_SETTER(ev_obj_int,
	  (struct event * ev, const char *key, unsigned elem, const char *member, int64_t v),
	  (ev, key, elem, member, v), EV_T_INT, member, elem, EVF_ARRAY, f->v.i = v)
EV_SETTER(ev_obj_bool,
	  (struct event * ev, const char *key, unsigned elem, const char *member, bool v),
	  (ev, key, elem, member, v), EV_T_BOOL, member, elem, EVF_ARRAY, f->v.b = v)

/* ---- lookup and removal -------------------------------------------------------
 *
 * Keys are mostly the same static string at both ends (one literal per key, merged by
 * the linker), so a pointer compare settles most of them; text is compared only for
 * the rest, and strcmp() only when the first bytes agree. */

static inline bool key_eq(const char *a, const char *b)
{
	return a == b || (a[0] == b[0] && strcmp(a, b) == 0);
}

const struct ev_field *ev_find(const struct event *ev, const char *key)
{
	for (const struct ev_field *f = ev->fields + ev->nfields; f-- != ev->fields;)
		if (!f->member && key_eq(f->key, key))
			return f;
	return NULL;
}

void ev_remove(struct event *ev, const char *key)
{
	size_t i = 0, out;

	while (i < ev->nfields && !key_eq(ev->fields[i].key, key))
		i++;
	for (out = i; i < ev->nfields; i++)
		if (!key_eq(ev->fields[i].key, key))
			ev->fields[out++] = ev->fields[i];
	ev->nfields = (uint16_t)out;
}

/* The keys of one ev_remove_keys() call by pointer: an open-addressing set on the
 * stack, at most half full, so a field costs one or two probes instead of a pass
 * over the keys. A field whose key pointer is not in the set is still compared by
 * text, with the keys that start with its first byte (a bitmap says if any does). */
#define KEYSET_BITS 7
#define KEYSET_SLOTS (1u << KEYSET_BITS)
#define KEYSET_MAX (KEYSET_SLOTS / 2)

struct keyset {
	const char *slot[KEYSET_SLOTS];
	uint64_t first[4]; /* bit c: a key starts with byte c */
};

static inline size_t keyset_slot(const char *key)
{
	return (size_t)(((uint64_t)(uintptr_t)key * 0x9e3779b97f4a7c15ULL) >> (64 - KEYSET_BITS));
}

static void keyset_add(struct keyset *set, const char *key)
{
	unsigned char c = (unsigned char)key[0];
	size_t i = keyset_slot(key);

	while (set->slot[i] && set->slot[i] != key)
		i = (i + 1) & (KEYSET_SLOTS - 1);
	set->slot[i] = key;
	set->first[c >> 6] |= 1ULL << (c & 63);
}

/* key is (by text) one of keys[0, n), the keys the set was built from. */
static bool keyset_has(const struct keyset *set, const char *key, const char *const *keys, size_t n)
{
	unsigned char c = (unsigned char)key[0];

	for (size_t i = keyset_slot(key); set->slot[i]; i = (i + 1) & (KEYSET_SLOTS - 1))
		if (set->slot[i] == key)
			return true;
	if (!(set->first[c >> 6] >> (c & 63) & 1))
		return false;
	for (size_t i = 0; i < n; i++)
		if (key[0] == keys[i][0] && strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

void ev_remove_keys(struct event *ev, const char *const *keys, size_t n)
{
	struct keyset set = {{NULL}, {0}};
	size_t i, out;

	if (n > KEYSET_MAX) {
		/* too many for the set: one key at a time */
		for (i = 0; i < n; i++)
			ev_remove(ev, keys[i]);
		return;
	}
	for (i = 0; i < n; i++)
		keyset_add(&set, keys[i]);
	for (i = 0, out = 0; i < ev->nfields; i++) {
		if (keyset_has(&set, ev->fields[i].key, keys, n))
			continue;
		if (out != i)
			ev->fields[out] = ev->fields[i];
		out++;
	}
	ev->nfields = (uint16_t)out;
}
