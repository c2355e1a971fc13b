/* log.h — leveled logging to stderr (-e) or a file, with debug selectors (-d).
 *
 * Messages carry a selector prefix like "[net.http]". Per-packet anomalies are
 * counters (metrics.h), never log lines.
 */
#ifndef HOSTBEAT_LOG_H
#define HOSTBEAT_LOG_H

#include <stdbool.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* level: messages above it are dropped. selectors: comma list for debug ("*" = all),
 * NULL = none. to_stderr: -e. path: log file when not to_stderr (NULL = stderr anyway). */
int log_init(enum log_level level, const char *selectors, bool to_stderr, const char *path);
void log_close(void);
bool log_debug_enabled(const char *selector);
void log_msg(enum log_level level, const char *selector, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(sel, ...)                                 \
	do {                                                \
		log_msg(LOG_LEVEL_ERROR, sel, __VA_ARGS__); \
	} while (0)
#define log_warn(sel, ...)                                 \
	do {                                               \
		log_msg(LOG_LEVEL_WARN, sel, __VA_ARGS__); \
	} while (0)
#define log_info(sel, ...)                                 \
	do {                                               \
		log_msg(LOG_LEVEL_INFO, sel, __VA_ARGS__); \
	} while (0)
#define log_debug(sel, ...)                                         \
	do {                                                        \
		if (log_debug_enabled(sel))                         \
			log_msg(LOG_LEVEL_DEBUG, sel, __VA_ARGS__); \
	} while (0)

#endif
