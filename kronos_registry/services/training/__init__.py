"""Fine-tuning a Kronos variant on your own candles, registered with its lineage.

    data.py      candles -> series -> time split -> normalised windows (history-only statistics)
    settings.py  the run's settings, checked once for every face
    loop.py      the training loop of one stage, top to bottom
    state.py     resumable state files (atomic)
    ddp.py       torchrun: ranks, sharding, the few collectives
    register.py  the new entries and their lineage into the registry file (the commit point)
    finetune.py  the orchestration: base -> stages -> checkpoints -> registration

The losses themselves are the model family's (``kronos/losses.py``). Nothing here is
imported by ``import kronos_registry``; torch is imported when a run starts.
"""
