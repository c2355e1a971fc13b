/* test_caps.c — core/caps.c: every drop happens in a forked child (capabilities are
 * per thread and cannot be regained), which reports /proc/self/status and what it
 * could still do through a pipe; the parent asserts. The parts that need privileges
 * skip when the test does not run as root with the capabilities they take away. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/if_ether.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostbeat/caps.h"
#include "hostbeat/log.h"

#define BIT(c) ((uint64_t)1 << (c))
#define READERS (BIT(CAP_DAC_READ_SEARCH) | BIT(CAP_SYS_PTRACE))

/* What the child could read of another process after the drop (0 = it could, else
 * the errno). */
struct probe {
	int exe; /* readlink /proc/PID/exe */
	char exe_path[256];
	int fd_dir;  /* open /proc/PID/fd (mode 0500, owner = the process's uid) */
	int fd_link; /* readlink /proc/PID/fd/N (ptrace access check) */
};

/* The process the probes look at besides the parent: uid/gid 65534, dumpable like any
 * program a user started, holding `fd` open until the test ends. */
struct target {
	pid_t pid;
	int fd;   /* its open fd number */
	int hold; /* write end: closing it ends the target */
};

static struct target other = {-1, -1, -1};

/* What the child saw after the drop. */
struct report {
	int rc;                           /* caps_drop_except() */
	char err[256];                    /* its message */
	uint64_t eff, prm, inh, bnd, amb; /* /proc/self/status Cap* */
	int nnp;                          /* NoNewPrivs */
	int raw_errno;                    /* socket(AF_PACKET, SOCK_RAW): 0 = opened */
	struct probe parent, other;       /* the (more privileged) parent; a "nobody" process */
	bool have_raw, have_ptrace;       /* caps_have() */
};

enum prep { PREP_NONE, PREP_NO_SETPCAP, PREP_THREAD };

static uint64_t status_hex(const char *buf, const char *key)
{
	const char *p = strstr(buf, key);

	return p ? strtoull(p + strlen(key), NULL, 16) : UINT64_MAX;
}

static void read_status(struct report *r)
{
	char buf[8192];
	ssize_t got;
	size_t len = 0;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	const char *p;

	if (fd < 0)
		return;
	while (len < sizeof(buf) - 1 && (got = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)got;
	close(fd);
	buf[len] = '\0';
	r->eff = status_hex(buf, "\nCapEff:");
	r->prm = status_hex(buf, "\nCapPrm:");
	r->inh = status_hex(buf, "\nCapInh:");
	r->bnd = status_hex(buf, "\nCapBnd:");
	r->amb = status_hex(buf, "\nCapAmb:");
	p = strstr(buf, "\nNoNewPrivs:");
	r->nnp = p ? atoi(p + strlen("\nNoNewPrivs:")) : -1;
}

static void *idle_thread(void *arg)
{
	char c;

	(void)read(*(int *)arg, &c, 1); /* until the pipe closes */
	return NULL;
}

/* Keep every capability but CAP_SETPCAP (what the compose file gives the container). */
static int drop_setpcap(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) != 0)
		return -1;
	d[0].effective &= ~(uint32_t)BIT(CAP_SETPCAP);
	d[0].permitted &= ~(uint32_t)BIT(CAP_SETPCAP);
	return (int)syscall(SYS_capset, &h, d);
}

static void probe(pid_t pid, int fd_no, struct probe *p)
{
	char path[64], link[256];
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	len = readlink(path, p->exe_path, sizeof(p->exe_path) - 1);
	p->exe = len < 0 ? errno : 0;
	if (len >= 0)
		p->exe_path[len] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	p->fd_dir = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd_no);
	p->fd_link = readlink(path, link, sizeof(link)) < 0 ? errno : 0;
}

