/*
 * body.h - validate a JSON request body against a route's body params and
 * turn the fields into SQL text values.
 *
 * Rules (API.md): the body must be a JSON object (400 otherwise, including
 * invalid UTF-8, trailing garbage and duplicate keys), unknown fields are
 * 422, wrong types are 422, a missing required field is 422. Strings must
 * also satisfy max_length/min_length/chars/enum (422), ints their bounds.
 * object/any fields are passed to SQL as compact JSON text; bool as
 * "true"/"false"; numbers in their JSON spelling; absent optional fields
 * without a default stay absent (SQL NULL).
 */
#ifndef RC_BODY_H
#define RC_BODY_H

#include "buf.h"
#include "common.h"
#include "router.h"

/* Parse body[0..len) for m->route and fill m->values for its body params.
 * String storage goes into `store` (which must outlive the use of m).
 * Returns 0, or an HTTP status (400 or 422) with a message in errbuf. */
int body_parse(struct router_match *m, const char *body, size_t len, buf *store,
               char *errbuf) RC_MUSTCHECK;

#endif
