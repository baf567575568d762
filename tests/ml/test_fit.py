"""The fit harness: seeding, run state round trip, stop reasons, checkpoints and out-of-memory, on a tiny model."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from voxelstudio.core.progress import CancelToken
from voxelstudio.ml.callbacks import (
    CheckpointCallback,
    ProgressCallback,
    RunState,
    SaveUnsavedAtEnd,
    TimeBudgetCallback,
    ValidationCallback,
)
from voxelstudio.ml.fit import (
    TrainingDiverged,
    TrainingMemoryError,
    fit_scope,
    restore_run_state,
    run_fit,
    training_state,
)


class Batches(keras.utils.PyDataset):
    def __init__(self, steps: int = 3) -> None:
        super().__init__()
        self.steps = steps
        rng = np.random.default_rng(0)
        self.x = rng.normal(size=(steps, 4, 2)).astype(np.float32)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int):
        return self.x[index], self.x[index].sum(axis=1, keepdims=True)


def tiny_model() -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


class Saves:
    def __init__(self) -> None:
        self.best: list[int] = []
        self.last: list[int] = []

    def save_best(self, model, state: RunState) -> None:
        self.best.append(state.epochs_run)

    def save_last(self, model, state: RunState) -> None:
        self.last.append(state.epochs_run)


def fit(
    state: RunState, saves: Saves, *, cancel=None, minutes=None, callbacks=(), out_of_memory=None, report=None,
    last_every_s=30.0,
):  # fmt: skip
    return run_fit(
        tiny_model(), Batches(state.steps), state, monitor="loss", save_best=saves.save_best,
        save_last=saves.save_last, report=report or (lambda progress: None), cancel=cancel, minutes=minutes,
        callbacks=callbacks, out_of_memory=out_of_memory, last_every_s=last_every_s,
    )  # fmt: skip


def test_fit_scope_seeds_the_weights() -> None:
    def weights(seed: int) -> np.ndarray:
        with fit_scope(seed):
            return tiny_model().get_weights()[0]

    assert np.array_equal(weights(3), weights(3))
    assert not np.array_equal(weights(3), weights(4))


def test_training_state_round_trips_through_json_values() -> None:
    state = RunState(epochs=5, steps=2)
    state.history = {"loss": [1.0, math.nan], "epoch": [1, 2]}
    state.best, state.best_epoch, state.epochs_run = 0.5, 1, 2
    saved = training_state(state, learning_rate=1e-3)
    assert saved["history"]["loss"] == [1.0, None] and saved["learning_rate"] == 1e-3  # JSON has no NaN
    again = restore_run_state(saved, epochs=7, steps=3)
    assert (again.initial_epoch, again.epochs_run, again.best, again.best_epoch) == (2, 2, 0.5, 1)
    assert again.history["loss"][0] == 1.0 and math.isnan(again.history["loss"][1])
    fresh = restore_run_state({}, epochs=7, steps=3)
    assert fresh.initial_epoch == 0 and fresh.best == math.inf and fresh.history == {}


def test_runs_every_epoch_saving_best_and_last() -> None:
    saves, state = Saves(), RunState(epochs=3, steps=2)
    steps = []
    assert fit(state, saves, report=lambda p: steps.append(p.done)) == "epochs"
    # the last checkpoint after the first epoch and on the last; epoch 2 came within 30 s of the first save
    assert saves.last == [1, 3] and saves.best[0] == 1 and state.history["epoch"] == [1, 2, 3]
    assert steps[-1] == 6
    every = Saves()
    assert fit(RunState(epochs=3, steps=2), every, last_every_s=0.0) == "epochs" and every.last == [1, 2, 3]


def _checkpointing(state: RunState, saves: Saves, now: list[float]) -> CheckpointCallback:
    callback = CheckpointCallback(
        state, monitor="loss", save_last=saves.save_last, save_best=saves.save_best, last_every_s=30.0,
        clock=lambda: now[0],
    )  # fmt: skip
    callback.set_model(tiny_model())
    return callback


def _epoch(callback: CheckpointCallback, epoch: int, now: list[float], seconds: float) -> None:
    callback.on_epoch_begin(epoch)
    callback.on_train_batch_end(0)
    now[0] += seconds
    callback.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})


def test_the_last_checkpoint_is_written_at_most_every_30_s_and_when_the_run_ends() -> None:
    now, saves, state = [0.0], Saves(), RunState(epochs=20, steps=4)
    callback = _checkpointing(state, saves, now)
    for epoch in range(12):  # epochs of 7 s: saved after the 1st (7 s), then at 42, 77 s...
        _epoch(callback, epoch, now, 7.0)
    assert saves.last == [1, 6, 11] and saves.best == list(range(1, 13))  # the best model: every improvement
    callback.model.stop_training = True  # e.g. the time budget: the run's last epoch is saved whatever the clock
    _epoch(callback, 12, now, 7.0)
    assert saves.last == [1, 6, 11, 13]


def test_a_cancelled_partial_epoch_saves_whole_epochs_the_throttle_left_unsaved() -> None:
    now, saves, state = [0.0], Saves(), RunState(epochs=20, steps=4)
    callback = _checkpointing(state, saves, now)
    for epoch in range(3):
        _epoch(callback, epoch, now, 7.0)
    assert saves.last == [1]
    state.stopped_reason = "cancelled"  # mid-way through epoch 4: not validated, not recorded
    _epoch(callback, 3, now, 2.0)
    assert saves.last == [1, 3] and state.epochs_run == 3  # the weights now, counted as the last whole epoch
    _epoch(callback, 4, now, 2.0)  # nothing new since: stop fast
    assert saves.last == [1, 3]


def test_a_cancel_saves_the_trained_weights_not_early_stoppings_best() -> None:
    """Keras restores early stopping's best weights when training ends; the cancel's save comes before that."""
    saved: list[tuple[int, np.ndarray]] = []
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=100, restore_best_weights=True)
    token, state = CancelToken(), RunState(epochs=50, steps=3)
    losses = iter([0.5, 0.4, 0.6])  # the best epoch is the second
    validation = ValidationCallback(state, lambda model, want_preview: (next(losses), 30.0, None))

    def report(progress) -> None:
        if progress.done == 10:  # the first batch of epoch 4
            token.cancel()

    model = tiny_model()
    run_fit(
        model, Batches(3), state, monitor="val_loss", save_best=lambda m, s: None, report=report, cancel=token,
        save_last=lambda m, s: saved.append((s.epochs_run, m.get_weights()[0].copy())), minutes=None,
        callbacks=[validation, stopper],
    )  # fmt: skip
    assert [epoch for epoch, _ in saved] == [1, 3]
    np.testing.assert_array_equal(model.get_weights()[0], stopper.best_weights[0])  # restored at the end ...
    assert not np.array_equal(saved[-1][1], stopper.best_weights[0])  # ... after the checkpoint took the weights


def test_a_run_ends_with_its_last_epoch_saved() -> None:
    now, saves, state = [0.0], Saves(), RunState(epochs=2, steps=4)
    callback = _checkpointing(state, saves, now)
    _epoch(callback, 0, now, 7.0)
    _epoch(callback, 1, now, 7.0)  # the run's last epoch
    assert saves.last == [1, 2]


def test_epochs_a_stop_after_the_checkpoint_left_unsaved_are_saved_when_training_ends() -> None:
    now, saves, state = [0.0], Saves(), RunState(epochs=20, steps=4)
    callback = _checkpointing(state, saves, now)
    for epoch in range(3):  # 7-s epochs: only the first is saved within the 30-s throttle
        _epoch(callback, epoch, now, 7.0)
    assert saves.last == [1]

    SaveUnsavedAtEnd(callback).on_train_end()  # the time budget stopped the run after epoch 3's checkpoint

    assert saves.last == [1, 3]
    SaveUnsavedAtEnd(callback).on_train_end()
    assert saves.last == [1, 3]  # nothing new: no second write


class Diverge(keras.callbacks.Callback):
    """Sends the weights to infinity as the second epoch begins: its first batch's loss is not finite."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == 1:
            self.model.set_weights([np.full_like(w, np.inf) for w in self.model.get_weights()])


