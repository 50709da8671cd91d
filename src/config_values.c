/*
 * config_values.c - reading config values: JSON members fetched with
 * errors that name their path ("routes[1].ttl: expected an integer from 0
 * to 31536000, got -1"), and the value rules of route params (int bounds,
 * string lengths, "chars" classes, enums, random bytes, defaults).
 *
 * Part of the config module (config.h is its contract); the helpers here
 * are shared with config.c and config_routes.c through config_internal.h.
 * Defaults are checked with the same rules a request value gets, so a
 * default can never be a value the route itself would reject.
 */
#include "config_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENUM           64
#define DEFAULT_MAX_LENGTH 1024
#define MAX_STRING_LENGTH  1048576
#define MIN_RANDOM_BYTES   16
#define MAX_RANDOM_BYTES   64

/* ---- JSON members --------------------------------------------------------- */

static int lookup(const char *const *names, const char *s)
{
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(names[i], s) == 0)
            return i;
    }
    return -1;
}

/* "one of a, b, c" into out. */
static void one_of(const char *const *names, char *out, size_t outsz)
{
    size_t o = (size_t)snprintf(out, outsz, "one of");
    for (size_t i = 0; names[i] != NULL && o < outsz; i++)
        o += (size_t)snprintf(out + o, outsz - o, "%s %s", i > 0 ? "," : "", names[i]);
}

int config_check_keys(json_t *obj, const char *pfx, const char *const *allowed, char *errbuf)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (lookup(allowed, key) < 0)
            return rc_err(errbuf, "%s.%.*s: unknown key", pfx, CONFIG_MAX_GOT, key);
    }
    return 0;
}

int config_get_str(json_t *obj, const char *pfx, const char *key, bool required, const char **out,
                   char *errbuf)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL)
        return required ? rc_err(errbuf, "%s.%s: required", pfx, key) : 0;
    if (!json_is_string(v))
        return rc_err(errbuf, "%s.%s: expected a string, got %s", pfx, key, json_type_desc(v));
    *out = json_string_value(v);
    return 0;
}

int config_get_choice(json_t *obj, const char *pfx, const char *key, bool required,
                      const char *const *names, int *idx, char *errbuf)
{
    const char *s;
    char want[128];
    *idx = -1;
    if (config_get_str(obj, pfx, key, required, &s, errbuf) < 0)
        return -1;
    if (s == NULL)
        return 0;
    if ((*idx = lookup(names, s)) < 0) {
        one_of(names, want, sizeof(want));
        return rc_err(errbuf, "%s.%s: expected %s, got \"%.*s\"", pfx, key, want, CONFIG_MAX_GOT,
                      s);
    }
    return 0;
}

int config_get_int(json_t *obj, const char *pfx, const char *key, int64_t min, int64_t max,
                   bool *present, int64_t *out, char *errbuf)
{
    json_t *v = json_object_get(obj, key);
    *present = v != NULL;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v))
        return rc_err(errbuf, "%s.%s: expected an integer, got %s", pfx, key, json_type_desc(v));
    *out = (int64_t)json_integer_value(v);
    if (*out < min || *out > max)
        return rc_err(errbuf,
                      "%s.%s: expected an integer from %" PRId64 " to %" PRId64 ", got %" PRId64,
                      pfx, key, min, max, *out);
    return 0;
}

int config_get_bool(json_t *obj, const char *pfx, const char *key, bool *present, bool *out,
                    char *errbuf)
{
    json_t *v = json_object_get(obj, key);
    *present = v != NULL;
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v))
        return rc_err(errbuf, "%s.%s: expected true or false, got %s", pfx, key, json_type_desc(v));
    *out = json_is_true(v);
    return 0;
}

int config_get_array(json_t *obj, const char *pfx, const char *key, size_t max, json_t **out,
                     char *errbuf)
{
    json_t *v = json_object_get(obj, key);
    *out = v;
    if (v == NULL)
        return 0;
    if (!json_is_array(v))
        return rc_err(errbuf, "%s.%s: expected an array, got %s", pfx, key, json_type_desc(v));
    if (json_array_size(v) > max)
        return rc_err(errbuf, "%s.%s: expected at most %zu elements, got %zu", pfx, key, max,
                      json_array_size(v));
    return 0;
}

/* ---- param value rules --------------------------------------------------- */

/* Parse a "chars" class body ("A-Za-z0-9_-") into p->chars. Ranges a-z,
 * single characters, '-' literal when first or last, backslash escapes any
 * character. ASCII only; a leading '^' (negation) is refused. */
