/* self.c — the agent's own CPU, memory and threads for the self-metrics event, read
 * with libproc2. This is where libproc2 fits: the agent's own process is always in
 * the agent's own /proc (never under topbeat.hostfs), which is the only /proc
 * libproc2 can read.
 *
 * Gauges: "self.cpu.user_ms", "self.cpu.system_ms", "self.memory.rss_bytes",
 * "self.threads", refreshed by sys_self_update() before each self-metrics event.
 */
#include <errno.h>
#include <libproc2/pids.h>
#include <unistd.h>

#include "hostbeat/log.h"
#include "hostbeat/metrics.h"
#include "hostbeat/sys.h"

enum self_item { SELF_UTIME, SELF_STIME, SELF_RSS_KIB, SELF_THREADS };

static enum pids_item self_items[] = {PIDS_TICS_USER, PIDS_TICS_SYSTEM, PIDS_VM_RSS, PIDS_NLWP};

int sys_self_update(void)
{
	struct pids_info *info = NULL;
	struct pids_stack *me;
	long hz = sysconf(_SC_CLK_TCK);
	int rc = 0;

	if (procps_pids_new(&info, self_items, sizeof(self_items) / sizeof(self_items[0])) < 0)
		return -ENOMEM;
	/* return_self = 1: the stack of the calling process, or NULL */
	me = fatal_proc_unmounted(info, 1);
	if (!me) {
		rc = -ENOENT;
		goto out;
	}
	if (hz <= 0)
		hz = 100;
	metric_set(metrics_gauge("self.cpu.user_ms"),
		   PIDS_VAL(SELF_UTIME, ull_int, me, info) * 1000 / (unsigned long long)hz);
	metric_set(metrics_gauge("self.cpu.system_ms"),
		   PIDS_VAL(SELF_STIME, ull_int, me, info) * 1000 / (unsigned long long)hz);
	metric_set(metrics_gauge("self.memory.rss_bytes"),
		   (uint64_t)PIDS_VAL(SELF_RSS_KIB, ul_int, me, info) * 1024);
	metric_set(metrics_gauge("self.threads"),
		   (uint64_t)PIDS_VAL(SELF_THREADS, s_int, me, info));
out:
	procps_pids_unref(&info);
	return rc;
}