/* parent_fd: the read end of the report pipe, open in the parent while it waits. */
static void child(int out, int parent_fd, const int *keep, size_t n, enum prep prep)
{
	struct report r;
	int fd, idle[2] = {-1, -1};
	pthread_t t;

	memset(&r, 0, sizeof(r));
	if (prep == PREP_NO_SETPCAP && drop_setpcap() != 0)
		_exit(3);
	if (prep == PREP_THREAD &&
	    (pipe(idle) != 0 || pthread_create(&t, NULL, idle_thread, &idle[0]) != 0))
		_exit(4);
	r.rc = caps_drop_except(keep, n, r.err, sizeof(r.err));
	read_status(&r);

	fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	r.raw_errno = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	probe(getppid(), parent_fd, &r.parent);
	if (other.pid > 0)
		probe(other.pid, other.fd, &r.other);
	r.have_raw = caps_have(CAP_NET_RAW);
	r.have_ptrace = caps_have(CAP_SYS_PTRACE);

	if (write(out, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(2);
	if (prep == PREP_THREAD) {
		close(idle[1]);
		pthread_join(t, NULL);
	}
	_exit(0);
}

static void run_child(const int *keep, size_t n, enum prep prep, struct report *r)
{
	int p[2], status;
	pid_t pid;
	size_t got = 0;
	ssize_t k;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		child(p[1], p[0], keep, n, prep);
	}
	close(p[1]);
	while (got < sizeof(*r) && (k = read(p[0], (char *)r + got, sizeof(*r) - got)) > 0)
		got += (size_t)k;
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(got, sizeof(*r));
}

/* Root with the capabilities a test takes away, else skip. */
static void need_root_with(uint64_t caps)
{
	uint64_t eff = 0;

	if (geteuid() != 0 || caps_get(&eff, NULL, NULL) != 0 || (eff & caps) != caps)
		skip();
}

static char self_exe[256];

static int start_other(void **state)
{
	int hold[2], ready[2];
	char c = 0;

	(void)state;
	if (geteuid() != 0 || pipe(hold) != 0)
		return 0; /* the tests that need it skip */
	if (pipe(ready) != 0)
		return -1;
	other.pid = fork();
	if (other.pid < 0)
		return -1;
	if (other.pid == 0) {
		close(hold[1]);
		close(ready[0]);
		if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0 ||
		    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		while (read(hold[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(hold[0]);
	close(ready[1]);
	other.fd = hold[0];
	other.hold = hold[1];
	if (read(ready[0], &c, 1) != 1) {
		close(ready[0]);
		return -1;
	}
	close(ready[0]);
	return 0;
}

static int stop_other(void **state)
{
	(void)state;
	if (other.pid > 0) {
		close(other.hold);
		waitpid(other.pid, NULL, 0);
	}
	return 0;
}

static void test_format(void **state)
{
	char buf[64], tiny[8];

	(void)state;
	assert_string_equal(caps_format(BIT(CAP_NET_ADMIN) | BIT(CAP_NET_RAW), buf, sizeof(buf)),
			    "net_admin,net_raw");
	assert_string_equal(caps_format(0, buf, sizeof(buf)), "none");
	assert_string_equal(caps_format(BIT(CAP_CHOWN) | BIT(41), buf, sizeof(buf)),
			    "chown,cap_41");
	assert_string_equal(caps_format(BIT(CAP_CHECKPOINT_RESTORE), buf, sizeof(buf)),
			    "checkpoint_restore");
	/* truncated, still terminated */
	caps_format(BIT(CAP_DAC_READ_SEARCH) | BIT(CAP_SYS_PTRACE), tiny, sizeof(tiny));
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
	assert_memory_equal(tiny, "dac_rea", 7);
}

static void test_have_matches_status(void **state)
{
	struct report r;
	uint64_t eff, prm, inh;

	(void)state;
	memset(&r, 0, sizeof(r));
	read_status(&r);
	assert_int_equal(caps_get(&eff, &prm, &inh), 0);
	assert_int_equal(eff, r.eff);
	assert_int_equal(prm, r.prm);
	assert_int_equal(inh, r.inh);
	assert_int_equal(caps_bounding(), r.bnd);
	assert_int_equal(caps_have(CAP_NET_RAW), (r.eff & BIT(CAP_NET_RAW)) != 0);
	assert_false(caps_have(-1));
	assert_false(caps_have(64));
}

static void test_out_of_range_changes_nothing(void **state)
{
	static const int bad[] = {CAP_SYS_PTRACE, 64};
	static const int neg[] = {-1};
	char err[128];
	uint64_t eff_before, eff_after;

	(void)state;
	assert_int_equal(caps_get(&eff_before, NULL, NULL), 0);
	assert_int_equal(caps_drop_except(bad, 2, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "64"));
	assert_int_equal(caps_drop_except(neg, 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(caps_get(&eff_after, NULL, NULL), 0);
	assert_int_equal(eff_after, eff_before);
	assert_int_equal(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), 0);
}

/* With a second thread running the drop would leave that thread privileged. */
static void test_refuses_with_threads(void **state)
{
	static const int keep[] = {CAP_SYS_PTRACE};
	struct report before, r;

	(void)state;
	memset(&before, 0, sizeof(before));
	read_status(&before);
	run_child(keep, 1, PREP_THREAD, &r);
	assert_int_equal(r.rc, -EBUSY);
	assert_non_null(strstr(r.err, "2 threads"));
	assert_int_equal(r.eff, before.eff);
	assert_int_equal(r.prm, before.prm);
	assert_int_equal(r.bnd, before.bnd);
	assert_int_equal(r.nnp, 0);
}

/* Any user: the drop succeeds, no_new_privs is set, nothing is gained. */
static void test_drop_sets_no_new_privs(void **state)
{
	static const int keep[] = {CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE};
	struct report before, r;

	(void)state;
	memset(&before, 0, sizeof(before));
	read_status(&before);
	run_child(keep, 2, PREP_NONE, &r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.err, "");
	assert_int_equal(r.nnp, 1);
	assert_int_equal(r.prm, before.prm & READERS);
	assert_int_equal(r.eff, before.prm & READERS);
	assert_int_equal(r.inh, 0);
	assert_int_equal(r.amb, 0);
	assert_false(r.have_raw);
}

/* Root: exactly the readers are left in every set; raw sockets are refused while
 * /proc/<pid>/exe and /fd of a more privileged process are still readable. */
static void test_drop_to_readers_as_root(void **state)
{
	static const int keep[] = {CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE};
	struct report r;

	(void)state;
	need_root_with(BIT(CAP_SETPCAP) | BIT(CAP_NET_RAW) | READERS | BIT(CAP_SYS_ADMIN));
	run_child(keep, 2, PREP_NONE, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.eff, READERS);
	assert_int_equal(r.prm, READERS);
	assert_int_equal(r.bnd, READERS);
	assert_int_equal(r.inh, 0);
	assert_int_equal(r.amb, 0);
	assert_int_equal(r.nnp, 1);
	assert_int_equal(r.raw_errno, EPERM);
	assert_false(r.have_raw);
	assert_true(r.have_ptrace);
	/* the parent: root with every capability */
	assert_int_equal(r.parent.exe, 0);
	assert_string_equal(r.parent.exe_path, self_exe);
	assert_int_equal(r.parent.fd_dir, 0);
	assert_int_equal(r.parent.fd_link, 0);
	/* another user's process: DAC_READ_SEARCH opens its fd/, SYS_PTRACE reads links */
	assert_true(other.pid > 0);
	assert_int_equal(r.other.exe, 0);
	assert_string_equal(r.other.exe_path, self_exe);
	assert_int_equal(r.other.fd_dir, 0);
	assert_int_equal(r.other.fd_link, 0);
}

/* Root keeping nothing: the same reads of the (more privileged) parent now fail —
 * this is what SYS_PTRACE is kept for. */
static void test_drop_all_as_root(void **state)
{
	struct report r;

	(void)state;
	need_root_with(BIT(CAP_SETPCAP) | BIT(CAP_NET_RAW) | READERS | BIT(CAP_SYS_ADMIN));
	run_child(NULL, 0, PREP_NONE, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.eff, 0);
	assert_int_equal(r.prm, 0);
	assert_int_equal(r.bnd, 0);
	assert_int_equal(r.raw_errno, EPERM);
	assert_false(r.have_ptrace);
	/* the parent's fd/ is root's (the owner may open it) but the links and exe need
	 * the ptrace check: the parent holds capabilities the child does not */
	assert_int_equal(r.parent.exe, EACCES);
	assert_int_equal(r.parent.fd_dir, 0);
	assert_int_equal(r.parent.fd_link, EACCES);
	/* another user's process: nothing */
	assert_true(other.pid > 0);
	assert_int_equal(r.other.exe, EACCES);
	assert_int_equal(r.other.fd_dir, EACCES);
	assert_int_equal(r.other.fd_link, EACCES);
}

/* Both kept capabilities are needed for another user's sockets: SYS_PTRACE alone reads
 * exe but cannot enter fd/ (mode 0500, the other uid's), DAC_READ_SEARCH alone enters
 * fd/ but fails the ptrace check on each link and on exe. */
static void test_each_reader_cap_is_needed(void **state)
{
	static const int ptrace_only[] = {CAP_SYS_PTRACE};
	static const int dac_only[] = {CAP_DAC_READ_SEARCH};
	struct report r;

	(void)state;
	need_root_with(BIT(CAP_SETPCAP) | READERS);
	assert_true(other.pid > 0);
	run_child(ptrace_only, 1, PREP_NONE, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.eff, BIT(CAP_SYS_PTRACE));
	assert_int_equal(r.other.exe, 0);
	assert_int_equal(r.other.fd_dir, EACCES);
	/* the path walk through fd/ needs search permission on it first */
	assert_int_equal(r.other.fd_link, EACCES);
	run_child(dac_only, 1, PREP_NONE, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.eff, BIT(CAP_DAC_READ_SEARCH));
	assert_int_equal(r.other.exe, EACCES);
	assert_int_equal(r.other.fd_dir, 0);
	assert_int_equal(r.other.fd_link, EACCES);
}

/* Root without CAP_SETPCAP (the compose container: cap_drop ALL + four added): the
 * bounding set cannot shrink, the drop still succeeds and no_new_privs is set. */
static void test_drop_without_setpcap(void **state)
{
	static const int keep[] = {CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE};
	struct report before, r;

	(void)state;
	need_root_with(BIT(CAP_SETPCAP) | BIT(CAP_NET_RAW) | READERS);
	memset(&before, 0, sizeof(before));
	read_status(&before);
	run_child(keep, 2, PREP_NO_SETPCAP, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.eff, READERS);
	assert_int_equal(r.prm, READERS);
	assert_int_equal(r.bnd, before.bnd); /* unchanged */
	assert_int_equal(r.nnp, 1);
	assert_int_equal(r.raw_errno, EPERM);
	assert_int_equal(r.parent.exe, 0);
	assert_int_equal(r.other.fd_link, 0);
}

/* Root's execve() normally refills permitted from the bounding set; after the drop a
 * program the child runs has nothing beyond the kept set. */
static void test_execve_regains_nothing(void **state)
{
	static const int keep[] = {CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE};
	char buf[8192];
	char err[256];
	size_t len = 0;
	ssize_t k;
	int p[2], status;
	pid_t pid;

	(void)state;
	need_root_with(BIT(CAP_SETPCAP) | BIT(CAP_NET_RAW) | READERS);
	if (access("/bin/cat", X_OK) != 0)
		skip();
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		if (caps_drop_except(keep, 2, err, sizeof(err)) != 0 || dup2(p[1], 1) < 0)
			_exit(2);
		execl("/bin/cat", "cat", "/proc/self/status", (char *)NULL);
		_exit(3);
	}
	close(p[1]);
	while (len < sizeof(buf) - 1 && (k = read(p[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)k;
	close(p[0]);
	buf[len] = '\0';
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(status_hex(buf, "\nCapPrm:"), READERS);
	assert_int_equal(status_hex(buf, "\nCapEff:"), READERS);
	assert_int_equal(status_hex(buf, "\nCapBnd:"), READERS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_have_matches_status),
	    cmocka_unit_test(test_out_of_range_changes_nothing),
	    cmocka_unit_test(test_refuses_with_threads),
	    cmocka_unit_test(test_drop_sets_no_new_privs),
	    cmocka_unit_test(test_drop_to_readers_as_root),
	    cmocka_unit_test(test_drop_all_as_root),
	    cmocka_unit_test(test_each_reader_cap_is_needed),
	    cmocka_unit_test(test_drop_without_setpcap),
	    cmocka_unit_test(test_execve_regains_nothing),
	};
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);

	if (n > 0)
		self_exe[n] = '\0';
	log_init(LOG_LEVEL_WARN, NULL, true, NULL); /* the drop's info line, once per child */
	return cmocka_run_group_tests(tests, start_other, stop_other);
}
