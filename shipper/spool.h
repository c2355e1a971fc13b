/* spool.h — the disk spool of the Elasticsearch shipper (private to shipper/).
 *
 * When the in-memory queue is full or the output is down, already-encoded documents
 * go to disk and are replayed, oldest first, when the output recovers. The spool
 * survives restarts and kill -9: a restart resumes right after the last acked
 * document (at-least-once; acked documents are never replayed).
 *
 *   <path>/spool-00000000000000000007.seg    oldest segment (acked head, then unacked)
 *   <path>/spool-00000000000000000008.seg    … up to segment_bytes each
 *   <path>/cursor                            ack position, replaced atomically
 *   <path>/spool.lock                        flock(): one process per directory
 *
 * Use from one thread only (the shipper's): appends and replay share no lock.
 *
 * Durability, by queue.spool.fsync (every append is a write() to the kernel before
 * it returns — no user-space buffer — so a kill -9 of the process never loses an
 * appended document under any policy; the policy is about power loss / OS crash):
 *   always  spool_append() returns 0 only after fdatasync(): the document is on disk.
 *   batch   documents are on disk once spool_sync() returns 0 (call it after each
 *           group of appends) and at spool_close().
 *   never   never fsync; the OS writes back when it likes.
 * spool_ack() writes the cursor file (tmp + rename); under always and batch it is
 * fsynced, file and directory, before spool_ack() returns, so an acked document is
 * not replayed even after a power loss. Under never, only after a process kill.
 *
 * Counters: "spool.appended", "spool.acked", "spool.bytes" (gauge: bytes of segment
 * files on disk), "spool.corrupt_records" (corrupt regions skipped in the middle of
 * a segment), "spool.corrupt_bytes", "spool.torn_tail_truncations" (a partial or bad
 * last record cut off at open), "spool.write_errors". A document refused by
 * spool_append() (-ENOSPC, -EMSGSIZE, I/O error) is the CALLER's to count: the
 * shipper counts it "spool.full_drops".
 */
#ifndef HOSTBEAT_SHIPPER_SPOOL_H
#define HOSTBEAT_SHIPPER_SPOOL_H

#include <stddef.h>
#include <stdint.h>

enum spool_fsync { SPOOL_FSYNC_BATCH = 0, SPOOL_FSYNC_ALWAYS, SPOOL_FSYNC_NEVER };

#define SPOOL_DEFAULT_SEGMENT_BYTES (16ULL << 20) /* 16 MiB */
#define SPOOL_DEFAULT_MAX_BYTES (1ULL << 30)      /* 1 GiB */
#define SPOOL_DEFAULT_MAX_DOC_BYTES (1U << 20)    /* 1 MiB */
#define SPOOL_DEFAULT_MAX_BATCH 4096
#define SPOOL_RECORD_HEADER 20 /* bytes on disk before each document */

/* queue.spool.*; a 0 field takes its default. */
struct spool_opts {
	uint64_t segment_bytes; /* segment_bytes: a segment is closed before it would pass this */
	uint64_t max_bytes;     /* max_bytes: segment files on disk, in total */
	uint32_t max_doc_bytes; /* max_doc_bytes: larger documents are refused */
	uint32_t max_batch;     /* most documents one spool_peek() returns */
	enum spool_fsync fsync; /* fsync: always | batch | never */
};

/* What spool_open() found and what has happened since (tests, fuzzing). Every byte
 * of every segment scanned at open is in exactly one of record_bytes, corrupt_bytes
 * and torn_bytes. */
struct spool_stats {
	uint64_t records;      /* valid records found at open (acked or not) */
	uint64_t record_bytes; /* their bytes, headers included */
	uint64_t corrupt_records, corrupt_bytes;
	uint64_t torn_tails, torn_bytes;
	uint64_t ignored_files; /* files in the directory that are not the spool's */
};

/* One document returned by spool_peek(): borrowed from the spool. */
struct spool_doc {
	const char *data;
	size_t len;
};

struct spool;

/* Opens (creates, mode 0750) the spool directory `path` and takes its lock; scans
 * every segment: checks each record's CRC32C, cuts off a torn tail (counted), skips
 * a corrupt region in the middle of a segment up to the next valid record (counted,
 * never an error), ignores files that are not the spool's (a warning). Resumes
 * after the ack position of the cursor file (a bad cursor file: a warning, replay
 * from the oldest segment). Borrows path and opts. Returns NULL with *err set:
 * -EINVAL (bad opts), -ENOTDIR (path is not a directory), -EBUSY (another process
 * holds the spool), -ENOMEM, or the errno of the failing call (-EACCES, -EROFS, -EIO…). */
struct spool *spool_open(const char *path, const struct spool_opts *opts, int *err);

/* Closes; under fsync batch, syncs first. NULL is a no-op. */
void spool_close(struct spool *s);

/* Append one document (copied; `doc` is borrowed for the call). 0, or:
 * -EMSGSIZE  len > max_doc_bytes;
 * -ENOSPC    the record would take the spool past max_bytes (or the disk is full);
 * -EIO, …    the write failed: the record is cut off again, nothing else is lost.
 * Nothing is stored unless it returns 0. */
int spool_append(struct spool *s, const void *doc, size_t len);

/* fdatasync() the segment being written (under never: a no-op). 0 or a negative errno. */
int spool_sync(struct spool *s);

/* Fill out[0..] with up to n (at most max_batch) of the oldest unacked documents, in
 * order, without removing them: a peek always starts at the ack position, so calling
 * it again without spool_ack() returns the same documents (a retry after a failed
 * bulk request). Returns how many (0: the spool is empty) or a negative errno. It
 * may return fewer than are stored (one peek reads within one segment and one read
 * buffer); peek again after the ack. out[i].data points into the spool's read
 * buffer: valid until the next spool_peek() or spool_close(). */
long spool_peek(struct spool *s, struct spool_doc *out, size_t n);

/* The first n documents of the last peek are done: they will not be returned again,
 * even after a restart (see the durability note above). Deletes segments that are
 * acked entirely. n may be smaller than the peek; acking the rest later is fine.
 * 0; -EINVAL when n exceeds what the last peek returned and is not yet acked;
 * or the errno of writing the cursor file (the ack then stands in memory only). */
int spool_ack(struct spool *s, size_t n);

/* Unacked documents / bytes of segment files on disk (acked head of the oldest
 * segment included until that segment is deleted). */
uint64_t spool_count(const struct spool *s);
uint64_t spool_bytes(const struct spool *s);
void spool_get_stats(const struct spool *s, struct spool_stats *st);

/* CRC32C (Castagnoli), software slice-by-8. Start with crc = 0; chainable:
 * spool_crc32c(spool_crc32c(0, a, n), b, m) == crc of a‖b. */
uint32_t spool_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
