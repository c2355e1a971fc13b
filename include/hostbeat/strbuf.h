/* strbuf.h — a growable byte buffer (the encoder's output, the shipper's batch).
 *
 * Growth by doubling through hb_realloc(). An allocation failure does not abort:
 * it sets the sticky `err` flag, the failing append writes nothing, and later
 * appends are no-ops until strbuf_reset(). Callers check `err` once per unit of
 * work (one document, one batch) instead of after every append.
 *
 *   p ──► [ len bytes of content | cap - len spare ]
 *
 * The content is not NUL-terminated unless strbuf_cstr() is called. Owns `p`;
 * strbuf_free() releases it and leaves an empty, reusable buffer.
 */
#ifndef HOSTBEAT_STRBUF_H
#define HOSTBEAT_STRBUF_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct strbuf {
	char *p;
	size_t len, cap;
	bool err; /* sticky: an allocation failed since the last reset */
};

void strbuf_init(struct strbuf *sb);
void strbuf_free(struct strbuf *sb);
/* Empty the buffer (keeps the memory) and clear the error flag. */
void strbuf_reset(struct strbuf *sb);
/* Make room for `n` more bytes. 0, or -ENOMEM (err set). */
int strbuf_grow(struct strbuf *sb, size_t n);
int strbuf_appendf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* NUL-terminate (not counted in len) and return p; "" when the buffer is empty and
 * memory is short. */
const char *strbuf_cstr(struct strbuf *sb);
/* Cut the content back to `len` bytes (len <= sb->len); used to undo a partial write. */
static inline void strbuf_truncate(struct strbuf *sb, size_t len)
{
	if (len < sb->len)
		sb->len = len;
}

/* Append n bytes. 0, or -ENOMEM (err set, nothing appended). */
static inline int strbuf_append(struct strbuf *sb, const void *s, size_t n)
{
	if (sb->cap - sb->len < n && strbuf_grow(sb, n) < 0)
		return -ENOMEM;
	if (n) {
		memcpy(sb->p + sb->len, s, n);
		sb->len += n;
	}
	return 0;
}

static inline int strbuf_puts(struct strbuf *sb, const char *s)
{
	return strbuf_append(sb, s, strlen(s));
}

static inline int strbuf_putc(struct strbuf *sb, char c)
{
	if (sb->cap == sb->len && strbuf_grow(sb, 1) < 0)
		return -ENOMEM;
	sb->p[sb->len++] = c;
	return 0;
}

#endif
