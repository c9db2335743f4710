"""The Runner's Python parts without a server: pickling by reference, object
references, exceptions with remote tracebacks, the file store, and the warm
executor process speaking its line protocol (a real subprocess).
The whole path through runctl server and runctl worker is test-e2e/test/runner.test.ts."""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import textwrap
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from runctl.runner import ObjectRef, RemoteTraceback, RunnerTaskError, UnpicklableTarget  # noqa: E402
from runctl.runner._pickling import check_importable, decode_error, dumps, encode_error, loads  # noqa: E402
from runctl.runner._s3 import S3Store  # noqa: E402
from runctl.runner._store import FileStore, StoreError, open_store  # noqa: E402
from support import PKG_DIR, IsolatedTest  # noqa: E402

MODULE_SOURCE = textwrap.dedent(
    '''
    import os


    def double(x):
        print("user output must not reach the protocol")
        return 2 * x


    def total(values):
        return sum(values)


    def fail(message):
        raise KeyError(message)


    class Counter:
        def __init__(self, start=0):
            self.n = start

        def add(self, k):
            self.n += k
            return self.n


    class NeedsTwo(Exception):
        def __init__(self, a, b):
            super().__init__(a)
            self.b = b


    def raise_odd():
        raise NeedsTwo("odd", 2)
    '''
)


def module_level(x):
    return x


class PicklingTest(unittest.TestCase):
    def test_lambdas_closures_and_main_are_refused_with_the_fix(self) -> None:
        with self.assertRaisesRegex(UnpicklableTarget, "lambda.*module level"):
            check_importable(lambda x: x)

        def inner(x):
            return x

        with self.assertRaisesRegex(UnpicklableTarget, "inside a function.*module level"):
            check_importable(inner)
        fake_main = type("Thing", (), {"__module__": "__main__"})
        with self.assertRaisesRegex(UnpicklableTarget, "__main__.*move it to a module"):
            check_importable(fake_main())
        check_importable(module_level)  # no error
        check_importable(os.path.join)

    def test_references_travel_as_persistent_ids_and_are_fetched_on_load(self) -> None:
        ref = ObjectRef("objects/a.pkl", task_id=7)
        data, refs = dumps(([ref, 3], {"k": ref}))
        self.assertEqual(refs, [ref, ref])
        self.assertNotIn(b"ObjectRef", data)
        fetched = []

        def fetch(key):
            fetched.append(key)
            return "value-of-" + key

        args, kwargs = loads(data, fetch)
        self.assertEqual(args, ["value-of-objects/a.pkl", 3])
        self.assertEqual(kwargs, {"k": "value-of-objects/a.pkl"})
        self.assertEqual(fetched, ["objects/a.pkl", "objects/a.pkl"])

    def test_an_unpicklable_value_is_a_clear_error(self) -> None:
        with self.assertRaisesRegex(UnpicklableTarget, "module level"):
            dumps(lambda: 1)

    def test_exceptions_come_back_as_their_type_with_the_remote_traceback(self) -> None:
        try:
            module_level(None)["x"]
        except TypeError as exc:
            info = encode_error(exc)
        info = pickle.loads(pickle.dumps(info))
        back = decode_error(info)
        self.assertIsInstance(back, TypeError)
        self.assertIsInstance(back.__cause__, RemoteTraceback)
        self.assertIn("test_exceptions_come_back", back.remote_traceback)

    def test_an_exception_that_cannot_be_rebuilt_is_a_runner_task_error_naming_it(self) -> None:
        info = {"module": "mod", "qualname": "Odd", "message": "m", "traceback": "Traceback ...", "pickled": b"junk"}
        back = decode_error(info, job_id=3)
        self.assertIsInstance(back, RunnerTaskError)
        self.assertIn("mod.Odd: m", str(back))
        self.assertEqual(back.job_id, 3)
        self.assertEqual(back.remote_traceback, "Traceback ...")


