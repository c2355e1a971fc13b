/* filesystem.h — private to sys/filesystem.c and its unit test: the mountinfo line
 * parser, the octal unescaping, and the seams a test uses (the statvfs call and
 * the per-sample mount cap).
 */
#ifndef HB_SYS_FILESYSTEM_H
#define HB_SYS_FILESYSTEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/statvfs.h>

#include "hostbeat/sys.h"

#define SYS_FS_MAX_MOUNTS 4096 /* mountinfo lines considered per sample */
#define SYS_FS_MAX_STUCK 64    /* statvfs calls left behind, still running */

/* One /proc/<pid>/mountinfo line (proc(5)):
 *
 *   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
 *   (1)(2)(3)   (4)   (5)      (6)       (7)   (8) (9)   (10)         (11)
 *
 *   1 mount ID   2 parent ID   3 major:minor of st_dev   4 root of the mount within
 *   its filesystem   5 mount point (relative to the reader's root)   6 per-mount
 *   options   7 zero or more optional fields "tag[:value]"   8 " - "   9 fstype
 *   ("type" or "type.subtype")   10 source ("none" when there is none)   11 super
 *   block options.
 *
 * Strings point into the parsed text; root, mount_point and source have had their
 * octal escapes (\040 space, \011 tab, \012 newline, \134 backslash) undone in
 * place, so the text must be writable. Not NUL-terminated. */
struct sys_fs_mount {
	uint64_t id, parent;
	uint64_t major, minor;
	struct sys_text root, mount_point, fstype, source;
};

/* Parse one line (its bytes are rewritten by the unescaping). 0, or -EINVAL when
 * a field is missing or malformed (*out is then unspecified). */
int sys_fs_parse_mountinfo_line(char *line, size_t len, struct sys_fs_mount *out);

/* Undo the kernel's mangle(): every '\' followed by exactly three octal digits
 * becomes that byte; anything else is kept. In place; returns the new length. */
size_t sys_fs_unescape(char *s, size_t len);

/* The statvfs call, as the metricset makes it: 0 or a negative errno. */
typedef int (*sys_fs_statvfs_fn)(const char *path, struct statvfs *out);

/* Test hooks on a state from sys_filesystem_metricset.create(): replace the
 * statvfs call (NULL restores the real one; calls already running keep the
 * function they started with), shrink the per-sample mount cap. */
void sys_fs_set_statvfs(void *state, sys_fs_statvfs_fn fn);
void sys_fs_set_max_mounts(void *state, size_t max_mounts);

#endif