def test_a_loss_that_turns_nan_stops_the_run_and_keeps_the_last_good_epoch() -> None:
    saves, state = Saves(), RunState(epochs=5, steps=3)
    with pytest.raises(TrainingDiverged, match=r"NaN or infinite in epoch 2, batch 1 \(the model of epoch 1 is kept"):
        fit(state, saves, callbacks=[Diverge()])
    assert saves.best == [1] and saves.last == [1]  # nothing of the diverged epoch was saved
    assert state.epochs_run == 1 and state.history["epoch"] == [1]


def test_a_stop_pressed_in_the_batch_that_diverges_saves_nothing_of_it() -> None:
    saves, state, token = Saves(), RunState(epochs=5, steps=3), CancelToken()

    class StopAsItDiverges(Diverge):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            super().on_epoch_begin(epoch, logs)
            if epoch == 1:
                token.cancel()

    with pytest.raises(TrainingDiverged, match="the model of epoch 1 is kept"):
        fit(state, saves, cancel=token, callbacks=[StopAsItDiverges()])
    assert saves.best == [1] and saves.last == [1]


def test_a_run_resumed_with_its_budget_spent_does_not_train() -> None:
    saves, state, reports = Saves(), RunState(epochs=50, steps=3, initial_epoch=4), []
    state.started -= 61.0  # a minute and a second of earlier sessions

    assert fit(state, saves, minutes=1.0, report=reports.append) == "time"

    assert reports == [] and saves.last == [] and saves.best == [] and state.epochs_run == 0


