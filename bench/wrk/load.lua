-- load.lua - the one wrk script of the benchmark suite, driven by
-- environment variables (bench/bench.py sets them; defaults in brackets):
--
--   BENCH_PATH        path template, %d is the id         [/api/users/%d]
--   BENCH_N           ids 1..N (after BENCH_BASE)          [10000]
--   BENCH_BASE        added to every id                    [0]
--   BENCH_DIST        uniform | zipf | seq                 [uniform]
--                     seq: ids in order from BENCH_SEQ_START, each once
--                     while they last (then from 1 again; done() says so)
--   BENCH_ZIPF_S      Zipf exponent                         [0.99]
--   BENCH_SEQ_START   first id of seq                       [1]
--   BENCH_DONE_FILE   seq: once every id was sent, create this file (the
--                     driver then ends wrk with SIGINT: wrk itself only
--                     ends when its -d duration is over)   [none]
--   BENCH_WRITE_PCT   percent of requests that are writes   [0]
--   BENCH_WRITE_METHOD, BENCH_WRITE_PATH (%d), BENCH_WRITE_BODY (%d)
--   BENCH_DELAY_MS    mean pause before each request on a connection, for
--                     a load below saturation (integer milliseconds are
--                     mixed to reach a fractional mean)  [0]
--   BENCH_BLOCK       when > 0, BENCH_PATH has two %d: the block
--                     (id-1)//BENCH_BLOCK + 1, then the id  [0]
--   BENCH_SEED        random seed                           [1]
--   BENCH_THREADS     wrk -t (each thread takes its share of seq) [1]
--
-- Zipf: rank r (1..N) has weight 1/r^s; the cumulative table is built once
-- per thread in init() and sampled by binary search. Ranks are spread over
-- the ids by a fixed permutation (id = (r-1)*P mod N + 1, P prime), so the
-- hot keys are not simply the smallest ids.
--
-- done() prints one line "BENCH_RESULT {json}" with the request count,
-- duration, errors and latency percentiles in microseconds.

local function env(name, default)
    local v = os.getenv(name)
    if v == nil or v == "" then return default end
    return v
end

local path_fmt = env("BENCH_PATH", "/api/users/%d")
local n = tonumber(env("BENCH_N", "10000"))
local base = tonumber(env("BENCH_BASE", "0"))
local dist = env("BENCH_DIST", "uniform")
local zipf_s = tonumber(env("BENCH_ZIPF_S", "0.99"))
local seq_start = tonumber(env("BENCH_SEQ_START", "1"))
local done_file = env("BENCH_DONE_FILE", nil)
local write_pct = tonumber(env("BENCH_WRITE_PCT", "0"))
local write_method = env("BENCH_WRITE_METHOD", "PATCH")
local write_path = env("BENCH_WRITE_PATH", "/api/users/%d")
local write_body = env("BENCH_WRITE_BODY", '{"name":"bench %d"}')
local delay_ms = tonumber(env("BENCH_DELAY_MS", "0"))
local seed = tonumber(env("BENCH_SEED", "1"))
local block = tonumber(env("BENCH_BLOCK", "0"))
local nthreads = tonumber(env("BENCH_THREADS", "1"))

local threads = {}
local tid_next = 0

function setup(thread)
    thread:set("tid", tid_next)
    tid_next = tid_next + 1
    table.insert(threads, thread)
end

local cdf, total
local perm = 7919
local counter = 0
wrapped = 0 -- global: done() reads it with thread:get()
local write_headers = {["Content-Type"] = "application/json"}

function init(args)
    math.randomseed(seed * 1000 + (tid or 0))
    if n % perm == 0 then perm = 1 end
    if dist == "zipf" then
        cdf = {}
        local acc = 0.0
        for r = 1, n do
            acc = acc + 1.0 / (r ^ zipf_s)
            cdf[r] = acc
        end
        total = acc
    end
    counter = (seq_start - 1) + (tid or 0)
    -- wrk calls request() once on the first thread's state to check the
    -- script, and never sends that request: let it take no id of the run.
    if (tid or 0) == 0 then counter = counter - nthreads end
end

local function rank_to_id(r)
    return base + ((r - 1) * perm) % n + 1
end

local function pick()
    if dist == "zipf" then
        local u = math.random() * total
        local lo, hi = 1, n
        while lo < hi do
            local mid = math.floor((lo + hi) / 2)
            if cdf[mid] < u then lo = mid + 1 else hi = mid end
        end
        return rank_to_id(lo)
    elseif dist == "seq" then
        local id = counter
        counter = counter + nthreads
        if id >= n then
            if wrapped == 0 and done_file then
                local f = io.open(done_file, "w")
                if f then f:write("done\n"); f:close() end
            end
            wrapped = wrapped + 1
            id = id % n
        end
        return base + id + 1
    else
        return base + math.random(n)
    end
end

function request()
    local id = pick()
    if write_pct > 0 and math.random() * 100 < write_pct then
        return wrk.format(write_method, string.format(write_path, id), write_headers,
                          string.format(write_body, id))
    end
    if block > 0 then
        return wrk.format("GET", string.format(path_fmt, math.floor((id - 1) / block) + 1, id))
    end
    return wrk.format("GET", string.format(path_fmt, id))
end

if delay_ms > 0 then
    local whole = math.floor(delay_ms)
    local frac = delay_ms - whole
    function delay()
        if math.random() < frac then return whole + 1 end
        return whole
    end
end

function done(summary, latency, requests)
    local e = summary.errors
    local wraps = 0
    for _, t in ipairs(threads) do
        wraps = wraps + (t:get("wrapped") or 0)
    end
    io.write(string.format(
        'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
        '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
        '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d},' ..
        '"seq_wrapped":%d}\n',
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency.mean, latency.stdev, latency.max,
        latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency:percentile(99.9), wraps))
end
