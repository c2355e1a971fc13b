/* ctrmap.c — IP address → Docker container, from Docker's config.v2.json files
 * (see include/hostbeat/ctrmap.h for the format, the threads and the counters).
 *
 * Two structures:
 *
 *   cache (refresh thread only)   one ctr_entry per container directory, sorted by
 *                                 id: the file's identity when it was read and what
 *                                 it said (also for stopped and invalid files, so
 *                                 they are neither read nor counted again). Double
 *                                 buffered: a refresh fills `next` from the listing,
 *                                 copying unchanged entries from `cache`, then swaps.
 *
 *   table (published)             the running containers' addresses sorted by
 *                                 (version, 16 bytes), each naming a ctr_meta; built
 *                                 aside and swapped in under `lock`. Lookups hold
 *                                 `lock` for a binary search and a copy.
 *
 * Reference: moby daemon/container (container.toDisk() writes config.v2.json with
 * an atomic rename on every state change, health checks included — hence the new
 * inode and ctime this code keys on).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "hostbeat/ctrmap.h"
#include "hostbeat/log.h"
#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "hostbeat/sys.h"

#define CONTAINERS_DIR "var/lib/docker/containers"
#define CONFIG_FILE "config.v2.json"
#define LOG_SEL "sys.ctrmap"

/* A file's identity: while all of it is unchanged the file is not read again. */
struct file_key {
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

/* What one config.v2.json said. */
struct ctr_entry {
	struct ctr_meta meta; /* meta.id is the directory name */
	struct file_key key;  /* all zero: read again at the next refresh */
	bool mapped;          /* valid, running, at least one address */
	uint8_t naddr;
	struct hb_ip addr[CTRMAP_MAX_ADDRS]; /* unused bytes of a[] are zero */
};

struct ctr_slot {
	struct hb_ip ip;
	uint32_t meta; /* index into ctr_table.meta */
};

struct ctr_table {
	size_t nslot, nmeta;
	struct ctr_slot *slot; /* sorted by slot_cmp(), no two equal */
	struct ctr_meta *meta;
};

struct ctrmap {
	int root_fd; /* borrowed */

	pthread_mutex_t lock;
	struct ctr_table *table; /* under lock; NULL = empty */

	/* refresh thread only */
	struct ctr_entry *cache, *next;
	size_t ncache, cache_alloc, next_alloc;
	char (*names)[CTRMAP_ID_LEN + 1]; /* one listing's container ids */
	size_t names_alloc;
	char *buf; /* one file's text */
	size_t buf_size;
	struct json_tokener *tok;
	bool dirty;   /* the table must be rebuilt even if nothing changed */
	int last_err; /* of the previous refresh: log a failure once per run */

