/*
 * json_util.h - small helpers over jansson shared by the modules that read
 * JSON (config files, request bodies).
 */
#ifndef RC_JSON_UTIL_H
#define RC_JSON_UTIL_H

#include <jansson.h>

/* "an object", "an array", "a string", "an integer", "a number with a
 * fraction", "a boolean" or "null": for "expected X, got Y" messages. */
const char *json_type_desc(const json_t *v);

#endif
