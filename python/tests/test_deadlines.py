"""Deadlines: many deadlines on one loop timer."""

from __future__ import annotations

import asyncio
import unittest

from dspgo_worker import deadlines as deadlines_module
from dspgo_worker.deadlines import Deadlines, deadlines, resume

WAIT = 5.0


class DeadlinesTest(unittest.TestCase):
    def run_on_loop(self, body):
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(asyncio.wait_for(body(loop), WAIT))
        finally:
            loop.close()

    def test_due_ones_run_in_order_and_removed_ones_never(self):
        async def body(loop):
            timers = Deadlines(loop)
            fired = []
            done = loop.create_future()
            now = loop.time()
            timers.add(now + 0.03, fired.append, "third")
            timers.add(now + 0.01, fired.append, "first")
            removed = timers.add(now + 0.02, fired.append, "removed")
            timers.add(now + 0.02, fired.append, "second")
            timers.add(now + 0.04, done.set_result, None)
            timers.remove(removed)
            timers.remove(removed)  # twice: nothing
            self.assertEqual(len(timers), 4)
            await done
            self.assertGreaterEqual(loop.time(), now + 0.04)
            self.assertEqual(len(timers), 0)
            return fired

        self.assertEqual(self.run_on_loop(body), ["first", "second", "third"])

    def test_an_earlier_deadline_moves_the_timer(self):
        async def body(loop):
            timers = Deadlines(loop)
            done = loop.create_future()
            timers.add(loop.time() + 60, done.set_result, "late")
            timers.add(loop.time() + 0.01, done.set_result, "early")
            return await done

        self.assertEqual(self.run_on_loop(body), "early")

    def test_removing_every_deadline_leaves_the_timer_nothing_to_run(self):
        async def body(loop):
            timers = Deadlines(loop)
            entries = [timers.add(loop.time() + 0.01 + i / 1000, self.fail, i) for i in range(10)]
            for entry in entries:
                timers.remove(entry)
            # The loop runs its timers in order: the deadlines' (due at +0.01) before this
            # sleep's end; it fired, found nothing and was not armed again.
            await asyncio.sleep(0.05)
            self.assertIsNone(timers._armed())
            return len(timers)

        self.assertEqual(self.run_on_loop(body), 0)

    def test_one_deadline_after_another_keeps_one_loop_timer(self):
        async def body(loop):
            timers = Deadlines(loop)
            timers.remove(timers.add(loop.time() + 60, self.fail, 0))
            armed = timers._armed()
            for i in range(1, 100):  # requests one at a time, each with a later deadline
                timers.remove(timers.add(loop.time() + 60 + i, self.fail, i))
            self.assertIs(timers._armed(), armed)  # never cancelled and armed again
            done = loop.create_future()
            timers.add(loop.time() + 0.01, done.set_result, "earlier")  # an earlier one still moves it
            self.assertIsNot(timers._armed(), armed)
            self.assertTrue(armed.cancelled())
            return await done

        self.assertEqual(self.run_on_loop(body), "earlier")

    def test_removed_entries_do_not_pile_up(self):
        async def body(loop):
            timers = Deadlines(loop)
            keep = timers.add(loop.time() + 60, self.fail, None)
            for i in range(10 * deadlines_module.MIN_REBUILD):
                timers.remove(timers.add(loop.time() + 30 + i, self.fail, i))
            self.assertLessEqual(len(timers._heap), 2 * deadlines_module.MIN_REBUILD + 1)
            timers.remove(keep)
            return len(timers)

        self.assertEqual(self.run_on_loop(body), 0)

    def test_a_failing_callback_is_reported_and_the_others_run(self):
        async def body(loop):
            reported = []
            loop.set_exception_handler(lambda _loop, context: reported.append(context["exception"]))
            timers = Deadlines(loop)
            done = loop.create_future()
            when = loop.time() + 0.01

            def fail(_arg):
                raise ValueError("boom")

            timers.add(when, fail, None)
            timers.add(when, done.set_result, "ran")
            result = await done
            return result, [str(exc) for exc in reported]

        self.assertEqual(self.run_on_loop(body), ("ran", ["boom"]))

    def test_a_closed_loop_is_not_kept(self):
        import gc
        import weakref

        async def body(loop):
            timers = deadlines(loop)
            timers.remove(timers.add(loop.time() + 60, self.fail, None))
            return weakref.ref(loop)

        ref = self.run_on_loop(body)
        gc.collect()
        self.assertIsNone(ref(), "the loop (and its Deadlines) are freed once closed and dropped")

    def test_one_per_loop(self):
        async def body(loop):
            return deadlines(loop) is deadlines(loop)

        self.assertTrue(self.run_on_loop(body))