class FileStoreTest(IsolatedTest):
    def test_put_get_list_delete(self) -> None:
        store = FileStore("file://" + os.path.join(self.tmp, "store"))
        store.put_bytes("runners/a/objects/x.pkl", b"1")
        store.put_bytes("runners/a/services/s.pkl", b"2")
        store.put_bytes("runners/b/objects/y.pkl", b"3")
        self.assertEqual(store.get_bytes("runners/a/objects/x.pkl"), b"1")
        self.assertEqual(store.list("runners/a/"), ["runners/a/objects/x.pkl", "runners/a/services/s.pkl"])
        self.assertEqual(store.delete_prefix("runners/a/"), 2)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "store", "runners", "a")))
        self.assertTrue(store.exists("runners/b/objects/y.pkl"))
        with self.assertRaises(StoreError) as caught:
            store.get_bytes("runners/a/objects/x.pkl")
        self.assertEqual(caught.exception.code, "object_not_found")
        for bad in ("../x", "/abs", "a//b", "a/./b"):
            with self.assertRaises(StoreError):
                store.put_bytes(bad, b"")

    def test_other_schemes_are_refused_with_a_hint(self) -> None:
        with self.assertRaises(StoreError) as caught:
            open_store("gs://bucket/prefix")
        self.assertEqual(caught.exception.code, "runner_store_unsupported")
        self.assertIn("s3://", str(caught.exception))


class S3SigningTest(unittest.TestCase):
    """SigV4 against AWS's own worked example (S3 docs, "GET Bucket (List Objects)" with
    max-keys=2&prefix=J); talking to an S3 store is test-e2e/test/runner-s3.test.ts."""

    ENV = {
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_REGION": "us-east-1",
    }

    def test_the_documented_signature(self) -> None:
        store = S3Store("s3://examplebucket", env=self.ENV)
        empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        header = store.authorization(
            "GET",
            "/",
            "max-keys=2&prefix=J",
            {"host": "examplebucket.s3.amazonaws.com", "x-amz-date": "20130524T000000Z", "x-amz-content-sha256": empty},
            empty,
            "20130524T000000Z",
        )
        self.assertEqual(
            header,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        )

    def test_keys_sit_under_the_url_prefix_and_missing_credentials_are_named(self) -> None:
        store = S3Store("s3://examplebucket/team/runs", env=self.ENV)
        self.assertEqual(store._key("bundles/k.tar.gz"), "team/runs/bundles/k.tar.gz")
        with self.assertRaises(StoreError) as caught:
            S3Store("s3://examplebucket", env={})
        self.assertEqual(caught.exception.code, "s3_no_credentials")
        self.assertIn("AWS_ACCESS_KEY_ID", str(caught.exception))


