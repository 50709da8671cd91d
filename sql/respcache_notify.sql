-- respcache_notify.sql - invalidation from the database.
--
-- A trigger function that publishes cache tags on the LISTEN channel of
-- respcache (database.notify_channel, default respcache_invalidate) when
-- rows change, so that writes which bypass the API (psql, cron jobs, other
-- services, ON DELETE CASCADE) reach every respcache instance. Attach it
-- to a table with the tag templates of that table's rows:
--
--   CREATE TRIGGER users_respcache
--       AFTER INSERT OR UPDATE OR DELETE ON users
--       FOR EACH ROW EXECUTE FUNCTION respcache_notify('user:{id}');
--   CREATE TRIGGER users_respcache_truncate
--       AFTER TRUNCATE ON users
--       FOR EACH STATEMENT EXECUTE FUNCTION respcache_notify();
--
-- Each {column} of a template is filled from the row (to_jsonb(row)->>col),
-- from NEW and from OLD, so an UPDATE that moves a job from one user to
-- another invalidates both users' lists. A template whose column is NULL
-- yields no tag. An UPDATE that changes nothing publishes nothing; a
-- TRUNCATE publishes "*" (everything).
--
-- pg_notify is transactional: the notification is delivered at commit, and
-- not at all on rollback. The payload is
--   {"tags": ["user:42", ...], "ts": <clock_timestamp() in ms since epoch>,
--    "tx": "<txid_current()>.<now() in µs since epoch>"}
-- where ts lets respcache measure the delay from the change to the
-- invalidation, and tx names the transaction (its start time too, since an
-- id alone comes back after a failover or a restore), so that the
-- instances that share a Redis bump its tags once between them (the writer
-- and every listener each try; the first does it). Load this file again
-- after an upgrade: without tx every listener bumps again, which is safe
-- but throws away the answer the writer stored. A payload over
-- PostgreSQL's 8000-byte limit is replaced by one with the tags ["*"]:
-- invalidating everything is safe, failing the write is not. Another
-- channel: SET respcache.notify_channel = 'name' in the session or the
-- database (ALTER DATABASE ... SET respcache.notify_channel).
--
-- Idempotent (CREATE OR REPLACE): load it any number of times.

CREATE OR REPLACE FUNCTION respcache_notify() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    rowdata jsonb[] := ARRAY[]::jsonb[];
    r jsonb;
    tmpl text;
    tag text;
    col text;
    val text;
    tags text[] := ARRAY[]::text[];
    payload text;
    tx text := txid_current()::text || '.' ||
               floor(extract(epoch FROM now()) * 1000000)::bigint::text;
    channel text := coalesce(nullif(current_setting('respcache.notify_channel', true), ''),
                             'respcache_invalidate');
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        tags := ARRAY['*'];
    ELSE
        IF TG_OP = 'UPDATE' AND to_jsonb(NEW) = to_jsonb(OLD) THEN
            RETURN NULL;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            rowdata := rowdata || to_jsonb(NEW);
        END IF;
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            rowdata := rowdata || to_jsonb(OLD);
        END IF;
        FOREACH r IN ARRAY rowdata LOOP
            FOREACH tmpl IN ARRAY coalesce(TG_ARGV, ARRAY[]::text[]) LOOP
                tag := tmpl;
                FOR col IN
                    SELECT m[1] FROM regexp_matches(tmpl, '\{([A-Za-z_][A-Za-z0-9_]*)\}', 'g') AS m
                LOOP
                    val := r ->> col;
                    IF val IS NULL THEN
                        tag := NULL;
                        EXIT;
                    END IF;
                    tag := replace(tag, '{' || col || '}', val);
                END LOOP;
                IF tag IS NOT NULL AND tag <> '' AND NOT tag = ANY (tags) THEN
                    tags := tags || tag;
                END IF;
            END LOOP;
        END LOOP;
    END IF;
    IF cardinality(tags) = 0 THEN
        RETURN NULL;
    END IF;
    payload := json_build_object(
        'tags', tags,
        'ts', round(extract(epoch FROM clock_timestamp()) * 1000, 3),
        'tx', tx)::text;
    IF octet_length(payload) > 7900 THEN
        payload := json_build_object(
            'tags', ARRAY['*'],
            'ts', round(extract(epoch FROM clock_timestamp()) * 1000, 3),
            'tx', tx)::text;
    END IF;
    PERFORM pg_notify(channel, payload);
    RETURN NULL;
END
$fn$;

COMMENT ON FUNCTION respcache_notify() IS
    'respcache: publish cache tags (trigger arguments, {column} templates) at commit';
