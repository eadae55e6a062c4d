"""The heartbeat: per-thread scheduled decisions on the Ledger.

Submodules (imported on demand, never from here, so importing the package starts nothing and
pulls in nothing heavy): ``config`` (HeartbeatConfig), ``schedule`` (pure due-time and
active-hours maths), ``instructions`` (HEARTBEAT.md), ``context`` and ``prompt`` (what the LLM
sees), ``decision`` (the decision schema, lenient parsing, strict validation), ``executor`` (one
heartbeat for one thread: the lease and the error boundary), built from ``deps``, running
``gates`` (each check that can stop a run), ``pipeline`` (the steps), ``outbox`` (actions, sent
once each) and ``recording`` (the run's record, its next due time); ``recovery`` (what a crash
left behind), ``updates`` (config changes) and ``loop`` (the scheduler).
"""
