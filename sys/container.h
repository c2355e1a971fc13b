/* container.h — private to sys/container.c and its unit test: the pure parsers and
 * maths of the container metricset, and a hook to shrink its caps in tests.
 */
#ifndef HB_SYS_CONTAINER_H
#define HB_SYS_CONTAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SYS_CONTAINER_MAX 4096            /* containers whose state is kept between samples */
#define SYS_CONTAINER_MAX_DIRS 20000      /* cgroup directories visited per sample */
#define SYS_CONTAINER_MAX_DEPTH 8         /* below the hierarchy root */
#define SYS_CONTAINER_META_MAX (1u << 20) /* config.v2.json bytes read at most */

/* A memory.limit_in_bytes (v1) at or above this is "no limit": the kernel writes
 * PAGE_COUNTER_MAX pages (≈ 2^63 bytes for any page size); no real limit is 4 EiB. */
#define SYS_CONTAINER_V1_NO_LIMIT (1ull << 62)

/* The runtime a cgroup directory name belongs to, from its pattern:
 *   docker-<id>.scope, or <id> below a directory named "docker"  → "docker"
 *   cri-containerd-<id>.scope                                    → "containerd"
 *   crio-<id>.scope                                              → "cri-o"
 *   libpod-<id>.scope                                            → "podman"
 * NULL when the pattern is not one of these (a bare id below kubepods/pod<uid>).
 * `parent` is the name of the directory holding `name` ("" at the root). */
const char *sys_container_runtime(const char *name, const char *parent);

/* Is `name` a container's own cgroup directory? It must hold a container id
 * (sys_container_id()) and not be a runtime's monitor scope (crio-conmon-<id>,
 * libpod-conmon-<id>: same id, not the container). Writes the id. */
bool sys_container_dir_id(const char *name, char id[65]);

/* Flat keyed files ("key value" per line: cpu.stat, cpuacct.stat): the value of
 * the line whose first field is exactly `key`. 0, -ENOENT, or -EINVAL. */
int sys_container_flat_u64(const char *buf, size_t len, const char *key, uint64_t *out);

/* A file holding one number, or "max" (memory.max, pids.max): 0 with *out set,
 * 1 for "max" (no limit), -EINVAL. A trailing newline is allowed. */
int sys_container_limit(const char *buf, size_t len, uint64_t *out);

/* v2 io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" per device):
 * rbytes and wbytes summed over the devices. 0 or -EINVAL (nothing parsed stays 0). */
int sys_container_io_v2(const char *buf, size_t len, uint64_t *rbytes, uint64_t *wbytes);

/* v1 blkio.throttle.io_service_bytes ("8:0 Read 123" ... "Total 579"): the Read
 * and Write lines summed over the devices (the device-less "Total" line is not a
 * device). 0 or -EINVAL. */
int sys_container_blkio_v1(const char *buf, size_t len, uint64_t *rbytes, uint64_t *wbytes);

/* CPU used between two samples in cores (1.0 = one core busy): Δusage_ns / Δmono_ns.
 * -1 when there is no interval (Δmono is 0) or the usage went backwards. */
double sys_container_cpu_cores(uint64_t usage_prev, uint64_t usage_cur, uint64_t mono_prev,
			       uint64_t mono_cur);

/* Memory used as a fraction of the limit, or of the host's memory when there is no
 * limit (limit 0); -1 when neither is known. */
double sys_container_mem_pct(uint64_t usage, uint64_t limit, uint64_t mem_total);

/* Test hook: shrink the caps of a state from sys_container_metricset.create(). */
void sys_container_set_limits(void *state, size_t max_containers, size_t max_dirs);

#endif