class ExecutorTest(IsolatedTest):
    """`python -m runctl.runner._executor` as the worker runs it: stdin lines in, answers out."""

    def setUp(self) -> None:
        super().setUp()
        self.project = os.path.join(self.tmp, "project")
        os.makedirs(self.project)
        self.modname = "runner_test_mod_" + uuid.uuid4().hex[:8]
        with open(os.path.join(self.project, self.modname + ".py"), "w") as f:
            f.write(MODULE_SOURCE)
        sys.path.insert(0, self.project)
        self.addCleanup(sys.path.remove, self.project)
        self.mod = __import__(self.modname)
        self.addCleanup(sys.modules.pop, self.modname, None)
        self.store = FileStore("file://" + os.path.join(self.tmp, "store"))
        self.prefix = "runners/t/"

    def start(self, target, stateful=False):
        data, _ = dumps(target)
        self.store.put_bytes(self.prefix + "services/s.pkl", data)
        env = dict(os.environ)
        env.update(
            {
                "PYTHONPATH": os.pathsep.join([self.project, PKG_DIR]),
                "RUNCTL_RUNNER_STORE": self.store.url,
                "RUNCTL_RUNNER_PREFIX": self.prefix,
                "RUNCTL_RUNNER_TARGET": "services/s.pkl",
                "RUNCTL_RUNNER_STATEFUL": "1" if stateful else "0",
            }
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "runctl.runner._executor"],
            cwd=self.project,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(self.stop, proc)
        ready = json.loads(proc.stdout.readline())
        return proc, ready

    @staticmethod
    def stop(proc) -> None:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()

    def call(self, proc, task_id, method, args=(), kwargs=None, by_key=False):
        data, _ = dumps((tuple(args), kwargs or {}))
        payload = {"v": 1, "result": "objects/r%d.pkl" % task_id, "error": "objects/r%d.err.pkl" % task_id}
        if by_key:
            payload["args_key"] = "objects/a%d.pkl" % task_id
            self.store.put_bytes(self.prefix + payload["args_key"], data)
        else:
            payload["args"] = base64.b64encode(data).decode()
        proc.stdin.write(json.dumps({"id": task_id, "method": method, "payload": payload}) + "\n")
        proc.stdin.flush()
        answer = json.loads(proc.stdout.readline())
        self.assertEqual(answer["id"], task_id)
        return answer

    def result(self, task_id):
        return loads(self.store.get_bytes(self.prefix + "objects/r%d.pkl" % task_id), lambda k: None)

    def test_a_function_service_runs_calls_and_writes_results_to_the_store(self) -> None:
        proc, ready = self.start(self.mod.double)
        self.assertTrue(ready["ready"])
        self.assertEqual(self.call(proc, 1, "__call__", [21]), {"id": 1, "ok": True})
        self.assertEqual(self.result(1), 42)
        self.assertEqual(self.call(proc, 2, "__call__", [5], by_key=True)["ok"], True)
        self.assertEqual(self.result(2), 10)

    def test_arguments_that_are_references_are_read_from_the_store(self) -> None:
        data, _ = dumps([1, 2, 3])
        self.store.put_bytes(self.prefix + "objects/shared.pkl", data)
        proc, _ = self.start(self.mod.total)
        self.assertTrue(self.call(proc, 1, "__call__", [ObjectRef("objects/shared.pkl", 9)])["ok"])
        self.assertEqual(self.result(1), 6)

    def test_a_stateful_instance_keeps_its_state_across_calls(self) -> None:
        proc, _ = self.start(self.mod.Counter(10), stateful=True)
        for i, expected in enumerate([11, 13, 16], start=1):
            self.assertTrue(self.call(proc, i, "add", [i])["ok"])
            self.assertEqual(self.result(i), expected)

    def test_a_class_as_a_stateless_service_is_instantiated_once_per_process(self) -> None:
        proc, _ = self.start(self.mod.Counter)
        self.call(proc, 1, "add", [1])
        self.call(proc, 2, "add", [1])
        self.assertEqual(self.result(2), 2)

    def test_an_exception_is_stored_with_its_traceback_and_the_process_goes_on(self) -> None:
        proc, _ = self.start(self.mod.fail)
        answer = self.call(proc, 1, "__call__", ["missing"])
        self.assertFalse(answer["ok"])
        self.assertIn("KeyError", answer["error"])
        info = pickle.loads(self.store.get_bytes(self.prefix + "objects/r1.err.pkl"))
        back = decode_error(info)
        self.assertIsInstance(back, KeyError)
        self.assertIn("in fail", back.remote_traceback)
        self.assertFalse(self.store.exists(self.prefix + "objects/r1.pkl"))
        self.assertFalse(self.call(proc, 2, "__call__", ["again"])["ok"])

    def test_a_warmup_call_builds_a_class_service_and_writes_nothing(self) -> None:
        proc, _ = self.start(self.mod.Counter)
        self.assertTrue(self.call(proc, 1, "__runctl_warmup__")["ok"])
        self.assertFalse(self.store.exists(self.prefix + "objects/r1.pkl"))
        self.call(proc, 2, "add", [5])
        self.assertEqual(self.result(2), 5)

    def test_an_unknown_method_fails_that_call_only(self) -> None:
        proc, _ = self.start(self.mod.Counter(), stateful=True)
        self.assertFalse(self.call(proc, 1, "nope")["ok"])
        self.assertTrue(self.call(proc, 2, "add", [2])["ok"])

    def test_a_target_that_cannot_be_loaded_says_so_before_any_call(self) -> None:
        self.store.put_bytes(self.prefix + "services/s.pkl", b"not a pickle")
        env = dict(os.environ, PYTHONPATH=PKG_DIR, RUNCTL_RUNNER_STORE=self.store.url,
                   RUNCTL_RUNNER_PREFIX=self.prefix, RUNCTL_RUNNER_TARGET="services/s.pkl")
        out = subprocess.run(
            [sys.executable, "-m", "runctl.runner._executor"], cwd=self.project, env=env,
            input="", capture_output=True, text=True, timeout=30,
        )
        ready = json.loads(out.stdout.splitlines()[0])
        self.assertFalse(ready["ready"])
        self.assertIn("UnpicklingError", ready["error"])
        self.assertEqual(out.returncode, 1)


if __name__ == "__main__":
    unittest.main()
