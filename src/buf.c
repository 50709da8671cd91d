/*
 * buf.c - a growable byte buffer with a hard cap.
 *
 * Structure: one heap block `data` of `alloc` bytes holding `len` bytes of
 * content followed by a NUL, so the content can be handed to C string
 * functions. The block grows geometrically (doubling, starting at 64 bytes)
 * and is never shrunk except by buf_free(); buf_reset() keeps it, so a
 * buffer reused per request stops allocating once it has warmed up.
 *
 * The cap bounds `len`, not `alloc`: an append that would take `len` past
 * `cap` fails with -1 and leaves the content exactly as it was (the block
 * may have grown, the bytes and `len` have not). Compound appends
 * (buf_json_str, buf_printf) roll back on failure so the guarantee holds for
 * them too: a caller building a JSON body can stop at the first -1 and the
 * buffer still holds the last complete piece.
 *
 * buf_json_str is the one place that turns arbitrary bytes into a JSON
 * string literal. It validates UTF-8 strictly (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF) and replaces every byte that is not
 * part of a well-formed sequence by U+FFFD, so its output is always valid
 * JSON whatever the database or the client sent.
 */
#include "buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN_ALLOC 64

void buf_init(buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap ? cap : SIZE_MAX;
}

void buf_free(buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
}

void buf_reset(buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Make room for `extra` more content bytes plus the NUL. Fails without
 * touching the buffer when len + extra would pass the cap. */
int buf_reserve(buf *b, size_t extra)
{
    size_t cap = b->cap ? b->cap : SIZE_MAX;
    if (extra > cap || b->len > cap - extra)
        return -1;
    size_t need = b->len + extra;
    if (need == SIZE_MAX)
        return -1; /* no room left for the NUL */
    need++;
    if (need <= b->alloc)
        return 0;

    size_t limit = cap == SIZE_MAX ? SIZE_MAX : cap + 1;
    size_t n = b->alloc ? b->alloc : BUF_MIN_ALLOC;
    while (n < need) {
        if (n > SIZE_MAX / 2) {
            n = need;
            break;
        }
        n *= 2;
    }
    if (n > limit)
        n = limit; /* never allocate past what the cap can use */
    char *p = realloc(b->data, n);
    if (p == NULL)
        return -1;
    if (b->data == NULL)
        p[0] = '\0';
    b->data = p;
    b->alloc = n;
    return 0;
}

int buf_append(buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_puts(buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_putc(buf *b, char c)
{
    return buf_append(b, &c, 1);
}

int buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    size_t avail = b->alloc > b->len ? b->alloc - b->len : 0;
    char *dst = avail ? b->data + b->len : NULL;

    /* First try in the space we already have; most calls fit. */
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(dst, avail, fmt, ap);
    va_end(ap);
    if (n < 0)
        goto fail;
    if ((size_t)n < avail) {
        size_t cap = b->cap ? b->cap : SIZE_MAX;
        if ((size_t)n > cap || b->len > cap - (size_t)n)
            goto fail;
        b->len += (size_t)n;
        va_end(ap2);
        return 0;
    }
    if (buf_reserve(b, (size_t)n) < 0)
        goto fail;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    b->len += (size_t)n;
    va_end(ap2);
    return 0;

fail:
    va_end(ap2);
    if (b->data)
        b->data[b->len] = '\0'; /* the first attempt may have overwritten it */
    return -1;
}

/* Length of the well-formed UTF-8 sequence starting at p[0] (a byte >=
 * 0x80), or 0 if p[0] does not start one within avail bytes. Follows the
 * table of well-formed byte sequences in Unicode chapter 3 (Table 3-7). */
static size_t utf8_seq_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t need;

    if (c < 0xC2)
        return 0; /* continuation byte or overlong 2-byte lead */
    if (c < 0xE0) {
        need = 2;
    } else if (c < 0xF0) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates D800-DFFF */
    } else if (c < 0xF5) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (avail < need)
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return need;
}

int buf_json_str(buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t start = b->len;
    size_t i = 0;

    if (buf_putc(b, '"') < 0)
        goto fail;
    while (i < n) {
        /* Copy the longest run that needs no escaping in one append. */
        size_t run = i;
        while (run < n) {
            unsigned char c = p[run];
            if (c < 0x80) {
                if (c < 0x20 || c == '"' || c == '\\')
                    break;
                run++;
            } else {
                size_t l = utf8_seq_len(p + run, n - run);
                if (l == 0)
                    break;
                run += l;
            }
        }
        if (run > i) {
            if (buf_append(b, p + i, run - i) < 0)
                goto fail;
            i = run;
            continue;
        }

        unsigned char c = p[i++];
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t elen = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            if (c < 0x20) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 0xF];
                elen = 6;
            } else {
                memcpy(esc, "\xEF\xBF\xBD", 3); /* U+FFFD for an invalid byte */
                elen = 3;
            }
            break;
        }
        if (buf_append(b, esc, elen) < 0)
            goto fail;
    }
    if (buf_putc(b, '"') < 0)
        goto fail;
    return 0;

fail:
    b->len = start;
    if (b->data)
        b->data[start] = '\0';
    return -1;
}
