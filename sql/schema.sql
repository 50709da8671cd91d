-- schema.sql - tables of the respcache demo application (see API.md).
--
-- Idempotent: every object is dropped (with CASCADE) and created again, so
--   psql -X -v ON_ERROR_STOP=1 -d respcache -f sql/schema.sql
-- resets the demo to empty tables at any time. Load sql/demo_data.sql after
-- it for sample rows. Runs in one transaction: it applies fully or not at all.
--
-- The CHECK constraints repeat the limits the routes in etc/respcache.json
-- validate, so data written around the API (psql, scripts) obeys them too.
-- Timestamps are timestamptz; respcache renders them as RFC 3339 in UTC.
--
-- Every table has a respcache_notify() trigger (sql/respcache_notify.sql,
-- included below) that publishes the cache tags of the rows it changes, so
-- writes made around the API show up on the next GET: the tags are those
-- of the GET routes in etc/respcache.json. A cascaded delete fires the
-- child tables' triggers too, so deleting a user invalidates its sessions
-- and jobs.

\set ON_ERROR_STOP on

BEGIN;

SET LOCAL client_min_messages = warning;

DROP TABLE IF EXISTS sessions CASCADE;
DROP TABLE IF EXISTS settings CASCADE;
DROP TABLE IF EXISTS job_results CASCADE;
DROP TABLE IF EXISTS jobs CASCADE;
DROP TABLE IF EXISTS users CASCADE;

CREATE TABLE users (
    id         bigserial PRIMARY KEY,
    email      text NOT NULL UNIQUE
               CHECK (position('@' IN email) > 1 AND length(email) <= 320),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    plan       text NOT NULL DEFAULT 'free'
               CHECK (plan IN ('free', 'pro', 'enterprise')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE jobs (
    id         bigserial PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status     text NOT NULL DEFAULT 'queued'
               CHECK (status IN ('queued', 'running', 'done', 'failed')),
    payload    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- GET /api/users/{id}/jobs (newest first, keyset-friendly) and the dashboard
-- aggregate both read one user's jobs through this index; it also serves
-- the ON DELETE CASCADE from users.
CREATE INDEX jobs_user_created_idx ON jobs (user_id, created_at DESC, id DESC);

CREATE TABLE job_results (
    job_id       bigint PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    result       jsonb NOT NULL,
    completed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE settings (
    key        text PRIMARY KEY
               CHECK (key ~ '^[A-Za-z0-9_.-]{1,128}$'),
    value      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    token      text PRIMARY KEY
               CHECK (token ~ '^[A-Za-z0-9_-]{16,128}$'),
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX sessions_user_idx ON sessions (user_id);

-- Invalidation from the database (see the header).
\ir respcache_notify.sql

CREATE TRIGGER users_respcache AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION respcache_notify('user:{id}');
CREATE TRIGGER jobs_respcache AFTER INSERT OR UPDATE OR DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION respcache_notify('job:{id}', 'user:{user_id}:jobs');
CREATE TRIGGER job_results_respcache AFTER INSERT OR UPDATE OR DELETE ON job_results
    FOR EACH ROW EXECUTE FUNCTION respcache_notify('job:{job_id}');
CREATE TRIGGER settings_respcache AFTER INSERT OR UPDATE OR DELETE ON settings
    FOR EACH ROW EXECUTE FUNCTION respcache_notify('settings');
CREATE TRIGGER sessions_respcache AFTER INSERT OR UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION respcache_notify('session:{token}');

CREATE TRIGGER users_respcache_truncate AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION respcache_notify();
CREATE TRIGGER jobs_respcache_truncate AFTER TRUNCATE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION respcache_notify();
CREATE TRIGGER job_results_respcache_truncate AFTER TRUNCATE ON job_results
    FOR EACH STATEMENT EXECUTE FUNCTION respcache_notify();
CREATE TRIGGER settings_respcache_truncate AFTER TRUNCATE ON settings
    FOR EACH STATEMENT EXECUTE FUNCTION respcache_notify();
CREATE TRIGGER sessions_respcache_truncate AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION respcache_notify();

COMMIT;
