/* ipfrag.c — bounded IPv4 (RFC 791 §3.2) and IPv6 (RFC 8200 §4.5) fragment reassembly.
 *
 * Policy: overlapping fragments discard the whole datagram (RFC 5722, applied to
 * both families) so no attacker can choose which copy of a byte range wins; exact
 * duplicates (retransmits) are ignored. Received data is tracked as a bitmap of
 * 8-byte blocks — fragment offsets are always multiples of 8 and only the last
 * fragment may end off a block boundary:
 *
 *   payload   |0      8      16      24 ...                 65528  65535|
 *   bitmap    | bit 0 | bit 1 | bit 2 | ...                 | bit 8191   |
 *
 * Lookup is a linear scan of the (small, bounded) slot array: fragments are rare
 * and the scan also expires stale datagrams on the packet clock.
 */
#include <string.h>

#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "net/ipfrag.h"

#define IPFRAG_BLOCKS ((IPFRAG_MAX_DATAGRAM + 7) / 8) /* 8192 */
#define IPFRAG_DEFAULT_SLOTS 64
#define IPFRAG_DEFAULT_TIMEOUT_NS (30ULL * 1000000000ULL)

struct frag_slot {
	bool used;
	bool have_last; /* the fragment with MF=0 arrived: total is known */
	struct ipfrag_key key;
	uint64_t first_ts;
	uint32_t total;    /* datagram payload length, valid when have_last */
	uint32_t received; /* payload bytes held (no overlaps, so a plain sum) */
	uint32_t max_end;  /* highest fragment end seen */
	uint8_t *buf;      /* IPFRAG_MAX_DATAGRAM bytes, allocated on first use, reused */
	uint8_t map[IPFRAG_BLOCKS / 8];
};

struct ipfrag {
	struct frag_slot *slots;
	size_t nslots;
	size_t nused;
	uint64_t timeout;
	struct metric *m_reassembled, *m_overlap, *m_duplicate, *m_evicted, *m_timeout, *m_invalid,
	    *m_too_big, *m_nomem;
};

struct ipfrag *ipfrag_new(size_t max_datagrams, uint64_t timeout_ns)
{
	struct ipfrag *f;

	f = hb_calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->nslots = max_datagrams ? max_datagrams : IPFRAG_DEFAULT_SLOTS;
	f->timeout = timeout_ns ? timeout_ns : IPFRAG_DEFAULT_TIMEOUT_NS;
	f->slots = hb_calloc(f->nslots, sizeof(*f->slots));
	if (!f->slots) {
		hb_free(f);
		return NULL;
	}
	f->m_reassembled = metrics_counter("ipfrag.reassembled");
	f->m_overlap = metrics_counter("ipfrag.overlap");
	f->m_duplicate = metrics_counter("ipfrag.duplicate");
	f->m_evicted = metrics_counter("ipfrag.evicted");
	f->m_timeout = metrics_counter("ipfrag.timeout");
	f->m_invalid = metrics_counter("ipfrag.invalid");
	f->m_too_big = metrics_counter("ipfrag.too_big");
	f->m_nomem = metrics_counter("ipfrag.nomem");
	return f;
}

void ipfrag_free(struct ipfrag *f)
{
	size_t i;

	if (!f)
		return;
	for (i = 0; i < f->nslots; i++)
		hb_free(f->slots[i].buf);
	hb_free(f->slots);
	hb_free(f);
}

size_t ipfrag_pending(const struct ipfrag *f)
{
	return f->nused;
}

static void slot_release(struct ipfrag *f, struct frag_slot *s)
{
	s->used = false;
	f->nused--;
}

static bool key_eq(const struct ipfrag_key *a, const struct ipfrag_key *b)
{
	return a->id == b->id && a->proto == b->proto && hb_ip_eq(&a->src, &b->src) &&
	       hb_ip_eq(&a->dst, &b->dst);
}

static bool bit_get(const uint8_t *map, uint32_t i)
{
	return map[i >> 3] & (1u << (i & 7));
}

static void bit_set(uint8_t *map, uint32_t i)
{
	map[i >> 3] |= (uint8_t)(1u << (i & 7));
}

/* Find the datagram for key, expiring stale ones on the way. Returns the slot or
 * NULL; *free_slot gets an unused slot (or NULL). */
