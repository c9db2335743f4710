"""Direct runs: created by the client, owned by it from start to final status."""

from __future__ import annotations

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import runctl  # noqa: E402
from support import IsolatedTest, read_json, read_lines  # noqa: E402

QUIET = dict(system_metrics=False, capture_git=False, capture_pip=False)


class DirectRunTest(IsolatedTest):
    def test_creates_a_spec_conformant_run_directory(self) -> None:
        run = runctl.init(name="baseline", config={"lr": 0.01, "layers": [64, 64]}, tags=["smoke", "cpu"], **QUIET)
        self.addCleanup(run.finish)
        # Listable: a directory named by the run id, directly under the runs dir.
        self.assertEqual(os.path.dirname(run.run_dir), self.runs)
        self.assertEqual(os.path.basename(run.run_dir), run.run_id)
        self.assertEqual(os.listdir(self.runs), [run.run_id])
        meta = read_json(os.path.join(run.run_dir, "meta.json"))
        self.assert_spec_meta(meta)
        self.assertEqual(meta["id"], run.run_id)
        self.assertEqual(meta["name"], "baseline")
        self.assertEqual(meta["tags"], ["smoke", "cpu"])
        self.assertEqual(meta["status"], "running")
        self.assertIsNone(meta["finished_at"])
        self.assertEqual(meta["writer"], "python")
        self.assertEqual(meta["pid"], os.getpid())
        self.assertEqual(meta["attempts"][0]["status"], "running")
        self.assertNotIn("command", meta)  # only when started by runctl
        self.assertEqual(read_json(os.path.join(run.run_dir, "config.json")), {"lr": 0.01, "layers": [64, 64]})
        self.assertEqual(run.config, {"lr": 0.01, "layers": [64, 64]})
        self.assertTrue(os.path.isdir(os.path.join(run.run_dir, "artifacts")))
        self.assertEqual(runctl.read_meta(run.run_dir)["status"], "running")  # writer alive: not lost

    def test_log_summary_artifact_finish(self) -> None:
        run = runctl.init(config={"seed": 1}, **QUIET)
        run.log({"loss": 1.5, "acc": 0.25}, step=0)
        run.log({"loss": 1.25}, step=1)
        run.log({"epoch_time": 3.5})  # no step
        run.log({"loss": float("nan"), "grad": float("inf"), "note": "NaN in a string stays"}, step=2)
        run.log({"step": 99, "x": 1}, step=3)  # the argument wins
        run.log({}, step=4)
        self.assertEqual(run.summary({"best_loss": 1.25}), {"best_loss": 1.25})
        self.assertEqual(run.summary({"best_acc": 0.25}), {"best_loss": 1.25, "best_acc": 0.25})
        source = os.path.join(self.work, "model.bin")
        with open(source, "wb") as f:
            f.write(b"\x00weights")
        saved = run.save_artifact(source)
        nested = run.save_artifact(source, name="ckpt/epoch-1.bin")
        run.finish()

        self.assertEqual(saved, os.path.join(run.run_dir, "artifacts", "model.bin"))
        self.assertEqual(nested, os.path.join(run.run_dir, "artifacts", "ckpt", "epoch-1.bin"))
        with open(nested, "rb") as f:
            self.assertEqual(f.read(), b"\x00weights")

        path = os.path.join(run.run_dir, "metrics.jsonl")
        raw = read_lines(path)  # plain json.loads of every line: strict JSON, nothing torn
        self.assertEqual(raw, runctl.read_metrics(run.run_dir))
        self.assertEqual(runctl.read_metrics(path), raw)
        for record in raw:
            self.assert_spec_metric_line(record)
        self.assertEqual([r["_idx"] for r in raw], [0, 1, 2, 3, 4, 5])
        self.assertEqual([r.get("step") for r in raw], [0, 1, None, 2, 3, 4])
        self.assertEqual(list(raw[0]), ["_idx", "_timestamp", "step", "loss", "acc"])
        self.assertEqual(raw[0]["loss"], 1.5)
        self.assertEqual(raw[3]["loss"], None)
        self.assertEqual(raw[3]["grad"], None)
        self.assertEqual(raw[3]["note"], "NaN in a string stays")
        self.assertEqual(raw[4]["x"], 1)
        with open(path, "rb") as f:
            text = f.read().decode()
        self.assertNotIn("NaN,", text)
        self.assertNotIn("Infinity", text)

        meta = read_json(os.path.join(run.run_dir, "meta.json"))
        self.assert_spec_meta(meta)
        self.assertEqual(meta["status"], "completed")
        self.assertEqual(meta["exit_code"], 0)
        self.assertIsNone(meta["error"])
        self.assert_iso(meta["finished_at"], "finished_at")
        self.assertEqual(meta["summary"], {"best_loss": 1.25, "best_acc": 0.25})
        self.assertEqual(meta["attempts"][0]["status"], "completed")
        self.assertEqual(meta["attempts"][0]["finished_at"], meta["finished_at"])

        with self.assertRaises(RuntimeError):
            run.log({"loss": 1.0})
        run.finish("failed")  # a second finish changes nothing
        self.assertEqual(read_json(os.path.join(run.run_dir, "meta.json"))["status"], "completed")

    def test_log_rejects_reserved_keys_and_converts_scalars(self) -> None:
        class Scalar:
            """Stands in for a 0-d tensor or numpy scalar: something with .item()."""

            def __init__(self, value: float) -> None:
                self.value = value

            def item(self) -> float:
                return self.value

            def __index__(self) -> int:
                return int(self.value)

        run = runctl.init(**QUIET)
        self.addCleanup(run.finish)
        with self.assertRaises(ValueError):
            run.log({"_idx": 3})
        with self.assertRaises(TypeError):
            run.log({"loss": object()})
        with self.assertRaises(TypeError):
            run.log({"loss": 1.0}, step=True)
        run.log({"loss": Scalar(0.5)}, step=Scalar(7))
        records = runctl.read_metrics(run.run_dir)
        self.assertEqual(len(records), 1)  # failed calls wrote nothing and used no _idx
        self.assertEqual(records[0]["_idx"], 0)
        self.assertEqual(records[0]["loss"], 0.5)
        self.assertEqual(records[0]["step"], 7)

    def test_explicit_failed_status(self) -> None:
        run = runctl.init(**QUIET)
        run.finish("failed", exit_code=2, error="diverged")
        meta = read_json(os.path.join(run.run_dir, "meta.json"))
        self.assertEqual((meta["status"], meta["exit_code"], meta["error"]), ("failed", 2, "diverged"))
        with self.assertRaises(ValueError):
            runctl.init(**QUIET).finish("running")

    def test_context_manager_marks_failed_on_exception(self) -> None:
        with self.assertRaises(ZeroDivisionError):
            with runctl.init(name="boom", **QUIET) as run:
                run.log({"loss": 1.0}, step=0)
                1 / 0
        meta = read_json(os.path.join(run.run_dir, "meta.json"))
        self.assert_spec_meta(meta)
        self.assertEqual(meta["status"], "failed")
        self.assertEqual(meta["exit_code"], 1)
        self.assertIn("ZeroDivisionError", meta["error"])
        self.assertEqual(meta["attempts"][0]["status"], "failed")

    def test_context_manager_completes_and_keyboard_interrupt_cancels(self) -> None:
        with runctl.init(**QUIET) as ok:
            ok.log({"a": 1})
        self.assertEqual(read_json(os.path.join(ok.run_dir, "meta.json"))["status"], "completed")
        with self.assertRaises(KeyboardInterrupt):
            with runctl.init(**QUIET) as stopped:
                raise KeyboardInterrupt
        self.assertEqual(read_json(os.path.join(stopped.run_dir, "meta.json"))["status"], "cancelled")

    def test_runs_dir_defaults_to_cwd_runs(self) -> None:
        del os.environ["RUNCTL_RUNS_DIR"]
        run = runctl.init(**QUIET)
        run.finish()
        self.assertEqual(os.path.dirname(run.run_dir), os.path.join(os.path.realpath(self.work), "runs"))

    def test_default_name_is_the_script_name(self) -> None:
        script = os.path.join(self.work, "train_resnet.py")
        with open(script, "w") as f:
            f.write("import runctl\nrunctl.init(system_metrics=False, capture_git=False, capture_pip=False).finish()\n")
        proc = self.run_python("import runpy, sys; sys.argv = [%r]; runpy.run_path(%r, run_name='__main__')" % (script, script))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(read_json(os.path.join(self.only_run_dir(), "meta.json"))["name"], "train_resnet")


