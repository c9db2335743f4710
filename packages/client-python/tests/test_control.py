"""RuntimeController on one process: the file queue, acks in docs/control.md's check order, cursors."""

from __future__ import annotations

import json
import os
import sys
import types
import unittest
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import runctl  # noqa: E402
from runctl._control import next_poll_interval  # noqa: E402
from support import IsolatedTest, read_json, read_lines  # noqa: E402

ACK_KEYS = {"id", "ts", "path", "op", "status", "error", "value", "rank", "world_size", "seq"}


# runtimectl's README example, unchanged.
def validate_mult(v):
    v = float(v)
    assert v > 0
    return v


def apply_lr_multiplier(ctx, mult):
    for pg in ctx["optimizer"].param_groups:
        pg["lr"] *= mult


class ControlTest(IsolatedTest):
    def setUp(self) -> None:
        super().setUp()
        self.q = os.path.join(self.tmp, "control")
        self.calls = []

    def controller(self, **kwargs) -> runctl.RuntimeController:
        ctl = runctl.RuntimeController(self.q, **kwargs)
        self.addCleanup(ctl.close)
        return ctl

    def write_raw(self, data: bytes) -> None:
        os.makedirs(self.q, exist_ok=True)
        with open(os.path.join(self.q, "commands.jsonl"), "ab") as f:
            f.write(data)

    def write_commands(self, *commands) -> None:
        self.write_raw(b"".join(json.dumps(c).encode() + b"\n" for c in commands))

    def acks(self):
        return read_lines(os.path.join(self.q, "acks.jsonl"))

    def assert_ack_shape(self, ack, rank=0, world_size=1) -> None:
        self.assertLessEqual(set(ack), ACK_KEYS, ack)
        self.assertIsInstance(ack["id"], str)
        self.assertIsInstance(ack["ts"], float)
        self.assertIn(ack["status"], ("applied", "rejected", "failed"))
        self.assertIsInstance(ack["op"], str)
        self.assertIs(type(ack["seq"]), int)
        self.assertEqual((ack["rank"], ack["world_size"]), (rank, world_size))
        if ack["status"] == "applied":
            self.assertNotIn("error", ack)
        else:
            self.assertIsInstance(ack["error"], str)
            self.assertNotIn("value", ack)

    def record(self, name):
        def apply(ctx, *args, **kwargs):
            self.calls.append((name, ctx, args, kwargs))
        return apply