static struct frag_slot *slot_find(struct ipfrag *f, const struct ipfrag_key *key, uint64_t ts,
				   struct frag_slot **free_slot)
{
	struct frag_slot *hit = NULL, *s;
	uint64_t age;
	size_t i;

	*free_slot = NULL;
	for (i = 0; i < f->nslots; i++) {
		s = &f->slots[i];
		if (s->used) {
			/* |ts - first|: a looped replay moves the clock backwards */
			age = ts >= s->first_ts ? ts - s->first_ts : s->first_ts - ts;
			if (age > f->timeout) {
				metric_inc(f->m_timeout);
				slot_release(f, s);
			} else if (!hit && key_eq(&s->key, key)) {
				hit = s;
				continue;
			}
		}
		if (!s->used && !*free_slot)
			*free_slot = s;
	}
	return hit;
}

static struct frag_slot *slot_oldest(struct ipfrag *f)
{
	struct frag_slot *old = NULL;
	size_t i;

	for (i = 0; i < f->nslots; i++)
		if (f->slots[i].used && (!old || f->slots[i].first_ts < old->first_ts))
			old = &f->slots[i];
	return old;
}

enum ipfrag_result ipfrag_add(struct ipfrag *f, const struct ipfrag_key *key, uint64_t ts,
			      uint32_t offset, const uint8_t *data, uint32_t len, bool more,
			      const uint8_t **out, uint32_t *out_len)
{
	struct frag_slot *s, *free_slot;
	uint32_t end, b, b0, b1, nset = 0;

	*out = NULL;
	*out_len = 0;

	/* Shape checks before touching any state. */
	if (len == 0 || offset % 8 != 0 || (more && len % 8 != 0)) {
		metric_inc(f->m_invalid);
		return IPFRAG_DROPPED;
	}
	if (offset > IPFRAG_MAX_DATAGRAM || IPFRAG_MAX_DATAGRAM - offset < len) {
		metric_inc(f->m_too_big);
		return IPFRAG_DROPPED;
	}
	end = offset + len;

	s = slot_find(f, key, ts, &free_slot);
	if (!s) {
		s = free_slot;
		if (!s) {
			s = slot_oldest(f);
			metric_inc(f->m_evicted);
			slot_release(f, s);
		}
		if (!s->buf) {
			s->buf = hb_malloc(IPFRAG_MAX_DATAGRAM);
			if (!s->buf) {
				metric_inc(f->m_nomem);
				return IPFRAG_DROPPED;
			}
		}
		s->used = true;
		f->nused++;
		s->key = *key;
		s->first_ts = ts;
		s->have_last = false;
		s->total = 0;
		s->received = 0;
		s->max_end = 0;
		memset(s->map, 0, sizeof(s->map));
	}

	/* Consistency with the known end of the datagram. */
	if ((s->have_last && end > s->total) || (!more && s->have_last && end != s->total) ||
	    (!more && end < s->max_end)) {
		metric_inc(f->m_invalid);
		slot_release(f, s);
		return IPFRAG_DROPPED;
	}

	b0 = offset / 8;
	b1 = (end + 7) / 8; /* exclusive */
	for (b = b0; b < b1; b++)
		nset += bit_get(s->map, b);
	if (nset) {
		if (nset == b1 - b0 && memcmp(s->buf + offset, data, len) == 0 &&
		    (more || (s->have_last && end == s->total))) {
			metric_inc(f->m_duplicate);
			return IPFRAG_STORED;
		}
		metric_inc(f->m_overlap);
		slot_release(f, s);
		return IPFRAG_DROPPED;
	}

	memcpy(s->buf + offset, data, len);
	for (b = b0; b < b1; b++)
		bit_set(s->map, b);
	s->received += len;
	if (end > s->max_end)
		s->max_end = end;
	if (!more) {
		s->have_last = true;
		s->total = end;
	}
	if (s->have_last && s->received == s->total) {
		/* The data could only be held below total (checked above), without
		 * overlap, so every byte of [0, total) is present. */
		*out = s->buf;
		*out_len = s->total;
		metric_inc(f->m_reassembled);
		slot_release(f, s);
		return IPFRAG_COMPLETE;
	}
	return IPFRAG_STORED;
}
