/*
 * config_internal.h - what the config module's files share with each other
 * (config.c, config_routes.c, config_values.c). Nothing outside the module
 * includes it: config.h is the module's contract.
 *
 * Every function that reads JSON reports errors as "<pfx>.<key>: <what was
 * expected>, got <what was there>" in errbuf and returns -1.
 */
#ifndef RC_CONFIG_INTERNAL_H
#define RC_CONFIG_INTERNAL_H

#include "config.h"
#include "json_util.h"

#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_GOT 64 /* bytes of a bad value echoed in a message */

/* config_routes.c: parse and validate the "routes" array into cfg->routes.
 * The cache settings must be final: route TTLs default to them. */
int config_routes_parse(struct rc_config *cfg, json_t *routes, char *errbuf) RC_MUSTCHECK;

/* Every key of obj must be in allowed (NULL-terminated). */
int config_check_keys(json_t *obj, const char *pfx, const char *const *allowed,
                      char *errbuf) RC_MUSTCHECK;
/* String member; *out = NULL when absent (an error if required). */
int config_get_str(json_t *obj, const char *pfx, const char *key, bool required, const char **out,
                   char *errbuf) RC_MUSTCHECK;
/* String member that must be one of names; *idx = its index, -1 if absent. */
int config_get_choice(json_t *obj, const char *pfx, const char *key, bool required,
                      const char *const *names, int *idx, char *errbuf) RC_MUSTCHECK;
/* Integer member within [min, max]; *out untouched when absent. */
int config_get_int(json_t *obj, const char *pfx, const char *key, int64_t min, int64_t max,
                   bool *present, int64_t *out, char *errbuf) RC_MUSTCHECK;
int config_get_bool(json_t *obj, const char *pfx, const char *key, bool *present, bool *out,
                    char *errbuf) RC_MUSTCHECK;
/* Array member of at most max elements; *out = NULL when absent. */
int config_get_array(json_t *obj, const char *pfx, const char *key, size_t max, json_t **out,
                     char *errbuf) RC_MUSTCHECK;

/* config_fresh.c: "entities" (before the routes), each GET route's ttl,
 * negative_ttl and stale windows from its own keys in o, its tags'
 * entities and the cache defaults (after its templates), and "warm" (after
 * the routes). entities and warm may be NULL (absent). */
int config_entities_parse(struct rc_config *cfg, json_t *entities, char *errbuf) RC_MUSTCHECK;
int config_route_windows(struct rc_config *cfg, struct route *r, const char *pfx, json_t *o,
                         char *errbuf) RC_MUSTCHECK;
int config_warm_parse(struct rc_config *cfg, json_t *warm, char *errbuf) RC_MUSTCHECK;
void config_fresh_free(struct rc_config *cfg);

/* config_values.c: the value rules of param object o (whose name, from and
 * type are already set in p): min/max (int), min_length/max_length/chars/
 * enum (string), bytes (random). Keys that do not fit p's type are errors. */
int config_param_rules(struct route_param *p, const char *pfx, json_t *o,
                       char *errbuf) RC_MUSTCHECK;
/* Check a "default" value against p's own rules and store it as SQL text
 * in p->default_text. */
int config_param_default(struct route_param *p, const char *pfx, json_t *v,
                         char *errbuf) RC_MUSTCHECK;

#endif
