/* ctrmap.h — which Docker container an IP address belongs to, so that network
 * events captured on docker0 carry container.id / container.name /
 * container.image.name.
 *
 * The source of truth is Docker's own state under the hostfs root (Docker 20–27):
 *
 *   var/lib/docker/containers/<64 lower-hex id>/config.v2.json
 *     "ID":"<id>"                              must match the directory when present
 *     "Name":"/web"                            → container.name "web"
 *     "Config":{"Image":"nginx:1.25"}          → container.image.name
 *     "State":{"Running":true}                 required; only running containers are
 *                                                mapped (a stopped one's IPs get reused)
 *     "NetworkSettings":{"Networks":{"<net>":{"IPAddress":"172.17.0.2",
 *                                            "GlobalIPv6Address":"fd00::2"}, ...}}
 *
 * Empty strings are "no address" (network_mode host/none: no address at all). An
 * address claimed by two running containers is ambiguous and not mapped.
 *
 * Threads: ctrmap_refresh() from one thread at a time (the sampler, every period);
 * ctrmap_lookup(), ctrmap_enrich() and ctrmap_count() from any thread, concurrently
 * with it. A refresh builds the new table aside and publishes it with a pointer swap
 * under a mutex; a lookup holds that mutex for its binary search and the copy-out,
 * so it sees the old table or the new one, never a half-built one. Results are
 * copies: callers never hold pointers into the map.
 *
 * Cost: a refresh lists the directory and fstat()s each config.v2.json; a file is
 * read and parsed again only when its (inode, size, mtime, ctime) changed. The
 * published table is rebuilt only when what it maps changed.
 *
 * Caps (anything skipped is counted, never logged per item):
 *   ctrmap.containers_over_cap  directories beyond CTRMAP_MAX_CONTAINERS (per refresh)
 *   ctrmap.addresses_over_cap   a container with more than CTRMAP_MAX_ADDRS addresses
 *   ctrmap.file_too_big         config.v2.json larger than CTRMAP_FILE_MAX
 *   ctrmap.file_invalid         not a JSON object, an "ID" that is not the directory,
 *                               no boolean State.Running, a known key of the wrong type
 *   ctrmap.file_unreadable      present but not readable (EACCES, EIO, not a file)
 *   ctrmap.bad_address          an address string that is not an IP
 *   ctrmap.field_skipped        a name or image longer than its cap or holding a NUL:
 *                               the field is left out, the container stays mapped
 *   ctrmap.ip_conflicts         an address claimed by two running containers
 *   ctrmap.files_read           config.v2.json files read (churn, not an error)
 * File counters count a file once per change of the file, not once per refresh (a
 * file that cannot even be stat()ed has no identity to remember: counted each time).
 */
#ifndef HOSTBEAT_CTRMAP_H
#define HOSTBEAT_CTRMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "hostbeat/event.h"
#include "hostbeat/ip.h"

#define CTRMAP_ID_LEN 64           /* lower-hex digits */
#define CTRMAP_NAME_MAX 128        /* container.name bytes */
#define CTRMAP_IMAGE_MAX 256       /* container.image.name bytes */
#define CTRMAP_MAX_CONTAINERS 4096 /* container directories considered per refresh */
#define CTRMAP_MAX_ADDRS 16        /* addresses per container */
#define CTRMAP_FILE_MAX (4u << 20) /* config.v2.json bytes */

/* One container, copied out of the map. Strings are NUL-terminated; "" = unknown. */
struct ctr_meta {
	char id[CTRMAP_ID_LEN + 1];
	char name[CTRMAP_NAME_MAX + 1]; /* without Docker's leading '/' */
	char image[CTRMAP_IMAGE_MAX + 1];
};

struct ctrmap;

/* An empty map reading under root_fd (an O_DIRECTORY descriptor of the hostfs root;
 * borrowed: it must stay open until ctrmap_free()). Registers the counters. Returns
 * new — caller frees with ctrmap_free(); NULL when memory is short. */
struct ctrmap *ctrmap_new(int root_fd);
void ctrmap_free(struct ctrmap *m); /* NULL-safe; no lookup may be running */

/* Rescan var/lib/docker/containers and publish what changed. A missing directory
 * (no Docker on this host) is an empty map and returns 0, silently. Other failures
 * (the directory unreadable, memory short) publish an empty map — a stale one would
 * name the wrong container once an IP is reused — and return a negative errno; the
 * first of a run of failures is logged. One thread at a time. */
int ctrmap_refresh(struct ctrmap *m);

/* The running container holding address ip: copies it into *out and returns true;
 * false (out untouched) when none does, ip is unset, or m is NULL. Any thread. */
bool ctrmap_lookup(struct ctrmap *m, const struct hb_ip *ip, struct ctr_meta *out);

/* Add container.id, and container.name / container.image.name when known, to a
 * transaction event whose server address is a container's, else whose client address
 * is. Nothing when the event has no tuple, already has container.id, neither address
 * is known, or m is NULL. Strings are copied into the event's arena. Returns 1 when
 * fields were added, 0 when none were, -ENOSPC when the event's caps refused one
 * (counted by the event layer). Any thread. */
int ctrmap_enrich(struct ctrmap *m, struct event *ev);

/* Addresses in the published table (tests, a log line after a refresh). Any thread. */
size_t ctrmap_count(struct ctrmap *m);

#endif
