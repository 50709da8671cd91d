/*
 * notify.c - parse the invalidation payloads described in notify.h.
 *
 * Strict on purpose: a payload that does not say exactly which tags
 * changed is refused whole, and the listener then bumps the global tag.
 * Invalidating too much costs misses; invalidating too little serves
 * stale data as fresh.
 */
#include "notify.h"

#include <jansson.h>
#include <stdbool.h>
#include <string.h>

/* A transaction name: 1..NOTIFY_MAX_TX of [0-9A-Za-z._-]. */
static bool tx_ok(json_t *tx)
{
    const char *s = json_string_value(tx);
    size_t n = json_is_string(tx) ? json_string_length(tx) : 0;

    if (n == 0 || n > NOTIFY_MAX_TX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= 'a' && s[i] <= 'z') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

int notify_parse(const char *payload, struct notify_msg *out)
{
    json_error_t jerr;
    json_t *root, *tags, *ts, *tx;
    size_t used = 0, i;
    int rc = -1;

    out->ntags = 0;
    out->ts_ms = -1;
    out->txlen = 0;
    out->tx[0] = '\0';
    if (payload == NULL || strlen(payload) > NOTIFY_MAX_PAYLOAD)
        return -1;
    root = json_loads(payload, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return -1;
    tags = json_object_get(root, "tags");
    ts = json_object_get(root, "ts");
    tx = json_object_get(root, "tx");
    if (!json_is_object(root) || !json_is_array(tags) || json_array_size(tags) == 0 ||
        json_array_size(tags) > NOTIFY_MAX_TAGS)
        goto out;
    for (i = 0; i < json_array_size(tags); i++) {
        json_t *t = json_array_get(tags, i);
        const char *s = json_string_value(t);
        size_t n = json_is_string(t) ? json_string_length(t) : 0;
        if (n == 0 || n > NOTIFY_MAX_TAG_LEN || used + n + 1 > sizeof(out->buf))
            goto out;
        for (size_t k = 0; k < n; k++)
            if ((unsigned char)s[k] < 0x20 || s[k] == 0x7f)
                goto out;
        memcpy(out->buf + used, s, n);
        out->buf[used + n] = '\0';
        out->tags[out->ntags].s = out->buf + used;
        out->tags[out->ntags].len = n;
        out->ntags++;
        used += n + 1;
    }
    if (json_is_number(ts) && json_number_value(ts) > 0)
        out->ts_ms = json_number_value(ts);
    if (tx_ok(tx)) { /* else: an older trigger, or not ours to trust */
        out->txlen = json_string_length(tx);
        memcpy(out->tx, json_string_value(tx), out->txlen + 1);
    }
    rc = 0;
out:
    if (rc < 0)
        out->ntags = 0;
    json_decref(root);
    return rc;
}
