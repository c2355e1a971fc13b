/* caps.h — give up the capabilities the agent no longer needs once its capture
 * handles are open.
 *
 * The container runs as root with NET_RAW + NET_ADMIN (AF_PACKET sockets, promiscuous
 * mode) and SYS_PTRACE + DAC_READ_SEARCH (the sampler reading /proc/<pid>/fd, exe, io
 * of other users' processes and every mount point under topbeat.hostfs). An activated
 * pcap handle keeps working without NET_RAW/NET_ADMIN, so after the last capture_open()
 * only the reading capabilities are kept (caps_drop_to_readers()).
 *
 * Dropping means: effective = permitted = (permitted ∩ kept), inheritable and ambient
 * emptied, every other capability removed from the bounding set (needs CAP_SETPCAP;
 * without it the bounding set is left as it is and the log says so), and no_new_privs
 * set, so no execve() (setuid root, file capabilities, root's implicit full set) can
 * give anything back. Uses capget/capset and prctl directly (libcap is not a project
 * dependency).
 *
 * Linux keeps capabilities per thread: a drop changes the calling thread and the
 * threads it creates afterwards, never the ones already running. caps_drop_except()
 * therefore refuses with -EBUSY while the process has more than one thread.
 */
#ifndef HOSTBEAT_CAPS_H
#define HOSTBEAT_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Keep only keep[0..n) (CAP_* numbers of <linux/capability.h>; ones the process does
 * not hold stay absent), drop everything else as described above, log one info line
 * naming what was dropped ("[caps]"). Returns 0, or a negative errno with a message
 * in err: -EBUSY (other threads exist), -EINVAL (a number out of range), the errno of
 * capget/capset/prctl. */
int caps_drop_except(const int *keep, size_t n, char *err, size_t errlen);

/* caps_drop_except() keeping CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE: what the sampler
 * (sys/) needs once the captures are open. */
int caps_drop_to_readers(char *err, size_t errlen);

/* Is `cap` in the calling thread's effective set? false on any error. */
bool caps_have(int cap);

/* The calling thread's sets as bit masks (bit N = capability N). 0 or -errno. */
int caps_get(uint64_t *effective, uint64_t *permitted, uint64_t *inheritable);

/* Bounding set as a mask (prctl PR_CAPBSET_READ for each capability the kernel knows). */
uint64_t caps_bounding(void);

/* "net_raw,net_admin" for a mask ("none" when empty; unknown bits as "cap_41").
 * Writes at most len bytes including the NUL; returns buf. */
char *caps_format(uint64_t mask, char *buf, size_t len);

#endif
