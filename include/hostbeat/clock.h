/* clock.h — the one injected clock.
 *
 * Times are uint64_t nanoseconds since the Unix epoch (UTC). In pcap replay (-I)
 * "now" is the timestamp of the last packet read, so timeouts, flow expiry and
 * @timestamp are deterministic; live, "now" is the wall clock. Intervals that must
 * not jump (metrics period, shutdown timeout) use clock_mono_ns().
 */
#ifndef HOSTBEAT_CLOCK_H
#define HOSTBEAT_CLOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NS_PER_US 1000ULL
#define NS_PER_MS 1000000ULL
#define NS_PER_SEC 1000000000ULL

struct hb_clock {
	bool replay;                /* true: packet clock */
	_Atomic uint64_t packet_ns; /* last packet timestamp seen (replay) */
};

void clock_init(struct hb_clock *c, bool replay);
/* Replay: advance the packet clock (never moves backwards). Live: no-op. */
void clock_packet(struct hb_clock *c, uint64_t ts_ns);
uint64_t clock_now(const struct hb_clock *c);
uint64_t clock_wall_ns(void);
uint64_t clock_mono_ns(void);

/* RFC 3339 UTC with `digits` fractional digits (0, 3, 6 or 9) and a `Z`:
 * "2015-08-27T08:00:55.638957Z". Returns the length written (excluding NUL),
 * or 0 when buf is too small (size 32 is always enough). */
size_t clock_format_rfc3339(uint64_t ns, int digits, char *buf, size_t size);
/* "YYYY.MM.DD" of ns in UTC, for index names. buf must hold 11 bytes. */
void clock_format_index_date(uint64_t ns, char *buf);

#endif
