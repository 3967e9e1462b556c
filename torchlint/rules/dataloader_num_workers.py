"""TL709 dataloader-num-workers: ``DataLoader(...)`` without ``num_workers``: batches are loaded
in the training process, between steps (off by default)."""

from __future__ import annotations

from collections.abc import Iterator

from torchlint.facts import ModuleFacts, find_arg
from torchlint.rules import Hit, Rule
from torchlint.screen import TreeInfo

LOADERS = ("torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader")
NUM_WORKERS_POSITION = 5  # DataLoader(dataset, batch_size, shuffle, sampler, batch_sampler, num_workers, ...)


class DataloaderNumWorkers(Rule):
    code = "TL709"
    name = "dataloader-num-workers"
    summary = "DataLoader without num_workers: data loads in the training process, between steps"
    needles = ("DataLoader",)
    default_enabled = False
    off_reason = "a speed hint, not a bug: num_workers=0 is right for small or in-memory data"

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        return info.mentions(LOADERS)

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for call, _ in facts.calls_to(*LOADERS):
            arg, maybe = find_arg(call.node, "num_workers", NUM_WORKERS_POSITION)
            if arg is not None or maybe:
                continue  # given (0 written out is a decision), or maybe given through *args/**kwargs
            yield Hit(
                call.node,
                "DataLoader without num_workers loads every batch in the training process, so the model "
                "waits for data between steps; pass num_workers= (for example the number of CPU cores "
                "available per process), or num_workers=0 to say it is meant",
            )