class CheckOrderTest(ControlTest):
    def test_every_check_in_order(self) -> None:
        ctl = self.controller()

        def validate(v):
            v = float(v)
            if v <= 0:
                raise ValueError("multiplier must be > 0")
            return v

        def apply_boom(ctx, v):
            raise RuntimeError("optimizer is gone")

        ctl.register("lr", self.record("lr"), validate)
        ctl.register("boom", apply_boom)
        ctl.register("opaque", self.record("opaque"), lambda: object())
        base = {"ts": 1700000000.0, "op": "set"}
        self.write_raw(b"this is not json\n")  # seq 0
        self.write_raw(b"[1, 2]\n")  # seq 1: JSON, not an object
        self.write_raw(b'{"id": "half", "path": "lr", "args": [\n')  # seq 2: broken, id readable
        self.write_commands(
            dict(base, id="c3", path="lr", args=5),  # args checked before the path (unknown here too)
            dict(base, id="c4", path="nope", args=[], kwargs=[1]),  # kwargs before path
            dict(base, id="c5", path="nope", op="get", args=[], kwargs={}),  # op before path
            dict(base, id="c6", path="nope", args=[1], kwargs={}),
            dict(base, id="c7", path="lr", args=[-2], kwargs={}),
            dict(base, id="c8", path="boom", args=[1], kwargs={}),
            dict(base, id="c9", path="lr", args=["0.5"], kwargs={}),
            dict(base, id="c10", path="opaque", args=[], kwargs={}),
            dict(base, id="c11", path="lr", args=[1, 2], kwargs={}),  # the validator's TypeError
        )
        self.write_raw(b'{"op": "set", "args": [], "kwargs": {}}\n')  # seq 12: no id, no path
        self.write_raw(b'{"id": "nan", "path": "lr", "args": [NaN]}\n')  # seq 13: NaN is not JSON
        returned = ctl.poll_and_apply({"k": 1}, every_s=0)
        acks = self.acks()
        self.assertEqual(returned, acks)
        for ack in acks:
            self.assert_ack_shape(ack)
        by_seq = {a["seq"]: a for a in acks}
        self.assertEqual(sorted(by_seq), [0, 1, 2] + list(range(3, 12)) + [12, 13])

        for seq in (0, 1):
            self.assertEqual(by_seq[seq]["status"], "rejected")
            self.assertEqual(by_seq[seq]["op"], "invalid")
            self.assertEqual(by_seq[seq]["id"], "seq-%d" % seq)
            self.assertIsNone(by_seq[seq]["path"])
            self.assertTrue(by_seq[seq]["error"].startswith("malformed command: "), by_seq[seq])
        self.assertEqual(by_seq[1]["error"], "malformed command: not a JSON object")
        self.assertEqual((by_seq[2]["id"], by_seq[2]["op"], by_seq[2]["status"]), ("half", "invalid", "rejected"))
        self.assertTrue(by_seq[2]["error"].startswith("malformed command: "))
        self.assertEqual((by_seq[13]["id"], by_seq[13]["op"]), ("nan", "invalid"))
        self.assertEqual(by_seq[13]["error"], "malformed command: NaN is not valid JSON")

        expect = {
            3: ("c3", "lr", "rejected", "args must be a list"),
            4: ("c4", "nope", "rejected", "kwargs must be an object"),
            5: ("c5", "nope", "rejected", "unsupported op: get"),
            6: ("c6", "nope", "rejected", "unknown path: nope"),
            7: ("c7", "lr", "failed", "multiplier must be > 0"),
            8: ("c8", "boom", "failed", "optimizer is gone"),
        }
        for seq, (cid, path, status, error) in expect.items():
            ack = by_seq[seq]
            self.assertEqual((ack["id"], ack["path"], ack["status"], ack["error"]), (cid, path, status, error))
            self.assertEqual(ack["op"], "get" if seq == 5 else "set")
        self.assertEqual((by_seq[9]["status"], by_seq[9]["value"]), ("applied", 0.5))
        self.assertEqual(by_seq[10]["status"], "applied")
        self.assertNotIn("value", by_seq[10])  # not JSON-representable: left out
        self.assertEqual(by_seq[11]["status"], "failed")
        self.assertIn("argument", by_seq[11]["error"])
        self.assertEqual((by_seq[12]["id"], by_seq[12]["status"]), ("seq-12", "rejected"))
        self.assertEqual(by_seq[12]["error"], "unknown path: null")
        # Only the valid commands reached apply, with ctx first.
        self.assertEqual([(c[0], c[2]) for c in self.calls], [("lr", (0.5,)), ("opaque", (self.calls[1][2][0],))])
        self.assertEqual(self.calls[0][1], {"k": 1})
        self.assertEqual(ctl.state_dict()["seq"], 14)

    def test_missing_op_args_kwargs_default_and_runtimectl_value_field(self) -> None:
        ctl = self.controller()
        ctl.register("x", self.record("x"))
        self.write_commands({"id": "a", "path": "x"}, {"id": "b", "path": "x", "value": 3})
        acks = ctl.poll_and_apply(None, every_s=0)
        self.assertEqual([a["status"] for a in acks], ["applied", "applied"])
        self.assertNotIn("value", acks[0])
        self.assertEqual(acks[1]["value"], 3)
        self.assertEqual([c[2] for c in self.calls], [(), (3,)])

    def test_exception_without_message_acks_its_class_name(self) -> None:
        ctl = self.controller()
        ctl.register("lr", apply_lr_multiplier, validate_mult)
        runctl.RuntimeController.enqueue(self.q, "lr", -1)
        (ack,) = ctl.poll_and_apply({}, every_s=0)
        self.assertEqual((ack["status"], ack["error"]), ("failed", "AssertionError"))

    def test_lines_nested_past_64_levels_are_malformed_like_the_typescript_consumer(self) -> None:
        ctl = self.controller()
        ctl.register("x", self.record("x"))
        deep = "[" * 30000 + "]" * 30000
        self.write_raw(('{"id": "deep", "path": "x", "args": %s}\n' % deep).encode())
        # 64 levels in all, the line's object included: still a command.
        self.write_raw(('{"id": "ok", "path": "x", "args": %s}\n' % ("[" * 62 + "]" * 62)).encode())
        self.write_raw(('{"id": "over", "path": "x", "args": %s}\n' % ("[" * 64 + "]" * 64)).encode())
        acks = ctl.poll_and_apply(None, every_s=0)
        self.assertEqual([(a["id"], a["status"]) for a in acks], [("deep", "rejected"), ("ok", "applied"), ("over", "rejected")])
        self.assertEqual(acks[0]["error"], "malformed command: nested more than 64 levels deep")
        self.assertEqual(acks[2]["error"], "malformed command: nested more than 64 levels deep")

    def test_signal_is_left_to_the_supervisor_and_blank_lines_are_skipped(self) -> None:
        ctl = self.controller()
        ctl.register("x", self.record("x"))
        self.write_raw(b'{"id": "s", "ts": 1, "op": "signal", "path": "", "args": ["SIGTERM"], "kwargs": {}}\n\n  \n')
        self.write_commands({"id": "y", "op": "set", "path": "x", "args": [1], "kwargs": {}})
        acks = ctl.poll_and_apply(None, every_s=0)
        self.assertEqual([(a["id"], a["seq"]) for a in acks], [("y", 3)])
        self.assertEqual(ctl.state_dict()["seq"], 4)