def test_cancel_stops_within_the_batch_and_says_so() -> None:
    saves, state, token = Saves(), RunState(epochs=50, steps=3), CancelToken()

    def report(progress) -> None:
        if progress.done == 4:
            token.cancel()

    assert fit(state, saves, cancel=token, report=report) == "cancelled"
    assert state.epochs_run == 1 and state.step == 1


def test_time_budget_ends_the_run() -> None:
    assert fit(RunState(epochs=10_000, steps=3), Saves(), minutes=1e-6) == "time"


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.data is TensorFlow's")
def test_training_builds_its_tf_data_pipeline_without_autotuning(keras_own_tf_pipeline: type) -> None:
    assert not hasattr(keras_own_tf_pipeline.get_tf_dataset, "_voxelstudio_quiet")
    assert fit(RunState(epochs=1, steps=2), Saves()) == "epochs"
    assert keras_own_tf_pipeline.get_tf_dataset._voxelstudio_quiet  # backend.quiet_tf_data: no stall after a stop


def test_time_budget_stops_before_a_batch_that_would_end_past_it() -> None:
    now = [100.0]
    budget = TimeBudgetCallback(RunState(epochs=10, steps=10, started=100.0), minutes=1.0, clock=lambda: now[0])
    budget.set_model(tiny_model())
    budget.model.stop_training = False
    # the first batch (tracing) is not an estimate: 35 s + 35 s would pass the minute
    batches = [(100.0, 135.0), (135.0, 140.0), (140.0, 146.0), (146.0, 151.0), (151.0, 156.0)]
    # after the last one 56 s of the minute are spent and another 5-s batch would end past it
    for (begin, end), stops in zip(batches, [False] * 4 + [True], strict=True):
        now[0] = begin
        budget.on_train_batch_begin(0)
        now[0] = end
        budget.on_train_batch_end(0)
        assert budget.model.stop_training is stops, (begin, end)
    assert budget.state.stopped_reason == "time"