static int parse_chars(struct route_param *p, const char *pfx, const char *cls, char *errbuf)
{
    unsigned char ch[256];
    bool esc[256];
    size_t n = 0;

    if (cls[0] == '\0')
        return rc_err(errbuf, "%s.chars: expected a non-empty character class", pfx);
    if (cls[0] == '^')
        return rc_err(errbuf,
                      "%s.chars: negated classes are not supported (write \\\\^ for a "
                      "literal '^')",
                      pfx);
    for (const char *s = cls; *s != '\0'; s++) {
        if (n == sizeof(ch))
            return rc_err(errbuf, "%s.chars: longer than %zu characters", pfx, sizeof(ch));
        esc[n] = *s == '\\';
        if (esc[n] && *++s == '\0')
            return rc_err(errbuf, "%s.chars: trailing backslash", pfx);
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return rc_err(errbuf, "%s.chars: only printable ASCII characters are supported", pfx);
        ch[n++] = (unsigned char)*s;
    }
    memset(p->chars, 0, sizeof(p->chars));
    for (size_t i = 0; i < n;) {
        unsigned lo = ch[i], hi = ch[i];
        if (i + 2 < n && ch[i + 1] == '-' && !esc[i + 1]) {
            hi = ch[i + 2];
            if (lo > hi)
                return rc_err(errbuf, "%s.chars: range %c-%c is reversed", pfx, (int)lo, (int)hi);
            i += 3;
        } else if (ch[i] == '-' && !esc[i] && i != 0 && i != n - 1) {
            return rc_err(errbuf,
                          "%s.chars: '-' must be first, last or escaped outside a range in "
                          "\"%.*s\"",
                          pfx, CONFIG_MAX_GOT, cls);
        } else {
            i++;
        }
        for (unsigned c = lo; c <= hi; c++)
            p->chars[c >> 3] |= (uint8_t)(1u << (c & 7));
    }
    p->has_chars = true;
    return 0;
}

/* Does s[0..n) satisfy p's string rules? (Enum only once p->n_enum is set.)
 * Returns 0, or -1 with what was expected in why. */
static int string_ok(const struct route_param *p, const char *s, size_t n, char *why, size_t whysz)
{
    if (n < p->min_length) {
        snprintf(why, whysz, "expected a string of at least %zu bytes", p->min_length);
        return -1;
    }
    if (n > p->max_length) {
        snprintf(why, whysz, "expected a string of at most %zu bytes", p->max_length);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!config_char_allowed(p, (unsigned char)s[i])) {
            snprintf(why, whysz, "byte %zu (0x%02x) is not allowed by chars", i,
                     (unsigned char)s[i]);
            return -1;
        }
    }
    if (p->n_enum == 0)
        return 0;
    for (size_t i = 0; i < p->n_enum; i++) {
        if (strlen(p->enum_values[i]) == n && memcmp(p->enum_values[i], s, n) == 0)
            return 0;
    }
    size_t o = (size_t)snprintf(why, whysz, "expected one of");
    for (size_t i = 0; i < p->n_enum && o < whysz; i++)
        o += (size_t)snprintf(why + o, whysz - o, "%s %s", i > 0 ? "," : "", p->enum_values[i]);
    return -1;
}

/* Shortest "%.Ng" spelling of d that reads back as d. */
static void format_real(double d, char *out, size_t outsz)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, outsz, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            return;
    }
}

/* Check a "default" against p's own rules and render it as SQL text. */
int config_param_default(struct route_param *p, const char *pfx, json_t *v, char *errbuf)
{
    char why[128], text[64];
    const char *t = text;
    char *dumped = NULL;

    switch (p->type) {
    case PARAM_INT:
        if (!json_is_integer(v))
            return rc_err(errbuf, "%s.default: expected an integer, got %s", pfx,
                          json_type_desc(v));
        if (json_integer_value(v) < p->min || json_integer_value(v) > p->max)
            return rc_err(errbuf,
                          "%s.default: expected an integer from %" PRId64 " to %" PRId64
                          " (min/max), got %" PRId64,
                          pfx, p->min, p->max, (int64_t)json_integer_value(v));
        snprintf(text, sizeof(text), "%" PRId64, (int64_t)json_integer_value(v));
        break;
    case PARAM_STRING:
        if (!json_is_string(v))
            return rc_err(errbuf, "%s.default: expected a string, got %s", pfx, json_type_desc(v));
        if (string_ok(p, json_string_value(v), json_string_length(v), why, sizeof(why)) < 0)
            return rc_err(errbuf, "%s.default: %s", pfx, why);
        t = json_string_value(v);
        break;
    case PARAM_BOOL:
        if (!json_is_boolean(v))
            return rc_err(errbuf, "%s.default: expected true or false, got %s", pfx,
                          json_type_desc(v));
        t = json_is_true(v) ? "true" : "false";
        break;
    case PARAM_NUMBER:
        if (!json_is_number(v))
            return rc_err(errbuf, "%s.default: expected a number, got %s", pfx, json_type_desc(v));
        if (json_is_integer(v))
            snprintf(text, sizeof(text), "%" PRId64, (int64_t)json_integer_value(v));
        else
            format_real(json_real_value(v), text, sizeof(text));
        break;
    case PARAM_OBJECT:
    case PARAM_ANY:
        if (p->type == PARAM_OBJECT && !json_is_object(v))
            return rc_err(errbuf, "%s.default: expected an object, got %s", pfx, json_type_desc(v));
        if ((t = dumped = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL)
            return rc_err(errbuf, "out of memory");
        break;
    }
    p->default_text = strdup(t);
    free(dumped);
    if (p->default_text == NULL)
        return rc_err(errbuf, "out of memory");
    p->has_default = true;
    return 0;
}

static int parse_enum(struct route_param *p, const char *pfx, json_t *arr, char *errbuf)
{
    struct route_param rules = *p; /* length and chars, without the enum itself */
    size_t n;
    char why[128];

    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return rc_err(errbuf, "%s.enum: expected a non-empty array of strings", pfx);
    if ((n = json_array_size(arr)) > MAX_ENUM)
        return rc_err(errbuf, "%s.enum: at most %d values", pfx, MAX_ENUM);
    if ((p->enum_values = calloc(n, sizeof(char *))) == NULL)
        return rc_err(errbuf, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v))
            return rc_err(errbuf, "%s.enum[%zu]: expected a string, got %s", pfx, i,
                          json_type_desc(v));
        if (string_ok(&rules, json_string_value(v), json_string_length(v), why, sizeof(why)) < 0)
            return rc_err(errbuf, "%s.enum[%zu]: %s", pfx, i, why);
        for (size_t k = 0; k < i; k++) {
            if (strcmp(p->enum_values[k], json_string_value(v)) == 0)
                return rc_err(errbuf, "%s.enum[%zu]: duplicate value \"%.*s\"", pfx, i,
                              CONFIG_MAX_GOT, json_string_value(v));
        }
        if ((p->enum_values[i] = strdup(json_string_value(v))) == NULL)
            return rc_err(errbuf, "out of memory");
        p->n_enum = i + 1;
    }
    return 0;
}

