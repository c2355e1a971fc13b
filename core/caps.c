/* caps.c — drop capabilities down to a kept set: capget/capset (version 3, two 32-bit
 * words per set) and prctl for the bounding/ambient sets and no_new_privs. See caps.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hostbeat/caps.h"
#include "hostbeat/log.h"
#include "hostbeat/sys.h"

/* Highest capability number caps_format() names (CAP_CHECKPOINT_RESTORE, Linux 5.9);
 * newer ones print as cap_N. The masks are 64 bits: capability numbers stop at 63. */
#define CAPS_MAX_BIT 63

static const char *const cap_names[] = {
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
};

static uint64_t bit(int cap)
{
	return (uint64_t)1 << cap;
}

static int sys_capget(struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};

	return syscall(SYS_capget, &h, d) == 0 ? 0 : -errno;
}

static int sys_capset(const struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};

	return syscall(SYS_capset, &h, d) == 0 ? 0 : -errno;
}

static uint64_t join(uint32_t lo, uint32_t hi)
{
	return (uint64_t)lo | (uint64_t)hi << 32;
}

int caps_get(uint64_t *effective, uint64_t *permitted, uint64_t *inheritable)
{
	struct __user_cap_data_struct d[2];
	int rc;

	memset(d, 0, sizeof(d));
	rc = sys_capget(d);
	if (rc)
		return rc;
	if (effective)
		*effective = join(d[0].effective, d[1].effective);
	if (permitted)
		*permitted = join(d[0].permitted, d[1].permitted);
	if (inheritable)
		*inheritable = join(d[0].inheritable, d[1].inheritable);
	return 0;
}

bool caps_have(int cap)
{
	uint64_t eff;

	if (cap < 0 || cap > CAPS_MAX_BIT || caps_get(&eff, NULL, NULL) != 0)
		return false;
	return (eff & bit(cap)) != 0;
}

/* PR_CAPBSET_READ answers EINVAL past the kernel's last capability. */
uint64_t caps_bounding(void)
{
	uint64_t m = 0;

	for (int cap = 0; cap <= CAPS_MAX_BIT; cap++) {
		int r = prctl(PR_CAPBSET_READ, (unsigned long)cap, 0UL, 0UL, 0UL);

		if (r < 0)
			break;
		if (r == 1)
			m |= bit(cap);
	}
	return m;
}

char *caps_format(uint64_t mask, char *buf, size_t len)
{
	size_t off = 0;
	int w;

	if (!len)
		return buf;
	buf[0] = '\0';
	if (!mask) {
		snprintf(buf, len, "none");
		return buf;
	}
	for (int cap = 0; cap <= CAPS_MAX_BIT && off < len; cap++) {
		if (!(mask & bit(cap)))
			continue;
		if ((size_t)cap < sizeof(cap_names) / sizeof(cap_names[0]))
			w = snprintf(buf + off, len - off, "%s%s", off ? "," : "", cap_names[cap]);
		else
			w = snprintf(buf + off, len - off, "%scap_%d", off ? "," : "", cap);
		if (w < 0)
			break;
		off += (size_t)w;
	}
	return buf;
}

/* Threads of this process from /proc/self/status; 0 when it cannot be read (no
 * /proc: nothing to check against). */
static uint64_t thread_count(void)
{
	char buf[4096];
	ssize_t got;
	size_t len = 0;
	uint64_t n = 0;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	while (len < sizeof(buf) - 1) {
		got = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		len += (size_t)got;
	}
	close(fd);
	buf[len] = '\0';
	if (sys_kv_u64(buf, len, "Threads:", &n) != 0)
		return 0;
	return n;
}

int caps_drop_except(const int *keep, size_t n, char *err, size_t errlen)
{
	struct __user_cap_data_struct d[2];
	uint64_t keep_mask = 0, eff, prm, inh, bnd, bnd_left, drop_bnd, newp;
	char dropped[768], kept[768], bounding[768];
	const char *bnd_note;
	uint64_t threads;
	int rc;

	for (size_t i = 0; i < n; i++) {
		if (keep[i] < 0 || keep[i] > CAPS_MAX_BIT) {
			snprintf(err, errlen, "capability %d out of range", keep[i]);
			return -EINVAL;
		}
		keep_mask |= bit(keep[i]);
	}
	threads = thread_count();
	if (threads > 1) {
		snprintf(err, errlen,
			 "%llu threads running: capabilities are per thread, drop them before "
			 "starting any thread",
			 (unsigned long long)threads);
		return -EBUSY;
	}
	rc = caps_get(&eff, &prm, &inh);
	if (rc) {
		snprintf(err, errlen, "capget: %s", strerror(-rc));
		return rc;
	}
	bnd = caps_bounding();

	/* The bounding set first: dropping from it needs CAP_SETPCAP, which capset()
	 * below removes unless it is kept. */
	drop_bnd = bnd & ~keep_mask;
	bnd_note = "";
	if (drop_bnd && (eff & bit(CAP_SETPCAP))) {
		for (int cap = 0; cap <= CAPS_MAX_BIT; cap++) {
			if (!(drop_bnd & bit(cap)))
				continue;
			if (prctl(PR_CAPBSET_DROP, (unsigned long)cap, 0UL, 0UL, 0UL) != 0) {
				rc = -errno;
				snprintf(err, errlen, "prctl(PR_CAPBSET_DROP, %d): %s", cap,
					 strerror(errno));
				return rc;
			}
		}
	} else if (drop_bnd) {
		bnd_note = " (no setpcap: bounding set left as it is)";
	}

	/* Ambient capabilities would survive execve(); there should be none. EINVAL:
	 * a kernel before 4.3 has no ambient set. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0UL, 0UL, 0UL) != 0 &&
	    errno != EINVAL) {
		rc = -errno;
		snprintf(err, errlen, "prctl(PR_CAP_AMBIENT_CLEAR_ALL): %s", strerror(errno));
		return rc;
	}

	newp = prm & keep_mask;
	memset(d, 0, sizeof(d));
	d[0].effective = d[0].permitted = (uint32_t)newp;
	d[1].effective = d[1].permitted = (uint32_t)(newp >> 32);
	rc = sys_capset(d);
	if (rc) {
		snprintf(err, errlen, "capset: %s", strerror(-rc));
		return rc;
	}

	if (prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL) != 0) {
		rc = -errno;
		snprintf(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
		return rc;
	}

	bnd_left = caps_bounding();
	log_info("caps", "dropped capabilities: %s; kept: %s; bounding set: %s%s; no_new_privs",
		 caps_format((prm | eff | inh) & ~newp, dropped, sizeof(dropped)),
		 caps_format(newp, kept, sizeof(kept)),
		 caps_format(bnd_left, bounding, sizeof(bounding)), bnd_note);
	if (err && errlen)
		err[0] = '\0';
	return 0;
}

int caps_drop_to_readers(char *err, size_t errlen)
{
	static const int keep[] = {CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE};

	return caps_drop_except(keep, sizeof(keep) / sizeof(keep[0]), err, errlen);
}
