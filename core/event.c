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

char *ev_arena_copy(struct event *ev, const void *s, size_t len)
{
	struct ev_chunk *c;
	size_t want;
	char *r;

	if (ev->arena_size - ev->arena_used < len + 1) {
		want = len + 1 > EV_CHUNK_MIN ? len + 1 : EV_CHUNK_MIN;
		if (ev->pool->max_event_bytes - ev->arena_total < want) {
			want = len + 1; /* a tight chunk may still fit under the cap */
			if (ev->pool->max_event_bytes - ev->arena_total < want)
				return NULL;
		}
		c = hb_malloc(sizeof(*c) + want);
		if (!c)
			return NULL;
		c->size = want;
		c->next = ev->chunks;
		ev->chunks = c;
		ev->arena = c->data;
		ev->arena_size = (uint32_t)want;
		ev->arena_used = 0;
		ev->arena_total += (uint32_t)want;
	}
	r = ev->arena + ev->arena_used;
	if (len && s)
		memcpy(r, s, len);
	r[len] = '\0';
	ev->arena_used += (uint32_t)len + 1;
	return r;
}

/* ---- fields ----------------------------------------------------------------- */

static struct ev_field *ev_add(struct event *ev, const char *key, enum ev_vtype type)
{
	struct ev_field *f;

	if (ev->nfields == ev->fields_cap) {
		size_t cap = (size_t)ev->fields_cap * 2;
		struct ev_field *grown;

		if (cap > ev->pool->max_fields)
			cap = ev->pool->max_fields;
		grown = cap > ev->fields_cap ? hb_malloc(cap * sizeof(*grown)) : NULL;
		if (!grown) {
			ev->dropped_fields++;
			metric_inc(ev->pool->fields_dropped);
			return NULL;
		}
		memcpy(grown, ev->fields, ev->nfields * sizeof(*grown));
		if (ev->fields != ev->inline_fields)
			hb_free(ev->fields);
		ev->fields = grown;
		ev->fields_cap = (uint16_t)cap;
	}
	f = &ev->fields[ev->nfields++];
	memset(f, 0, sizeof(*f));
	f->key = key;
	f->type = (uint8_t)type;
	return f;
}

static int ev_add_str(struct event *ev, const char *key, const char *member, unsigned elem,
		      uint8_t flags, const void *s, size_t len)
{
	struct ev_field *f;
	char *copy;

	if (len > UINT32_MAX - 1)
		len = UINT32_MAX - 1;
	copy = ev_arena_copy(ev, s, len);
	if (!copy) {
		ev->dropped_fields++;
		metric_inc(ev->pool->fields_dropped);
		return -ENOSPC;
	}
	f = ev_add(ev, key, EV_T_STR);
	if (!f)
		return -ENOSPC;
	f->member = member;
	f->elem = (uint16_t)elem;
	f->flags = flags;
	f->v.s.p = copy;
	f->v.s.len = (uint32_t)len;
	return 0;
}

int ev_set_str(struct event *ev, const char *key, const void *s, size_t len)
{
	return ev_add_str(ev, key, NULL, 0, 0, s, len);
}

int ev_set_strz(struct event *ev, const char *key, const char *s)
{
	return ev_add_str(ev, key, NULL, 0, 0, s, strlen(s));
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
	return ev_add_str(ev, key, NULL, 0, 0, buf,
			  (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

#define EV_SETTER(fn, ctype, vtype, member_name)             \
	int fn(struct event *ev, const char *key, ctype v)   \
	{                                                    \
		struct ev_field *f = ev_add(ev, key, vtype); \
		if (!f)                                      \
			return -ENOSPC;                      \
		f->v.member_name = v;                        \
		return 0;                                    \
	}

EV_SETTER(ev_set_int, int64_t, EV_T_INT, i)
EV_SETTER(ev_set_uint, uint64_t, EV_T_UINT, u)
EV_SETTER(ev_set_bool, bool, EV_T_BOOL, b)
EV_SETTER(ev_set_double, double, EV_T_DOUBLE, d)
EV_SETTER(ev_set_time, uint64_t, EV_T_TIME, u)

int ev_set_ip(struct event *ev, const char *key, const struct hb_ip *ip)
{
	struct ev_field *f = ev_add(ev, key, EV_T_IP);

	if (!f)
		return -ENOSPC;
	f->v.ip = *ip;
	return 0;
}

int ev_append_str(struct event *ev, const char *key, const void *s, size_t len)
{
	return ev_add_str(ev, key, NULL, 0, EVF_ARRAY, s, len);
}

int ev_append_ip(struct event *ev, const char *key, const struct hb_ip *ip)
{
	struct ev_field *f = ev_add(ev, key, EV_T_IP);

	if (!f)
		return -ENOSPC;
	f->flags = EVF_ARRAY;
	f->v.ip = *ip;
	return 0;
}

int ev_obj_str(struct event *ev, const char *key, unsigned elem, const char *member, const void *s,
	       size_t len)
{
	return ev_add_str(ev, key, member, elem, EVF_ARRAY, s, len);
}

static struct ev_field *ev_add_member(struct event *ev, const char *key, unsigned elem,
				      const char *member, enum ev_vtype type)
{
	struct ev_field *f = ev_add(ev, key, type);

	if (f) {
		f->member = member;
		f->elem = (uint16_t)elem;
		f->flags = EVF_ARRAY;
	}
	return f;
}

int ev_obj_uint(struct event *ev, const char *key, unsigned elem, const char *member, uint64_t v)
{
	struct ev_field *f = ev_add_member(ev, key, elem, member, EV_T_UINT);

	if (!f)
		return -ENOSPC;
	f->v.u = v;
	return 0;
}

int ev_obj_int(struct event *ev, const char *key, unsigned elem, const char *member, int64_t v)
{
	struct ev_field *f = ev_add_member(ev, key, elem, member, EV_T_INT);

	if (!f)
		return -ENOSPC;
	f->v.i = v;
	return 0;
}

int ev_obj_bool(struct event *ev, const char *key, unsigned elem, const char *member, bool v)
{
	struct ev_field *f = ev_add_member(ev, key, elem, member, EV_T_BOOL);

	if (!f)
		return -ENOSPC;
	f->v.b = v;
	return 0;
}

const struct ev_field *ev_find(const struct event *ev, const char *key)
{
	for (size_t i = ev->nfields; i-- > 0;)
		if (!ev->fields[i].member && strcmp(ev->fields[i].key, key) == 0)
			return &ev->fields[i];
	return NULL;
}

void ev_remove(struct event *ev, const char *key)
{
	size_t out = 0;

	for (size_t i = 0; i < ev->nfields; i++)
		if (strcmp(ev->fields[i].key, key) != 0)
			ev->fields[out++] = ev->fields[i];
	ev->nfields = (uint16_t)out;
}

/* key is one of keys[0, n): the same static string mostly (one pointer pass), else
 * equal text. */
static bool key_in(const char *key, const char *const *keys, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (key == keys[i])
			return true;
	for (i = 0; i < n; i++)
		if (key[0] == keys[i][0] && strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

void ev_remove_keys(struct event *ev, const char *const *keys, size_t n)
{
	size_t out = 0;

	for (size_t i = 0; i < ev->nfields; i++)
		if (!key_in(ev->fields[i].key, keys, n))
			ev->fields[out++] = ev->fields[i];
	ev->nfields = (uint16_t)out;
}
