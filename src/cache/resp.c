/*
 * resp.c - RESP2 command encoding (resp.h): the exact size first, one
 * buf_reserve, then plain copies; lengths in decimal without printf.
 */
#include "resp.h"

#include <stdint.h>
#include <string.h>

static size_t digits(size_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* Write '<c><v>\r\n' at p (exactly 3 + digits(v) bytes); returns p past it. */
static char *put_head(char *p, char c, size_t v)
{
    size_t n = digits(v);
    *p = c;
    for (size_t i = n; i > 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    p[n + 1] = '\r';
    p[n + 2] = '\n';
    return p + n + 3;
}

int resp_command(buf *out, int argc, const char *const *argv, const size_t *lens)
{
    size_t need, one;
    char *p;

    if (argc < 1)
        return -1;
    need = 3 + digits((size_t)argc);
    for (int i = 0; i < argc; i++) {
        one = 5 + digits(lens[i]);
        if (lens[i] > SIZE_MAX - one || need > SIZE_MAX - one - lens[i])
            return -1;
        need += one + lens[i];
    }
    if (buf_reserve(out, need) < 0)
        return -1;
    p = put_head(out->data + out->len, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        p = put_head(p, '$', lens[i]);
        if (lens[i] > 0)
            memcpy(p, argv[i], lens[i]);
        p += lens[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    out->len += need;
    out->data[out->len] = '\0'; /* buf_reserve kept room for it */
    return 0;
}