def test_time_budget_counts_the_epoch_end_that_a_stop_would_still_run() -> None:
    """A stop mid-epoch still validates, previews and saves at the epoch's end: with 20 s of that after every epoch,
    the run stops where another 1-s batch and those 20 s would pass the minute, not where the batch alone would
    (adapt overran its budget by an epoch's end)."""
    now = [0.0]
    budget = TimeBudgetCallback(RunState(epochs=10, steps=4, started=0.0), minutes=1.0, clock=lambda: now[0])
    budget.set_model(tiny_model())
    budget.model.stop_training = False
    for batch in range(4):  # the first epoch: 4 batches of 1 s, then 20 s of validation and preview
        budget.on_train_batch_begin(batch)
        now[0] += 1.0
        budget.on_train_batch_end(batch)
    now[0] += 20.0
    budget.on_epoch_end(0)
    assert not budget.model.stop_training  # 24 s of 60
    stops = []
    for batch in range(4):
        budget.on_train_batch_begin(batch)
        now[0] += 1.0
        budget.on_train_batch_end(batch)
        stops.append(budget.model.stop_training)
    assert stops == [False, False, False, False]  # 28 s: 28 + 1 + 20 < 60
    now[0] += 20.0
    budget.on_epoch_end(1)  # 48 s: one more batch would end at 49 and its epoch's end at 69
    assert budget.model.stop_training and budget.state.stopped_reason == "time"


def test_progress_counts_seconds_when_the_budget_ends_the_run_first() -> None:
    """10 epochs of 10 batches at 1 s a batch need 100 s: a 60-s budget ends the run, so the bar counts its
    seconds; a 600-s budget does not, so the bar counts batches."""
    now = [100.0]
    for budget_s, expected in [(60.0, (20, 60, 40.0)), (600.0, (20, 100, 80.0)), (None, (20, 100, 80.0))]:
        seen: list = []
        state = RunState(epochs=10, steps=10, started=now[0])
        progress = ProgressCallback(state, seen.append, budget_s=budget_s, clock=lambda: now[0])
        for epoch in range(2):
            progress.on_epoch_begin(epoch)
            for batch in range(10):
                now[0] += 1.0
                progress.on_train_batch_end(batch, {"loss": 0.5})
        last = seen[-1]
        assert (last.done, last.total, last.values["eta_s"]) == pytest.approx(expected), budget_s


def test_a_budget_alone_counts_seconds_however_fast_the_batches() -> None:
    """When the caller says the epoch count is only a cap (``budget_only``, a classifier trained with --minutes
    alone), the bar shows the budget's seconds even where fast batches (20 of 100 in 2 s of a 60-s budget) are ahead
    of it; without the flag they count as batches."""
    now = [0.0]
    for budget_only, expected in [(True, (2, 60)), (False, (20, 100))]:
        now[0], seen = 0.0, []
        state = RunState(epochs=10, steps=10, started=0.0)
        progress = ProgressCallback(state, seen.append, budget_s=60.0, budget_only=budget_only, clock=lambda: now[0])
        for epoch in range(2):
            progress.on_epoch_begin(epoch)
            for batch in range(10):
                now[0] += 0.1
                progress.on_train_batch_end(batch, {"loss": 0.5})
        assert (seen[-1].done, seen[-1].total) == expected, budget_only
        assert seen[-1].values["eta_s"] == pytest.approx(8.0)  # 80 batches at 0.1 s: the batches end it first


def test_a_resumed_run_counts_batches_while_they_are_ahead_of_the_budget() -> None:
    """Resumed half-way (50 of 100 batches done) with a 60-s budget: a slow first batch (5 s, compiling) puts the
    batches' ETA past the budget, but their share (51 %) is still ahead of the budget's (8 %), so the bar stays in
    batches rather than jumping back to 5 of 60 s; the ETA is capped by the budget."""
    now = [0.0]
    seen: list = []
    state = restore_run_state({"epoch": 5}, epochs=10, steps=10)
    state.started = 0.0
    progress = ProgressCallback(state, seen.append, budget_s=60.0, clock=lambda: now[0])
    progress.on_epoch_begin(5)
    now[0] = 5.0
    progress.on_train_batch_end(0, {"loss": 0.5})
    assert (seen[-1].done, seen[-1].total, seen[-1].values["eta_s"]) == (51, 100, 55.0)


