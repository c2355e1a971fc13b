/* queue.c — bounded FIFO of events, many producers, one consumer (queue.h).
 *
 *   head ─► ev ─► ev ─► … ─► ev ◄─ tail        (linked through ev->next)
 *
 * One mutex, two condition variables. Signals are sent only when somebody waits,
 * so the uncontended path is lock + link + unlock. The consumer takes up to a
 * whole batch per lock. The "queue.length" gauge follows every change.
 *
 * Hysteresis keeps the two threads from waking each other once per event (on one
 * core that ping-pong cost more than encoding): a waiting consumer is woken when a
 * batch has gathered (wake_batch events) or, for latency, after CONSUMER_LINGER_NS;
 * blocked producers are woken when the queue has drained to half.
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "hostbeat/mem.h"
#include "hostbeat/metrics.h"
#include "shipper/queue.h"

/* How long a consumer that found a few events waits for a batch to gather. */
#define CONSUMER_LINGER_NS 20000000L /* 20 ms */

struct ship_queue {
	pthread_mutex_t lock;
	pthread_cond_t not_empty; /* consumer waits */
	pthread_cond_t not_full;  /* blocking producers wait */
	struct event *head, *tail;
	size_t len, cap;
	size_t wake_batch; /* wake a waiting consumer at this length */
	size_t high_water; /* blocking producers wait at this length (<= cap) */
	unsigned consumer_waiting, producers_waiting;
	bool closed;
	struct metric *length;
};

struct ship_queue *ship_queue_new(size_t cap)
{
	struct ship_queue *q = hb_calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->not_empty, NULL);
	pthread_cond_init(&q->not_full, NULL);
	q->cap = cap ? cap : 1;
	q->wake_batch = q->cap / 8 ? (q->cap / 8 < 256 ? q->cap / 8 : 256) : 1;
	q->high_water = q->cap;
	q->length = metrics_gauge("queue.length");
	return q;
}

void ship_queue_free(struct ship_queue *q)
{
	struct event *ev, *next;
	size_t n;

	if (!q)
		return;
	for (ev = ship_queue_take_all(q, &n); ev; ev = next) {
		next = ev->next;
		ev_pool_put(ev);
	}
	pthread_cond_destroy(&q->not_full);
	pthread_cond_destroy(&q->not_empty);
	pthread_mutex_destroy(&q->lock);
	hb_free(q);
}

int ship_queue_push(struct ship_queue *q, struct event *ev, bool block, bool *waited)
{
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	/* A blocking producer (pcap replay) waits at the high-water mark: see
	 * ship_queue_set_high_water(). Live producers never block and get the whole
	 * capacity to ride out output stalls. */
	while (!q->closed && q->len >= (block ? q->high_water : q->cap)) {
		if (!block) {
			rc = -EAGAIN;
			goto out;
		}
		if (waited)
			*waited = true;
		q->producers_waiting++;
		pthread_cond_wait(&q->not_full, &q->lock);
		q->producers_waiting--;
	}
	if (q->closed) {
		rc = -EPIPE;
		goto out;
	}
	ev->next = NULL;
	if (q->tail)
		q->tail->next = ev;
	else
		q->head = ev;
	q->tail = ev;
	q->len++;
	metric_set(q->length, q->len);
	/* The first event wakes an idle consumer, which then lingers for a batch. */
	if (q->consumer_waiting && (q->len == 1 || q->len == q->wake_batch))
		pthread_cond_signal(&q->not_empty);
out:
	pthread_mutex_unlock(&q->lock);
	return rc;
}

void ship_queue_set_high_water(struct ship_queue *q, size_t n)
{
	pthread_mutex_lock(&q->lock);
	q->high_water = n && n < q->cap ? n : q->cap;
	pthread_cond_broadcast(&q->not_full);
	pthread_mutex_unlock(&q->lock);
}

size_t ship_queue_pop(struct ship_queue *q, struct event **out, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&q->lock);
	while (!q->len && !q->closed) {
		q->consumer_waiting++;
		pthread_cond_wait(&q->not_empty, &q->lock);
		q->consumer_waiting--;
	}
	/* Something is queued: linger briefly for a batch unless producers wait. */
	if (q->len < q->wake_batch && !q->closed && !q->producers_waiting) {
		struct timespec deadline;

		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_nsec += CONSUMER_LINGER_NS;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		q->consumer_waiting++;
		while (q->len < q->wake_batch && !q->closed && !q->producers_waiting &&
		       pthread_cond_timedwait(&q->not_empty, &q->lock, &deadline) == 0)
			;
		q->consumer_waiting--;
	}
	while (n < max && q->head) {
		out[n++] = q->head;
		q->head = q->head->next;
	}
	if (!q->head)
		q->tail = NULL;
	q->len -= n;
	metric_set(q->length, q->len);
	if (n && q->producers_waiting && q->len <= q->cap / 2)
		pthread_cond_broadcast(&q->not_full);
	pthread_mutex_unlock(&q->lock);
	return n;
}

size_t ship_queue_pop_wait(struct ship_queue *q, struct event **out, size_t max, uint64_t wait_ns,
			   bool *closed)
{
	struct timespec deadline;
	size_t n = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += (time_t)(wait_ns / 1000000000ULL);
	deadline.tv_nsec += (long)(wait_ns % 1000000000ULL);
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&q->lock);
	if (wait_ns) {
		q->consumer_waiting++;
		while (!q->len && !q->closed &&
		       pthread_cond_timedwait(&q->not_empty, &q->lock, &deadline) == 0)
			;
		q->consumer_waiting--;
	}
	while (n < max && q->head) {
		out[n++] = q->head;
		q->head = q->head->next;
	}
	if (!q->head)
		q->tail = NULL;
	q->len -= n;
	metric_set(q->length, q->len);
	if (n && q->producers_waiting && q->len <= q->cap / 2)
		pthread_cond_broadcast(&q->not_full);
	if (closed)
		*closed = q->closed && !q->len;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void ship_queue_close(struct ship_queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = true;
	pthread_cond_broadcast(&q->not_empty);
	pthread_cond_broadcast(&q->not_full);
	pthread_mutex_unlock(&q->lock);
}

struct event *ship_queue_take_all(struct ship_queue *q, size_t *n)
{
	struct event *list;

	pthread_mutex_lock(&q->lock);
	list = q->head;
	*n = q->len;
	q->head = q->tail = NULL;
	q->len = 0;
	metric_set(q->length, 0);
	if (q->producers_waiting)
		pthread_cond_broadcast(&q->not_full);
	pthread_mutex_unlock(&q->lock);
	return list;
}

size_t ship_queue_len(struct ship_queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->len;
	pthread_mutex_unlock(&q->lock);
	return n;
}
