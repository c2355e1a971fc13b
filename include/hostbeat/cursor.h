/* cursor.h — bounds-checked reads from borrowed packet bytes.
 *
 * Every read from wire data goes through a cursor. A read past the end sets the
 * sticky `err` flag and returns 0 (or NULL for byte spans); callers check the flag
 * once per message instead of after every field. The cursor never owns its bytes.
 */
#ifndef HOSTBEAT_CURSOR_H
#define HOSTBEAT_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct cursor {
	const uint8_t *p; /* borrowed */
	size_t len;
	size_t off;
	bool err; /* sticky: set by any read past the end */
};

static inline void cur_init(struct cursor *c, const void *p, size_t len)
{
	c->p = p;
	c->len = len;
	c->off = 0;
	c->err = false;
}

static inline size_t cur_left(const struct cursor *c)
{
	return c->err ? 0 : c->len - c->off;
}

/* Reserve n bytes: returns a pointer to them and advances, or NULL + err. */
static inline const uint8_t *cur_bytes(struct cursor *c, size_t n)
{
	const uint8_t *r;

	if (c->err || c->len - c->off < n) {
		c->err = true;
		return NULL;
	}
	r = c->p + c->off;
	c->off += n;
	return r;
}

static inline bool cur_skip(struct cursor *c, size_t n)
{
	return cur_bytes(c, n) != NULL;
}

/* Move to an absolute offset (used to follow DNS compression pointers). */
static inline bool cur_seek(struct cursor *c, size_t off)
{
	if (c->err || off > c->len) {
		c->err = true;
		return false;
	}
	c->off = off;
	return true;
}

static inline uint8_t cur_u8(struct cursor *c)
{
	const uint8_t *b = cur_bytes(c, 1);
	return b ? b[0] : 0;
}

static inline uint8_t cur_peek_u8(const struct cursor *c)
{
	return (c->err || c->off >= c->len) ? 0 : c->p[c->off];
}

static inline uint16_t cur_be16(struct cursor *c)
{
	const uint8_t *b = cur_bytes(c, 2);
	return b ? (uint16_t)(b[0] << 8 | b[1]) : 0;
}

static inline uint32_t cur_be24(struct cursor *c)
{
	const uint8_t *b = cur_bytes(c, 3);
	return b ? (uint32_t)b[0] << 16 | (uint32_t)b[1] << 8 | b[2] : 0;
}

static inline uint32_t cur_be32(struct cursor *c)
{
	const uint8_t *b = cur_bytes(c, 4);
	return b ? (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3] : 0;
}

static inline uint64_t cur_be64(struct cursor *c)
{
	uint64_t hi = cur_be32(c);
	return hi << 32 | cur_be32(c);
}

static inline uint16_t cur_le16(struct cursor *c)
{
	const uint8_t *b = cur_bytes(c, 2);
	return b ? (uint16_t)(b[1] << 8 | b[0]) : 0;
}

static inline uint32_t cur_le24(struct cursor *c)
{
	const uint8_t *b = cur_bytes(c, 3);
	return b ? (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0] : 0;
}

static inline uint32_t cur_le32(struct cursor *c)
{
	const uint8_t *b = cur_bytes(c, 4);
	return b ? (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0] : 0;
}

static inline uint64_t cur_le64(struct cursor *c)
{
	uint64_t lo = cur_le32(c);
	return lo | (uint64_t)cur_le32(c) << 32;
}

/* Offset of the first `byte` at or after the current position, or -1. Does not move. */
static inline long cur_find(const struct cursor *c, uint8_t byte)
{
	const uint8_t *hit;

	if (c->err || c->off >= c->len)
		return -1;
	hit = memchr(c->p + c->off, byte, c->len - c->off);
	return hit ? (long)(hit - c->p) : -1;
}

#endif
