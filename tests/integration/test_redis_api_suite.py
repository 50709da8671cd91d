"""The API.md integration suite again, with CACHE_PROVIDER=redis and with
CACHE_PROVIDER=tiered.

Each module of SUITE is loaded a second (and third) time under another
name (redis_suite_<provider>_<module>, so `tests/integration/run
redis_suite_tiered` runs one provider's copy). Inside a copy, `harness`
is replaced by a stand-in whose module_env() first starts a private
redis-server and then the usual Env with the provider pointed at it, so
every test of the original runs unchanged against Redis. A test that
restarts respcache with CACHE_PROVIDER or REDIS_URL unset gets the Redis
settings back instead of the memory default, and a restart also empties
Redis (the suite expects a restarted daemon to start cold, as memory does).

RC_TEST_REDIS_SUITE=mod1,mod2 overrides SUITE; RC_TEST_REDIS_PROVIDERS=redis
runs one provider.
"""

import importlib.util
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import redis_harness  # noqa: E402

SUITE = ["test_api_reads", "test_api_writes", "test_api_errors", "test_api_failures",
         "test_concurrency", "test_write_through", "test_ops_endpoints"]
PROVIDERS = ["redis", "tiered"]


class RedisEnv(harness.Env):
    """An Env whose respcache uses a private redis-server; stop() stops both."""

    def __init__(self, provider, **kw):
        self.redis_tmp = tempfile.mkdtemp(prefix="rc-it-redis-")
        os.chmod(self.redis_tmp, 0o755)
        self.redis = redis_harness.RedisServer(self.redis_tmp)
        self.provider = provider
        env = dict(kw.pop("env", None) or {})
        super().__init__(env=env, **kw)

    def start(self):
        self.redis.start()
        self.redis_env = self.redis.respcache_env(self.provider)
        for k, v in self.redis_env.items():
            self.extra_env.setdefault(k, v)
        try:
            return super().start()
        except BaseException:
            self.redis.stop()
            raise

    def restart_respcache(self, threads=None, env=None):
        # The suite was written for the memory provider, where a restart
        # empties the cache; a shared Redis survives it, so empty it here.
        self.redis.cli("FLUSHALL")
        if env is not None:
            env = {k: (self.redis_env[k] if v is None and k in self.redis_env else v)
                   for k, v in env.items()}
        super().restart_respcache(threads=threads, env=env)

    def stop(self):
        try:
            super().stop()
        finally:
            self.redis.stop()
            shutil.rmtree(self.redis_tmp, ignore_errors=True)


class HarnessStandIn:
    """`harness` as a copied module sees it: everything is the real module's,
    except module_env(), which builds a RedisEnv."""

    def __init__(self, provider):
        self._provider = provider

    def __getattr__(self, name):
        return getattr(harness, name)

    def module_env(self, **kw):
        caller = sys._getframe(1).f_globals
        name = kw.pop("name", None) or caller.get("__name__", "rc").split(".")[-1]
        env = RedisEnv(self._provider, name=name[-40:], **kw)
        env.start()
        for v in list(caller.values()):
            if isinstance(v, type) and issubclass(v, harness.RCTestCase):
                v.env = env
        return env


def load_copy(module, provider):
    name = "redis_suite_%s_%s" % (provider, module[len("test_"):])
    path = os.path.join(HERE, module + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # unittest finds setUpModule through sys.modules
    spec.loader.exec_module(mod)
    mod.harness = HarnessStandIn(provider)
    return mod


def load_tests(loader, tests, pattern):
    suite = unittest.TestSuite()
    modules = [m for m in os.environ.get("RC_TEST_REDIS_SUITE", ",".join(SUITE)).split(",") if m]
    providers = [p for p in os.environ.get("RC_TEST_REDIS_PROVIDERS", ",".join(PROVIDERS)).split(",")
                 if p]
    for provider in providers:
        for m in modules:
            if not os.path.exists(os.path.join(HERE, m + ".py")):
                continue
            suite.addTests(loader.loadTestsFromModule(load_copy(m, provider)))
    return suite
