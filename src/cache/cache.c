/*
 * cache.c - what every provider shares: releasing a handle, and the
 * choice between bump_tags and bump_tags_once.
 *
 * A provider's create function returns a malloc'd struct cache whose `self`
 * is the provider's own state. cache_free() lets the provider tear its state
 * down through ops->close, then frees the handle itself, so callers free
 * every provider the same way and never learn which one they held.
 */
#include "cache.h"

#include <stdlib.h>

void cache_free(struct cache *c)
{
    if (c == NULL)
        return;
    if (c->ops && c->ops->close)
        c->ops->close(c->self);
    free(c);
}

int cache_bump_once(struct cache *c, const struct rc_str *tags, size_t ntags,
                    const struct rc_str *token)
{
    if (token != NULL && token->len > 0 && c->ops->bump_tags_once != NULL)
        return c->ops->bump_tags_once(c->self, tags, ntags, token);
    return c->ops->bump_tags(c->self, tags, ntags);
}
