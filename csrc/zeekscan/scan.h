/* scan.h: the Zeek TSV tokenizer's buffers, column plan and entry point (no Python here). */
#ifndef ZEEKSCAN_SCAN_H
#define ZEEKSCAN_SCAN_H

#include <stddef.h>
#include <stdint.h>

/* Column kinds of the plan (the Python side maps Zeek types to these). */
enum zs_kind {
    ZK_TIME = 0,   /* epoch seconds -> int64 microseconds; "X+.X+" (btest mask) -> null, kept */
    ZK_UINT = 1,   /* count/port -> unsigned of `width` bytes, at most `max_digits` digits */
    ZK_INT = 2,    /* int -> signed of `width` bytes */
    ZK_DOUBLE = 3, /* double/interval -> float64 */
    ZK_BOOL = 4,   /* T/F -> bit */
    ZK_STRING = 5, /* \xNN decoded, UTF-8 checked, #empty_field -> "" */
    ZK_ADDR = 6,   /* kept as written, shape-checked */
    ZK_SET = 7,    /* split on #set_separator -> list<string> */
    ZK_NKINDS
};

/* Issue kinds, in the order the Python side names them. */
enum zs_issue { ZI_BLANK = 0, ZI_COLUMNS, ZI_VALUE, ZI_ADDRESS, ZI_MASKED, ZI_JSON, ZI_NISSUES };
#define ZS_FIRST_LINES 5

/* A growable byte buffer (malloc'd; handed to Python at the end). */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} zs_buf;

typedef struct {
    int field;       /* index among the line's fields */
    int kind;        /* enum zs_kind */
    int op;          /* TSV: the kind, ZK_UINT split by width (tsv.c) */
    int width;       /* bytes per value for ZK_UINT / ZK_INT */
    int max_digits;  /* ZK_UINT: longest digit string accepted */
    uint64_t umax;   /* ZK_UINT: largest value */
    int64_t imin, imax; /* ZK_INT: range */
    /* outputs */
    zs_buf validity, values, offsets, data, child_offsets;
    int64_t null_count;
    int64_t elements; /* ZK_SET: strings in the child array */
} zs_column;

typedef struct {
    /* conventions */
    const uint8_t *unset; size_t unset_len;
    const uint8_t *empty; size_t empty_len;
    const uint8_t *set_sep; size_t set_sep_len;
    const uint8_t *sep; size_t sep_len; /* TSV field separator, one byte or more */
    int nfields;
    const uint8_t **names; /* JSON: the key of each planned column */
    size_t *name_lens;
    int ncols;
    zs_column *cols;
    /* results */
    int64_t rows;
    zs_buf lines; /* int64 line numbers of kept rows */
    int64_t issue_count[ZI_NISSUES];
    int64_t issue_lines[ZI_NISSUES][ZS_FIRST_LINES];
    int fallback; /* 1: the plan cannot express this input exactly; use the slow path */
    int oom;      /* 1: out of memory */
} zs_scan;

/* Fill the lookup tables; call once before any scan (module init). */
void zs_init(void);

/* Parse the complete lines data[0:len) (numbered from first_line); fill s's columns. */
void zs_scan_tsv(zs_scan *s, const uint8_t *data, size_t len, int64_t first_line,
                 int64_t n_lines);
/* The same for JSON lines; columns are matched by s->names. */
void zs_scan_json(zs_scan *s, const uint8_t *data, size_t len, int64_t first_line,
                  int64_t n_lines);
void zs_scan_free(zs_scan *s);
/* Memory for column buffers (pool.c): at least n bytes (*cap: how many), or NULL; give it back
 * with zs_mem_put (which frees it or keeps it for a later zs_mem_get). */
#define ZS_POOL_MIN ((size_t)64 << 10) /* smaller blocks go straight to malloc */
void *zs_mem_get(size_t n, size_t *cap);
void zs_mem_put(void *p, size_t cap);
/* Occurrences of byte in p[0:n). */
size_t zs_count_byte(const uint8_t *p, size_t n, uint8_t byte);

#endif
