/* distinct.h: distinct remote ends per tenant and window, held as sketches (sketch.h).
 *
 * A store takes the remote ends of a tenant's network transfers per hour (address hash,
 * ASN, country) and keeps, for the tenant overall and per remote country, one sketch of
 * addresses (and, overall, one of ASNs) per hour and per day, plus the union of the days
 * it has let go. From these it reports rows of counts:
 *   1h          per hour:    distinct addresses (and ASNs) seen in the hour;
 *   24h         per day:     the same over the day;
 *   7d          per window end we (a day boundary): over the days [we - 7 d, we);
 *   cumulative  per day:     how much the count since the first day grew with this day
 *                            (a running sum over the days gives the cumulative count).
 * Memory follows tenants x countries x retained hours and days, not transfers: hours
 * more than keep_hours behind the latest hour passed to ds_retire, and days more than
 * DS_KEEP_DAYS before the day keep_hours behind it, are turned into final rows and let go. A remote end that
 * arrives for a time already let go is counted in a fresh sketch whose counts are added
 * to the final rows (it may count an address twice there); with time-ordered input and
 * transfers shorter than the retention, no count is affected.
 */
#ifndef EGRESS_WINCORE_DISTINCT_H
#define EGRESS_WINCORE_DISTINCT_H

#include <stddef.h>
#include <stdint.h>

/* Days kept before the day keep_hours behind the latest hour (7-day windows reach back 7). */
#define DS_KEEP_DAYS 8

enum { DS_HOUR = 0, DS_DAY = 1, DS_WEEK = 2, DS_CUMULATIVE = 3 };

/* ds_row.flags: the store took a remote end for a time it had let go, so rows of one key
 * may repeat (their counts add up); without it, every (tenant, country, span, t) has one
 * row. Set on every row handed out, or on none. */
#define DS_REPEATS 1

/* One row of counts, as handed out: 32 bytes, little-endian as laid out. */
typedef struct {
    int32_t tenant;
    int16_t country;  /* -1: all countries (the tenant overall) */
    uint8_t span;     /* DS_HOUR .. DS_CUMULATIVE */
    uint8_t flags;    /* DS_REPEATS or 0 */
    int64_t t;        /* hour or day start; for DS_WEEK the window end */
    int64_t addrs, asns;
} ds_row;

typedef struct ds_store ds_store;

ds_store *ds_new(int64_t keep_hours);
void ds_free(ds_store *s);
/* Add one remote end of (tenant, hour); -1 when out of memory. */
int ds_add(ds_store *s, int32_t tenant, int16_t country, int64_t hour, uint64_t addr,
           int has_asn, int64_t asn);
/* ds_add of the rows [0, n) of one tenant whose remote ends fall in one hour: those with
 * flags[i] & remote, the ASN of those with flags[i] & has_asn. The same as ds_add of each
 * in turn, with fewer look-ups (rows of one tenant and hour come together). */
int ds_add_rows(ds_store *s, int32_t tenant, int64_t hour, const uint8_t *flags,
                uint8_t remote, uint8_t has_asn, const int16_t *country, const uint64_t *addr,
                const int64_t *asn, size_t n);
/* Let go of the hours and days that are old relative to latest_hour; -1: no memory. */
int ds_retire(ds_store *s, int64_t latest_hour);
/* Drop the hours and days before horizon (sketches and final rows; the 7-day rows of
 * windows ending at or before it); the unions of days let go stay. */
void ds_forget(ds_store *s, int64_t horizon);
/* The count rows of the tenants in scope (scope NULL: all), appended to *rows (realloc'd;
 * *n rows, *cap allocated): hours and days from since on, 7-day windows ending after it,
 * cumulative rows of every day, each with DS_REPEATS when keys may repeat; -1 when out of
 * memory. The live slots' rows are made by DS_THREADS threads (the same rows, in the same
 * order, as one thread makes). */
int ds_rows(ds_store *s, const int32_t *scope, size_t scope_n, int64_t since, ds_row **rows,
            size_t *n, size_t *cap);
/* Sketches held and their bytes. */
void ds_sizes(const ds_store *s, size_t *sketches, size_t *bytes);

#endif
