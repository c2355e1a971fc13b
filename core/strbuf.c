/* strbuf.c — growable byte buffer with a sticky allocation-error flag (strbuf.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "hostbeat/mem.h"
#include "hostbeat/strbuf.h"

#define STRBUF_MIN_CAP 256

void strbuf_init(struct strbuf *sb)
{
	sb->p = NULL;
	sb->len = 0;
	sb->cap = 0;
	sb->err = false;
}

void strbuf_free(struct strbuf *sb)
{
	if (!sb)
		return;
	hb_free(sb->p);
	strbuf_init(sb);
}

void strbuf_reset(struct strbuf *sb)
{
	sb->len = 0;
	sb->err = false;
}

int strbuf_grow(struct strbuf *sb, size_t n)
{
	size_t want, cap;
	char *p;

	if (sb->err)
		return -ENOMEM;
	if (sb->cap - sb->len >= n)
		return 0;
	if (n > SIZE_MAX / 2 - sb->len)
		goto fail;
	want = sb->len + n;
	cap = sb->cap ? sb->cap : STRBUF_MIN_CAP;
	while (cap < want)
		cap *= 2;
	p = hb_realloc(sb->p, cap);
	if (!p)
		goto fail;
	sb->p = p;
	sb->cap = cap;
	return 0;
fail:
	sb->err = true;
	return -ENOMEM;
}

int strbuf_appendf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (sb->err)
		return -ENOMEM;
	/* First try in the spare room; retry once with the exact size. */
	va_start(ap, fmt);
	n = vsnprintf(sb->p ? sb->p + sb->len : NULL, sb->cap - sb->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= sb->cap - sb->len) {
		if (strbuf_grow(sb, (size_t)n + 1) < 0)
			return -ENOMEM;
		va_start(ap, fmt);
		n = vsnprintf(sb->p + sb->len, sb->cap - sb->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -EINVAL;
	}
	sb->len += (size_t)n;
	return 0;
}

const char *strbuf_cstr(struct strbuf *sb)
{
	if (sb->cap == sb->len && strbuf_grow(sb, 1) < 0)
		return ""; /* err is set; the caller checks it */
	sb->p[sb->len] = '\0';
	return sb->p;
}