class ProcessExitTest(IsolatedTest):
    """What the status is when the script ends without finish()."""

    def meta_after(self, body: str) -> "tuple[dict, object]":
        proc = self.run_python(
            "import runctl\nrun = runctl.init(name='exit', system_metrics=False, capture_git=False, capture_pip=False)\n"
            "run.log({'loss': 1.0}, step=0)\n" + body
        )
        return read_json(os.path.join(self.only_run_dir(), "meta.json")), proc

    def test_unhandled_exception_marks_failed(self) -> None:
        meta, proc = self.meta_after("raise RuntimeError('loss exploded')\n")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("RuntimeError: loss exploded", proc.stderr)  # the traceback still prints
        self.assert_spec_meta(meta)
        self.assertEqual(meta["status"], "failed")
        self.assertEqual(meta["exit_code"], 1)
        self.assertIn("RuntimeError: loss exploded", meta["error"])
        self.assertIn("Traceback", meta["error"])
        self.assertEqual(meta["attempts"][0]["status"], "failed")
        self.assertIsNotNone(meta["finished_at"])

    def test_normal_exit_without_finish_marks_completed(self) -> None:
        meta, proc = self.meta_after("")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual((meta["status"], meta["exit_code"]), ("completed", 0))

    def test_sys_exit_nonzero_marks_failed(self) -> None:
        meta, proc = self.meta_after("import sys\nsys.exit(3)\n")
        self.assertEqual(proc.returncode, 3)
        self.assertEqual((meta["status"], meta["exit_code"]), ("failed", 3))
        self.assertEqual(meta["error"], "exited with code 3")

    def test_sigterm_marks_cancelled(self) -> None:
        meta, proc = self.meta_after("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\nimport time\ntime.sleep(30)\n")
        self.assertEqual(proc.returncode, -15)  # still killed by the signal, as without runctl
        self.assertEqual((meta["status"], meta["exit_code"]), ("cancelled", 143))

    def test_forked_child_does_not_finish_the_run(self) -> None:
        if not hasattr(os, "fork"):
            self.skipTest("no fork")
        meta, proc = self.meta_after(
            "import os, sys\npid = os.fork()\n"
            "if pid == 0:\n    sys.exit(5)\n"  # a worker exiting with an error, through atexit
            "os.waitpid(pid, 0)\nprint(runctl.read_meta(run.run_dir, raw=True)['status'])\nrun.finish()\n"
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout.strip(), "running")
        self.assertEqual(meta["status"], "completed")


if __name__ == "__main__":
    unittest.main()