class ValidatorFormsTest(ControlTest):
    def test_readme_example_unchanged(self) -> None:
        ctl = self.controller()
        ctl.register("optimizer.lr.multiplier", apply_lr_multiplier, validate_mult)
        optimizer = types.SimpleNamespace(param_groups=[{"lr": 0.1}, {"lr": 0.2}])
        runctl.RuntimeController.enqueue(self.q, "optimizer.lr.multiplier", "0.5")
        (ack,) = ctl.poll_and_apply(ctx={"optimizer": optimizer}, every_s=2.0)
        self.assertEqual((ack["status"], ack["value"], ack["path"], ack["op"]), ("applied", 0.5, "optimizer.lr.multiplier", "set"))
        self.assertEqual([pg["lr"] for pg in optimizer.param_groups], [0.05, 0.1])

    def test_tuple_and_args_kwargs_forms(self) -> None:
        ctl = self.controller()
        ctl.register("pair", self.record("pair"), lambda a, b: (int(a), int(b)))
        ctl.register("kw", self.record("kw"), lambda a, scale=1: ((a,), {"scale": float(scale)}))
        ctl.register("named", self.record("named"), lambda name, opts: (name, opts))  # (str, dict): plain args
        ctl.register("betas", self.record("betas"), lambda b1, b2: (((b1, b2),), {}))
        ctl.register("raw", self.record("raw"))
        enqueue = runctl.RuntimeController.enqueue
        enqueue(self.q, "pair", "1", "2")
        enqueue(self.q, "kw", 3, scale="2")
        enqueue(self.q, "named", "adam", {"eps": 1})
        enqueue(self.q, "betas", 0.9, 0.99)
        enqueue(self.q, "raw", 1, 2, mode="fast")
        acks = ctl.poll_and_apply(None, every_s=0)
        self.assertEqual([a["status"] for a in acks], ["applied"] * 5)
        self.assertEqual(
            [(c[0], c[2], c[3]) for c in self.calls],
            [
                ("pair", (1, 2), {}),
                ("kw", (3,), {"scale": 2.0}),
                ("named", ("adam", {"eps": 1}), {}),
                ("betas", ((0.9, 0.99),), {}),
                ("raw", (1, 2), {"mode": "fast"}),
            ],
        )
        self.assertEqual(
            [a["value"] for a in acks],
            [[1, 2], {"args": [3], "kwargs": {"scale": 2.0}}, ["adam", {"eps": 1}], [0.9, 0.99],
             {"args": [1, 2], "kwargs": {"mode": "fast"}}],
        )


