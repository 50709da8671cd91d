-- demo_data.sql - sample rows for the respcache demo, generated set-based.
--
--   psql -X -d respcache -f sql/schema.sql
--   psql -X -d respcache -v users=100000 -f sql/demo_data.sql
--
-- :users (default 10000) users; each has 1..9 jobs (5 on average) with
-- mixed statuses and jsonb payloads, every done job has a result; a handful
-- of settings; 15 sessions, 5 of them expired. Existing demo rows are
-- replaced (TRUNCATE ... RESTART IDENTITY), all in one transaction.
--
-- The data is deterministic (derived from the row numbers, not random()),
-- so every load of the same size gives the same ids, emails and jobs, and
-- benchmarks and tests can name rows: user N has email userN@example.com;
-- user 1 has 8 jobs; the newest job of every user is queued.
-- Timestamps are relative to the load time (within the last year).

\set ON_ERROR_STOP on

\if :{?users}
\else
\set users 10000
\endif

SELECT :'users' ~ '^[1-9][0-9]{0,7}$' AS users_ok \gset
\if :users_ok
\else
\warn 'demo_data.sql: users must be an integer from 1 to 99999999, got' :'users'
DO $$ BEGIN RAISE EXCEPTION 'invalid :users value'; END $$;
\endif

BEGIN;

SET LOCAL client_min_messages = warning;
SET LOCAL synchronous_commit = off;
SET LOCAL work_mem = '64MB';
-- Row estimates of generate_series are off by orders of magnitude, which
-- would make the planner spend longer JIT-compiling than the load takes.
SET LOCAL jit = off;

-- A superuser can skip the per-row foreign-key checks (and any triggers,
-- such as invalidation triggers, which have nothing to say about a fresh
-- load): every reference below points at a row inserted just before it.
-- This halves the load time; other roles load with the checks on.
SELECT rolsuper AS is_superuser FROM pg_roles WHERE rolname = current_user \gset
\if :is_superuser
SET LOCAL session_replication_role = replica;
\endif

TRUNCATE sessions, settings, job_results, jobs, users RESTART IDENTITY;

-- Users: ids 1..:users. created_at spreads over the last year; every 7th
-- user has been updated since.
INSERT INTO users (id, email, name, plan, created_at, updated_at)
SELECT g,
       'user' || g || '@example.com',
       (ARRAY['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances',
              'Ken', 'Margaret', 'Dennis', 'Radia', 'Leslie'])[1 + g % 12]
           || ' ' ||
       (ARRAY['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth',
              'Allen', 'Thompson', 'Hamilton', 'Ritchie', 'Perlman', 'Lamport',
              'Backus'])[1 + g % 13]
           || ' ' || g,
       CASE WHEN g % 20 = 0 THEN 'enterprise'
            WHEN g % 5 = 0 THEN 'pro'
            ELSE 'free' END,
       t.created,
       CASE WHEN g % 7 = 0 THEN t.created + interval '3 days' ELSE t.created END
FROM generate_series(1, :users) AS g
CROSS JOIN LATERAL (
    SELECT now() - interval '366 days'
           + make_interval(secs => (g::bigint * 7919) % (360 * 86400)) AS created
) AS t;

-- Jobs: user u has 1 + (7u mod 9) jobs (1..9, mean 5), numbered n = 1..k,
-- created one to a few hours apart after the user. Ids follow (user, n).
-- The newest job is queued; the one before is running (every 3rd user) or
-- done; the older ones are done, except every 11th job, which failed.
INSERT INTO jobs (id, user_id, status, payload, created_at, updated_at)
SELECT row_number() OVER (ORDER BY u.id, n),
       u.id,
       s.status,
       jsonb_build_object(
           'kind', (ARRAY['resize', 'transcode', 'report', 'export', 'import'])[1 + (u.id + n) % 5],
           'priority', (u.id * 3 + n) % 10,
           'input', 's3://demo-bucket/u' || u.id || '/in/' || n || '.dat',
           'options', jsonb_build_object('retries', n % 4, 'notify', n % 2 = 0)),
       u.created_at + make_interval(hours => (n * (1 + u.id % 5))::int),
       u.created_at + make_interval(hours => (n * (1 + u.id % 5))::int)
           + CASE WHEN s.status = 'queued' THEN interval '0'
                  ELSE make_interval(secs => 30 + (u.id * n) % 600) END
FROM users AS u
CROSS JOIN LATERAL generate_series(1, 1 + (u.id * 7) % 9) AS n
CROSS JOIN LATERAL (
    SELECT CASE WHEN n = 1 + (u.id * 7) % 9 THEN 'queued'
                WHEN n = (u.id * 7) % 9 AND u.id % 3 = 0 THEN 'running'
                WHEN (u.id + n) % 11 = 0 THEN 'failed'
                ELSE 'done' END AS status
) AS s
ORDER BY u.id, n;

-- Results: one per done job, completed when the job was last updated.
INSERT INTO job_results (job_id, result, completed_at)
SELECT j.id,
       jsonb_build_object(
           'ok', true,
           'output', 's3://demo-bucket/u' || j.user_id || '/out/' || j.id || '.dat',
           'bytes', (j.id * 4099) % 10000000,
           'duration_ms', 30000 + (j.id * 37) % 600000),
       j.updated_at
FROM jobs AS j
WHERE j.status = 'done';

INSERT INTO settings (key, value) VALUES
    ('site.name',               '"respcache demo"'),
    ('site.maintenance',        '{"enabled": false, "message": null}'),
    ('features.signup',         'true'),
    ('features.beta',           '["dashboard-v2", "bulk-jobs"]'),
    ('limits.max_jobs_per_day', '500'),
    ('limits.max_payload_kb',   '64'),
    ('ui.theme',                '"light"');

-- Sessions: demo_session_0001 .. demo_session_0015 (plus a fixed suffix,
-- so they satisfy the 16..128 character token rule). 1..10 are valid for
-- another 1..10 days; 11..15 expired 1..5 hours ago. Real tokens come from
-- POST /api/sessions; these are predictable on purpose, for curl examples.
INSERT INTO sessions (token, user_id, created_at, expires_at)
SELECT 'demo_session_' || lpad(g::text, 4, '0') || '_' || substr(md5('respcache-demo-' || g), 1, 12),
       1 + ((g - 1) * 37) % :users,
       now() - interval '1 day',
       CASE WHEN g <= 10 THEN now() + make_interval(days => g)
            ELSE now() - make_interval(hours => g - 10) END
FROM generate_series(1, 15) AS g;

-- Explicit ids were inserted above: move the sequences past them so that
-- rows created through the API get fresh ids (is_called = false means the
-- next nextval() returns exactly the given value).
SELECT setval(pg_get_serial_sequence('users', 'id'),
              COALESCE((SELECT max(id) FROM users), 0) + 1, false) AS next_user_id,
       setval(pg_get_serial_sequence('jobs', 'id'),
              COALESCE((SELECT max(id) FROM jobs), 0) + 1, false) AS next_job_id
\gset

COMMIT;

ANALYZE users, jobs, job_results, settings, sessions;