async def on_suspension(coro, then):
    """``await coro``, calling ``then()`` if it suspends, as the worker arms a deadline:
    the first step by hand, then resume."""
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return stop.value
    then()
    return await resume(coro, yielded)


class ResumeTest(unittest.TestCase):
    """resume: ``await coro`` after its first step was taken by hand."""

    def run_on_loop(self, body):
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(asyncio.wait_for(body(), WAIT))
        finally:
            loop.close()

    def test_a_coroutine_done_in_its_first_step_never_calls(self):
        calls = []

        async def at_once():
            return 42

        async def body():
            return await on_suspension(at_once(), lambda: calls.append(1))

        self.assertEqual(self.run_on_loop(body), 42)
        self.assertEqual(calls, [])

    def test_a_coroutine_that_suspends_calls_once_and_runs_to_its_end(self):
        calls = []

        async def steps():
            for _ in range(3):
                await asyncio.sleep(0)
            got = await asyncio.get_running_loop().run_in_executor(None, lambda: "from a thread")
            return got

        async def body():
            return await on_suspension(steps(), lambda: calls.append(1))

        self.assertEqual(self.run_on_loop(body), "from a thread")
        self.assertEqual(calls, [1])

    def test_errors_before_and_after_the_first_suspension_propagate(self):
        async def fails_at_once():
            raise ValueError("at once")

        async def fails_later():
            await asyncio.sleep(0)
            raise KeyError("later")

        for coro, error in ((fails_at_once, ValueError), (fails_later, KeyError)):
            with self.subTest(coro.__name__):

                async def body(coro=coro):
                    return await on_suspension(coro(), lambda: None)

                with self.assertRaises(error):
                    self.run_on_loop(body)

    def test_a_cancellation_reaches_the_coroutine(self):
        seen = []

        async def stubborn():
            try:
                await asyncio.get_running_loop().create_future()
            except asyncio.CancelledError:
                seen.append("cancelled")
                await asyncio.sleep(0)  # it may still await while it cleans up
                return "partial"

        async def cancelled():
            try:
                await asyncio.get_running_loop().create_future()
            finally:
                seen.append("cleaned up")

        async def later():  # cancelled past its first suspension
            for _ in range(3):
                await asyncio.sleep(0)
            try:
                await asyncio.get_running_loop().create_future()
            finally:
                seen.append("cleaned up later")

        async def body():
            kept = asyncio.ensure_future(on_suspension(stubborn(), lambda: None))
            gone = asyncio.ensure_future(on_suspension(cancelled(), lambda: None))
            gone_later = asyncio.ensure_future(on_suspension(later(), lambda: None))
            for _ in range(6):
                await asyncio.sleep(0)
            for task in (kept, gone, gone_later):
                task.cancel()
            for task in (gone, gone_later):
                with self.assertRaises(asyncio.CancelledError):
                    await task
            return await kept

        self.assertEqual(self.run_on_loop(body), "partial")
        self.assertEqual(sorted(seen), ["cancelled", "cleaned up", "cleaned up later"])

    def test_closing_it_closes_the_coroutine(self):
        seen = []

        async def suspended():
            try:
                await asyncio.sleep(0)
            finally:
                seen.append("closed")

        coro = suspended()
        awaiting = resume(coro, coro.send(None))
        awaiting.send(None)  # a task's first step: hands on what coro awaits
        awaiting.close()
        self.assertEqual(seen, ["closed"])


if __name__ == "__main__":
    unittest.main()
