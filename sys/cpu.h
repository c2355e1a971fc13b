/* cpu.h — the pure part of the cpu metricset (sys/cpu.c), private to it and its unit
 * test: one /proc/stat "cpu"/"cpuN" line → tick counters, two samples → fractions.
 */
#ifndef HOSTBEAT_SYS_CPU_H
#define HOSTBEAT_SYS_CPU_H

#include <stdint.h>

#include "hostbeat/sys.h"

/* The states Metricbeat reports, in /proc/stat column order. guest and guest_nice
 * (columns 9 and 10) are not states of their own: the kernel already counts guest
 * time inside user and guest_nice inside nice (account_guest_time()), so adding
 * them would count that time twice. */
enum sys_cpu_state {
	SYS_CPU_USER,
	SYS_CPU_NICE,
	SYS_CPU_SYSTEM,
	SYS_CPU_IDLE,
	SYS_CPU_IOWAIT,
	SYS_CPU_IRQ,
	SYS_CPU_SOFTIRQ,
	SYS_CPU_STEAL,
	SYS_CPU_NSTATES,
};

/* Cumulative time per state in USER_HZ ticks. */
struct sys_cpu_times {
	uint64_t t[SYS_CPU_NSTATES];
};

/* One interval: the fraction of the elapsed CPU time spent in each state (0..1; the
 * caller multiplies by the cores for Metricbeat's .pct), and `busy` = all but idle
 * and iowait (system.cpu.total). Not rounded. */
struct sys_cpu_frac {
	double state[SYS_CPU_NSTATES];
	double busy;
};

/* Parse one /proc/stat line. "cpu  1 2 3 4 ..." sets *id = -1 (the sum over CPUs),
 * "cpuN ..." sets *id = N. Columns a kernel does not have yet (iowait/irq/softirq
 * before 2.6, steal before 2.6.11) read as 0; at least user, nice, system and idle
 * are required. 0, -ENOENT when the line is not a cpu line, -EINVAL when malformed. */
int sys_cpu_parse_line(const struct sys_text *line, struct sys_cpu_times *out, long *id);

/* The sum of the eight states (guest excluded, see above). */
uint64_t sys_cpu_total(const struct sys_cpu_times *t);

/* cur − prev as fractions of Δtotal. 0; -EAGAIN when no time passed (Δtotal = 0:
 * nothing to report, not an error); -ERANGE when a counter went backwards (a CPU
 * going offline can pull the summed idle back; the caller skips the interval and
 * counts it). *out is written only on 0. */
int sys_cpu_frac(const struct sys_cpu_times *prev, const struct sys_cpu_times *cur,
		 struct sys_cpu_frac *out);

/* Ticks → milliseconds at `hz` ticks per second, without overflow. */
uint64_t sys_cpu_ticks_ms(uint64_t ticks, long hz);

#endif