def test_previews_keep_within_their_share_of_the_time() -> None:
    """With a 20 % share, a preview that took 2 s is followed by 8 s without one; every epoch is still validated."""
    now = [0.0]
    asked: list[bool] = []

    def validate(model: keras.Model, want_preview: bool) -> tuple[float, float, np.ndarray | None]:
        asked.append(want_preview)
        now[0] += 2.0 if want_preview else 0.1  # predicting the preview volume is the slow part
        return 0.5, 30.0, np.zeros(3) if want_preview else None

    shown: list[int] = []
    callback = ValidationCallback(
        RunState(epochs=10, steps=4), validate, on_preview=lambda epoch, _: shown.append(epoch), preview_share=0.2,
        clock=lambda: now[0],
    )  # fmt: skip
    for epoch in range(8):
        now[0] += 3.0  # an epoch of training
        logs: dict = {}
        callback.on_epoch_end(epoch, logs)
        assert logs["val_loss"] == 0.5
    # previews end at 5, 16.2 and 27.4 s; the next may start 8 s after each (at 13, 24.2 and 35.4)
    assert shown == [1, 4, 7] and len(asked) == 8


def test_a_preview_share_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ValueError, match="preview_share"):
        ValidationCallback(RunState(epochs=1, steps=1), lambda model, want: (0.0, 0.0, None), preview_share=0.0)


def test_resumed_state_continues_and_a_finished_run_does_nothing() -> None:
    saves = Saves()
    state = restore_run_state({"epoch": 2, "best": 1.0, "best_epoch": 2}, epochs=3, steps=2)
    assert fit(state, saves) == "epochs" and saves.last == [3]
    done = restore_run_state({"epoch": 3}, epochs=3, steps=2)
    assert fit(done, Saves()) == "epochs" and done.epochs_run == 3


class _OutOfMemory(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise MemoryError("out of host memory")


def test_out_of_memory_becomes_one_line_with_the_callers_advice() -> None:
    saves = Saves()
    with pytest.raises(TrainingMemoryError, match=r"^try smaller batches$"):
        fit(RunState(epochs=3, steps=2), saves, callbacks=[_OutOfMemory()], out_of_memory=lambda: "try smaller batches")
    assert saves.last == [1]  # the first epoch's checkpoint was written before the failure


def test_other_errors_pass_through() -> None:
    class Broken(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        fit(RunState(epochs=2, steps=2), Saves(), callbacks=[Broken()])


def test_a_resumed_run_goes_on_with_the_time_it_had_used() -> None:
    """``--minutes`` is the whole run's budget, as ``--epochs`` is its whole epoch count: a resumed run continues the
    budget (and a schedule over it) from where the checkpoint left it, instead of starting both afresh."""
    import time

    from voxelstudio.ml.fit import training_state

    state = restore_run_state({"epoch": 3, "elapsed_s": 90.0}, epochs=10, steps=4)
    assert time.monotonic() - state.started == pytest.approx(90.0, abs=5.0)
    assert training_state(state)["elapsed_s"] == pytest.approx(90.0, abs=5.0)
    assert time.monotonic() - restore_run_state({"epoch": 3}, epochs=10, steps=4).started < 5.0  # older checkpoints
    budget = TimeBudgetCallback(state, minutes=1.0)  # 60 s, of which 90 are used
    budget.set_model(keras.Sequential())
    budget.on_train_batch_begin(0)
    budget.on_train_batch_end(0)
    assert state.stopped_reason == "time"
