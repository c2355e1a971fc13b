/* process.h — private to sys/process.c and its unit test: the proc/<pid>/stat parser
 * and the state-letter names, pure functions tested on synthetic lines.
 */
#ifndef HOSTBEAT_SYS_PROCESS_H
#define HOSTBEAT_SYS_PROCESS_H

#include <stddef.h>
#include <stdint.h>

/* comm is TASK_COMM_LEN (16) bytes for most tasks; workqueue kworkers show up to 64. */
#define SYS_PROC_COMM_MAX 64

/* stat's flags bit of a kernel thread (PF_KTHREAD of the kernel's
 * include/linux/sched.h): it has no mm, so its statm is all zeros. */
#define SYS_PF_KTHREAD 0x00200000u

/* The fields of proc/<pid>/stat the metricset uses (proc(5) numbers, 1-based). */
struct sys_proc_stat {
	uint64_t pid;                     /* 1 */
	char comm[SYS_PROC_COMM_MAX + 1]; /* 2, without the parentheses, NUL-terminated */
	size_t comm_len;                  /* may be cut at SYS_PROC_COMM_MAX */
	char state;                       /* 3 */
	uint64_t ppid, pgrp;              /* 4, 5 */
	uint64_t flags;                   /* 9: PF_* of the kernel (SYS_PF_KTHREAD) */
	uint64_t utime, stime;            /* 14, 15: clock ticks */
	uint64_t num_threads;             /* 20 */
	uint64_t starttime;               /* 22: clock ticks after boot */
	uint64_t vsize;                   /* 23: bytes */
	uint64_t rss;                     /* 24: pages */
};

/* Parse one stat line. comm runs from the first '(' to the LAST ')' (it may hold
 * spaces, parentheses and any byte but NUL); the fields after it are taken by
 * position. 0, or -EINVAL when the line is malformed or ends before field 24. */
int sys_process_parse_stat(const char *buf, size_t len, struct sys_proc_stat *out);

/* The word for a state letter of proc(5) ("R" → "running", "D" → "disk_sleep",
 * "I" → "idle" ...), "unknown" for any other. */
const char *sys_process_state_name(char state);

#endif