class QueueTest(ControlTest):
    def test_torn_last_line_is_waited_for(self) -> None:
        ctl = self.controller()
        ctl.register("x", self.record("x"))
        line = json.dumps({"id": "t", "ts": 1.0, "op": "set", "path": "x", "args": [7], "kwargs": {}}).encode()
        self.write_raw(line[:20])
        self.assertEqual(ctl.poll_and_apply(None, every_s=0), [])
        self.assertEqual(ctl.poll_and_apply(None, every_s=0), [])
        self.assertEqual(self.acks(), [])
        self.assertEqual(ctl.state_dict(), {"seq": 0, "offset": 0, "applied_ids": []})
        self.write_raw(line[20:] + b"\n")
        (ack,) = ctl.poll_and_apply(None, every_s=0)
        self.assertEqual((ack["id"], ack["status"], ack["seq"], ack["value"]), ("t", "applied", 0, 7))
        self.assertEqual(ctl.state_dict()["offset"], len(line) + 1)

    def test_enqueue_fences_a_dead_writers_fragment(self) -> None:
        ctl = self.controller()
        ctl.register("x", self.record("x"))
        self.write_raw(b'{"id": "dead", "pa')
        runctl.RuntimeController.enqueue(self.q, "x", 1)
        acks = ctl.poll_and_apply(None, every_s=0)
        self.assertEqual([(a["id"], a["status"], a["seq"]) for a in acks], [("dead", "rejected", 0), (acks[1]["id"], "applied", 1)])

    def test_duplicate_id_is_skipped_without_ack(self) -> None:
        ctl = self.controller()
        ctl.register("x", self.record("x"))
        cmd = {"id": "same", "ts": 1.0, "op": "set", "path": "x", "args": [1], "kwargs": {}}
        self.write_commands(cmd, cmd)
        self.assertEqual([a["seq"] for a in ctl.poll_and_apply(None, every_s=0)], [0])
        self.write_commands(cmd, dict(cmd, id="other"))
        self.assertEqual([(a["id"], a["seq"]) for a in ctl.poll_and_apply(None, every_s=0)], [("other", 3)])
        self.assertEqual(len(self.calls), 2)
        self.assertEqual(len(self.acks()), 2)
        self.assertEqual(ctl.state_dict()["applied_ids"], ["same", "other"])

    def test_cursor_file_restart_does_not_reapply(self) -> None:
        ctl = self.controller()
        ctl.register("x", self.record("x"))
        for i in range(3):
            runctl.RuntimeController.enqueue(self.q, "x", i)
        self.assertEqual(len(ctl.poll_and_apply(None, every_s=0)), 3)
        cursor = read_json(os.path.join(self.q, "cursor.rank0.json"))
        self.assertEqual(cursor, ctl.state_dict())
        self.assertEqual(cursor["seq"], 3)
        self.assertEqual(cursor["offset"], os.path.getsize(os.path.join(self.q, "commands.jsonl")))
        self.assertEqual(len(cursor["applied_ids"]), 3)
        ctl.close()

        again = self.controller()  # a restarted process: reads cursor.rank0.json
        again.register("x", self.record("x"))
        self.assertEqual(again.poll_and_apply(None, every_s=0), [])
        runctl.RuntimeController.enqueue(self.q, "x", 3)
        self.assertEqual([a["value"] for a in again.poll_and_apply(None, every_s=0)], [3])
        self.assertEqual([c[2] for c in self.calls], [(0,), (1,), (2,), (3,)])

    def test_state_dict_restart_does_not_reapply(self) -> None:
        ctl = self.controller()
        ctl.register("x", self.record("x"))
        first = runctl.RuntimeController.enqueue(self.q, "x", "a")
        runctl.RuntimeController.enqueue(self.q, "x", "b")
        ctl.poll_and_apply(None, every_s=0)
        state = json.loads(json.dumps(ctl.state_dict()))  # as saved inside a checkpoint
        ctl.close()
        os.unlink(os.path.join(self.q, "cursor.rank0.json"))

        fresh = self.controller()  # no cursor file: it would start from the beginning...
        fresh.register("x", self.record("x"))
        self.assertEqual(fresh.state_dict(), {"seq": 0, "offset": 0, "applied_ids": []})
        fresh.load_state_dict(state)  # ...but the checkpoint says where it was
        self.assertEqual(read_json(os.path.join(self.q, "cursor.rank0.json")), state)
        self.assertEqual(fresh.poll_and_apply(None, every_s=0), [])
        # A publisher retrying an applied command: skipped; a new one: applied.
        self.write_commands(first)
        runctl.RuntimeController.enqueue(self.q, "x", "c")
        self.assertEqual([(a["value"], a["seq"]) for a in fresh.poll_and_apply(None, every_s=0)], [("c", 3)])
        self.assertEqual([c[2] for c in self.calls], [("a",), ("b",), ("c",)])

        # load_state_dict before configure wins over the cursor file.
        late = runctl.RuntimeController()
        self.addCleanup(late.close)
        late.load_state_dict({"seq": 0, "offset": 0, "applied_ids": []})
        late.configure(self.q)
        self.assertEqual(late.state_dict()["seq"], 0)
        with self.assertRaises(ValueError):
            late.load_state_dict({"seq": -1, "offset": 0, "applied_ids": []})

    def test_replaced_commands_file_is_read_from_the_start(self) -> None:
        ctl = self.controller()
        ctl.register("x", self.record("x"))
        runctl.RuntimeController.enqueue(self.q, "x", "long argument " * 5)
        ctl.poll_and_apply(None, every_s=0)
        os.unlink(os.path.join(self.q, "commands.jsonl"))
        runctl.RuntimeController.enqueue(self.q, "x", 1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            acks = ctl.poll_and_apply(None, every_s=0)
        self.assertEqual([(a["value"], a["seq"]) for a in acks], [(1, 0)])
        self.assertTrue(any("no longer matches the cursor" in str(w.message) for w in caught))

    def test_enqueue_writes_runtimectl_command_and_refuses_large_lines(self) -> None:
        cmd = runctl.RuntimeController.enqueue(self.q, "optimizer.lr.multiplier", 0.5, scale=2)
        self.assertEqual(set(cmd), {"id", "ts", "op", "path", "args", "kwargs"})
        self.assertEqual((cmd["op"], cmd["path"], cmd["args"], cmd["kwargs"]), ("set", "optimizer.lr.multiplier", [0.5], {"scale": 2}))
        self.assertEqual(read_lines(os.path.join(self.q, "commands.jsonl")), [cmd])
        self.assertFalse(os.path.exists(os.path.join(self.q, "commands.jsonl.lock")))
        with self.assertRaisesRegex(ValueError, "payload_too_large"):
            runctl.RuntimeController.enqueue(self.q, "x", "a" * (64 * 1024))
        with self.assertRaises(ValueError):
            runctl.RuntimeController.enqueue(self.q, "x", float("nan"))
        with self.assertRaises(TypeError):
            runctl.RuntimeController.enqueue(self.q, "x", object())
        self.assertEqual(len(read_lines(os.path.join(self.q, "commands.jsonl"))), 1)
        runctl.RuntimeController.enqueue(self.q, "x", "b" * (64 * 1024 - 200))  # just under the limit
        self.assertEqual(len(read_lines(os.path.join(self.q, "commands.jsonl"))), 2)

    def test_time_throttle_in_one_process(self) -> None:
        ctl = self.controller()
        ctl.register("x", self.record("x"))
        self.assertEqual(ctl.poll_and_apply(None, every_s=3600), [])  # polled: nothing yet
        runctl.RuntimeController.enqueue(self.q, "x", 1)
        self.assertEqual(ctl.poll_and_apply(None, every_s=3600), [])  # within the hour: not polled
        self.assertEqual(len(ctl.poll_and_apply(None, every_s=0)), 1)


class StandardControlsTest(ControlTest):
    def test_run_stop(self) -> None:
        ctl = self.controller()
        self.assertFalse(ctl.stop_requested)
        runctl.RuntimeController.enqueue(self.q, "run.stop")
        (ack,) = ctl.poll_and_apply(None, every_s=0)
        self.assertEqual((ack["path"], ack["status"]), ("run.stop", "applied"))
        self.assertTrue(ctl.stop_requested)

    def test_checkpoint_save(self) -> None:
        ctl = self.controller()
        runctl.RuntimeController.enqueue(self.q, "checkpoint.save")
        (ack,) = ctl.poll_and_apply({"step": 1}, every_s=0)
        self.assertEqual((ack["status"], ack["error"]), ("failed", "no checkpoint hook registered"))

        saved = []

        @ctl.on_checkpoint
        def save(ctx, *args, **kwargs):
            saved.append((ctx, args, kwargs))

        runctl.RuntimeController.enqueue(self.q, "checkpoint.save")
        runctl.RuntimeController.enqueue(self.q, "checkpoint.save", "ckpt/step2.pt")
        acks = ctl.poll_and_apply({"step": 2}, every_s=0)
        self.assertEqual([a["status"] for a in acks], ["applied", "applied"])
        self.assertEqual(saved, [({"step": 2}, (), {}), ({"step": 2}, ("ckpt/step2.pt",), {})])

    def test_controls_json(self) -> None:
        state = {"mult": 1.0}

        def apply(ctx, v):
            state["mult"] = v

        ctl = self.controller()
        path = os.path.join(self.q, "controls.json")
        ctl.register("lr.mult", apply, validate_mult, description="LR multiplier",
                     schema={"type": "number", "exclusiveMinimum": 0}, get_value=lambda: state["mult"])
        doc = read_json(path)
        self.assertEqual(set(doc), {"controls", "updated_at", "pid"})
        self.assert_iso(doc["updated_at"], "updated_at")
        self.assertEqual(doc["pid"], os.getpid())
        by_path = {c["path"]: c for c in doc["controls"]}
        self.assertEqual(set(by_path), {"run.stop", "checkpoint.save", "lr.mult"})
        self.assertEqual(by_path["lr.mult"], {"path": "lr.mult", "description": "LR multiplier",
                                              "schema": {"type": "number", "exclusiveMinimum": 0}, "value": 1.0})
        runctl.RuntimeController.enqueue(self.q, "lr.mult", 0.25)
        ctl.poll_and_apply(None, every_s=0)
        self.assertEqual({c["path"]: c for c in read_json(path)["controls"]}["lr.mult"]["value"], 0.25)

    def test_register_is_idempotent_unless_overwrite(self) -> None:
        ctl = self.controller()
        ctl.register("x", self.record("first"))
        ctl.register("x", self.record("second"))
        ctl.register("y", apply_fn=self.record("y"), validate_fn=int)  # runtimectl's keyword names
        runctl.RuntimeController.enqueue(self.q, "x", 1)
        runctl.RuntimeController.enqueue(self.q, "y", "2")
        ctl.poll_and_apply(None, every_s=0)
        ctl.register("x", self.record("third"), overwrite=True)
        runctl.RuntimeController.enqueue(self.q, "x", 1)
        ctl.poll_and_apply(None, every_s=0)
        self.assertEqual([(c[0], c[2]) for c in self.calls], [("first", (1,)), ("y", (2,)), ("third", (1,))])
        with self.assertRaises(ValueError):
            ctl.register("", self.record("z"))
        with self.assertRaises(TypeError):
            ctl.register("z", None)


class ConfigureTest(ControlTest):
    def test_script_run_directly_is_steered_through_its_run(self) -> None:
        os.environ["RUNCTL_RUNS_DIR"] = os.path.join(self.tmp, "runs")
        run = runctl.init(system_metrics=False, capture_git=False, capture_pip=False)
        self.addCleanup(run.finish)
        ctl = runctl.RuntimeController()
        self.addCleanup(ctl.close)
        seen = []
        ctl.register("lr", lambda ctx, v: seen.append(v))
        runctl.RuntimeController.enqueue(os.path.join(run.run_dir, "control"), "lr", 0.5)
        ctl.poll_and_apply(every_s=0)
        self.assertEqual(ctl.queue_dir, os.path.join(run.run_dir, "control"))
        self.assertEqual(seen, [0.5])

    def test_configure_rules_and_environment(self) -> None:
        from runctl import _run

        saved = _run._latest_run_dir
        _run._latest_run_dir = None  # no runctl.init() in this process
        self.addCleanup(setattr, _run, "_latest_run_dir", saved)
        ctl = runctl.RuntimeController()
        self.addCleanup(ctl.close)
        self.assertIsNone(ctl.queue_dir)
        with self.assertRaisesRegex(RuntimeError, "RUNCTL_CONTROL_DIR"):
            ctl.poll_and_apply()
        ctl.configure(self.q)
        ctl.configure(self.q + "/")
        with self.assertRaises(ValueError):
            ctl.configure(os.path.join(self.tmp, "other"))
        for name in ("commands.jsonl", "acks.jsonl", "controls.json"):
            self.assertTrue(os.path.exists(os.path.join(self.q, name)), name)

        os.environ["RUNCTL_CONTROL_DIR"] = self.q
        from_env = runctl.RuntimeController()
        self.addCleanup(from_env.close)
        self.assertEqual(from_env.queue_dir, os.path.abspath(self.q))

    def test_rank_from_arguments_or_environment(self) -> None:
        os.environ.update({"RANK": "1", "WORLD_SIZE": "2"})
        ctl = self.controller()
        self.assertEqual((ctl.rank, ctl.world_size), (1, 2))
        runctl.RuntimeController.enqueue(self.q, "run.stop")
        (ack,) = ctl.poll_and_apply(None, every_s=0)
        self.assertEqual((ack["rank"], ack["world_size"]), (1, 2))
        self.assertTrue(os.path.exists(os.path.join(self.q, "cursor.rank1.json")))
        self.assertFalse(os.path.exists(os.path.join(self.q, "cursor.rank0.json")))
        self.assertFalse(os.path.exists(os.path.join(self.q, "controls.json")))  # only rank 0 writes it
        explicit = runctl.RuntimeController(self.q, rank=3, world_size=4)
        self.addCleanup(explicit.close)
        self.assertEqual((explicit.rank, explicit.world_size), (3, 4))
        with self.assertRaises(ValueError):
            runctl.RuntimeController(rank=2, world_size=2)


class PollIntervalTest(unittest.TestCase):
    def test_k_targets_every_s_and_at_most_doubles(self) -> None:
        self.assertEqual(next_poll_interval(1, None, 0, 2.0), 1)  # first poll: no measurement yet
        self.assertEqual(next_poll_interval(1, 0.01, 1, 2.0), 2)  # would be 200: doubling only
        self.assertEqual(next_poll_interval(128, 1.28, 128, 2.0), 200)
        self.assertEqual(next_poll_interval(200, 20.0, 200, 2.0), 20)  # slower steps: shrinks at once
        self.assertEqual(next_poll_interval(50, 100.0, 50, 2.0), 1)
        self.assertEqual(next_poll_interval(50, 1.0, 50, 0), 1)  # every_s=0: poll at every call
        self.assertEqual(next_poll_interval(10 ** 9, 0.0, 10, 2.0), 1000000)


if __name__ == "__main__":
    unittest.main()
