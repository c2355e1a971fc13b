/* log.c — leveled log lines to stderr or a file, Beats-like format. */
#include "hostbeat/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hostbeat/clock.h"

#define LOG_MAX_SELECTORS 512

/* Process-wide logger state: set once by log_init() before threads start. */
static struct {
	enum log_level level;
	char selectors[LOG_MAX_SELECTORS]; /* ",http,tcp," ; "*" = all */
	FILE *out;
	bool own_out;
	pthread_mutex_t lock;
} logger = {LOG_LEVEL_INFO, "", NULL, false, PTHREAD_MUTEX_INITIALIZER};

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

int log_init(enum log_level level, const char *selectors, bool to_stderr, const char *path)
{
	logger.level = level;
	snprintf(logger.selectors, sizeof(logger.selectors), ",%s,", selectors ? selectors : "");
	if (logger.own_out && logger.out)
		fclose(logger.out);
	logger.out = stderr;
	logger.own_out = false;
	if (!to_stderr && path) {
		FILE *f = fopen(path, "a");

		if (!f)
			return -1;
		logger.out = f;
		logger.own_out = true;
	}
	return 0;
}

void log_close(void)
{
	if (logger.own_out && logger.out)
		fclose(logger.out);
	logger.out = stderr;
	logger.own_out = false;
}

bool log_debug_enabled(const char *selector)
{
	char want[80];
	const char *dot;
	size_t n;

	if (logger.level < LOG_LEVEL_DEBUG)
		return false;
	if (strstr(logger.selectors, ",*,"))
		return true;
	/* "net.http" matches selector "http" or "net.http" */
	dot = strrchr(selector, '.');
	n = (size_t)snprintf(want, sizeof(want), ",%s,", selector);
	if (n < sizeof(want) && strstr(logger.selectors, want))
		return true;
	if (dot) {
		n = (size_t)snprintf(want, sizeof(want), ",%s,", dot + 1);
		if (n < sizeof(want) && strstr(logger.selectors, want))
			return true;
	}
	return false;
}

void log_msg(enum log_level level, const char *selector, const char *fmt, ...)
{
	char ts[40];
	va_list ap;
	FILE *out;

	if (level > logger.level)
		return;
	out = logger.out ? logger.out : stderr;
	clock_format_rfc3339(clock_wall_ns(), 3, ts, sizeof(ts));
	pthread_mutex_lock(&logger.lock);
	fprintf(out, "%s\t%s\t[%s]\t", ts, level_names[level], selector);
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputc('\n', out);
	fflush(out);
	pthread_mutex_unlock(&logger.lock);
}
