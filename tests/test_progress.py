"""The update bar (``osvos_pl.tasks.progress.UpdateBar``) ends on the run's last validation."""

from __future__ import annotations

from types import SimpleNamespace

from osvos_pl.tasks.progress import UpdateBar


def test_the_bar_shows_the_validation_just_done_not_the_one_before():
    """The parent validates after its last update, when no batch follows to refresh the bar:
    the bar ended on an older J&F (0.496) while the run's final line said 0.645."""
    bar = UpdateBar("parent")
    trainer = SimpleNamespace(max_steps=2, global_step=0, sanity_checking=False)
    metrics = {"loss": 0.3, "val_jf": 0.496}
    bar.get_metrics = lambda trainer, module: dict(metrics)
    bar.on_train_start(trainer, None)
    for step in (1, 2):
        trainer.global_step = step
        bar.on_train_batch_end(trainer, None, None, None, step - 1)
    assert "val_jf=0.496" in bar._train.postfix
    metrics["val_jf"] = 0.645  # the validation after update 2
    bar.on_validation_end(trainer, None)
    assert "val_jf=0.645" in bar._train.postfix
    bar.on_train_end(trainer, None)