	struct metric *m_over_cap, *m_addr_cap, *m_too_big, *m_invalid, *m_unreadable;
	struct metric *m_bad_addr, *m_field, *m_conflict, *m_read;
};

/* ---- the published table ---------------------------------------------------- */

static int ip_cmp(const struct hb_ip *x, const struct hb_ip *y)
{
	if (x->ver != y->ver)
		return x->ver < y->ver ? -1 : 1;
	return memcmp(x->a, y->a, sizeof(x->a));
}

static int slot_cmp(const void *x, const void *y)
{
	return ip_cmp(&((const struct ctr_slot *)x)->ip, &((const struct ctr_slot *)y)->ip);
}

static void table_free(struct ctr_table *t)
{
	if (!t)
		return;
	hb_free(t->slot);
	hb_free(t->meta);
	hb_free(t);
}

/* The table of the mapped entries of cache[0, n), or NULL when there is nothing to
 * map. *err is set to -ENOMEM when memory is short. */
static struct ctr_table *table_build(struct ctrmap *m, const struct ctr_entry *cache, size_t n,
				     int *err)
{
	struct ctr_table *t = NULL;
	size_t nslot = 0, nmeta = 0, kept = 0;

	*err = 0;
	for (size_t i = 0; i < n; i++) {
		if (cache[i].mapped) {
			nmeta++;
			nslot += cache[i].naddr;
		}
	}
	if (nslot == 0)
		return NULL;
	t = hb_calloc(1, sizeof(*t));
	if (!t)
		goto err;
	t->slot = hb_malloc(nslot * sizeof(*t->slot));
	t->meta = hb_malloc(nmeta * sizeof(*t->meta));
	if (!t->slot || !t->meta)
		goto err;
	for (size_t i = 0; i < n; i++) {
		if (!cache[i].mapped)
			continue;
		for (size_t k = 0; k < cache[i].naddr; k++) {
			t->slot[t->nslot].ip = cache[i].addr[k];
			t->slot[t->nslot].meta = (uint32_t)t->nmeta;
			t->nslot++;
		}
		t->meta[t->nmeta++] = cache[i].meta;
	}
	if (t->nslot > 1)
		qsort(t->slot, t->nslot, sizeof(*t->slot), slot_cmp);
	/* A container's own addresses are distinct (entry_add_addr()), so equal
	 * neighbours belong to two containers: which one served is unknown. */
	for (size_t i = 0; i < t->nslot;) {
		size_t j = i + 1;

		while (j < t->nslot && slot_cmp(&t->slot[i], &t->slot[j]) == 0)
			j++;
		if (j - i == 1)
			t->slot[kept++] = t->slot[i];
		else
			metric_inc(m->m_conflict);
		i = j;
	}
	t->nslot = kept;
	return t;
err:
	table_free(t);
	*err = -ENOMEM;
	return NULL;
}

static void table_publish(struct ctrmap *m, struct ctr_table *t)
{
	struct ctr_table *old;

	pthread_mutex_lock(&m->lock);
	old = m->table;
	m->table = t;
	pthread_mutex_unlock(&m->lock);
	table_free(old); /* no lookup can hold it: they run under the lock */
}

/* ---- one config.v2.json ----------------------------------------------------- */

/* obj.key when present with the given type: 1; absent (or obj NULL): 0; present
 * with another type: -1. */
static int get_typed(struct json_object *obj, const char *key, enum json_type type,
		     struct json_object **out)
{
	*out = NULL;
	if (!obj || !json_object_object_get_ex(obj, key, out))
		return 0;
	if (!json_object_is_type(*out, type)) {
		*out = NULL;
		return -1;
	}
	return 1;
}

/* A string value without NUL bytes: its bytes and length, or NULL. */
static const char *str_of(struct json_object *v, size_t *len)
{
	const char *s = json_object_get_string(v);

	*len = (size_t)json_object_get_string_len(v);
	return memchr(s, '\0', *len) ? NULL : s;
}

/* obj.key (a string) into dst[0, cap] (cap bytes + NUL), without a leading '/'
 * when strip_slash. Absent or empty: dst stays "". Too long or holding a NUL: left
 * out and counted. -1 when present with another type. */
static int copy_field(struct ctrmap *m, struct json_object *obj, const char *key, bool strip_slash,
		      char *dst, size_t cap)
{
	struct json_object *v;
	const char *s;
	size_t len;
	int rc = get_typed(obj, key, json_type_string, &v);

	if (rc <= 0)
		return rc;
	s = str_of(v, &len);
	if (s && strip_slash && len > 0 && s[0] == '/') {
		s++;
		len--;
	}
	if (!s || len > cap) {
		metric_inc(m->m_field);
		return 0;
	}
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

/* Add the address string at net.key to e (empty: none). -1 for a wrong type. */
static int entry_add_addr(struct ctrmap *m, struct ctr_entry *e, struct json_object *net,
			  const char *key, bool *over_cap)
{
	char text[HB_IP_STRLEN];
	struct json_object *v;
	struct hb_ip ip;
	const char *s;
	size_t len;
	int rc = get_typed(net, key, json_type_string, &v);

	if (rc <= 0)
		return rc;
	s = str_of(v, &len);
	if (s && len == 0)
		return 0;
	if (!s || len >= sizeof(text)) {
		metric_inc(m->m_bad_addr);
		return 0;
	}
	memcpy(text, s, len);
	text[len] = '\0';
	if (hb_ip_parse(text, &ip) < 0) { /* zeroes ip before filling it */
		metric_inc(m->m_bad_addr);
		return 0;
	}
	for (size_t i = 0; i < e->naddr; i++)
		if (ip_cmp(&e->addr[i], &ip) == 0)
			return 0; /* e.g. the same network listed twice */
	if (e->naddr == CTRMAP_MAX_ADDRS) {
		*over_cap = true;
		return 0;
	}
	e->addr[e->naddr++] = ip;
	return 0;
}

/* Fill e (id and key set, the rest zero) from the text of its config.v2.json.
 * false when the file is not a valid config (the caller counts it). */
static bool entry_parse(struct ctrmap *m, struct ctr_entry *e, const char *text, size_t len)
{
	struct json_object *root, *v, *state, *config, *netset, *nets;
	bool ok = false, over_cap = false;
	size_t end;

	json_tokener_reset(m->tok);
	root = json_tokener_parse_ex(m->tok, text, (int)len);
	if (!root || json_tokener_get_error(m->tok) != json_tokener_success ||
	    !json_object_is_type(root, json_type_object))
		goto out;
	for (end = json_tokener_get_parse_end(m->tok); end < len; end++)
		if (text[end] != ' ' && text[end] != '\t' && text[end] != '\n' && text[end] != '\r')
			goto out; /* only whitespace may follow the object */

	switch (get_typed(root, "ID", json_type_string, &v)) {
	case -1:
		goto out;
	case 1:
		if (json_object_get_string_len(v) != CTRMAP_ID_LEN ||
		    memcmp(json_object_get_string(v), e->meta.id, CTRMAP_ID_LEN) != 0)
			goto out; /* not the file of this directory */
		break;
	}
	if (get_typed(root, "State", json_type_object, &state) <= 0 ||
	    get_typed(state, "Running", json_type_boolean, &v) <= 0)
		goto out;
	ok = true;
	if (!json_object_get_boolean(v))
		goto out; /* stopped: valid, not mapped */

	if (copy_field(m, root, "Name", true, e->meta.name, CTRMAP_NAME_MAX) < 0 ||
	    get_typed(root, "Config", json_type_object, &config) < 0 ||
	    copy_field(m, config, "Image", false, e->meta.image, CTRMAP_IMAGE_MAX) < 0 ||
	    get_typed(root, "NetworkSettings", json_type_object, &netset) < 0 ||
	    get_typed(netset, "Networks", json_type_object, &nets) < 0) {
		ok = false;
		goto out;
	}
	if (nets) {
		json_object_object_foreach(nets, name, net)
		{
			(void)name;
			if (!json_object_is_type(net, json_type_object) ||
			    entry_add_addr(m, e, net, "IPAddress", &over_cap) < 0 ||
			    entry_add_addr(m, e, net, "GlobalIPv6Address", &over_cap) < 0) {
				ok = false;
				goto out;
			}
		}
	}
	if (over_cap)
		metric_inc(m->m_addr_cap);
	e->mapped = e->naddr > 0;
out:
	if (!ok)
		e->naddr = 0;
	json_object_put(root);
	return ok;
}

/* ---- refresh ------------------------------------------------------------------ */

static bool is_id(const char *s)
{
	size_t i;

	for (i = 0; i < CTRMAP_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[i] == '\0';
}

static int name_cmp(const void *x, const void *y)
{
	return strcmp(x, y);
}

static struct file_key key_of(const struct stat *sb)
{
	struct file_key k = {sb->st_ino, sb->st_size, sb->st_mtim, sb->st_ctim};

	return k;
}

static bool key_eq(const struct file_key *x, const struct file_key *y)
{
	return x->ino == y->ino && x->size == y->size && x->mtime.tv_sec == y->mtime.tv_sec &&
	       x->mtime.tv_nsec == y->mtime.tv_nsec && x->ctime.tv_sec == y->ctime.tv_sec &&
	       x->ctime.tv_nsec == y->ctime.tv_nsec;
}

/* Does e map something other than old did? */
static bool entry_differs(const struct ctr_entry *e, const struct ctr_entry *old)
{
	if (!old)
		return e->mapped;
	if (e->mapped != old->mapped)
		return true;
	if (!e->mapped)
		return false;
	return memcmp(&e->meta, &old->meta, sizeof(e->meta)) != 0 || e->naddr != old->naddr ||
	       memcmp(e->addr, old->addr, e->naddr * sizeof(e->addr[0])) != 0;
}

static int grow(void **arr, size_t *alloc, size_t want, size_t elem)
{
	size_t n = *alloc ? *alloc : 64;
	void *p;

	if (want <= *alloc)
		return 0;
	while (n < want)
		n *= 2;
	p = hb_realloc(*arr, n * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*alloc = n;
	return 0;
}

/* The container ids listed in d, sorted, into m->names; their number, or -ENOMEM. */
static long list_ids(struct ctrmap *m, DIR *d)
{
	struct dirent *de;
	size_t n = 0;

	while ((de = readdir(d)) != NULL) {
		if (!is_id(de->d_name))
			continue;
		if (n == CTRMAP_MAX_CONTAINERS) {
			metric_inc(m->m_over_cap);
			continue;
		}
		if (grow((void **)&m->names, &m->names_alloc, n + 1, sizeof(*m->names)) < 0)
			return -ENOMEM;
		memcpy(m->names[n++], de->d_name, CTRMAP_ID_LEN + 1);
	}
	if (n > 1)
		qsort(m->names, n, sizeof(*m->names), name_cmp);
	return (long)n;
}

/* The cached entry of id, or NULL. */
static const struct ctr_entry *cache_find(const struct ctrmap *m, const char *id)
{
	size_t lo = 0, hi = m->ncache;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->cache[mid].meta.id, id);

		if (c == 0)
			return &m->cache[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* "<id>/config.v2.json", relative to the containers directory. */
#define CONFIG_PATH_SIZE (CTRMAP_ID_LEN + sizeof("/" CONFIG_FILE))
static void config_path(char out[CONFIG_PATH_SIZE], const char *id)
{
	memcpy(out, id, CTRMAP_ID_LEN);
	memcpy(out + CTRMAP_ID_LEN, "/" CONFIG_FILE, sizeof("/" CONFIG_FILE));
}

/* Read and parse dfd/<e->meta.id>/config.v2.json (sb: its stat) into e. 1: e is an
 * entry; 0: the file went away (no entry); -ENOMEM: e is old's entry (or an unmapped
 * one) marked to be read again. */
static int entry_read(struct ctrmap *m, int dfd, const struct stat *sb, struct ctr_entry *e,
		      const struct ctr_entry *old)
{
	char path[CONFIG_PATH_SIZE];
	size_t want = (size_t)sb->st_size + 1;
	ssize_t n;

	if (!S_ISREG(sb->st_mode)) {
		metric_inc(m->m_unreadable);
		return 1;
	}
	if ((uint64_t)sb->st_size > CTRMAP_FILE_MAX) {
		metric_inc(m->m_too_big);
		return 1;
	}
	if (grow((void **)&m->buf, &m->buf_size, want < 4096 ? 4096 : want, 1) < 0) {
		if (old)
			*e = *old;
		e->key = (struct file_key){0}; /* read it again next time */
		return -ENOMEM;
	}
	config_path(path, e->meta.id);
	metric_inc(m->m_read);
	/* At most st_size bytes: -EFBIG means the file grew since fstatat(). */
	n = sys_read_at(dfd, path, m->buf, want);
	if (n == -ENOENT)
		return 0; /* removed since the listing */
	if (n == -EFBIG) {
		/* Replaced while being read: keep what was known, read it again next time. */
		if (old)
			*e = *old;
		e->key = (struct file_key){0};
		return 1;
	}
	if (n < 0) {
		metric_inc(m->m_unreadable);
		return 1;
	}
	if (!entry_parse(m, e, m->buf, (size_t)n))
		metric_inc(m->m_invalid);
	return 1;
}

/* Fill m->next from the sorted ids in m->names[0, n); returns its length and sets
 * *changed when the table's content differs from what the cache mapped, *err to
 * -ENOMEM when a file could not be read for want of memory. */
static size_t scan(struct ctrmap *m, int dfd, size_t n, bool *changed, int *err)
{
	char path[CONFIG_PATH_SIZE];
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		struct ctr_entry *e = &m->next[k];
		const struct ctr_entry *old = cache_find(m, m->names[i]);
		struct file_key key;
		struct stat sb;
		int rc;

		config_path(path, m->names[i]);
		if (fstatat(dfd, path, &sb, 0) != 0) {
			/* A container being created or removed has no file: not an error. */
			if (errno != ENOENT && errno != ENOTDIR)
				metric_inc(m->m_unreadable);
			continue;
		}
		key = key_of(&sb);
		if (old && key_eq(&old->key, &key)) {
			*e = *old;
			k++;
			continue;
		}
		memset(e, 0, sizeof(*e));
		memcpy(e->meta.id, m->names[i], CTRMAP_ID_LEN + 1);
		e->key = key;
		rc = entry_read(m, dfd, &sb, e, old);
		if (rc == 0)
			continue;
		if (rc < 0)
			*err = rc;
		if (entry_differs(e, old))
			*changed = true;
		k++;
	}
	return k;
}

/* Log a change of state only: the first failure of a run, and the recovery. */
static void note_result(struct ctrmap *m, int err)
{
	if (err == m->last_err)
		return;
	if (err < 0)
		log_warn(LOG_SEL,
			 "cannot read %s under the hostfs root: %s; network events get "
			 "no container fields",
			 CONTAINERS_DIR, strerror(-err));
	else if (m->last_err < 0)
		log_info(LOG_SEL, "reading %s again", CONTAINERS_DIR);
	m->last_err = err;
}

int ctrmap_refresh(struct ctrmap *m)
{
	struct ctr_table *t;
	struct ctr_entry *swap;
	size_t nnext, swap_alloc;
	bool changed = false;
	long n;
	DIR *d;
	int fd, err = 0;

	fd = openat(m->root_fd, CONTAINERS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err = errno == ENOENT || errno == ENOTDIR ? 0 : -errno; /* no Docker: normal */
		m->ncache = 0;
		m->dirty = false;
		table_publish(m, NULL);
		note_result(m, err);
		return err;
	}
	d = fdopendir(fd);
	if (!d) {
		err = -errno;
		close(fd);
		goto fail;
	}
	n = list_ids(m, d);
	if (n < 0 || grow((void **)&m->next, &m->next_alloc, (size_t)n, sizeof(*m->next)) < 0) {
		err = -ENOMEM;
		closedir(d);
		goto fail;
	}
	nnext = scan(m, dirfd(d), (size_t)n, &changed, &err);
	closedir(d);
	/* Fewer entries than before: a removal, or nothing changed at all. Every new
	 * or changed mapped entry already set `changed`. */
	for (size_t i = 0, j = 0; !changed && i < m->ncache; i++) {
		if (!m->cache[i].mapped)
			continue;
		while (j < nnext && strcmp(m->next[j].meta.id, m->cache[i].meta.id) < 0)
			j++;
		if (j == nnext || strcmp(m->next[j].meta.id, m->cache[i].meta.id) != 0)
			changed = true; /* a mapped container vanished */
	}
	swap = m->cache;
	swap_alloc = m->cache_alloc;
	m->cache = m->next;
	m->cache_alloc = m->next_alloc;
	m->ncache = nnext;
	m->next = swap;
	m->next_alloc = swap_alloc;
	if (err < 0)
		goto fail;
	if (changed || m->dirty) {
		t = table_build(m, m->cache, m->ncache, &err);
		if (err < 0)
			goto fail;
		table_publish(m, t);
		m->dirty = false;
	}
	note_result(m, 0);
	return 0;
fail:
	table_publish(m, NULL);
	m->dirty = true; /* the cache is still right: rebuild from it next time */
	note_result(m, err);
	return err;
}

/* ---- lifetime and lookups --------------------------------------------------- */

struct ctrmap *ctrmap_new(int root_fd)
{
	struct ctrmap *m = hb_calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->root_fd = root_fd;
	m->tok = json_tokener_new();
	if (!m->tok || pthread_mutex_init(&m->lock, NULL) != 0) {
		if (m->tok)
			json_tokener_free(m->tok);
		hb_free(m);
		return NULL;
	}
	m->m_over_cap = metrics_counter("ctrmap.containers_over_cap");
	m->m_addr_cap = metrics_counter("ctrmap.addresses_over_cap");
	m->m_too_big = metrics_counter("ctrmap.file_too_big");
	m->m_invalid = metrics_counter("ctrmap.file_invalid");
	m->m_unreadable = metrics_counter("ctrmap.file_unreadable");
	m->m_bad_addr = metrics_counter("ctrmap.bad_address");
	m->m_field = metrics_counter("ctrmap.field_skipped");
	m->m_conflict = metrics_counter("ctrmap.ip_conflicts");
	m->m_read = metrics_counter("ctrmap.files_read");
	return m;
}

void ctrmap_free(struct ctrmap *m)
{
	if (!m)
		return;
	table_free(m->table);
	pthread_mutex_destroy(&m->lock);
	json_tokener_free(m->tok);
	hb_free(m->cache);
	hb_free(m->next);
	hb_free(m->names);
	hb_free(m->buf);
	hb_free(m);
}

bool ctrmap_lookup(struct ctrmap *m, const struct hb_ip *ip, struct ctr_meta *out)
{
	struct hb_ip key = {0};
	bool found = false;

	if (!m || (ip->ver != 4 && ip->ver != 6))
		return false;
	key.ver = ip->ver;
	memcpy(key.a, ip->a, hb_ip_len(ip)); /* the table's v4 keys have a[4..15] zero */
	pthread_mutex_lock(&m->lock);
	if (m->table) {
		const struct ctr_table *t = m->table;
		size_t lo = 0, hi = t->nslot;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			int c = ip_cmp(&t->slot[mid].ip, &key);

			if (c == 0) {
				*out = t->meta[t->slot[mid].meta];
				found = true;
				break;
			}
			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return found;
}

size_t ctrmap_count(struct ctrmap *m)
{
	size_t n = 0;

	if (!m)
		return 0;
	pthread_mutex_lock(&m->lock);
	if (m->table)
		n = m->table->nslot;
	pthread_mutex_unlock(&m->lock);
	return n;
}

int ctrmap_enrich(struct ctrmap *m, struct event *ev)
{
	struct ctr_meta c;
	int rc;

	if (!m || !ev->has_tuple || ev_find(ev, "container.id"))
		return 0;
	if (!ctrmap_lookup(m, &ev->server_ip, &c) && !ctrmap_lookup(m, &ev->client_ip, &c))
		return 0;
	rc = ev_set_str(ev, "container.id", c.id, CTRMAP_ID_LEN);
	if (rc == 0 && c.name[0])
		rc = ev_set_strz(ev, "container.name", c.name);
	if (rc == 0 && c.image[0])
		rc = ev_set_strz(ev, "container.image.name", c.image);
	return rc < 0 ? rc : 1;
}
