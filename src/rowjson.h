/*
 * rowjson.h - turn a query result into the JSON body of a response.
 *
 * I/O-free: db.c adapts a PGresult to struct rowjson_result, so the mapping
 * is unit-tested without a server. Values arrive in PostgreSQL's text output
 * format with DateStyle=ISO and TimeZone=UTC (db.c sets both per session):
 *   int2/int4/int8/oid, float4/float8, numeric -> JSON numbers
 *     (NaN and infinities, which JSON cannot express, become strings)
 *   bool -> true/false;  json/jsonb -> embedded as is;  NULL -> null
 *   timestamptz -> RFC 3339 UTC with microseconds, "2026-11-21T19:46:00.123456Z"
 *   everything else -> a JSON string
 * Columns whose name starts with '_' are not rendered (they feed templates).
 */
#ifndef RC_ROWJSON_H
#define RC_ROWJSON_H

#include "buf.h"
#include "common.h"
#include "config.h"

#include <stdbool.h>
#include <stddef.h>

enum rowjson_kind { RJ_STRING, RJ_INT, RJ_FLOAT, RJ_BOOL, RJ_JSON, RJ_TIMESTAMPTZ };

struct rowjson_result {
    size_t nrows, ncols;
    void *ctx;
    const char *(*name)(void *ctx, size_t col);
    unsigned (*type_oid)(void *ctx, size_t col);
    /* Text value; NULL for SQL NULL. */
    const char *(*value)(void *ctx, size_t row, size_t col, size_t *len);
};

enum rowjson_kind rowjson_kind(unsigned type_oid);

/* Append one value of the given kind (val NULL = SQL NULL). */
int rowjson_value(buf *out, enum rowjson_kind kind, const char *val, size_t len) RC_MUSTCHECK;

/* Render the result in the route's shape. Returns 0 (body in out; empty for
 * RESULT_NONE), 1 when the shape needs a row and there is none (404), -1
 * when out's cap was reached. */
int rowjson_render(buf *out, enum result_shape shape, const struct rowjson_result *r) RC_MUSTCHECK;

#endif
