//! A crew of helper threads that live for one seal or open and share each batch's chunks with
//! the calling thread.
//!
//! The caller hands a batch's tasks to the crew, reads the next batch and hands that over too,
//! then joins in on what is left of the first batch and waits for the rest of it, while the
//! helpers go on to the next. So the helpers are never left without work between batches. They
//! start once per call, not once per batch, and sleep on a condition variable only when there is
//! nothing to do: no thread spawned per batch and no pool spinning.

use std::collections::VecDeque;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, Scope};

/// How many helpers to start besides the calling thread: one per other core.
pub(super) fn helpers_for_every_core() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get()) - 1
}

/// Runs `body` with a crew of `helpers` threads that apply `work` to the tasks it submits. The
/// helpers stop when `body` returns or unwinds; a panic in `work` goes on in the caller when it
/// collects the batch.
pub(super) fn with_crew<T, O, F, R>(
    helpers: usize,
    work: &F,
    body: impl FnOnce(&Crew<'_, T, O, F>) -> R,
) -> R
where
    T: Send,
    O: Send,
    F: Fn(T) -> O + Sync,
{
    let crew = Crew {
        state: Mutex::new(State {
            tasks: VecDeque::new(),
            finished: Vec::new(),
            waiting: false,
            stop: false,
        }),
        task_ready: Condvar::new(),
        task_done: Condvar::new(),
        work,
    };
    thread::scope(|scope: &Scope<'_, '_>| {
        // Stops the helpers however `body` ends, so the scope can join them; they finish the
        // tasks already handed over first.
        let _stop = StopOnDrop(&crew);
        // A helper the system will not start is one fewer: the caller does its share.
        for _ in 0..helpers {
            if thread::Builder::new()
                .name("attache-crew".into())
                .spawn_scoped(scope, || crew.help())
                .is_err()
            {
                break;
            }
        }
        body(&crew)
    })
}

/// See [`with_crew`].
pub(super) struct Crew<'w, T, O, F> {
    state: Mutex<State<T, O>>,
    task_ready: Condvar,
    task_done: Condvar,
    work: &'w F,
}

struct State<T, O> {
    /// Tasks not yet taken, each with its index, in the order given.
    tasks: VecDeque<(u32, T)>,
    /// Tasks done and not yet collected: each outcome, or the task's panic.
    finished: Vec<(u32, thread::Result<O>)>,
    /// Whether the caller waits for a task to finish.
    waiting: bool,
    stop: bool,
}

impl<T, O, F> Crew<'_, T, O, F>
where
    T: Send,
    O: Send,
    F: Fn(T) -> O + Sync,
{
    fn lock(&self) -> MutexGuard<'_, State<T, O>> {
        // A task's panic is caught outside the lock, so the state is never left half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands tasks to the crew, each with an index of its own; tasks are taken in the order
    /// handed over, across calls.
    pub(super) fn submit(&self, tasks: impl Iterator<Item = (u32, T)>) {
        self.lock().tasks.extend(tasks);
        self.task_ready.notify_all();
    }

    /// Works alongside the helpers on the tasks whose indices are in `range` (all handed over
    /// before), waits for the ones they took, and returns those outcomes, in no particular
    /// order. Tasks handed over later stay with the helpers meanwhile.
    pub(super) fn finish(&self, range: Range<u32>) -> Vec<O> {
        let want = range.len();
        let mut state = self.lock();
        loop {
            if state.tasks.front().is_some_and(|(i, _)| range.contains(i))
                && let Some((index, task)) = state.tasks.pop_front()
            {
                state = self.run(state, index, task);
                continue;
            }
            let done = state
                .finished
                .iter()
                .filter(|(index, _)| range.contains(index))
                .count();
            if done == want {
                break;
            }
            state.waiting = true;
            state = self
                .task_done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting = false;
        }
        let (mine, later) = std::mem::take(&mut state.finished)
            .into_iter()
            .partition(|(index, _)| range.contains(index));
        state.finished = later;
        drop(state);
        mine.into_iter()
            .map(|(_, outcome)| outcome.unwrap_or_else(|panic| resume_unwind(panic)))
            .collect()
    }

    /// Does one task taken from the queue with the lock released, catching its panic, and
    /// records it; returns the lock.
    fn run<'s>(
        &'s self,
        state: MutexGuard<'s, State<T, O>>,
        index: u32,
        task: T,
    ) -> MutexGuard<'s, State<T, O>> {
        drop(state);
        let outcome = catch_unwind(AssertUnwindSafe(|| (self.work)(task)));
        let mut state = self.lock();
        state.finished.push((index, outcome));
        state
    }

    /// A helper's life: take a task, do it, record it, until told to stop with nothing left.
    fn help(&self) {
        let mut state = self.lock();
        loop {
            if let Some((index, task)) = state.tasks.pop_front() {
                state = self.run(state, index, task);
                if state.waiting {
                    self.task_done.notify_all();
                }
                continue;
            }
            if state.stop {
                return;
            }
            state = self
                .task_ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn stop(&self) {
        self.lock().stop = true;
        self.task_ready.notify_all();
    }
}

struct StopOnDrop<'c, 'w, T, O, F>(&'c Crew<'w, T, O, F>)
where
    T: Send,
    O: Send,
    F: Fn(T) -> O + Sync;

impl<T, O, F> Drop for StopOnDrop<'_, '_, T, O, F>
where
    T: Send,
    O: Send,
    F: Fn(T) -> O + Sync,
{
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(range: Range<u64>) -> impl Iterator<Item = (u32, u64)> {
        range.map(|x| (x as u32, x))
    }

    #[test]
    fn every_task_of_every_batch_is_done_once_with_the_next_batch_already_handed_over() {
        let square = |x: u64| x * x;
        let sums: Vec<u64> = with_crew(3, &square, |crew| {
            crew.submit(numbered(0..16));
            (0..50u64)
                .map(|batch| {
                    let next = batch * 16 + 16;
                    crew.submit(numbered(next..next + 16));
                    let mut outcomes = crew.finish(batch as u32 * 16..next as u32);
                    outcomes.sort_unstable();
                    assert_eq!(outcomes.len(), 16, "batch {batch}");
                    outcomes.windows(2).for_each(|w| assert!(w[0] < w[1]));
                    outcomes.into_iter().sum()
                })
                .collect()
        });
        for (batch, sum) in sums.into_iter().enumerate() {
            let first = batch as u64 * 16;
            let expected: u64 = (first..first + 16).map(square).sum();
            assert_eq!(sum, expected, "batch {batch}");
        }
    }

    #[test]
    fn with_no_helpers_the_caller_does_everything_and_only_what_it_asks_for() {
        let caller = thread::current().id();
        let on_caller = |x: u64| (x, thread::current().id() == caller);
        let (first, second) = with_crew(0, &on_caller, |crew| {
            crew.submit(numbered(0..6));
            let first = crew.finish(0..3);
            (first, crew.finish(3..6))
        });
        assert_eq!(first, vec![(0, true), (1, true), (2, true)]);
        assert_eq!(second, vec![(3, true), (4, true), (5, true)]);
    }

    #[test]
    fn a_panicking_task_goes_on_in_the_caller_and_the_helpers_stop() {
        let fail_on_seven = |x: u64| {
            assert_ne!(x, 7, "task seven fails");
            x
        };
        let caught = catch_unwind(AssertUnwindSafe(|| {
            with_crew(2, &fail_on_seven, |crew| {
                crew.submit(numbered(0..32));
                crew.finish(0..16)
            })
        }));
        let panic = caught.expect_err("the task's panic reaches the caller");
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains("task seven fails"), "{message}");
    }
}