/* min/max (int), min_length/max_length/chars/enum (string), bytes (random). */
int config_param_rules(struct route_param *p, const char *pfx, json_t *o, char *errbuf)
{
    bool has_min, has_max, has;
    int64_t v = 0;

    if (p->type != PARAM_INT && (json_object_get(o, "min") || json_object_get(o, "max")))
        return rc_err(errbuf, "%s.%s: only int params have min and max", pfx,
                      json_object_get(o, "min") ? "min" : "max");
    p->min = p->from == PARAM_FROM_PATH ? 1 : INT64_MIN;
    p->max = INT64_MAX;
    if (config_get_int(o, pfx, "min", INT64_MIN, INT64_MAX, &has_min, &p->min, errbuf) < 0 ||
        config_get_int(o, pfx, "max", INT64_MIN, INT64_MAX, &has_max, &p->max, errbuf) < 0)
        return -1;
    if (p->max < p->min) /* only possible with an explicit max */
        return rc_err(errbuf, "%s.max: expected an integer >= min (%" PRId64 "), got %" PRId64, pfx,
                      p->min, p->max);

    static const char *const str_keys[] = {"min_length", "max_length", "chars", "enum"};
    for (size_t i = 0; i < RC_ARRAY_LEN(str_keys); i++) {
        if (p->type != PARAM_STRING && json_object_get(o, str_keys[i]))
            return rc_err(errbuf, "%s.%s: only string params have %s", pfx, str_keys[i],
                          str_keys[i]);
    }
    p->max_length = DEFAULT_MAX_LENGTH;
    if (config_get_int(o, pfx, "max_length", 1, MAX_STRING_LENGTH, &has, &v, errbuf) < 0)
        return -1;
    if (has)
        p->max_length = (size_t)v;
    if (config_get_int(o, pfx, "min_length", 0, MAX_STRING_LENGTH, &has, &v, errbuf) < 0)
        return -1;
    if (has && (size_t)v > p->max_length)
        return rc_err(errbuf,
                      "%s.min_length: expected an integer <= max_length (%zu), got %" PRId64, pfx,
                      p->max_length, v);
    if (has)
        p->min_length = (size_t)v;
    json_t *chars = json_object_get(o, "chars");
    if (chars != NULL) {
        if (!json_is_string(chars))
            return rc_err(errbuf, "%s.chars: expected a string, got %s", pfx,
                          json_type_desc(chars));
        if (parse_chars(p, pfx, json_string_value(chars), errbuf) < 0)
            return -1;
    }
    if (json_object_get(o, "enum") && parse_enum(p, pfx, json_object_get(o, "enum"), errbuf) < 0)
        return -1;

    if (p->from != PARAM_FROM_RANDOM) {
        if (json_object_get(o, "bytes"))
            return rc_err(errbuf, "%s.bytes: only random params have bytes", pfx);
        return 0;
    }
    if (config_get_int(o, pfx, "bytes", MIN_RANDOM_BYTES, MAX_RANDOM_BYTES, &has, &v, errbuf) < 0)
        return -1;
    if (!has)
        return rc_err(errbuf, "%s.bytes: required for random params (%d to %d)", pfx,
                      MIN_RANDOM_BYTES, MAX_RANDOM_BYTES);
    p->random_bytes = (size_t)v;
    return 0;
}
